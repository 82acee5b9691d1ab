"""The `spoofdetect` command line as a user runs it: exit codes, messages, outputs."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import soundfile

from spoofdetect.cli import main


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "spoofdetect.cli", *args],
                          capture_output=True, text=True, timeout=600)


def test_features_command_writes_tfrecords_report_and_summary(small_layout, tmp_path):
    out = str(tmp_path / "features")
    result = run_cli("features", "--data-root", small_layout, "--output", out,
                     "--segments", "all")
    assert result.returncode == 0, result.stderr
    # By default each training clip adds two augmented copies; dev and eval add none.
    assert "12 files -> 12 clips, 20 examples; 0 rejected" in result.stdout
    assert "train  real        2         6" in result.stdout
    assert "dev    real        2         2" in result.stdout
    assert "[features] 12/12 files" in result.stderr  # progress while it runs
    with open(os.path.join(out, "feature_report.json")) as handle:
        assert json.load(handle)["num_examples"] == 20
    assert os.listdir(os.path.join(out, "Split-eval"))


def test_fatal_layout_error_is_one_message_and_exit_2(small_layout, tmp_path):
    shutil.rmtree(os.path.join(small_layout, "dev", "fake"))
    result = run_cli("features", "--data-root", small_layout, "--output", str(tmp_path / "o"))
    assert result.returncode == 2
    assert "error: Dataset" in result.stderr and "dev/fake" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_override_exits_2(capsys, small_layout, tmp_path):
    code = main(["features", "--data-root", small_layout, "--output", str(tmp_path),
                 "--set", "features.bogus=1"])
    assert code == 2
    assert "Unknown config key 'features.bogus'" in capsys.readouterr().err


def test_make_demo_data_is_deterministic_and_mixed(tmp_path):
    for name in ("a", "b"):
        assert main(["make-demo-data", str(tmp_path / name), "--scale", "0.05"]) == 0
    files = sorted(os.path.relpath(os.path.join(d, f), tmp_path / "a")
                   for d, _, fs in os.walk(tmp_path / "a") for f in fs)
    assert len([f for f in files if not f.startswith("broken")]) == 12  # (4 + 1 + 1) x 2 classes
    for relative in files:
        with open(tmp_path / "a" / relative, "rb") as x, open(tmp_path / "b" / relative,
                                                              "rb") as y:
            assert x.read() == y.read(), relative
    infos = [soundfile.info(str(tmp_path / "a" / f)) for f in files
             if not f.startswith("broken")]
    assert len({info.samplerate for info in infos}) >= 3
    durations = np.array([info.duration for info in infos])
    assert durations.min() >= 1.5 and durations.max() <= 6.0
    assert any(f.startswith("broken/train/real/") for f in files)
