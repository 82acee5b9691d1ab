"""SpoofEvaluator component: (Examples, Model[, baseline Model]) -> ModelEvaluation, ModelBlessing.

Inputs:
  examples: the FeatureExtractor's Examples; the configured split (eval) is scored.
  model: the Trainer's Model (Format-Serving SavedModel), scored through `from_features`.
  baseline_model: optional; the last blessed model of this pipeline, resolved from ML
    Metadata by a Resolver with LatestBlessedModelStrategy. It is scored on the same examples
    and the candidate must not regress against it.
Outputs:
  evaluation: ModelEvaluation. metrics.json (per clip and per segment, per attack where the
    examples name attacks; the baseline's metrics too), scores_clip.txt and
    scores_segment.txt (ASVspoof CM score format), the PNG plots and report.html. MLMD custom
    properties (names in components/keys.py): eer, eer_threshold, min_tdcf, min_tdcf_2021,
    min_dcf, act_dcf, cllr, auc, accuracy, f1, average_precision, brier, num_clips,
    num_segments, segment_eer, blessed, report_uri, code_version (the code that ran).
  blessing: ModelBlessing with a BLESSED or NOT_BLESSED file and the custom properties TFX's
    Pusher and LatestBlessedModelStrategy read: blessed (1/0), current_model,
    current_model_id, baseline_model, baseline_model_id; plus reason.
Parameters:
  feature_config, evaluation_config: the FeatureConfig and EvaluationConfig as JSON.
  baseline_serving_dir: optional; without a baseline_model input, the newest SavedModel
    pushed there is the baseline (how the pipeline finds the last blessed model on Kubeflow).
  code_version: the package's code version (components/code_version.py, set by the
    component), so other code evaluates again rather than being served from the cache.
"""

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

from spoofdetect.components import code_version, keys
from spoofdetect.components.spoof_evaluator import executor


class SpoofEvaluatorSpec(ComponentSpec):
    PARAMETERS = {
        keys.FEATURE_CONFIG_KEY: ExecutionParameter(type=str),
        keys.EVALUATION_CONFIG_KEY: ExecutionParameter(type=str),
        keys.BASELINE_SERVING_DIR_KEY: ExecutionParameter(type=str, optional=True),
        keys.CODE_VERSION_KEY: ExecutionParameter(type=str),
    }
    INPUTS = {
        keys.EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples),
        keys.MODEL_KEY: ChannelParameter(type=standard_artifacts.Model),
        keys.BASELINE_MODEL_KEY: ChannelParameter(type=standard_artifacts.Model,
                                                  optional=True),
    }
    OUTPUTS = {
        keys.EVALUATION_KEY: ChannelParameter(type=standard_artifacts.ModelEvaluation),
        keys.BLESSING_KEY: ChannelParameter(type=standard_artifacts.ModelBlessing),
    }


class SpoofEvaluator(base_component.BaseComponent):
    SPEC_CLASS = SpoofEvaluatorSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(self, examples: types.BaseChannel, model: types.BaseChannel,
                 feature_config: str, evaluation_config: str,
                 baseline_model: types.BaseChannel | None = None,
                 baseline_serving_dir: str | None = None):
        super().__init__(spec=SpoofEvaluatorSpec(
            examples=examples, model=model, baseline_model=baseline_model,
            baseline_serving_dir=baseline_serving_dir,
            feature_config=feature_config, evaluation_config=evaluation_config,
            code_version=code_version.current(),
            evaluation=types.Channel(type=standard_artifacts.ModelEvaluation),
            blessing=types.Channel(type=standard_artifacts.ModelBlessing)))
