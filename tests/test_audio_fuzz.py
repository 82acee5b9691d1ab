"""Fuzzing the decoding path with a fixed seed: random bytes, truncated files, headers that
lie about sizes, channels, rates and block alignment, flipped bytes. No case may crash the
process or use unbounded memory; each is decoded to finite audio or rejected with a reason."""

import json
import os
import subprocess
import sys

CASES = 300
# Decoding 300 short files needs well under 100 MB; a decoder that believed a huge declared
# size would allocate gigabytes.
PEAK_MEMORY_MB = 500


def test_three_hundred_fuzz_cases_never_crash_and_each_is_named():
    script = os.path.join(os.path.dirname(__file__), "fuzz_audio.py")
    result = subprocess.run([sys.executable, script, "20261126", str(CASES)],
                            capture_output=True, text=True, timeout=600,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    last = lines[-1] if lines else {}
    assert result.returncode == 0, (
        f"the decoder crashed (exit {result.returncode}) after {last}: "
        f"{result.stderr[-2000:]}")
    outcomes = [line for line in lines if "rejected" in line or "decoded_seconds" in line]
    assert len(outcomes) == CASES
    rejected = [line["rejected"] for line in outcomes if "rejected" in line]
    assert all(reason.strip() for reason in rejected)
    # The seed makes a mix: most cases are rejected, some still decode (truncated files).
    assert 0.3 * CASES < len(rejected) < CASES
    assert last["peak_rss_mb"] < PEAK_MEMORY_MB
