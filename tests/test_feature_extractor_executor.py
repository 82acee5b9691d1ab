"""FeatureExtractor's executor called directly (Executor().Do on a small dataset), as TFX's
own executor tests do: the Examples artifact's splits, formats and ML Metadata properties,
and a rejected file named with its reason."""

import json
import os

from tfx.components.util import examples_utils
from tfx.dsl.components.base import base_beam_executor
from tfx.types import artifact_utils, standard_artifacts

from spoofdetect.components import code_version, keys
from spoofdetect.components.feature_extractor.executor import (
    MAX_REJECTED_IN_MLMD,
    Executor,
    summary_properties,
)
from spoofdetect.config import FeatureConfig, section_to_json
from spoofdetect.examples import RECORD_FORMAT
from spoofdetect.extraction import REPORT_FILE, ExtractionSummary


def test_do_writes_the_splits_and_records_counts_and_rejections(small_layout, tmp_path):
    with open(os.path.join(small_layout, "train", "fake", "truncated.wav"), "wb") as handle:
        handle.write(b"RIFF\x10\x00\x00\x00WAVE")
    examples = standard_artifacts.Examples()
    examples.uri = str(tmp_path / "examples")
    context = base_beam_executor.BaseBeamExecutor.Context(
        beam_pipeline_args=["--direct_num_workers=1"])
    Executor(context).Do({}, {keys.EXAMPLES_KEY: [examples]},
                         {keys.DATA_ROOT_KEY: small_layout,
                          keys.FEATURE_CONFIG_KEY: section_to_json(FeatureConfig()),
                          keys.CODE_VERSION_KEY: code_version.current()})

    assert artifact_utils.decode_split_names(examples.split_names) == ["train", "dev", "eval"]
    assert examples_utils.get_file_format(examples) == "tfrecords_gzip"
    for split in ("train", "dev", "eval"):
        assert os.listdir(os.path.join(examples.uri, f"Split-{split}"))
    assert examples.get_int_custom_property(keys.NUM_FILES_PROPERTY) == 13
    assert examples.get_int_custom_property(keys.NUM_CLIPS_PROPERTY) == 12
    assert examples.get_int_custom_property(keys.NUM_REJECTED_PROPERTY) == 1
    for split in ("train", "dev", "eval"):
        for label in ("real", "fake"):
            assert examples.get_int_custom_property(keys.clips_property(split, label)) == 2
            # The defaults add two augmented copies of each training clip, and only those.
            assert examples.get_int_custom_property(keys.examples_property(split, label)) == (
                6 if split == "train" else 2)
    [rejected] = json.loads(examples.get_string_custom_property(keys.REJECTED_FILES_PROPERTY))
    assert rejected.startswith(os.path.join("train", "fake", "truncated.wav") + ": ")
    assert examples.get_string_custom_property(keys.SEGMENT_MODE_PROPERTY) == "first"
    assert examples.get_string_custom_property(keys.RECORD_FORMAT_PROPERTY) == RECORD_FORMAT
    assert (examples.get_string_custom_property(keys.CODE_VERSION_PROPERTY)
            == code_version.current())
    report = examples.get_string_custom_property(keys.REPORT_URI_PROPERTY)
    assert report == os.path.join(examples.uri, REPORT_FILE) and os.path.exists(report)


def test_a_long_rejection_list_is_cut_in_mlmd_and_points_to_the_report():
    rejected = [{"path": f"train/fake/{i}.wav", "reason": "empty"}
                for i in range(MAX_REJECTED_IN_MLMD + 5)]
    summary = ExtractionSummary(
        counts={split: {label: {"clips": 0, "examples": 0} for label in ("real", "fake")}
                for split in ("train", "dev", "eval")},
        rejected=rejected, data_root="/data", num_files=len(rejected), seconds=1.0)
    listed = json.loads(summary_properties(summary, "first", "/out")[
        keys.REJECTED_FILES_PROPERTY])
    assert len(listed) == MAX_REJECTED_IN_MLMD + 1
    assert listed[-1] == f"... and 5 more in {REPORT_FILE}"
