"""Names shared between the custom components' specs, their executors and the readers of ML
Metadata (pipeline/run_summary.py, pipeline/lineage.py, tests): channel and parameter keys
(`*_KEY`, as in TFX's standard_component_specs.py) and the custom properties each executor
records on its artifacts (`*_PROPERTY`). Defined once here, so that renaming a property cannot
leave a reader asking for a name nobody writes.

It imports nothing: the run summary and lineage read ML Metadata without loading TFX.
"""

from __future__ import annotations

# Component and artifact type names as ML Metadata records them.
FEATURE_EXTRACTOR = "FeatureExtractor"
WGAN_PRETRAINER = "WganPretrainer"
SPOOF_EVALUATOR = "SpoofEvaluator"
TRAINER = "Trainer"
PUSHER = "Pusher"
EXAMPLE_VALIDATOR = "ExampleValidator"

# Parameters.
DATA_ROOT_KEY = "data_root"
FEATURE_CONFIG_KEY = "feature_config"
DATASET_FINGERPRINT_KEY = "dataset_fingerprint"
GAN_CONFIG_KEY = "gan_config"
EVALUATION_CONFIG_KEY = "evaluation_config"
BASELINE_SERVING_DIR_KEY = "baseline_serving_dir"
# The package's code version (components/code_version.py): a parameter of every component
# that runs this package's code, so that TFX's cache is keyed by it, and a property of what
# each one writes.
CODE_VERSION_KEY = "code_version"
CODE_VERSION_PROPERTY = "code_version"

# Channels.
EXAMPLES_KEY = "examples"
MODEL_KEY = "model"
BASELINE_MODEL_KEY = "baseline_model"
EVALUATION_KEY = "evaluation"
BLESSING_KEY = "blessing"

# FeatureExtractor: properties of the Examples artifact.
NUM_FILES_PROPERTY = "num_files"
NUM_CLIPS_PROPERTY = "num_clips"
NUM_EXAMPLES_PROPERTY = "num_examples"
NUM_REJECTED_PROPERTY = "num_rejected"
REJECTED_FILES_PROPERTY = "rejected_files"  # JSON list of "path: reason"
SEGMENT_MODE_PROPERTY = "segment_mode"
REPORT_URI_PROPERTY = "report_uri"  # the evaluation's report.html too
RECORD_FORMAT_PROPERTY = "record_format"  # spoofdetect.examples.RECORD_FORMAT


def clips_property(split: str, label: str) -> str:
    """Examples property: clips of one split and label, e.g. train_fake_clips."""
    return f"{split}_{label}_clips"


def examples_property(split: str, label: str) -> str:
    """Examples property: examples (segments, augmented copies) of one split and label."""
    return f"{split}_{label}_examples"


# WganPretrainer: properties of the Model artifact (besides the losses of the final epoch).
STEPS_PROPERTY = "steps"
EPOCHS_PROPERTY = "epochs"
WASSERSTEIN_PROPERTY = "wasserstein"
WALL_SECONDS_PROPERTY = "wall_seconds"
DEVICE_PROPERTY = "device"

# SpoofEvaluator: properties of the ModelEvaluation artifact (the eval split, per clip).
EER_PROPERTY = "eer"
EER_THRESHOLD_PROPERTY = "eer_threshold"
MIN_TDCF_PROPERTY = "min_tdcf"
MIN_TDCF_2021_PROPERTY = "min_tdcf_2021"
MIN_DCF_PROPERTY = "min_dcf"
ACT_DCF_PROPERTY = "act_dcf"
CLLR_PROPERTY = "cllr"
AUC_PROPERTY = "auc"
AVERAGE_PRECISION_PROPERTY = "average_precision"
BRIER_PROPERTY = "brier"
ACCURACY_PROPERTY = "accuracy"
F1_PROPERTY = "f1"
NUM_SEGMENTS_PROPERTY = "num_segments"
SEGMENT_EER_PROPERTY = "segment_eer"

# SpoofEvaluator: the ModelBlessing, with the names TFX's Evaluator writes and its Pusher and
# LatestBlessedModelStrategy read (tfx/components/evaluator/constants.py; a test compares).
BLESSED_PROPERTY = "blessed"
CURRENT_MODEL_PROPERTY = "current_model"
CURRENT_MODEL_ID_PROPERTY = "current_model_id"
BASELINE_MODEL_PROPERTY = "baseline_model"
BASELINE_MODEL_ID_PROPERTY = "baseline_model_id"
BLESSED_FILE = "BLESSED"
NOT_BLESSED_FILE = "NOT_BLESSED"
REASON_PROPERTY = "reason"  # ours: why the model was (not) blessed

# TFX's Pusher: properties of the PushedModel (private names in tfx/components/pusher/
# executor.py; a test compares).
PUSHED_PROPERTY = "pushed"
PUSHED_DESTINATION_PROPERTY = "pushed_destination"
PUSHED_VERSION_PROPERTY = "pushed_version"
