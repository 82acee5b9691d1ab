"""FeatureExtractor component: audio dataset -> Examples (train/dev/eval log-Mel TFRecords).

Outputs:
  examples: Examples with splits train, dev, eval (uncompressed tf.Example TFRecords under
    Split-*/) and feature_report.json listing counts and every rejected file with its reason.
    MLMD custom properties (names in components/keys.py): num_files, num_clips,
    num_examples, num_rejected, {split}_{label}_clips and _examples, rejected_files (JSON),
    segment_mode, report_uri, record_format, and payload_format and file_format as ExampleGen
    records them.
Parameters:
  data_root: ROOT of ROOT/{train,dev,eval}/{real,fake}/*.wav (local path or URI).
  feature_config: FeatureConfig as JSON (spoofdetect.config.section_to_json), including the
    protocol files that list the clips instead of the folder layout, when given.
  dataset_fingerprint: changes when the files under data_root change, so TFX's cache is not
    reused for a different dataset; the local runner computes it from names, sizes and times.
  code_version: the package's code version (components/code_version.py, set by the
    component), so other code (say, a release that writes other records) is not served
    examples from the cache; the Examples record the version that ran.
"""

from tfx import types
from tfx.dsl.components.base import base_beam_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

from spoofdetect.components import code_version, keys
from spoofdetect.components.feature_extractor import executor


class FeatureExtractorSpec(ComponentSpec):
    PARAMETERS = {
        keys.DATA_ROOT_KEY: ExecutionParameter(type=str),
        keys.FEATURE_CONFIG_KEY: ExecutionParameter(type=str),
        keys.DATASET_FINGERPRINT_KEY: ExecutionParameter(type=str, optional=True),
        keys.CODE_VERSION_KEY: ExecutionParameter(type=str),
    }
    INPUTS = {}
    OUTPUTS = {keys.EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples)}


class FeatureExtractor(base_beam_component.BaseBeamComponent):
    SPEC_CLASS = FeatureExtractorSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)

    def __init__(self, data_root: str, feature_config: str, dataset_fingerprint: str = ""):
        super().__init__(spec=FeatureExtractorSpec(
            data_root=data_root, feature_config=feature_config,
            dataset_fingerprint=dataset_fingerprint,
            code_version=code_version.current(),
            examples=types.Channel(type=standard_artifacts.Examples)))
