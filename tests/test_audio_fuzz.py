"""Fuzzing the decoding paths with a fixed seed: random bytes, truncated files, headers that
lie about sizes, channels, rates and block alignment, flipped bytes, extreme rates and channel
counts. No case may crash the process or use unbounded memory; each is decoded to finite
audio or rejected with a reason, by the Beam job's decoder and by the exported model's byte
signature, which never labels an item it did not judge nor lets it change its neighbour."""

import json
import os
import subprocess
import sys

import pytest

CASES = 300
# Decoding 300 short files needs well under 100 MB; a decoder that believed a huge declared
# size would allocate gigabytes.
PEAK_MEMORY_MB = 500
# What the signature's calls may add to the loaded model's memory: each case is at most a
# few MB; a signature that believed a header (the 1 MHz rates, the 4 GB data sizes) would
# add gigabytes.
SIGNATURE_MEMORY_MB = 200
# 300 cases through two decoders in a child process: minutes on 2 cores.
pytestmark = pytest.mark.slow


def run_fuzz(*model: str) -> tuple[list[dict], dict]:
    script = os.path.join(os.path.dirname(__file__), "fuzz_audio.py")
    result = subprocess.run([sys.executable, script, "20261126", str(CASES), *model],
                            capture_output=True, text=True, timeout=600,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    last = lines[-1] if lines else {}
    assert result.returncode == 0, (
        f"the decoder crashed (exit {result.returncode}) after {last}: "
        f"{result.stderr[-2000:]}")
    outcomes = [line for line in lines if "rejected" in line or "decoded_seconds" in line]
    assert len(outcomes) == CASES
    return outcomes, last


def test_three_hundred_fuzz_cases_never_crash_and_each_is_named():
    outcomes, last = run_fuzz()
    rejected = [line["rejected"] for line in outcomes if "rejected" in line]
    assert all(reason.strip() for reason in rejected)
    # The seed makes a mix: most cases are rejected, some still decode (truncated files).
    assert 0.3 * CASES < len(rejected) < CASES
    assert last["peak_rss_mb"] < PEAK_MEMORY_MB


def test_the_byte_signature_fails_closed_on_every_fuzz_case_in_bounded_memory(
        untrained_export):
    outcomes, last = run_fuzz(untrained_export)  # the child asserts each call's outputs
    statuses = [line["signature"]["status"] for line in outcomes]
    # What the reference decoder refuses, the signature never judges.
    assert not [line for line in outcomes
                if "rejected" in line and line["signature"]["status"] == "ok"]
    assert {"ok", "not_a_wav_file", "invalid_header", "unsupported_format"} <= set(statuses)
    assert last["signature_peak_added_mb"] < SIGNATURE_MEMORY_MB
