"""Score fusion of two systems (features.fusion): the classifier of the configured features
and a second one over the fusion front end, each score standardised on dev and summed.
Plain Keras and NumPy; no TFX.

The standardisation (each system's dev scores to mean 0 and standard deviation 1, both
classes pooled) fits nothing on labels: a fusion whose weights are fitted on dev (a logistic
regression, the usual ASVspoof back end) favours the system best on dev's own domain and
lost the cross-dataset set's TTS attack in the fusion probe (docs/generalisation.md).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import keras
import numpy as np

from spoofdetect import metrics
from spoofdetect.calibration import Calibration
from spoofdetect.config import ClassifierConfig, FeatureConfig, GanConfig
from spoofdetect.data import example_dataset
from spoofdetect.errors import UserError
from spoofdetect.examples import FUSION_FEATURES
from spoofdetect.export import ScoredSystem
from spoofdetect.finetune import scores_of, summarise, train_classifier
from spoofdetect.models import logit_model

# The second system's history, training curves and logs, under the Trainer's run folder.
FUSION_RUN_DIR = "fusion"


def dev_standardisation(scores: np.ndarray) -> Calibration:
    """The affine map that gives `scores` (one system's on dev) mean 0 and standard
    deviation 1."""
    scores = np.asarray(scores, np.float64)
    spread = scores.std()
    # Rounding leaves a spread of about 1e-16 of the mean in equal scores.
    if not np.isfinite(scores).all() or not spread > 1e-9 * max(1.0, abs(scores.mean())):
        raise UserError(f"Cannot standardise a fused system's dev scores ({scores.size} "
                        f"scores, standard deviation {spread}): they must be finite and not "
                        "all equal (or set features.fusion.enabled=false).")
    return Calibration(1.0 / spread, -scores.mean() / spread)


def system_scores(system: ScoredSystem, files: list[str], batch_size: int
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(mapped log-odds of bona fide, is_spoof) of every example of `files`, in order."""
    score, is_spoof, _ = scores_of(logit_model(system.classifier), example_dataset(
        files, system.features, batch_size, map_key=system.map_key))
    return system.standardisation.apply(score), is_spoof


def fused_scores(systems: list[ScoredSystem], files: list[str], batch_size: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    """(the exported model's score before calibration, is_spoof) of every example of
    `files`: the sum of the systems' mapped scores."""
    scored = [system_scores(system, files, batch_size) for system in systems]
    for _, is_spoof in scored[1:]:
        if not np.array_equal(is_spoof, scored[0][1]):
            raise ValueError("The fused systems read the examples in different orders.")
    return np.sum([score for score, _ in scored], axis=0), scored[0][1]


def train_fusion(train_files: list[str], dev_files: list[str], features: FeatureConfig,
                 config: ClassifierConfig, gan: GanConfig, first: keras.Model, run_dir: str
                 ) -> tuple[list[ScoredSystem], dict[str, Any]]:
    """Trains the second system (`config`'s head on a random critic over the fusion map) and
    standardises both systems' scores on dev. Returns both systems, ready to export, and what
    the Trainer's summary records of the fusion."""
    second_features = features.fusion_features
    second_config = dataclasses.replace(config, from_scratch=True)
    second, history = train_classifier(
        train_files, dev_files, second_features, second_config, gan, base_model_dir=None,
        run_dir=os.path.join(run_dir, FUSION_RUN_DIR), map_key=FUSION_FEATURES)
    systems, dev_eers, fused = [], [], 0.0
    for system in (ScoredSystem(first, features),
                   ScoredSystem(second, second_features, FUSION_FEATURES)):
        dev_score, is_spoof = system_scores(system, dev_files, config.batch_size)
        system = dataclasses.replace(system, standardisation=dev_standardisation(dev_score))
        systems.append(system)
        dev_eers.append(metrics.equal_error_rate(dev_score[~is_spoof], dev_score[is_spoof])[0])
        fused = fused + system.standardisation.apply(dev_score)
    report = {"second_system": summarise(history, second_config),
              "dev_standardisation": [{"scale": system.standardisation.scale,
                                       "offset": system.standardisation.offset}
                                      for system in systems],
              "dev_eer_each": dev_eers,
              "dev_eer": metrics.equal_error_rate(fused[~is_spoof], fused[is_spoof])[0]}
    return systems, report
