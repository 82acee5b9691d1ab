"""The Beam extraction job end to end on real files: examples, counts, rejects, report."""

import dataclasses
import json
import os
import pickle
import re
import shutil
import subprocess
import sys

import apache_beam as beam
import numpy as np
import pytest
import soundfile
import tensorflow as tf
from apache_beam.options.pipeline_options import PipelineOptions

from spoofdetect import examples
from spoofdetect.audio import decode_audio, segment_waveform
from spoofdetect.config import LABELS, FeatureConfig, FusionConfig
from spoofdetect.demo_data import write_broken_files
from spoofdetect.errors import UserError
from spoofdetect.extraction import REPORT_FILE, ExtractChunk, map_bytes, run_extraction
from spoofdetect.features import feature_function
from tests.conftest import ONE_SYSTEM, tone

IN_PROCESS = ["--direct_num_workers=1", "--direct_running_mode=in_memory"]
# The seed's features without augmented copies (clip counts below); the augmentation tests
# set features.augment themselves.
CONFIG = FeatureConfig(augment=0)


def read_split(output_dir: str, split: str, config: FeatureConfig = CONFIG) -> dict:
    folder = os.path.join(output_dir, f"Split-{split}")
    files = sorted(os.path.join(folder, name) for name in os.listdir(folder))
    # One uncompressed file per chunk: a gzipped one would not read without compression.
    assert files and all(re.fullmatch(r"data_tfrecord-\d{7}", os.path.basename(name))
                         for name in files)
    records = list(tf.data.TFRecordDataset(files).as_numpy_iterator())
    if not records:
        return {}
    parsed = examples.parse_examples(tf.constant(records), config)
    return {key: value.numpy() for key, value in parsed.items()}


def extract(data_root: str, output_dir: str, config: FeatureConfig = CONFIG,
            args: list[str] = IN_PROCESS):
    return run_extraction(beam.Pipeline(options=PipelineOptions(args)), data_root, output_dir,
                          config, show_progress=False)


@pytest.fixture(scope="module")
def demo_with_broken(demo_root, tmp_path_factory):
    root = str(tmp_path_factory.mktemp("with_broken"))
    for split in ("train", "dev", "eval"):
        shutil.copytree(os.path.join(demo_root, split), os.path.join(root, split))
    broken = write_broken_files(os.path.join(root, "_broken"))
    for path in broken:
        shutil.move(path, os.path.join(root, "train", "real", os.path.basename(path)))
    output = str(tmp_path_factory.mktemp("features"))
    return root, output, extract(root, output)


EXPECTED_REJECTS = {
    "train/real/empty.wav": "empty file (0 bytes)",
    "train/real/text_named_as.wav": "not a readable audio file",
    "train/real/corrupt_header.wav": "not a readable audio file",
    "train/real/zero_samples.wav": "no audio samples",
    "train/real/all_silent.wav": "all-silent audio",
    "train/real/nan_samples.wav": "NaN or infinite",
    "train/real/inf_samples.wav": "NaN or infinite",
    "train/real/notes.txt": "unsupported file type '.txt'",
}


def test_every_bad_file_is_named_with_its_reason(demo_with_broken):
    _, output, summary = demo_with_broken
    reasons = {entry["path"]: entry["reason"] for entry in summary.rejected}
    assert set(reasons) == set(EXPECTED_REJECTS)
    for path, reason in EXPECTED_REJECTS.items():
        assert reason in reasons[path], (path, reasons[path])
    with open(os.path.join(output, REPORT_FILE)) as handle:
        report = json.load(handle)
    assert report["num_rejected"] == len(EXPECTED_REJECTS)
    assert {entry["path"] for entry in report["rejected"]} == set(EXPECTED_REJECTS)
    assert not os.path.exists(os.path.join(output, "_summary"))


def test_counts_per_split_and_label(demo_with_broken):
    _, output, summary = demo_with_broken
    expected = {"train": 4, "dev": 2, "eval": 2}
    for split, per_class in expected.items():
        for label in ("real", "fake"):
            assert summary.counts[split][label] == {"clips": per_class, "examples": per_class}
    assert summary.num_files == 16 + len(EXPECTED_REJECTS)
    for split, per_class in expected.items():
        labels = read_split(output, split)[examples.LABEL]
        assert sorted(labels.tolist()) == [0] * per_class + [1] * per_class


