"""FeatureExtractor executor: runs the Beam extraction job, records its summary in MLMD."""

from __future__ import annotations

import json
from typing import Any

from apache_beam.io.filesystems import FileSystems
from tfx import types
from tfx.components.util import examples_utils
from tfx.dsl.components.base import base_beam_executor
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils

from spoofdetect.components import keys
from spoofdetect.components.code_version import running_code_version
from spoofdetect.components.properties import record_properties
from spoofdetect.config import LABELS, SPLITS, FeatureConfig, section_from_json
from spoofdetect.examples import RECORD_FORMAT
from spoofdetect.extraction import REPORT_FILE, ExtractionSummary, run_extraction

# MLMD string properties are not meant for unbounded lists: beyond this many, the property
# names the count and the report holds them all.
MAX_REJECTED_IN_MLMD = 1000


def summary_properties(summary: ExtractionSummary, segment_mode: str,
                       examples_uri: str) -> dict[str, object]:
    """The extraction's counts and rejections as the Examples artifact's MLMD properties."""
    rejected = [f"{r['path']}: {r['reason']}" for r in summary.rejected]
    if len(rejected) > MAX_REJECTED_IN_MLMD:
        rejected = [*rejected[:MAX_REJECTED_IN_MLMD],
                    f"... and {len(rejected) - MAX_REJECTED_IN_MLMD} more in {REPORT_FILE}"]
    counts = {}
    for split in SPLITS:
        for label in LABELS:
            counts[keys.clips_property(split, label)] = summary.counts[split][label]["clips"]
            counts[keys.examples_property(split, label)] = (
                summary.counts[split][label]["examples"])
    return {
        keys.NUM_FILES_PROPERTY: summary.num_files,
        keys.NUM_CLIPS_PROPERTY: summary.num_clips,
        keys.NUM_EXAMPLES_PROPERTY: summary.num_examples,
        keys.NUM_REJECTED_PROPERTY: summary.num_rejected,
        **counts,
        keys.REJECTED_FILES_PROPERTY: json.dumps(rejected),
        keys.SEGMENT_MODE_PROPERTY: segment_mode,
        keys.REPORT_URI_PROPERTY: FileSystems.join(examples_uri, REPORT_FILE),
        keys.RECORD_FORMAT_PROPERTY: RECORD_FORMAT,
    }


class Executor(base_beam_executor.BaseBeamExecutor):
    def Do(self, input_dict: dict[str, list[types.Artifact]],
           output_dict: dict[str, list[types.Artifact]],
           exec_properties: dict[str, Any]) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        examples = artifact_utils.get_single_instance(output_dict[keys.EXAMPLES_KEY])
        examples.split_names = artifact_utils.encode_split_names(list(SPLITS))
        # What ExampleGen records, so StatisticsGen and Trainer read the files without guessing.
        examples_utils.set_payload_format(examples, example_gen_pb2.FORMAT_TF_EXAMPLE)
        # TFX 1.16 names only this TFRecord format; its readers (Beam's, tfx_bsl's) take the
        # compression from the file names, and ours are uncompressed (no .gz).
        examples_utils.set_file_format(examples, "tfrecords_gzip")
        config = section_from_json(FeatureConfig, exec_properties[keys.FEATURE_CONFIG_KEY])
        summary = run_extraction(self._make_beam_pipeline(),
                                 exec_properties[keys.DATA_ROOT_KEY], examples.uri, config)
        record_properties(examples, {
            **summary_properties(summary, config.segment_mode, examples.uri),
            keys.CODE_VERSION_PROPERTY: running_code_version(
                exec_properties.get(keys.CODE_VERSION_KEY))})
