"""Protocol files instead of the folder layout: this project's CSV and ASVspoof's CM
protocols, attack and speaker reaching the examples, missing files as named rejections, and
no path leaving the dataset root."""

import os

import apache_beam as beam
import pytest
import soundfile
import tensorflow as tf
from apache_beam.options.pipeline_options import PipelineOptions

from spoofdetect.cli import main
from spoofdetect.config import FeatureConfig
from spoofdetect.data import example_dataset, split_files
from spoofdetect.dataset import dataset_fingerprint, scan_dataset
from spoofdetect.errors import UserError
from spoofdetect.extraction import run_extraction
from tests.conftest import tone


def write_clip(path, frequency: float) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    soundfile.write(path, tone(1.0, frequency=frequency), 16000,
                    format="FLAC" if str(path).endswith(".flac") else "WAV")


@pytest.fixture
def csv_dataset(tmp_path):
    """Clips in per-speaker folders, described by a CSV protocol (one listed file missing)."""
    root = tmp_path / "corpus"
    rows = ["split,label,attack,speaker,file"]
    for split in ("train", "dev", "eval"):
        for index, (label, attack) in enumerate((("real", "-"), ("fake", "A01"),
                                                  ("fake", "A02"), ("real", "-"))):
            path = f"spk{index}/{split}_{index}.wav"
            write_clip(root / path, 300 + 100 * index)
            rows.append(f"{split},{label},{attack},spk{index},{path}")
    rows.append("eval,fake,A03,spk9,spk9/not_there.wav")
    protocol = tmp_path / "protocol.csv"
    protocol.write_text("\n".join(rows) + "\n")
    return str(root), str(protocol)


def test_csv_protocol_lists_clips_with_attack_and_speaker(csv_dataset):
    root, protocol = csv_dataset
    sources = scan_dataset(root, FeatureConfig(protocol=(protocol,)))
    assert len(sources) == 13
    by_path = {source.relative_path: source for source in sources}
    assert by_path["spk1/dev_1.wav"].split == "dev" and by_path["spk1/dev_1.wav"].label == "fake"
    assert by_path["spk1/dev_1.wav"].attack == "A01" and by_path["spk0/dev_0.wav"].attack == ""
    assert by_path["spk2/eval_2.wav"].speaker == "spk2"
    assert by_path["spk9/not_there.wav"].size_bytes < 0


def test_attack_and_speaker_reach_the_examples_and_missing_files_are_named(csv_dataset,
                                                                            tmp_path):
    root, protocol = csv_dataset
    output = str(tmp_path / "examples")
    config = FeatureConfig(protocol=(protocol,), augment=0)
    summary = run_extraction(beam.Pipeline(options=PipelineOptions(["--direct_num_workers=1"])),
                             root, output, config, show_progress=False)
    assert summary.num_examples == 12
    assert summary.rejected == [{"path": "spk9/not_there.wav", "split": "eval",
                                 "label": "fake",
                                 "reason": "listed in the protocol but not found under the "
                                           "dataset root"}]
    [batch] = list(example_dataset(split_files(output, "eval"), config, 16))
    attacks = sorted(a.decode() for a in batch["attack"].numpy())
    assert attacks == ["", "", "A01", "A02"]
    speakers = {s.decode() for s in batch["speaker"].numpy()}
    assert speakers == {"spk0", "spk1", "spk2", "spk3"}


