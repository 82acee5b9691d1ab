"""Input a user can get wrong, through the commands as they run them: special files and links
out of the dataset are named rejections (never a hang), outputs are checked before the work,
and every mistake is one message with exit 2, no traceback, nothing computed lost."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from spoofdetect.cli import main
from tests.conftest import write_layout

IN_PROCESS = ["--beam-arg=--direct_num_workers=1", "--beam-arg=--direct_running_mode=in_memory"]


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """The command in a child process: a hang fails the test at `timeout`, not the suite."""
    return subprocess.run([sys.executable, "-m", "spoofdetect.cli", *args],
                          capture_output=True, text=True, timeout=timeout)


def user_error(capsys, argv: list[str]) -> str:
    """Runs `argv` in-process; asserts exit 2 with one error message; returns it."""
    capsys.readouterr()  # what earlier calls printed
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err
    return err


@pytest.fixture
def layout_with_special_files(tmp_path):
    root = str(tmp_path / "data")
    write_layout(root)
    outside = tmp_path / "outside.wav"
    shutil.copy(os.path.join(root, "train", "real", "real_0.wav"), outside)
    os.mkfifo(os.path.join(root, "train", "real", "fifo.wav"))
    os.symlink("/dev/zero", os.path.join(root, "train", "real", "zero.wav"))
    os.symlink(outside, os.path.join(root, "train", "fake", "outside.wav"))
    # A link that stays inside the root is an ordinary file.
    os.symlink(os.path.join(root, "dev", "real", "real_0.wav"),
               os.path.join(root, "dev", "real", "inside.wav"))
    return root


EXPECTED_SPECIAL = {
    "train/real/fifo.wav": "not a regular file (a FIFO)",
    "train/real/zero.wav": "a symbolic link to /dev/zero, outside the dataset root",
    "train/fake/outside.wav": "outside the dataset root",
}


def test_fifos_devices_and_links_out_of_the_root_are_named_never_read(
        layout_with_special_files, tmp_path):
    output = tmp_path / "features"
    result = run_cli("features", "--data-root", layout_with_special_files, "--output",
                     str(output), *IN_PROCESS, timeout=240)
    assert result.returncode == 0, result.stderr
    report = json.loads((output / "feature_report.json").read_text())
    reasons = {entry["path"]: entry["reason"] for entry in report["rejected"]}
    assert set(reasons) == set(EXPECTED_SPECIAL)
    for path, reason in EXPECTED_SPECIAL.items():
        assert reason in reasons[path]
        assert f"rejected {path}: " in result.stdout
    assert report["counts"]["dev"]["real"]["clips"] == 3  # the inside link is used


def test_protocol_layout_applies_the_same_rule_to_links(layout_with_special_files, tmp_path):
    protocol = tmp_path / "protocol.csv"
    rows = ["split,label,file"] + [
        f"{split},{label},{split}/{label}/{label}_{index}.wav"
        for split in ("train", "dev", "eval") for label in ("real", "fake")
        for index in range(2)] + ["train,fake,train/fake/outside.wav",
                                  "train,real,train/real/fifo.wav"]
    protocol.write_text("\n".join(rows) + "\n")
    output = tmp_path / "features"
    result = run_cli("features", "--data-root", layout_with_special_files, "--output",
                     str(output), "--protocol", str(protocol), *IN_PROCESS, timeout=240)
    assert result.returncode == 0, result.stderr
    report = json.loads((output / "feature_report.json").read_text())
    reasons = {entry["path"]: entry["reason"] for entry in report["rejected"]}
    assert "outside the dataset root" in reasons["train/fake/outside.wav"]
    assert "FIFO" in reasons["train/real/fifo.wav"]


def test_score_names_fifos_and_devices_without_hanging(untrained_export, tmp_path):
    folder = tmp_path / "audio"
    folder.mkdir()
    os.mkfifo(folder / "fifo.wav")
    os.symlink("/dev/zero", folder / "zero.wav")
    result = run_cli("score", "--model", untrained_export, str(folder), timeout=240)
    assert result.returncode == 1, result.stderr
    assert "fifo.wav" in result.stdout and "not a regular file (a FIFO)" in result.stdout
    assert "not a regular file (a character device)" in result.stdout
    assert "0 scored, 2 failed" in result.stdout


def test_features_refuses_an_output_that_holds_an_earlier_run(small_layout, tmp_path,
                                                             capsys):
    output = tmp_path / "features"
    assert main(["features", "--data-root", small_layout, "--output", str(output),
                 *IN_PROCESS]) == 0
    first = sorted(p.name for p in (output / "Split-train").iterdir())
    other = str(tmp_path / "other")
    write_layout(other, per_class=1)
    err = user_error(capsys, ["features", "--data-root", other, "--output", str(output),
                              *IN_PROCESS])
    assert "already holds files" in err and "--overwrite" in err
    assert sorted(p.name for p in (output / "Split-train").iterdir()) == first  # untouched
    # --overwrite: the new output replaces the old whole; nothing of the first run is left.
    assert main(["features", "--data-root", other, "--output", str(output), "--overwrite",
                 *IN_PROCESS]) == 0
    report = json.loads((output / "feature_report.json").read_text())
    # Two augmented copies of each of the 2 training clips by default: 2 + 4 + 2 + 2.
    assert report["num_examples"] == 10 and report["data_root"] == other
    assert not [p for p in tmp_path.iterdir() if "staging" in p.name]


def test_unwritable_outputs_are_refused_before_any_work(small_layout, untrained_export,
                                                        tmp_path, capsys):
    # A path under a regular file cannot be written, even by root.
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    unwritable = str(blocker / "out")
    err = user_error(capsys, ["features", "--data-root", small_layout, "--output", unwritable,
                              *IN_PROCESS])
    assert "Cannot write to the output folder" in err
    audio = os.path.join(small_layout, "dev", "real")
    for flag in ("--output", "--asvspoof-scores"):
        name = unwritable + ".csv"
        err = user_error(capsys, ["score", "--model", untrained_export, audio, flag, name])
        assert "Cannot write the" in err and "[score]" not in err  # nothing was scored
    err = user_error(capsys, ["score", "--model", untrained_export, audio, "--output",
                              str(tmp_path / "scores.xyz")])
    assert "name a .csv or a .json file" in err
    err = user_error(capsys, ["compile", "--image", "img:1", "--pipeline-root", "gs://b/root",
                              "--data-root", "gs://b/data", "--output", unwritable + ".yaml"])
    assert "Cannot write the pipeline spec" in err


@pytest.mark.parametrize(("flags", "message"), [
    (["--gpus", "-1"], "--gpus -1: give 0"),
    (["--pipeline-root", ""], "--pipeline-root '' is not a location"),
    (["--pipeline-root", "relative/root"], "--pipeline-root 'relative/root' is not a location"),
    (["--pipeline-root", "gs://"], "is not a location"),
    (["--data-root", "data dir"], "--data-root 'data dir' is not a location"),
])
def test_compile_validates_its_flags(flags, message, tmp_path, capsys):
    argv = {"--image": "img:1", "--pipeline-root": "gs://bucket/root",
            "--data-root": "/mnt/data", "--output": str(tmp_path / "spec.yaml")}
    for flag, value in zip(flags[::2], flags[1::2], strict=True):
        argv[flag] = value
    err = user_error(capsys, ["compile", *[item for pair in argv.items() for item in pair]])
    assert message in err
    assert not (tmp_path / "spec.yaml").exists()


def test_a_corrupt_saved_model_is_a_message(untrained_export, small_layout, tmp_path, capsys):
    broken = tmp_path / "model"
    shutil.copytree(untrained_export, broken)
    (broken / "saved_model.pb").write_bytes(b"\x08\x96\x01 not a protobuf")
    err = user_error(capsys, ["score", "--model", str(broken), small_layout])
    assert "Cannot load the SavedModel" in err


def test_score_files_that_are_binary_duplicated_or_not_numbers(tmp_path, capsys):
    binary = tmp_path / "scores.bin"
    binary.write_bytes(bytes(range(256)) * 4)
    assert "is not a text score file" in user_error(capsys, ["metrics", str(binary)])
    duplicated = tmp_path / "dup.txt"
    duplicated.write_text("u1 - bonafide 1.0\nu2 A01 spoof -1.0\nu1 A01 spoof 0.5\n")
    err = user_error(capsys, ["metrics", str(duplicated)])
    assert "line 3: utterance 'u1' is already scored on line 1" in err
    scores = tmp_path / "cm.txt"
    scores.write_text("u1 - bonafide 1.0\nu2 A01 spoof -1.0\n")
    for bad in ("high", "nan"):
        asv = tmp_path / f"asv_{bad}.txt"
        asv.write_text(f"s1 target 2.0\ns1 nontarget -2.0\ns1 spoof {bad}\n")
        err = user_error(capsys, ["metrics", str(scores), "--asv-scores", str(asv)])
        assert f"line 3: score '{bad}' is not" in err


@pytest.mark.parametrize("command", ["lineage", "runs"])
def test_reading_commands_never_write_a_store_into_a_wrong_file(command, tmp_path, capsys):
    empty = tmp_path / "empty.sqlite"
    empty.write_bytes(b"")
    err = user_error(capsys, [command, "--metadata", str(empty)])
    assert "is not an ML Metadata store" in err
    assert empty.read_bytes() == b""  # no schema written into it