def test_examples_hold_the_feature_function_of_the_decoded_audio(demo_with_broken):
    root, output, _ = demo_with_broken
    parsed = read_split(output, "dev")
    function = feature_function(CONFIG)
    for index, path in enumerate(parsed[examples.PATH]):
        path = path.decode()
        with open(os.path.join(root, path), "rb") as handle:
            decoded = decode_audio(handle.read(), 16000)
        expected = function(np.stack(segment_waveform(decoded.samples, CONFIG))).numpy()[0]
        np.testing.assert_allclose(parsed[examples.LOG_MEL][index], expected, atol=1e-5)
        info = soundfile.info(os.path.join(root, path))
        assert parsed[examples.SAMPLE_RATE][index] == info.samplerate
        assert parsed[examples.DURATION][index] == pytest.approx(info.duration, rel=1e-5)
        assert parsed[examples.LABEL][index] == (1 if "/fake/" in path else 0)
        assert parsed[examples.CLIP_ID][index].decode() == path[:-len(os.path.splitext(
            path)[1])].replace("/", "_")
        assert parsed[examples.SEGMENT_INDEX][index] == 0


def test_all_segments_mode_shares_the_clip_id(tmp_path):
    root = str(tmp_path / "data")
    for split in ("train", "dev", "eval"):
        for label in ("real", "fake"):
            os.makedirs(os.path.join(root, split, label))
            soundfile.write(os.path.join(root, split, label, "long.wav"),
                            tone(9.5, frequency=500 if label == "real" else 900), 16000)
    config = dataclasses.replace(CONFIG, segment_mode="all")
    summary = extract(root, str(tmp_path / "out"), config)
    assert summary.counts["train"]["real"] == {"clips": 1, "examples": 3}
    parsed = read_split(str(tmp_path / "out"), "eval")
    assert sorted(parsed[examples.SEGMENT_INDEX].tolist()) == [0, 0, 1, 1, 2, 2]
    assert len(set(parsed[examples.CLIP_ID].tolist())) == 2


def test_a_split_left_without_a_class_after_rejects_is_fatal(small_layout, tmp_path):
    for name in os.listdir(os.path.join(small_layout, "train", "fake")):
        with open(os.path.join(small_layout, "train", "fake", name), "w") as handle:
            handle.write("not audio")
    with pytest.raises(UserError, match="no usable clips are left in train/fake"):
        extract(small_layout, str(tmp_path / "out"))
    # The report still names each rejected file.
    with open(tmp_path / "out" / REPORT_FILE) as handle:
        assert len(json.load(handle)["rejected"]) == 2


def test_a_job_whose_examples_cannot_fit_is_refused_before_it_writes(small_layout, tmp_path):
    # A segment of 30 years makes one example far larger than any disk the tests run on.
    config = dataclasses.replace(CONFIG, segment_seconds=1e9)
    output = tmp_path / "out"
    with pytest.raises(UserError, match=r"need at least [\d.]+ GB .* under .*out, and its "
                                        r"file system has [\d.]+ GB free"):
        extract(small_layout, str(output), config)
    assert not output.exists()


@pytest.mark.parametrize("fused", [False, True])
def test_map_bytes_is_the_bulk_of_a_stored_example(fused):
    config = FeatureConfig(fusion=FusionConfig(enabled=fused), lfcc_gmm=fused)
    serialized = examples.make_example(
        np.zeros((config.num_rows, config.num_frames), np.float32), 1, "train/fake/a.wav",
        "train/fake/a.wav", 0, 16000, 4.0, "A01", "s1", "mp3",
        {map_key: np.zeros((features.num_rows, features.num_frames), np.float32)
         for map_key, features in config.fused_maps.items()})
    assert len(config.fused_maps) == (2 if fused else 0)
    assert map_bytes(config) <= len(serialized) <= map_bytes(config) + 1000


def test_multi_processing_runner_gives_the_same_examples(small_layout, tmp_path):
    single = extract(small_layout, str(tmp_path / "single"))
    multi = extract(small_layout, str(tmp_path / "multi"),
                    args=["--direct_running_mode=multi_processing", "--direct_num_workers=2"])
    assert single.counts == multi.counts
    a, b = read_split(str(tmp_path / "single"), "train"), read_split(str(tmp_path / "multi"),
                                                                      "train")
    order_a, order_b = np.argsort(a[examples.PATH]), np.argsort(b[examples.PATH])
    np.testing.assert_array_equal(a[examples.LOG_MEL][order_a], b[examples.LOG_MEL][order_b])


