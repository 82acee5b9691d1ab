"""LFCC-GMM, the ASVspoof baseline: features checked by hand, and the classifier on the
synthetic demo clips."""

import os

import numpy as np
import pytest

from spoofdetect.audio import decode_audio
from spoofdetect.baselines import LfccConfig, LfccGmm, deltas, lfcc, linear_filterbank
from spoofdetect.demo_data import make_demo_dataset
from spoofdetect.metrics import equal_error_rate
from tests.conftest import tone


def test_filterbank_is_triangles_at_linearly_spaced_centres():
    config = LfccConfig()
    bank = linear_filterbank(config)
    assert bank.shape == (20, 257)
    peaks = np.argmax(bank, axis=1)
    spacing = np.diff(peaks)
    assert spacing.max() - spacing.min() <= 1  # linear, not mel: equal steps
    assert bank.max(axis=1) == pytest.approx(np.ones(20), abs=0.1)


def test_deltas_of_a_ramp_are_its_slope():
    ramp = np.arange(20, dtype=float)[:, None] * np.array([[1.0, -2.0]])
    np.testing.assert_allclose(deltas(ramp, 2)[2:-2], np.tile([1.0, -2.0], (16, 1)))


def test_lfcc_shape_and_the_tones_band():
    features = lfcc(tone(1.0, frequency=6000.0))
    # 1 s at 16 kHz, 20 ms windows every 10 ms: 99 frames; 20 static + 20 + 20 deltas.
    assert features.shape == (99, 60)
    assert np.isfinite(features).all()
    low, high = lfcc(tone(1.0, frequency=500.0)), features
    assert not np.allclose(low[:, :20].mean(axis=0), high[:, :20].mean(axis=0), atol=1.0)


def _clips(root: str, split: str) -> tuple[list[np.ndarray], list[bool]]:
    waveforms, is_spoof = [], []
    for label in ("real", "fake"):
        folder = os.path.join(root, split, label)
        for name in sorted(os.listdir(folder)):
            with open(os.path.join(folder, name), "rb") as handle:
                waveforms.append(decode_audio(handle.read(), 16000, max_seconds=4.0).samples)
            is_spoof.append(label == "fake")
    return waveforms, is_spoof


@pytest.fixture(scope="module")
def demo_dozen(tmp_path_factory):
    """Synthetic demo clips, a dozen per class for training and six for evaluation."""
    root = str(tmp_path_factory.mktemp("demo_dozen"))
    make_demo_dataset(root, {"train": 12, "dev": 1, "eval": 6}, seed=3)
    return root


def test_lfcc_gmm_separates_the_demo_classes_and_scores_bona_fide_higher(demo_dozen):
    train, train_spoof = _clips(demo_dozen, "train")
    evaluation, eval_spoof = _clips(demo_dozen, "eval")
    model = LfccGmm(components=8, seed=0).fit(train, train_spoof)
    scores = model.score(evaluation)
    eval_spoof = np.asarray(eval_spoof)
    assert scores[~eval_spoof].mean() > scores[eval_spoof].mean()
    eer, _ = equal_error_rate(scores[~eval_spoof], scores[eval_spoof])
    assert eer <= 0.25
    again = LfccGmm(components=8, seed=0).fit(train, train_spoof).score(evaluation)
    np.testing.assert_allclose(again, scores)  # seeded


def test_too_few_frames_for_the_components_is_a_clear_error():
    with pytest.raises(ValueError, match="fewer than the GMM's 512 components"):
        LfccGmm().fit([tone(0.1)] * 2, [False, True])