def test_asvspoof_protocols_find_the_flac_files_by_utterance(tmp_path):
    root = tmp_path / "LA"
    protocols = []
    for split, prefix, suffix in (("train", "T", "trn"), ("dev", "D", "trl"),
                                  ("eval", "E", "trl")):
        lines = []
        for index, (key, attack) in enumerate((("bonafide", "-"), ("spoof", "A07"))):
            utterance = f"LA_{prefix}_{index:07d}"
            write_clip(root / f"ASVspoof2019_LA_{split}" / "flac" / f"{utterance}.flac",
                       400 + 200 * index)
            lines.append(f"LA_00{index}9 {utterance} - {attack} {key}")
        path = tmp_path / f"ASVspoof2019.LA.cm.{split}.{suffix}.txt"
        path.write_text("\n".join(lines) + "\n")
        protocols.append(str(path))
    sources = scan_dataset(str(root), FeatureConfig(protocol=tuple(protocols)))
    by_id = {source.clip_id: source for source in sources}
    assert set(by_id) == {"LA_T_0000000", "LA_T_0000001", "LA_D_0000000", "LA_D_0000001",
                          "LA_E_0000000", "LA_E_0000001"}
    spoof = by_id["LA_E_0000001"]
    assert (spoof.split, spoof.label, spoof.attack, spoof.speaker) == (
        "eval", "fake", "A07", "LA_0019")
    assert spoof.relative_path == "ASVspoof2019_LA_eval/flac/LA_E_0000001.flac"
    assert all(source.size_bytes > 0 for source in sources)


@pytest.mark.parametrize("bad_path", ["../outside.wav", "spk0/../../outside.wav",
                                      "/etc/passwd", "C:/data/x.wav", "gs://bucket/x.wav"])
def test_protocol_paths_cannot_leave_the_dataset_root(csv_dataset, tmp_path, bad_path):
    root, _ = csv_dataset
    (tmp_path / "outside.wav").write_bytes(b"secret")
    protocol = tmp_path / "bad.csv"
    protocol.write_text(f"split,label,file\ntrain,real,spk0/train_0.wav\n"
                        f"train,fake,{bad_path}\n")
    with pytest.raises(UserError, match=r"bad.csv, line 3: the path .* is not inside the "
                                        r"dataset root"):
        scan_dataset(root, FeatureConfig(protocol=(str(protocol),)))


def test_asvspoof_utterance_cannot_leave_the_root(tmp_path):
    protocol = tmp_path / "ASVspoof2019.LA.cm.dev.trl.txt"
    protocol.write_text("LA_0001 ../../../etc/passwd - - bonafide\n")
    os.makedirs(tmp_path / "root")
    with pytest.raises(UserError, match="line 1: the path"):
        scan_dataset(str(tmp_path / "root"), FeatureConfig(protocol=(str(protocol),)))


def test_protocol_mistakes_name_the_line(csv_dataset, tmp_path):
    root, protocol = csv_dataset
    text = open(protocol).read()
    cases = {"label": text.replace("train,fake,A01", "train,maybe,A01"),
             "split": text.replace("dev,real,-,spk0", "test,real,-,spk0"),
             "twice": text + text.splitlines()[1] + "\n"}
    for expected, content in (("is not one of", cases["label"]),
                              ("split 'test' is not one of", cases["split"]),
                              ("listed twice", cases["twice"])):
        path = tmp_path / f"{expected[:5]}.csv"
        path.write_text(content)
        with pytest.raises(UserError, match=expected):
            scan_dataset(root, FeatureConfig(protocol=(str(path),)))


def test_fingerprint_follows_the_protocol(csv_dataset, tmp_path):
    root, protocol = csv_dataset
    config = FeatureConfig(protocol=(protocol,))
    before = dataset_fingerprint(root, config)
    lines = open(protocol).read().replace("dev,fake,A01", "dev,fake,A05")
    changed = tmp_path / "changed.csv"
    changed.write_text(lines)
    assert dataset_fingerprint(root, FeatureConfig(protocol=(str(changed),))) != before


def test_features_command_takes_protocol_files(csv_dataset, tmp_path, capsys):
    root, protocol = csv_dataset
    output = tmp_path / "out"
    assert main(["features", "--data-root", root, "--output", str(output), "--protocol",
                 protocol, "--beam-arg=--direct_num_workers=1"]) == 0
    out = capsys.readouterr().out
    assert "rejected spk9/not_there.wav: listed in the protocol but not found" in out
    assert tf.io.gfile.glob(str(output / "Split-eval" / "data_tfrecord-*"))
