"""LFCC-GMM, the ASVspoof baseline and the pipeline's third fused system: the LFCC front end
against ASVspoof 2019's definition computed by hand, the GMM classifier against
scikit-learn's scores, the baseline on the synthetic demo clips, and the exported model."""

import os

import numpy as np
import pytest
import tensorflow as tf
from scipy.fft import dct

from spoofdetect import examples
from spoofdetect.audio import decode_audio
from spoofdetect.calibration import Calibration
from spoofdetect.config import FeatureConfig, load_config
from spoofdetect.demo_data import make_demo_dataset
from spoofdetect.errors import UserError
from spoofdetect.export import ScoredSystem, export_fused_model
from spoofdetect.features import spectral_features
from spoofdetect.gmm import LfccGmm, counted_frames, fit_gmms, gmm_classifier
from spoofdetect.metrics import equal_error_rate
from spoofdetect.models import logit_model
from tests.conftest import SEED_PRESET, tone

LFCC = FeatureConfig(lfcc_gmm=True).lfcc_features


def reference_lfcc(waveform: np.ndarray) -> np.ndarray:
    """[frames, 60]: ASVspoof 2019's LFCC written out in NumPy (pre-emphasis 0.97, 20 ms
    Hamming windows every 10 ms from the first sample, 512-point power spectrum, 20
    triangular filters linearly spaced to Nyquist, log, DCT-II to 20, deltas over +-2 frames
    with the end frames repeated)."""
    signal = np.append(waveform[:1], waveform[1:] - 0.97 * waveform[:-1])
    frames = np.lib.stride_tricks.sliding_window_view(signal, 320)[::160]
    power = np.abs(np.fft.rfft(frames * np.hamming(320), n=512)) ** 2
    edges = np.linspace(0.0, 8000.0, 22)
    frequencies = np.linspace(0.0, 8000.0, 257)
    bank = np.stack([np.clip(np.minimum((frequencies - low) / (centre - low),
                                        (high - frequencies) / (high - centre)), 0.0, None)
                     for low, centre, high in zip(edges, edges[1:], edges[2:], strict=False)])
    static = dct(np.log(power @ bank.T + 1e-10), type=2, axis=1, norm="ortho")[:, :20]

    def deltas(values: np.ndarray) -> np.ndarray:
        padded = np.pad(values, ((2, 2), (0, 0)), mode="edge")
        return sum(w * (padded[2 + w:len(padded) - 2 + w] - padded[2 - w:len(padded) - 2 - w])
                   for w in (1, 2)) / 10.0

    return np.hstack([static, deltas(static), deltas(deltas(static))])


def test_lfcc_is_asvspoofs_and_marks_the_padding():
    clip = (np.random.default_rng(0).standard_normal(40000) * 0.1).astype(np.float32)
    segment = np.pad(clip, (0, 24000))
    lfcc = spectral_features(segment[None], LFCC).numpy()[0]
    assert lfcc.shape == (LFCC.num_rows, LFCC.num_frames) == (61, 401)
    reference = reference_lfcc(clip)  # 249 frames; the map's frames are centred: frame t + 1
    ours = lfcc[:60, 1:1 + len(reference)].T
    difference = ours - reference
    # The map's filters have equal areas (the feature function's filterbank), the baseline's
    # equal heights: equally spaced filters differ by one factor, a constant in c0 only.
    np.testing.assert_allclose(difference[:, 0], difference[0, 0], atol=1e-3)
    np.testing.assert_allclose(ours[:, 1:20], reference[:, 1:20], atol=1e-3)
    # Deltas agree wherever their +-4 frames lie in the clip (the baseline repeats its last
    # frame, the map sees the padding that follows).
    np.testing.assert_allclose(ours[4:-4, 20:], reference[4:-4, 20:], atol=1e-3)
    # The GMMs count a frame if it and the 4 frames either side that its delta-deltas reach
    # hold samples of the clip (40,000 samples; frame t's window starts at 160 t - 160): not
    # the first 4 (before them lies the segment's start) nor any near the padding.
    with_signal = np.arange(401) * 160 - 160 < 40000
    counted = np.array([with_signal[t - 4:t + 5].all() if t >= 4 else False
                        for t in range(401)])
    assert counted.sum() == 243  # frames 4-246
    np.testing.assert_array_equal(lfcc[60], counted)