def threads_after_setup(chunk_setup: str) -> list[str]:
    """TensorFlow's intra- and inter-op threads in a new process after `chunk_setup`."""
    script = ("import pickle, sys\n"
              "import tensorflow as tf\n"
              "from spoofdetect.config import FeatureConfig\n"
              "from spoofdetect.extraction import ExtractChunk\n"
              f"{chunk_setup}\n"
              "print(tf.config.threading.get_intra_op_parallelism_threads(),\n"
              "      tf.config.threading.get_inter_op_parallelism_threads())\n")
    made_here = pickle.dumps(ExtractChunk(".", FeatureConfig(), ".", None))
    result = subprocess.run([sys.executable, "-c", script], input=made_here,
                            capture_output=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.decode().split()[-2:]


def test_a_worker_process_runs_tensorflow_on_one_thread_and_a_pipelines_process_does_not():
    """The runner's parallelism is a worker per core: a worker process the runner started
    (the DoFn made in another process) runs TensorFlow on one thread, as does the features
    command's own process; a pipeline's process, whose training comes later, keeps its pools
    (0: one thread per core). The examples are the same either way (the test above compares
    this process's pools with the workers' single thread)."""
    assert threads_after_setup("pickle.load(sys.stdin.buffer).setup()") == ["1", "1"]
    assert threads_after_setup(
        "ExtractChunk('.', FeatureConfig(), '.', None, owns_process=True).setup()") == [
        "1", "1"]
    assert threads_after_setup("ExtractChunk('.', FeatureConfig(), '.', None).setup()") == [
        "0", "0"]


def test_output_files_and_record_order_do_not_depend_on_scheduling(small_layout, tmp_path):
    """Chunks write their own files by number and each example's bytes are deterministic:
    one worker process or two give byte-equal splits, so training reads the same order on
    every run (and after a crash and a rerun, whichever worker redoes a chunk)."""
    outputs = []
    for name, workers in (("a", "1"), ("b", "2")):
        extract(small_layout, str(tmp_path / name), config=FeatureConfig(batch_size=2),
                args=["--direct_running_mode=multi_processing",
                      f"--direct_num_workers={workers}"])
        outputs.append(tmp_path / name)
    for split in ("train", "dev", "eval"):
        names = [sorted(os.listdir(output / f"Split-{split}")) for output in outputs]
        assert names[0] == names[1] and len(names[0]) >= 2
        for name in names[0]:
            assert (outputs[0] / f"Split-{split}" / name).read_bytes() == (
                outputs[1] / f"Split-{split}" / name).read_bytes(), f"{split}/{name}"
    assert not (outputs[1] / "_tmp").exists() and not (outputs[1] / "_summary").exists()


def test_augmented_copies_of_training_clips_only_named_and_reproducible(small_layout, tmp_path):
    config = dataclasses.replace(CONFIG, augment=2, augment_families=("mu_law", "noise"))
    summary = extract(small_layout, str(tmp_path / "a"), config)
    # Clips are counted once; each training clip adds two augmented examples.
    assert summary.counts["train"]["real"] == {"clips": 2, "examples": 6}
    assert summary.counts["dev"]["fake"] == {"clips": 2, "examples": 2}
    train = read_split(str(tmp_path / "a"), "train")
    names = train[examples.AUGMENTATION].astype(str)
    assert sorted(set(names)) <= ["", "mu_law", "noise"] and (names != "").sum() == 8
    ids = train[examples.CLIP_ID].astype(str)
    assert len(set(ids)) == 12  # unique: a copy's id is its clip's with '~copy'
    for copy_id in ids[names != ""]:
        base, copy = copy_id.rsplit("~", 1)
        assert base in set(ids[names == ""]) and copy in ("1", "2")
    original = train[examples.LOG_MEL][names == ""]
    augmented = train[examples.LOG_MEL][names != ""]
    assert np.isfinite(augmented).all()
    assert not any(np.allclose(a, o, atol=1e-3) for a in augmented for o in original)
    assert set(read_split(str(tmp_path / "a"), "eval")[examples.AUGMENTATION].astype(str)) == {""}
    # The same copies on a rerun, with another schedule.
    extract(small_layout, str(tmp_path / "b"), config,
            args=["--direct_running_mode=multi_processing", "--direct_num_workers=2"])
    again = read_split(str(tmp_path / "b"), "train")
    order_a, order_b = np.argsort(ids), np.argsort(again[examples.CLIP_ID].astype(str))
    np.testing.assert_array_equal(names[order_a],
                                  again[examples.AUGMENTATION].astype(str)[order_b])
    np.testing.assert_allclose(train[examples.LOG_MEL][order_a],
                               again[examples.LOG_MEL][order_b], atol=1e-4)


def test_vocoded_copies_of_bona_fide_training_clips_are_fake_examples_of_the_same_clip(
        small_layout, tmp_path):
    config = dataclasses.replace(CONFIG, augment=2, augment_families=("mu_law",), vocoded=1)
    summary = extract(small_layout, str(tmp_path / "a"), config)
    # Each bona fide training clip: itself, two augmented copies, one vocoded copy (fake).
    assert summary.counts["train"]["real"] == {"clips": 2, "examples": 6}
    assert summary.counts["train"]["fake"] == {"clips": 2, "examples": 8}
    assert summary.counts["dev"]["real"] == {"clips": 2, "examples": 2}
    train = read_split(str(tmp_path / "a"), "train")
    vocoded = train[examples.ATTACK].astype(str) == "vocoded-world"
    assert vocoded.sum() == 2 and (train[examples.LABEL][vocoded] == LABELS["fake"]).all()
    paths = train[examples.PATH].astype(str)
    for index in np.flatnonzero(vocoded):
        assert paths[index].startswith("train/real/")
        assert train[examples.CLIP_ID][index].decode().endswith("~3")
        # Its clip resynthesised: nearer its clip's map than any other original's, yet not it.
        originals = np.flatnonzero((train[examples.AUGMENTATION].astype(str) == "") & ~vocoded)
        distances = [np.abs(train[examples.LOG_MEL][index] - train[examples.LOG_MEL][other]
                            ).mean() for other in originals]
        nearest = originals[int(np.argmin(distances))]
        assert paths[nearest] == paths[index] and min(distances) > 1e-3
    assert set(read_split(str(tmp_path / "a"), "eval")[examples.ATTACK].astype(str)) <= {""}


def test_a_clip_whose_vocoded_copy_has_no_signal_is_rejected_by_name(small_layout, tmp_path,
                                                                     monkeypatch):
    from spoofdetect import augment

    def silent_below_325_hz(samples: np.ndarray, rate: int, rng: object) -> np.ndarray:
        """A stand-in vocoder that loses the 300 Hz tone (real_0) and keeps the 350 Hz one."""
        peak_hz = np.argmax(np.abs(np.fft.rfft(samples))) * rate / samples.size
        return 0 * samples if peak_hz < 325 else samples

    monkeypatch.setitem(augment.VOCODERS, "world", silent_below_325_hz)
    summary = extract(small_layout, str(tmp_path / "a"),
                      dataclasses.replace(CONFIG, vocoded=1))
    assert [item["path"] for item in summary.rejected] == ["train/real/real_0.wav"]
    assert summary.counts["train"]["real"] == {"clips": 1, "examples": 1}
    assert {item["reason"] for item in summary.rejected} == {
        "the vocoder world left no signal of the clip"}


def test_unknown_augmentation_or_vocoder_is_a_config_error_naming_the_valid_ones():
    with pytest.raises(UserError, match=r"features\.augment_families: wah; the valid ones "
                                        r"are rawboost_convolutive, "):
        FeatureConfig(augment=1, augment_families=("wah",)).validate()
    with pytest.raises(UserError, match=r"features\.vocoders: straight; the valid ones are "
                                        r"world, world_coded\."):
        FeatureConfig(vocoded=1, vocoders=("straight",)).validate()
    # Names are checked only where they are used.
    FeatureConfig(augment=0, vocoded=0, vocoders=("straight",)).validate()


def test_schema_describes_every_feature_the_examples_can_hold():
    from spoofdetect.pipeline.schema import (
        fitted_schema,
        load_schema,
        packaged_schema_fits,
        packaged_schema_path,
    )

    # The packaged schema is the default's: every system's map, each with its summaries.
    schema = load_schema(packaged_schema_path())
    assert {feature.name for feature in schema.feature} == {
        *examples.feature_spec(FeatureConfig()), *examples.SUMMARIES,
        *(name for map_key in (examples.FUSION_FEATURES, examples.LFCC_FEATURES)
          for name in (map_key, *examples.summary_names(map_key)))}
    # So Kubeflow runs the default with the image's copy, and one system's schema drops the
    # fused systems' maps; with LFCC-GMM alone fused, only the second classifier's goes.
    assert packaged_schema_fits(FeatureConfig())
    one_system = {feature.name for feature in fitted_schema(ONE_SYSTEM).feature}
    assert one_system == {*examples.feature_spec(ONE_SYSTEM), *examples.SUMMARIES}
    with_gmm = {feature.name for feature in fitted_schema(
        dataclasses.replace(ONE_SYSTEM, lfcc_gmm=True)).feature}
    assert with_gmm - one_system == {examples.LFCC_FEATURES,
                                     *examples.summary_names(examples.LFCC_FEATURES)}
