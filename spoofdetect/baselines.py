"""LFCC-GMM, the classic ASVspoof countermeasure baseline, for comparison with this pipeline.

LFCC as in the ASVspoof 2019 baseline: pre-emphasis 0.97, 20 ms Hamming windows every 10 ms,
a 512-point power spectrum, 20 triangular filters spaced *linearly* up to Nyquist (where
MFCCs space them on the mel scale: spoofing artefacts sit in the high band too), log filter
energies, DCT-II to 20 coefficients, then deltas and delta-deltas: 60 values per frame.
Two diagonal-covariance GMMs, one fitted on bona fide frames and one on spoof frames; a clip
scores the mean log-likelihood ratio of its frames, log p(x | bona fide) - log p(x | spoof),
so higher means more bona fide, as everywhere in this project. Plain numpy, scipy and
scikit-learn; no TensorFlow.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
from scipy.fft import dct
from sklearn.mixture import GaussianMixture


@dataclasses.dataclass(frozen=True)
class LfccConfig:
    sample_rate: int = 16000
    window_seconds: float = 0.020
    hop_seconds: float = 0.010
    n_fft: int = 512
    n_filters: int = 20
    n_coefficients: int = 20
    pre_emphasis: float = 0.97
    delta_width: int = 2  # frames either side in the delta regression


def linear_filterbank(config: LfccConfig) -> np.ndarray:
    """[n_filters, n_fft // 2 + 1] triangular filters with linearly spaced centres."""
    bins = config.n_fft // 2 + 1
    edges = np.linspace(0.0, config.sample_rate / 2, config.n_filters + 2)
    frequencies = np.linspace(0.0, config.sample_rate / 2, bins)
    bank = np.zeros((config.n_filters, bins))
    for index in range(config.n_filters):
        low, centre, high = edges[index:index + 3]
        rising = (frequencies - low) / (centre - low)
        falling = (high - frequencies) / (high - centre)
        bank[index] = np.clip(np.minimum(rising, falling), 0.0, None)
    return bank


def deltas(features: np.ndarray, width: int) -> np.ndarray:
    """Regression deltas over +-width frames along axis 0 (edges repeated)."""
    padded = np.pad(features, ((width, width), (0, 0)), mode="edge")
    weights = np.arange(1, width + 1)
    numerator = sum(w * (padded[width + w:len(padded) - width + w]
                         - padded[width - w:len(padded) - width - w]) for w in weights)
    return numerator / (2 * np.sum(weights ** 2))


def lfcc(waveform: np.ndarray, config: LfccConfig = LfccConfig()) -> np.ndarray:
    """[frames, 3 * n_coefficients]: LFCC with deltas and delta-deltas."""
    window = round(config.window_seconds * config.sample_rate)
    hop = round(config.hop_seconds * config.sample_rate)
    signal = np.append(waveform[:1], waveform[1:] - config.pre_emphasis * waveform[:-1])
    if len(signal) < window:
        signal = np.pad(signal, (0, window - len(signal)))
    frames = np.lib.stride_tricks.sliding_window_view(signal, window)[::hop]
    power = np.abs(np.fft.rfft(frames * np.hamming(window), n=config.n_fft)) ** 2
    energies = np.log(power @ linear_filterbank(config).T + 1e-10)
    static = dct(energies, type=2, axis=1, norm="ortho")[:, :config.n_coefficients]
    first = deltas(static, config.delta_width)
    return np.hstack([static, first, deltas(first, config.delta_width)]).astype(np.float32)


class LfccGmm:
    """Two GMMs over LFCC frames; `score` gives each clip's mean log-likelihood ratio."""

    def __init__(self, components: int = 512, config: LfccConfig = LfccConfig(),
                 seed: int = 0, max_iterations: int = 100):
        self.config = config
        self.models = {label: GaussianMixture(components, covariance_type="diag",
                                              max_iter=max_iterations, random_state=seed,
                                              reg_covar=1e-4)
                       for label in ("bonafide", "spoof")}

    def fit(self, waveforms: Sequence[np.ndarray], is_spoof: Sequence[bool]) -> LfccGmm:
        frames: dict[str, list[np.ndarray]] = {"bonafide": [], "spoof": []}
        for waveform, spoof in zip(waveforms, is_spoof, strict=True):
            frames["spoof" if spoof else "bonafide"].append(lfcc(waveform, self.config))
        for label, model in self.models.items():
            if not frames[label]:
                raise ValueError(f"No {label} clips to fit the {label} GMM on.")
            data = np.concatenate(frames[label])
            if len(data) < model.n_components:
                raise ValueError(f"{len(data)} {label} frames are fewer than the GMM's "
                                 f"{model.n_components} components; use fewer components.")
            model.fit(data)
        return self

    def score(self, waveforms: Sequence[np.ndarray]) -> np.ndarray:
        scores = []
        for waveform in waveforms:
            features = lfcc(waveform, self.config)
            scores.append(float(np.mean(self.models["bonafide"].score_samples(features)
                                        - self.models["spoof"].score_samples(features))))
        return np.asarray(scores)
