"""The seed's feature function, as the notebook wrote it with librosa: the reference path that
the benchmarks compare against (the project's own features are spoofdetect.features)."""

from __future__ import annotations

import numpy as np


def seed_log_mel(y: np.ndarray, n_fft: int = 2048) -> np.ndarray:
    """First 4 s of a 16 kHz clip -> standardised 80 x 126 log-Mel, in Python with librosa
    (the seed's window unless `n_fft` says otherwise)."""
    import librosa

    y = librosa.util.fix_length(y[:64000], size=64000)
    y = y / np.max(np.abs(y))
    spectrogram = librosa.feature.melspectrogram(y=y, sr=16000, n_fft=n_fft, hop_length=512,
                                                 n_mels=80)
    spectrogram = librosa.power_to_db(spectrogram, ref=np.max)
    return (spectrogram - spectrogram.mean()) / spectrogram.std()
