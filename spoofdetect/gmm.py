"""LFCC-GMM, ASVspoof's classic countermeasure, as a system of this pipeline and its baseline.

Two diagonal-covariance GMMs over LFCC frames (the feature function's 'lfcc' front end,
FeatureConfig.lfcc_features), one fitted on bona fide frames and one on spoof frames, by
scikit-learn's EM. A clip scores the mean log-likelihood ratio of the frames its map counts,
log p(x | bona fide) - log p(x | spoof), so higher means more bona fide, as everywhere in this
project. The fitted GMMs become a Keras classifier of the same form as the others (a logit
layer, then a sigmoid), so the Trainer fuses and exports it, and the evaluator and scoring
run it, as they do the critic-based systems. No TFX.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf
from sklearn.mixture import GaussianMixture

from spoofdetect import examples
from spoofdetect.audio import first_segments
from spoofdetect.config import LABELS, FeatureConfig
from spoofdetect.data import example_dataset
from spoofdetect.errors import UserError
from spoofdetect.features import feature_maps
from spoofdetect.models import CLASSIFIER_LOGIT, logit_model

# EM's limits, as ASVspoof's baseline: at most this many iterations; each variance floored
# so that no component collapses onto a few identical frames.
MAX_ITERATIONS = 100
VARIANCE_FLOOR = 1e-4
CLASSES = ("bonafide", "spoof")


def counted_frames(maps: np.ndarray) -> np.ndarray:
    """[examples, rows, frames] LFCC maps -> [n, rows - 1]: every frame the map's last row
    counts (features.lfcc: not padding, the segment's ends or digital silence), as rows of
    coefficients."""
    maps = np.asarray(maps)
    frames = np.transpose(maps[:, :-1, :], (0, 2, 1)).reshape(-1, maps.shape[1] - 1)
    return frames[np.transpose(maps[:, -1:, :], (0, 2, 1)).reshape(-1) > 0]


def fit_gmms(frames: dict[str, np.ndarray], components: int, seed: int
             ) -> dict[str, GaussianMixture]:
    """One GMM per class of CLASSES, each fitted on that class's frames ([n, coefficients]),
    whatever their order: EM starts from k-means, whose start depends on the order, and the
    Trainer reads the Examples in the order Beam wrote them, the benchmarks in the
    protocol's. So the frames are sorted first, and both fit the same GMMs from the same
    clips."""
    gmms = {}
    for name in CLASSES:
        data = np.asarray(frames[name])
        if len(data) < components:
            raise UserError(f"LFCC-GMM: the {name} training clips give {len(data)} frames to "
                            f"count (a clip gives one per 10 ms of sound beyond its first and "
                            f"last 50 ms), fewer than its {components} components: set "
                            "classifier.gmm_components lower, or features.lfcc_gmm=false.")
        data = data[np.lexsort(data.T[::-1])]
        gmms[name] = GaussianMixture(components, covariance_type="diag",
                                     max_iter=MAX_ITERATIONS, random_state=seed,
                                     reg_covar=VARIANCE_FLOOR).fit(
                                         # In float32, EM's variances (E[x^2] - E[x]^2)
                                         # of coefficients in the hundreds round below 0.
                                         np.asarray(data, np.float64))
    return gmms


class GmmSpoofLogOdds(keras.layers.Layer):
    """[batch, rows, frames] LFCC map -> [batch, 1]: minus the LLR, the mean over its counted
    frames (its last row) of log p(frame | spoof) - log p(frame | bona fide) under two
    diagonal GMMs (the log-odds of fake, as the other classifiers' logit layers give); 0 for
    a map without such frames. In float64: a frame's log-likelihood is a difference of terms in
    the thousands, where float32 would lose the digits that separate the classes."""

    def __init__(self, means: np.ndarray, variances: np.ndarray, log_weights: np.ndarray,
                 **kwargs):
        super().__init__(**kwargs)
        # [2 (CLASSES), components, coefficients], [2, components, coefficients], [2, components]
        self.means = np.asarray(means, np.float64)
        self.variances = np.asarray(variances, np.float64)
        self.log_weights = np.asarray(log_weights, np.float64)

    def call(self, maps: tf.Tensor) -> tf.Tensor:
        maps = tf.cast(maps, tf.float64)
        frames = tf.transpose(maps[:, :-1, :], [0, 2, 1])  # [batch, frames, coefficients]
        counted = maps[:, -1, :]
        precisions = 1.0 / self.variances
        dimensions = self.means.shape[-1]
        # log N(x; mu, diag var) = constant - 1/2 x^2 . prec + x . (mu prec), per component.
        constants = self.log_weights - 0.5 * (
            dimensions * math.log(2 * math.pi) + np.log(self.variances).sum(-1)
            + (self.means ** 2 * precisions).sum(-1))
        log_likelihoods = []
        for index in range(len(CLASSES)):
            per_component = (constants[index]
                             - 0.5 * tf.matmul(tf.square(frames), precisions[index].T)
                             + tf.matmul(frames, (self.means[index] * precisions[index]).T))
            log_likelihoods.append(tf.reduce_logsumexp(per_component, axis=-1))
        ratio = (log_likelihoods[1] - log_likelihoods[0]) * counted
        mean = tf.math.divide_no_nan(tf.reduce_sum(ratio, axis=1),
                                     tf.reduce_sum(counted, axis=1))
        return tf.cast(mean[:, tf.newaxis], tf.float32)


def gmm_classifier(gmms: dict[str, GaussianMixture], features: FeatureConfig) -> keras.Model:
    """The fitted GMMs as a classifier of this project's form: `features`' map in, p(fake)
    out, through its logit layer (CLASSIFIER_LOGIT), which holds -LLR."""
    fitted = [gmms[name] for name in CLASSES]
    maps = keras.Input((features.num_rows, features.num_frames))
    logit = GmmSpoofLogOdds(
        np.stack([gmm.means_ for gmm in fitted]),
        np.stack([gmm.covariances_ for gmm in fitted]),
        np.log(np.stack([gmm.weights_ for gmm in fitted])), name=CLASSIFIER_LOGIT)(maps)
    return keras.Model(maps, keras.layers.Activation("sigmoid", name="p_fake")(logit))


class LfccGmm:
    """LFCC-GMM trained and scored on waveforms (the benchmarks' baseline): each clip's first
    segment through the pipeline's own feature function, GMMs and classifier."""

    def __init__(self, components: int = 64, seed: int = 0):
        self.components, self.seed = components, seed
        # The default segment (the first 4 s at 16 kHz), as the pipeline's default sees it.
        self.features = FeatureConfig(lfcc_gmm=True).lfcc_features
        self.classifier: keras.Model | None = None

    def _maps(self, waveforms: Sequence[np.ndarray]) -> np.ndarray:
        return feature_maps(self.features, first_segments(list(waveforms), self.features))

    def fit(self, waveforms: Sequence[np.ndarray], is_spoof: Sequence[bool]) -> LfccGmm:
        maps, is_spoof = self._maps(waveforms), np.asarray(is_spoof, bool)
        frames = {"bonafide": counted_frames(maps[~is_spoof]),
                  "spoof": counted_frames(maps[is_spoof])}
        self.classifier = gmm_classifier(fit_gmms(frames, self.components, self.seed),
                                         self.features)
        return self

    def score(self, waveforms: Sequence[np.ndarray]) -> np.ndarray:
        """Each clip's mean log-likelihood ratio (higher: more bona fide)."""
        if self.classifier is None:
            raise ValueError("LfccGmm.score before fit.")
        logits = logit_model(self.classifier).predict(self._maps(waveforms), verbose=0)
        return -logits[:, 0].astype(np.float64)


def train_lfcc_gmm(train_files: list[str], features: FeatureConfig, components: int, seed: int,
                   batch_size: int) -> keras.Model:
    """The LFCC-GMM classifier fitted on the training Examples' LFCC maps (features.
    lfcc_features', stored under LFCC_FEATURES) of unaugmented examples only: the baseline
    as measured; augmented copies would triple EM's frames."""
    lfcc_features = features.lfcc_features
    frames: dict[str, list[np.ndarray]] = {name: [] for name in CLASSES}
    for batch in example_dataset(train_files, lfcc_features, batch_size,
                                 map_key=examples.LFCC_FEATURES, originals_only=True):
        is_spoof = batch[examples.LABEL].numpy() == LABELS["fake"]
        maps = batch[examples.LOG_MEL].numpy()
        for name, chosen in (("bonafide", ~is_spoof), ("spoof", is_spoof)):
            frames[name].append(counted_frames(maps[chosen]))
    gmms = fit_gmms({name: np.concatenate(parts) for name, parts in frames.items()},
                    components, seed)
    return gmm_classifier(gmms, lfcc_features)
