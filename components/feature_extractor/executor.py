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

from spoofdetect.config import LABELS, SPLITS, FeatureConfig, section_from_json
from spoofdetect.extraction import REPORT_FILE, ExtractionSummary, run_extraction

# MLMD string properties are not meant for unbounded lists: beyond this many, the property
# names the count and the report holds them all.
MAX_REJECTED_IN_MLMD = 1000


def record_summary(examples: types.Artifact, summary: ExtractionSummary,
                   segment_mode: str) -> None:
    examples.set_int_custom_property("num_files", summary.num_files)
    examples.set_int_custom_property("num_clips", summary.num_clips)
    examples.set_int_custom_property("num_examples", summary.num_examples)
    examples.set_int_custom_property("num_rejected", summary.num_rejected)
    for split in SPLITS:
        for label in LABELS:
            counts = summary.counts[split][label]
            examples.set_int_custom_property(f"{split}_{label}_clips", counts["clips"])
            examples.set_int_custom_property(f"{split}_{label}_examples", counts["examples"])
    rejected = [f"{r['path']}: {r['reason']}" for r in summary.rejected]
    if len(rejected) > MAX_REJECTED_IN_MLMD:
        rejected = [*rejected[:MAX_REJECTED_IN_MLMD],
                    f"... and {len(rejected) - MAX_REJECTED_IN_MLMD} more in {REPORT_FILE}"]
    examples.set_string_custom_property("rejected_files", json.dumps(rejected))
    examples.set_string_custom_property("segment_mode", segment_mode)
    examples.set_string_custom_property("report_uri",
                                        FileSystems.join(examples.uri, REPORT_FILE))


class Executor(base_beam_executor.BaseBeamExecutor):
    def Do(self, input_dict: dict[str, list[types.Artifact]],
           output_dict: dict[str, list[types.Artifact]],
           exec_properties: dict[str, Any]) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        examples = artifact_utils.get_single_instance(output_dict["examples"])
        examples.split_names = artifact_utils.encode_split_names(list(SPLITS))
        # What ExampleGen records, so StatisticsGen and Trainer read the files without guessing.
        examples_utils.set_payload_format(examples, example_gen_pb2.FORMAT_TF_EXAMPLE)
        examples_utils.set_file_format(examples, "tfrecords_gzip")
        config = section_from_json(FeatureConfig, exec_properties["feature_config"])
        summary = run_extraction(self._make_beam_pipeline(), exec_properties["data_root"],
                                 examples.uri, config)
        record_summary(examples, summary, config.segment_mode)
