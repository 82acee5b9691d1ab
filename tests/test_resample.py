"""The in-graph resampler of the exported model, against the ideal result and soxr."""

import numpy as np
import pytest
import soxr

from spoofdetect.config import FeatureConfig
from spoofdetect.demo_data import synthesise_clip
from spoofdetect.export import first_segment
from spoofdetect.features import spectral_features
from spoofdetect.resample import resample


def tones(sample_rate: int, frequencies: list[float]) -> np.ndarray:
    t = np.arange(sample_rate) / sample_rate  # one second
    return sum(0.2 * np.sin(2 * np.pi * f * t) for f in frequencies).astype(np.float32)


# 96001 and 191999 Hz: odd rates with 16000 phases, whose weights are interpolated.
@pytest.mark.parametrize("sample_rate", [8000, 22050, 32000, 44100, 48000, 96001, 191999])
def test_tones_up_to_7_khz_come_out_within_minus_80_db_of_ideal(sample_rate):
    nyquist = min(sample_rate, 16000) / 2
    frequencies = [f for f in (440.0, 3100.0, 6000.0, 7000.0) if f <= 0.875 * nyquist]
    out = resample(tones(sample_rate, frequencies), sample_rate, 16000).numpy()
    ideal = tones(16000, frequencies)
    assert len(out) == len(soxr.resample(tones(sample_rate, frequencies), sample_rate, 16000))
    middle = slice(800, len(ideal) - 800)  # away from the edges' zero padding
    error = np.mean((out[middle] - ideal[middle]) ** 2) / np.mean(ideal[middle] ** 2)
    assert 10 * np.log10(error) < -80


def test_16k_input_is_returned_unchanged_and_empty_input_gives_empty_output():
    samples = tones(16000, [440.0])
    np.testing.assert_array_equal(resample(samples, 16000, 16000).numpy(), samples)
    assert resample(np.zeros(0, np.float32), 44100, 16000).numpy().shape == (0,)
    assert resample(np.ones(1, np.float32), 44100, 16000).numpy().shape == (1,)


def test_features_after_either_resampler_agree():
    config = FeatureConfig()
    clip, rate = synthesise_clip(np.random.default_rng(5), fake=False)
    ours = resample(clip, rate, 16000).numpy()
    theirs = soxr.resample(clip, rate, 16000, quality="HQ")
    a = spectral_features(first_segment(ours[None], config), config).numpy()
    b = spectral_features(first_segment(theirs[None], config), config).numpy()
    assert np.mean(np.abs(a - b)) < 0.05
