"""The TensorFlow log-Mel function against librosa's computation of the seed's features."""

import dataclasses

import librosa
import numpy as np
import pytest

from spoofdetect.config import FeatureConfig
from spoofdetect.features import feature_function, log_mel_spectrogram
from spoofdetect.mel import mel_filterbank

CONFIG = FeatureConfig()
# Reached: about 2e-6 on standardised values (float32 throughout); the issue asks for 1e-3.
TOLERANCE = 1e-4


def seed_features(y: np.ndarray, top_db: float | None = 80.0, standardise: bool = True,
                  peak_normalise: bool = True) -> np.ndarray:
    """The seed's per-clip librosa chain."""
    if peak_normalise:
        y = y / np.max(np.abs(y))
    spectrogram = librosa.feature.melspectrogram(y=y, sr=16000, n_fft=2048, hop_length=512,
                                                 n_mels=80)
    if top_db is not None:
        spectrogram = librosa.power_to_db(spectrogram, ref=np.max, top_db=top_db)
    if standardise:
        spectrogram = (spectrogram - spectrogram.mean()) / spectrogram.std()
    return spectrogram


def test_filterbank_matches_librosa_slaney():
    ours = mel_filterbank(16000, 2048, 80)
    theirs = librosa.filters.mel(sr=16000, n_fft=2048, n_mels=80)
    assert ours.shape == (80, 1025)
    np.testing.assert_allclose(ours, theirs, atol=1e-7)
    np.testing.assert_allclose(mel_filterbank(22050, 1024, 64),
                               librosa.filters.mel(sr=22050, n_fft=1024, n_mels=64), atol=1e-7)


def _signals() -> np.ndarray:
    rng = np.random.default_rng(0)
    t = np.arange(64000) / 16000
    chirp = np.sin(2 * np.pi * (100 + 900 * t) * t)
    noise_burst = rng.standard_normal(64000) * (t > 2.5)
    quiet = 1e-3 * rng.standard_normal(64000)
    harmonic = sum(np.sin(2 * np.pi * 150 * k * t) / k for k in range(1, 20))
    return np.stack([chirp, noise_burst, quiet, harmonic]).astype(np.float32)


def test_shape_is_80_by_126():
    assert log_mel_spectrogram(_signals(), CONFIG).shape == (4, 80, 126)
    assert CONFIG.num_frames == 126


def test_matches_seed_librosa_chain():
    signals = _signals()
    ours = feature_function(CONFIG)(signals).numpy()
    theirs = np.stack([seed_features(y) for y in signals])
    np.testing.assert_allclose(ours, theirs, atol=TOLERANCE)


@pytest.mark.parametrize("option", ["top_db", "standardise", "peak_normalise"])
def test_each_normalisation_step_is_an_option(option):
    value = None if option == "top_db" else False
    config = dataclasses.replace(CONFIG, **{option: value})
    signals = _signals()[:2] * 0.25
    ours = log_mel_spectrogram(signals, config).numpy()
    theirs = np.stack([seed_features(y, **{option: value}) for y in signals])
    scale = np.abs(theirs).max()
    np.testing.assert_allclose(ours / scale, theirs / scale, atol=TOLERANCE)


def test_batch_members_do_not_influence_each_other():
    signals = _signals()
    together = log_mel_spectrogram(signals, CONFIG).numpy()
    alone = log_mel_spectrogram(signals[1:2], CONFIG).numpy()
    np.testing.assert_allclose(together[1:2], alone, atol=1e-5)


def test_silence_gives_zeros_not_nan():
    out = log_mel_spectrogram(np.zeros((2, 64000), np.float32), CONFIG).numpy()
    assert np.isfinite(out).all()
    assert np.abs(out).max() == 0.0


def test_standardised_per_clip():
    out = log_mel_spectrogram(_signals(), CONFIG).numpy()
    np.testing.assert_allclose(out.mean(axis=(1, 2)), 0.0, atol=1e-4)
    np.testing.assert_allclose(out.std(axis=(1, 2)), 1.0, atol=1e-3)
