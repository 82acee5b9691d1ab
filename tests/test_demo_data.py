"""The demo data: real and fake differ in the spectrogram, not in loudness or pitch."""

import librosa
import numpy as np
import pytest
import soxr
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score

from spoofdetect.audio import segment_waveform
from spoofdetect.config import FeatureConfig
from spoofdetect.demo_data import synthesise_clip
from spoofdetect.features import spectral_features

CLIPS_PER_CLASS = 30


@pytest.fixture(scope="module")
def clips():
    waveforms, labels = [], []
    for label in (0, 1):
        for index in range(CLIPS_PER_CLASS):
            clip, sample_rate = synthesise_clip(np.random.default_rng([7, label, index]),
                                                fake=label == 1)
            waveforms.append(soxr.resample(clip, sample_rate, 16000))
            labels.append(label)
    return waveforms, np.array(labels)


def best_threshold_accuracy(values: np.ndarray, labels: np.ndarray) -> float:
    """Accuracy of the best single threshold on one statistic, either direction."""
    best = 0.0
    for threshold in np.unique(values):
        predicted = values >= threshold
        best = max(best, np.mean(predicted == labels), np.mean(predicted != labels))
    return best


def test_loudness_does_not_give_the_label_away(clips):
    waveforms, labels = clips
    rms_db = np.array([10 * np.log10(np.mean(w**2) + 1e-12) for w in waveforms])
    assert best_threshold_accuracy(rms_db, labels) < 0.75


def test_pitch_does_not_give_the_label_away(clips):
    waveforms, labels = clips
    median_f0 = np.array([np.median(librosa.yin(w, fmin=60, fmax=400, sr=16000))
                          for w in waveforms])
    assert best_threshold_accuracy(median_f0, labels) < 0.75


def test_a_spectrogram_model_learns_the_difference(clips):
    waveforms, labels = clips
    config = FeatureConfig()
    segments = np.stack([segment_waveform(w, config)[0] for w in waveforms])
    features = spectral_features(segments, config).numpy()
    # Per band: mean, spread and frame-to-frame change over time; a minimal spectrogram model.
    summary = np.concatenate([features.mean(axis=2), features.std(axis=2),
                              np.abs(np.diff(features, axis=2)).mean(axis=2)], axis=1)
    scores = cross_val_score(LogisticRegression(C=1.0, max_iter=2000), summary, labels, cv=5)
    assert scores.mean() > 0.85


def test_float_wav_writer_reads_back_exactly(tmp_path):
    import soundfile

    from spoofdetect.demo_data import write_float_wav

    stereo = np.random.default_rng(0).uniform(-1, 1, (1001, 2)).astype(np.float32)
    write_float_wav(str(tmp_path / "x.wav"), stereo, 22050)
    read, sample_rate = soundfile.read(str(tmp_path / "x.wav"), dtype="float32")
    assert sample_rate == 22050
    np.testing.assert_array_equal(read, stereo)
