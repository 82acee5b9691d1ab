"""Score fusion of the pipeline's systems: the classifier of the configured features, a
second one over the fusion front end (features.fusion), and LFCC-GMM (features.lfcc_gmm).
Plain Keras and NumPy; no TFX.

The classifiers' scores are each standardised on dev and summed. With LFCC-GMM, that sum is
standardised on dev again and LFCC-GMM's standardised score added: the classic baseline
weighs as much as the classifiers together, the fusion the fusion probe measured (the
default's score and LFCC-GMM's, each standardised: docs/generalisation.md, "LFCC-GMM in the
fusion"). Every system's score still reaches the fused one through one affine map, which the
exported model applies.

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
from spoofdetect.examples import FUSION_FEATURES, LFCC_FEATURES
from spoofdetect.export import ScoredSystem
from spoofdetect.finetune import scores_of, summarise, train_classifier
from spoofdetect.gmm import train_lfcc_gmm
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
    return np.sum([score for score, _ in scored], axis=0), labels_in_one_order(scored)


def labels_in_one_order(scored: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """The is_spoof of `scored` (each system's (score, is_spoof) of the same files), which
    must be every system's: scores are summed position by position."""
    for _, is_spoof in scored[1:]:
        if not np.array_equal(is_spoof, scored[0][1]):
            raise ValueError("The fused systems read the examples in different orders.")
    return scored[0][1]


def standardised_systems(systems: list[ScoredSystem], dev_scores: list[np.ndarray],
                         standardise_sum: bool) -> tuple[list[ScoredSystem], np.ndarray]:
    """`systems` with the maps that standardise each one's dev scores, and with
    `standardise_sum` their sum's too; and the mapped sum on dev."""
    own = [dev_standardisation(score) for score in dev_scores]
    total = np.sum([mapping.apply(score)
                    for mapping, score in zip(own, dev_scores, strict=True)], axis=0)
    whole = dev_standardisation(total) if standardise_sum else Calibration()
    # whole(sum of own_i(s_i)) = sum of (whole.scale own_i)(s_i), whole.offset added once.
    mapped = [dataclasses.replace(system, standardisation=Calibration(
        whole.scale * mapping.scale,
        whole.scale * mapping.offset + (whole.offset if index == 0 else 0.0)))
        for index, (system, mapping) in enumerate(zip(systems, own, strict=True))]
    return mapped, whole.apply(total)


def train_fusion(train_files: list[str], dev_files: list[str], features: FeatureConfig,
                 config: ClassifierConfig, gan: GanConfig, first: keras.Model, run_dir: str
                 ) -> tuple[list[ScoredSystem], dict[str, Any], tuple[np.ndarray, np.ndarray]]:
    """Trains the fused systems that `features` turns on beside `first`: the second
    classifier (`config`'s head on a random critic over the fusion map) and LFCC-GMM; then
    maps every system's score as the module's docstring says. Returns the systems, ready to
    export; what the Trainer's summary records of the fusion; and (the fused score, is_spoof)
    of every dev example, the exported model's dev scores before calibration, which the
    standardisation has already computed (so calibration need not score dev again)."""
    classifiers = [ScoredSystem(first, features)]
    report: dict[str, Any] = {"systems": ["classifier"]}
    if features.fusion_features is not None:
        second_features = features.fusion_features
        second_config = dataclasses.replace(config, from_scratch=True)
        second, history = train_classifier(
            train_files, dev_files, second_features, second_config, gan,
            base_model_dir=None, run_dir=os.path.join(run_dir, FUSION_RUN_DIR),
            map_key=FUSION_FEATURES)
        classifiers.append(ScoredSystem(second, second_features, FUSION_FEATURES))
        report["systems"].append("second")
        report["second_system"] = summarise(history, second_config)
    dev = [system_scores(system, dev_files, config.batch_size) for system in classifiers]
    with_gmm = features.lfcc_features is not None
    systems, fused = standardised_systems(classifiers, [score for score, _ in dev], with_gmm)
    if with_gmm:
        gmm = ScoredSystem(train_lfcc_gmm(train_files, features, config.gmm_components,
                                          config.seed, config.batch_size),
                           features.lfcc_features, LFCC_FEATURES)
        dev.append(system_scores(gmm, dev_files, config.batch_size))
        gmm = dataclasses.replace(gmm, standardisation=dev_standardisation(dev[-1][0]))
        systems.append(gmm)
        fused = fused + gmm.standardisation.apply(dev[-1][0])
        report["systems"].append("lfcc-gmm")
    is_spoof = labels_in_one_order(dev)
    report.update({
        "dev_standardisation": [{"scale": system.standardisation.scale,
                                 "offset": system.standardisation.offset}
                                for system in systems],
        "dev_eer_each": [metrics.equal_error_rate(score[~is_spoof], score[is_spoof])[0]
                         for score, _ in dev],
        "dev_eer": metrics.equal_error_rate(fused[~is_spoof], fused[is_spoof])[0]})
    return systems, report, (fused, is_spoof)