def test_the_gmm_classifier_scores_sklearns_mean_log_likelihood_ratio():
    rng = np.random.default_rng(1)
    bona, spoof = rng.normal(0.0, 1.0, (600, 60)), rng.normal(0.5, 1.5, (600, 60))
    gmms = fit_gmms({"bonafide": bona, "spoof": spoof}, components=4, seed=0)
    maps = rng.normal(0.2, 1.2, (3, 61, 401)).astype(np.float32)
    maps[:, 60] = 1.0
    maps[1, 60, 200:] = 0.0  # half the frames are padding
    maps[2, 60] = 0.0  # no signal at all
    scores = -logit_model(gmm_classifier(gmms, LFCC))(maps).numpy()[:, 0]
    for map_, score in zip(maps[:2], scores, strict=False):
        frames = counted_frames(map_[None])
        expected = np.mean(gmms["bonafide"].score_samples(frames)
                           - gmms["spoof"].score_samples(frames))
        assert score == pytest.approx(expected, rel=1e-5)
    assert len(counted_frames(maps[1:2])) == 200
    assert scores[2] == 0.0


def test_the_gmms_do_not_depend_on_the_order_of_their_frames():
    rng = np.random.default_rng(3)
    frames = {"bonafide": rng.normal(0.0, 1.0, (500, 6)), "spoof": rng.normal(1.0, 2.0, (500, 6))}
    shuffled = {name: rng.permutation(values) for name, values in frames.items()}
    first, second = fit_gmms(frames, 4, seed=0), fit_gmms(shuffled, 4, seed=0)
    for name in frames:
        np.testing.assert_allclose(first[name].means_, second[name].means_)


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


def test_too_few_frames_for_the_components_is_a_config_error():
    with pytest.raises(UserError, match=r"fewer than its 512 components.*gmm_components"):
        LfccGmm(components=512).fit([tone(0.1)] * 2, [False, True])


def test_lfcc_gmm_is_off_in_the_seed_preset_and_its_components_are_checked():
    assert load_config(SEED_PRESET).features.lfcc_features is None
    with pytest.raises(UserError, match=r"classifier\.gmm_components"):
        load_config(overrides=["classifier.gmm_components=0"])


def test_an_exported_model_fuses_lfcc_gmm_by_its_map(tmp_path):
    """A classifier and LFCC-GMM exported together: every signature scores the calibrated
    sum of their mapped scores, from_features takes the LFCC map under its key."""
    rng = np.random.default_rng(2)
    gmms = fit_gmms({"bonafide": rng.normal(0.0, 3.0, (300, 60)),
                     "spoof": rng.normal(1.0, 3.0, (300, 60))}, components=2, seed=0)
    features = FeatureConfig(lfcc_gmm=True)
    second = ScoredSystem(gmm_classifier(gmms, LFCC), LFCC, examples.LFCC_FEATURES,
                          Calibration(0.3, -0.2))
    first = ScoredSystem(gmm_classifier(gmms, LFCC), LFCC, standardisation=Calibration(2.0, 1.0))
    export_fused_model([first, second], str(tmp_path), 600.0, Calibration(1.5, 0.1))
    waveforms = tf.random.stateless_normal([2, features.segment_samples], [1, 2]) * 0.1
    lfcc = spectral_features(waveforms, LFCC)
    ratio = -logit_model(second.classifier)(lfcc).numpy()[:, 0]
    expected = 0.1 + 1.5 * (first.standardisation.apply(ratio)
                            + second.standardisation.apply(ratio))
    signatures = tf.saved_model.load(str(tmp_path)).signatures
    assert set(signatures["from_features"].structured_input_signature[1]) == {
        examples.LOG_MEL, examples.LFCC_FEATURES}
    np.testing.assert_allclose(signatures["serving_default"](waveforms=waveforms)["score"],
                               expected, rtol=1e-4)
    np.testing.assert_allclose(signatures["from_features"](
        log_mel=lfcc, lfcc=lfcc)["score"], expected, rtol=1e-4)
