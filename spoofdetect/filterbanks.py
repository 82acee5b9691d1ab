"""Triangular filterbanks in NumPy, the feature function's constants: Slaney's mel filters
(librosa's default, the seed's) and linearly spaced ones (the linear front end, which keeps
the high frequencies' detail that the mel scale compresses); and the check that every band
of a configuration gets FFT bins."""

from __future__ import annotations

import functools

import numpy as np

# Slaney's mel scale: linear (HZ_PER_MEL Hz per mel) below 1 kHz, logarithmic above.
_HZ_PER_MEL = 200.0 / 3
_LOG_START_HZ = 1000.0
_LOG_START_MEL = _LOG_START_HZ / _HZ_PER_MEL
_LOG_STEP = np.log(6.4) / 27.0


def _hz_to_mel(frequencies: np.ndarray) -> np.ndarray:
    frequencies = np.asarray(frequencies, dtype=np.float64)
    mels = frequencies / _HZ_PER_MEL
    above = frequencies >= _LOG_START_HZ
    mels[above] = _LOG_START_MEL + np.log(frequencies[above] / _LOG_START_HZ) / _LOG_STEP
    return mels


def _mel_to_hz(mels: np.ndarray) -> np.ndarray:
    mels = np.asarray(mels, dtype=np.float64)
    frequencies = _HZ_PER_MEL * mels
    above = mels >= _LOG_START_MEL
    frequencies[above] = _LOG_START_HZ * np.exp(_LOG_STEP * (mels[above] - _LOG_START_MEL))
    return frequencies


SCALES = ("mel", "linear")


@functools.lru_cache(maxsize=8)
def filterbank(sample_rate: int, n_fft: int, bands: int, scale: str) -> np.ndarray:
    """Area-normalised triangular filters, shape [bands, n_fft // 2 + 1], float32.

    Each filter spans three adjacent points equally spaced on the scale (mel: Slaney's; or
    linear in Hz) from 0 Hz to Nyquist, and is scaled by 2 / bandwidth so that every filter
    has the same area (Slaney's normalisation).
    """
    fft_frequencies = np.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1)
    if scale == "mel":
        edges_hz = _mel_to_hz(np.linspace(_hz_to_mel(np.array([0.0]))[0],
                                          _hz_to_mel(np.array([sample_rate / 2.0]))[0],
                                          bands + 2))
    elif scale == "linear":
        edges_hz = np.linspace(0.0, sample_rate / 2.0, bands + 2)
    else:
        raise ValueError(f"scale is {scale!r}, not one of {SCALES}")
    widths = np.diff(edges_hz)
    distance = edges_hz[:, None] - fft_frequencies[None, :]
    rising = -distance[:-2] / widths[:-1, None]
    falling = distance[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights *= (2.0 / (edges_hz[2:] - edges_hz[:-2]))[:, None]
    return weights.astype(np.float32)


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int) -> np.ndarray:
    """Slaney-normalised mel filters, as librosa.filters.mel makes them by default."""
    return filterbank(sample_rate, n_fft, n_mels, "mel")


def empty_bands(sample_rate: int, n_fft: int, bands: int, scale: str) -> int:
    """How many filters cover no FFT bin (all-zero bands: too many bands for n_fft)."""
    return int(np.sum(~filterbank(sample_rate, n_fft, bands, scale).any(axis=1)))
