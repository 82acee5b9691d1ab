"""The stock TFX Trainer's module: stage 2, fine-tuning and export.

Trainer calls `run_fn` with FnArgs: the Examples' files, `base_model` (the WganPretrainer's
Format-Serving folder holding critic.keras, absent with from_scratch), `custom_config` (the
config sections as JSON, recorded on the execution in ML Metadata), and the folders for the
serving model and the run's logs. With features.fusion or features.lfcc_gmm on it also trains
those systems and exports them all, fused (spoofdetect/fusion.py).
"""

from __future__ import annotations

import json
import os

import numpy as np
from tfx.components.trainer.fn_args_utils import FnArgs

from spoofdetect.components import keys
from spoofdetect.components.code_version import running_code_version
from spoofdetect.config import ClassifierConfig, FeatureConfig, GanConfig, section_from_json
from spoofdetect.export import UNCALIBRATED, ScoredSystem, export_fused_model
from spoofdetect.finetune import fit_dev_calibration, summarise, train_classifier
from spoofdetect.fusion import fused_scores, train_fusion

# custom_config keys: one per config section, the exported model's duration limit
# (evaluation.max_score_seconds alone, so that other evaluation settings keep the cache) and
# the package's code version (so that other code trains again rather than being served a
# model from the cache; summary.json records the version that ran).
FEATURES, GAN, CLASSIFIER = "features", "gan", "classifier"
MAX_AUDIO_SECONDS = "max_audio_seconds"
CODE_VERSION = keys.CODE_VERSION_KEY


def run_fn(fn_args: FnArgs) -> None:
    custom = fn_args.custom_config
    features = section_from_json(FeatureConfig, custom[FEATURES])
    gan = section_from_json(GanConfig, custom[GAN])
    config = section_from_json(ClassifierConfig, custom[CLASSIFIER])
    model, history = train_classifier(
        fn_args.train_files, fn_args.eval_files, features, config, gan,
        base_model_dir=None if config.from_scratch else fn_args.base_model,
        run_dir=fn_args.model_run_dir)
    summary = summarise(history, config)
    summary[keys.CODE_VERSION_PROPERTY] = running_code_version(custom.get(CODE_VERSION))
    systems = [ScoredSystem(model, features)]
    dev_scores: tuple[np.ndarray, np.ndarray] | None = None
    if features.fused_maps:
        systems, summary["fusion"], dev_scores = train_fusion(
            fn_args.train_files, fn_args.eval_files, features, config, gan, model,
            fn_args.model_run_dir)
    calibration = UNCALIBRATED
    if config.calibrate:
        if dev_scores is None:  # without fusion nothing has scored dev yet
            dev_scores = fused_scores(systems, fn_args.eval_files, config.batch_size)
        calibration, summary["calibration"] = fit_dev_calibration(*dev_scores)
    export_fused_model(systems, fn_args.serving_model_dir, float(custom[MAX_AUDIO_SECONDS]),
                       calibration)
    with open(os.path.join(fn_args.model_run_dir, "summary.json"), "w") as handle:
        json.dump(summary, handle, indent=1)
