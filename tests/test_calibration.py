"""Calibration: a logistic-regression map of scores to log-likelihood ratios, fitted on dev,
exported in the model."""

import numpy as np
import pytest
import tensorflow as tf

from spoofdetect import metrics
from spoofdetect.calibration import Calibration, fit_calibration
from spoofdetect.config import ClassifierConfig, GanConfig
from spoofdetect.data import split_files
from spoofdetect.errors import UserError
from spoofdetect.export import ScoredSystem, export_serving_model
from spoofdetect.finetune import fit_dev_calibration
from spoofdetect.fusion import fused_scores
from spoofdetect.models import build_critic, classifier_from_critic
from tests.conftest import (
    ONE_SYSTEM,
    SEED_FEATURES,
    run_trainer,
    uncalibrated_dev_scores,
    with_seed_head,
)


def gaussian_scores(mean: float, count: int, seed: int = 0):
    """Bona fide ~ N(mean, 1), spoof ~ N(-mean, 1): the true LLR is 2 * mean * x. Spoofs
    are three times as many as bona fide, so a fit that ignored the balance would shift."""
    rng = np.random.default_rng(seed)
    x = np.concatenate([rng.normal(mean, 1.0, count), rng.normal(-mean, 1.0, 3 * count)])
    return x, np.concatenate([np.zeros(count, bool), np.ones(3 * count, bool)])


def test_recovers_the_true_llr_of_miscalibrated_scores():
    x, is_spoof = gaussian_scores(1.5, 20000)
    raw = 3.0 * x + 1.0  # what an overconfident, shifted network gives
    calibration = fit_calibration(raw, is_spoof)
    # LLR = 2 * 1.5 * x = (raw - 1) => scale 1, offset -1.
    assert calibration.scale == pytest.approx(1.0, abs=0.03)
    assert calibration.offset == pytest.approx(-1.0, abs=0.05)
    calibrated = calibration.apply(raw)
    before = metrics.cllr(raw[~is_spoof], raw[is_spoof])
    after = metrics.cllr(calibrated[~is_spoof], calibrated[is_spoof])
    assert after < before
    # Calibrated, the Bayes threshold is (close to) the best one: actDCF ~ minDCF.
    act = metrics.act_dcf(calibrated[~is_spoof], calibrated[is_spoof])
    assert act == pytest.approx(metrics.min_dcf(calibrated[~is_spoof],
                                                calibrated[is_spoof])[0], abs=0.01)


def test_one_class_or_non_finite_scores_cannot_be_fitted():
    with pytest.raises(UserError, match="0 spoof examples; it needs both"):
        fit_calibration(np.array([1.0, 2.0]), np.array([False, False]))
    with pytest.raises(UserError, match="NaN or infinite"):
        fit_calibration(np.array([1.0, np.inf]), np.array([False, True]))


def test_the_inverse_gives_back_the_raw_scores():
    raw = np.array([-3.0, 0.0, 0.5, 7.0])
    calibration = Calibration(0.344, 0.039)
    np.testing.assert_allclose(calibration.inverse().apply(calibration.apply(raw)), raw,
                               atol=1e-12)
    with pytest.raises(UserError, match="scale 0"):
        Calibration(0.0, 1.0).inverse()


def test_the_exported_model_applies_the_calibration(tmp_path):
    features = SEED_FEATURES
    classifier = classifier_from_critic(build_critic(features, GanConfig(critic_widths=(8, 16,
                                                                                       32))))
    for name, calibration in (("raw", Calibration()), ("calibrated", Calibration(2.0, -0.5))):
        export_serving_model(classifier, features, str(tmp_path / name), 600.0, calibration)
    log_mel = tf.constant(np.random.default_rng(0).standard_normal((4, 80, 126)), tf.float32)
    raw, calibrated = (tf.saved_model.load(str(tmp_path / name)).signatures["from_features"](
        log_mel=log_mel) for name in ("raw", "calibrated"))
    np.testing.assert_allclose(calibrated["score"], 2.0 * raw["score"].numpy() - 0.5,
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(calibrated["p_fake"],
                               1 / (1 + np.exp(calibrated["score"].numpy())), atol=1e-6)
    np.testing.assert_array_equal(calibrated["label"],
                                  (calibrated["p_fake"].numpy() >= 0.5).astype(int))


def test_dev_calibration_of_a_trained_model_lowers_dev_cllr(exported, demo_examples):
    model = exported[3]
    calibration, report = fit_dev_calibration(*fused_scores(
        [ScoredSystem(model, ONE_SYSTEM)], split_files(demo_examples, "dev"), 4))
    assert (report["scale"], report["offset"]) == (calibration.scale, calibration.offset)
    # Logistic regression minimises the balanced log loss, which is Cllr: never worse.
    assert report["dev_cllr_calibrated"] <= report["dev_cllr_raw"] + 1e-9
    assert report["dev_cllr_calibrated"] <= 1.0 + 1e-9


def test_trainer_calibrates_one_system_on_its_own_dev_scores(demo_examples, tmp_path):
    # Without fusion nothing else has scored dev: the Trainer scores it for the calibration.
    summary = run_trainer(demo_examples, ONE_SYSTEM, with_seed_head(ClassifierConfig(
        from_scratch=True, epochs=1, batch_size=4, calibrate=True)), tmp_path)
    raw, is_spoof = uncalibrated_dev_scores(demo_examples, ONE_SYSTEM, tmp_path, summary)
    fitted = summary["calibration"]
    assert fitted["dev_cllr_raw"] == pytest.approx(metrics.cllr(raw[~is_spoof], raw[is_spoof]),
                                                   rel=1e-4)
    assert fitted["dev_cllr_calibrated"] <= fitted["dev_cllr_raw"] + 1e-9
