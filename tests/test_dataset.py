"""Scanning the dataset layout: fatal layouts, every file accounted for, the fingerprint."""

import os
import shutil

import pytest

from spoofdetect.dataset import dataset_fingerprint, scan_dataset
from spoofdetect.errors import UserError


def test_every_file_of_the_six_folders_is_a_source(small_layout):
    with open(os.path.join(small_layout, "dev", "fake", "notes.txt"), "w") as handle:
        handle.write("x")
    sources = scan_dataset(small_layout)
    assert len(sources) == 13
    note = next(s for s in sources if s.relative_path.endswith("notes.txt"))
    assert (note.split, note.label, note.label_id) == ("dev", "fake", 1)
    real = next(s for s in sources if s.relative_path == "train/real/real_0.wav")
    assert real.label_id == 0 and real.clip_id == "train_real_real_0"
    assert real.size_bytes == os.path.getsize(os.path.join(small_layout, real.relative_path))


def test_files_in_subfolders_of_a_class_folder_count(small_layout):
    nested = os.path.join(small_layout, "train", "real", "speaker_7")
    os.makedirs(nested)
    shutil.copy(os.path.join(small_layout, "train", "real", "real_0.wav"), nested)
    sources = scan_dataset(small_layout)
    paths = {s.relative_path: s for s in sources}
    assert "train/real/speaker_7/real_0.wav" in paths
    assert paths["train/real/speaker_7/real_0.wav"].clip_id == "train_real_speaker_7_real_0"
    assert paths["train/real/real_0.wav"].clip_id == "train_real_real_0"


def test_missing_root(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        scan_dataset(str(tmp_path / "nowhere"))


def test_missing_split_or_class_folder(small_layout):
    shutil.rmtree(os.path.join(small_layout, "eval"))
    shutil.rmtree(os.path.join(small_layout, "train", "fake"))
    with pytest.raises(UserError, match=r"missing the folder.*train/fake.*eval/real.*eval/fake"):
        scan_dataset(small_layout)


def test_empty_dataset(tmp_path):
    for split in ("train", "dev", "eval"):
        for label in ("real", "fake"):
            os.makedirs(tmp_path / split / label)
    with pytest.raises(UserError, match="No audio files"):
        scan_dataset(str(tmp_path))


def test_train_split_without_one_class(small_layout):
    for name in os.listdir(os.path.join(small_layout, "train", "fake")):
        os.remove(os.path.join(small_layout, "train", "fake", name))
    with pytest.raises(UserError, match="train split has no fake clips"):
        scan_dataset(small_layout)


def test_fingerprint_changes_with_the_files(small_layout):
    before = dataset_fingerprint(small_layout)
    assert dataset_fingerprint(small_layout) == before
    with open(os.path.join(small_layout, "eval", "real", "real_0.wav"), "ab") as handle:
        handle.write(b"\0\0")
    assert dataset_fingerprint(small_layout) != before
