"""EER and t-DCF against a published system's released scores, hand-worked cases and
properties; the `spoofdetect metrics` command."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from spoofdetect import metrics
from spoofdetect.cli import main

VECTORS = os.path.join(os.path.dirname(__file__), "data", "testvectors")
RAWGAT = os.path.join(VECTORS, "rawgat_st_mul_la19_eval_scores.txt.gz")
RAWGAT_ADD = os.path.join(VECTORS, "rawgat_st_add_la19_eval_scores.txt.gz")
ASV = os.path.join(VECTORS, "asvspoof2019_la_asv_eval_scores.txt.gz")


@pytest.fixture(scope="module")
def rawgat() -> metrics.ScoreFile:
    return metrics.read_score_file(RAWGAT)


def test_asv_error_rates_from_the_official_asv_scores() -> None:
    rates = metrics.read_asv_score_file(ASV)
    assert rates.pfa == pytest.approx(0.024604674888228765, abs=1e-15)
    assert rates.pmiss == pytest.approx(0.024581005586592177, abs=1e-15)
    assert rates.pmiss_spoof == pytest.approx(0.23934754703985472, abs=1e-15)
    assert rates == pytest.approx(metrics.ASVSPOOF2019_LA_EVAL_ASV)


def test_reproduces_published_rawgat_st_eer_and_min_tdcf(rawgat: metrics.ScoreFile) -> None:
    assert rawgat.scores.size == 71237
    result = metrics.evaluate_scores(rawgat.scores, rawgat.is_spoof, rawgat.attacks)
    # Published: EER 1.06 %, min t-DCF 0.0335; the ASVspoof 2019 code's exact values:
    assert round(100 * result["eer"], 2) == 1.06
    assert round(result["min_tdcf"], 4) == 0.0335
    assert result["eer"] == pytest.approx(0.010601347517626343, abs=1e-12)
    assert result["min_tdcf"] == pytest.approx(0.033538946714580166, abs=1e-12)
    assert set(result["per_attack"]) == {f"A{n:02d}" for n in range(7, 20)}
    # A18 is RawGAT-ST's hardest attack, A09 its easiest.
    per_attack_eer = {a: v["eer"] for a, v in result["per_attack"].items()}
    assert max(per_attack_eer, key=per_attack_eer.get) == "A18"
    assert min(per_attack_eer, key=per_attack_eer.get) == "A09"
    assert 0.998 < result["auc"] < 1.0


# Reference values of the ASVspoof 5 metrics (tests/data/testvectors/README.md).
ASVSPOOF5_REFERENCE = {
    RAWGAT: (0.010601347517626343, 0.029893113388380865, 0.04439536474572818,
             0.06625195005752256),
    RAWGAT_ADD: (0.011585964783684807, 0.0322811452309962, 0.046673819555689555,
                 0.0780801692596958),
}


@pytest.mark.parametrize("path", list(ASVSPOOF5_REFERENCE))
def test_reproduces_the_asvspoof5_metrics_of_both_released_systems(path: str, capsys) -> None:
    assert main(["metrics", path]) == 0
    result = json.loads(capsys.readouterr().out)
    eer, min_dcf, act_dcf, cllr = ASVSPOOF5_REFERENCE[path]
    assert result["eer"] == pytest.approx(eer, abs=1e-12)
    assert result["min_dcf"] == pytest.approx(min_dcf, abs=1e-12)
    assert result["act_dcf"] == pytest.approx(act_dcf, abs=1e-12)
    assert result["cllr"] == pytest.approx(cllr, abs=1e-12)
    assert result["act_dcf"] >= result["min_dcf"]


def test_hand_worked_asvspoof5_costs() -> None:
    costs = metrics.DcfCosts()
    assert costs.normaliser == pytest.approx(0.5)
    assert costs.bayes_threshold == pytest.approx(-np.log(0.95 / 0.5))
    # Bona fide at 2 and -1, spoofs at -3 and 0: at the Bayes threshold (-0.64) one bona fide
    # is missed and one spoof accepted: (0.95 / 2 + 0.5 / 2) / 0.5.
    bonafide, spoof = np.array([2.0, -1.0]), np.array([-3.0, 0.0])
    assert metrics.act_dcf(bonafide, spoof) == pytest.approx((0.95 / 2 + 0.5 / 2) / 0.5)
    # Sorted: -3 s, -1 b, 0 s, 2 b. The best cut rejects only -3: no bona fide missed, half
    # the spoofs accepted: (10 * 0.05 / 2) / 0.5 (the next cuts cost 1.45 and 0.95).
    value, threshold = metrics.min_dcf(bonafide, spoof)
    assert value == pytest.approx(0.5) and threshold == -3.0
    # An uninformative system (every score 0) costs exactly 1 bit; a confident right one ~0.
    assert metrics.cllr(np.zeros(4), np.zeros(4)) == pytest.approx(1.0)
    assert metrics.cllr(np.full(3, 40.0), np.full(3, -40.0)) < 1e-15
    assert np.isfinite(metrics.cllr(np.array([-1e4]), np.array([1e4])))


def test_hand_worked_eer_and_tdcf() -> None:
    # Sorted: 0.1 b, 0.2 s, 0.3 s, 0.4 b, 0.8 b, 0.9 s. Rejecting the 3 lowest misses 1 of 3
    # bona fide and accepts 1 of 3 spoofs: EER 1/3 at threshold 0.3.
    bonafide, spoof = np.array([0.1, 0.4, 0.8]), np.array([0.2, 0.3, 0.9])
    eer, threshold = metrics.equal_error_rate(bonafide, spoof)
    assert eer == pytest.approx(1 / 3)
    assert threshold == pytest.approx(0.3)
    # With a perfect ASV, C1 = Ptar = 0.9405 and C2 = Cfa_cm * Pspoof = 0.5; the best point
    # is the same cut: (0.9405/3 + 0.5/3) / 0.5.
    perfect_asv = metrics.AsvErrorRates(0.0, 0.0, 0.0)
    value, at = metrics.min_tdcf(bonafide, spoof, perfect_asv)
    assert value == pytest.approx((0.9405 / 3 + 0.5 / 3) / 0.5)
    assert at == pytest.approx(0.3)
    # 2021 form with a perfect ASV: C0 = 0, so it equals the 2019 form.
    assert metrics.min_tdcf(bonafide, spoof, perfect_asv, "2021")[0] == pytest.approx(value)


def test_perfect_separation_gives_zero() -> None:
    bonafide, spoof = np.array([1.0, 2.0, 3.0]), np.array([-2.0, -1.0, 0.0])
    assert metrics.equal_error_rate(bonafide, spoof)[0] == 0.0
    assert metrics.min_tdcf(bonafide, spoof)[0] == 0.0
    result = metrics.evaluate_scores(np.concatenate([bonafide, spoof]), [False] * 3 + [True] * 3)
    assert result["auc"] == 1.0
    assert result["at_eer_threshold"]["accuracy"] == 1.0
    # Every spoof is at or below 0: at p = 0.5 they are all detected.
    assert result["at_probability_0_5"]["confusion_matrix"] == [[3, 0], [0, 3]]


def test_reversed_scores_give_full_error() -> None:
    result = metrics.evaluate_scores([-1.0, -2.0, 1.0, 2.0], [False, False, True, True])
    assert result["auc"] == 0.0
    assert result["eer"] == 1.0


def test_monotone_transforms_change_nothing() -> None:
    rng = np.random.default_rng(1)
    bonafide, spoof = rng.normal(1, 1, 300), rng.normal(-1, 1.5, 700)
    reference = metrics.equal_error_rate(bonafide, spoof)[0], metrics.min_tdcf(bonafide, spoof)[0]
    for transform in (lambda x: 3 * x + 7, np.exp, lambda x: np.tanh(x / 4)):
        eer = metrics.equal_error_rate(transform(bonafide), transform(spoof))[0]
        tdcf = metrics.min_tdcf(transform(bonafide), transform(spoof))[0]
        assert (eer, tdcf) == pytest.approx(reference, abs=1e-12)


def test_min_tdcf_equals_a_brute_force_threshold_sweep() -> None:
    rng = np.random.default_rng(2)
    bonafide, spoof = rng.normal(0.5, 1, 200), rng.normal(-0.5, 1, 400)
    asv = metrics.ASVSPOOF2019_LA_EVAL_ASV
    costs = metrics.TdcfCosts()
    c1 = costs.p_target * (1 - asv.pmiss) - costs.p_nontarget * 10 * asv.pfa
    c2 = 10 * costs.p_spoof * (1 - asv.pmiss_spoof)
    best = min(
        (c1 * np.mean(bonafide <= t) + c2 * np.mean(spoof > t)) / min(c1, c2)
        for t in np.concatenate([[-np.inf], np.sort(np.concatenate([bonafide, spoof]))]))
    assert metrics.min_tdcf(bonafide, spoof, asv)[0] == pytest.approx(best, abs=1e-12)


def test_classification_metrics_treat_spoof_as_positive() -> None:
    # Scores are log-odds of bona fide: -3 is a confident spoof; one spoof is missed (+1).
    scores = [2.0, 3.0, -3.0, -2.0, 1.0]
    result = metrics.evaluate_scores(scores, [False, False, True, True, True])
    at_half = result["at_probability_0_5"]
    assert at_half["precision"] == 1.0
    assert at_half["recall"] == pytest.approx(2 / 3)
    assert at_half["confusion_matrix"] == [[2, 0], [1, 2]]
    p_spoof = 1 / (1 + np.exp(np.array(scores)))
    assert result["brier"] == pytest.approx(np.mean((p_spoof - [0, 0, 1, 1, 1]) ** 2))


def test_empty_class_and_bad_rates_are_user_errors() -> None:
    with pytest.raises(metrics.UserError, match="both bona fide and spoof"):
        metrics.equal_error_rate(np.array([1.0]), np.array([]))
    with pytest.raises(metrics.UserError, match="fraction"):
        metrics.min_tdcf(np.array([1.0]), np.array([0.0]), metrics.AsvErrorRates(1.5, 0, 0))


def test_bad_score_file_names_the_line(tmp_path) -> None:
    path = tmp_path / "scores.txt"
    path.write_text("a - bonafide 1.0\nb A01 maybe 0.2\n")
    with pytest.raises(metrics.UserError, match=r"line 2"):
        metrics.read_score_file(str(path))


def test_metrics_cli_json_and_text(capsys) -> None:
    assert main(["metrics", RAWGAT, "--asv-scores", ASV]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["eer"] == pytest.approx(0.010601347517626343, abs=1e-12)
    assert result["min_tdcf"] == pytest.approx(0.033538946714580166, abs=1e-12)
    assert result["per_attack"]["A18"]["eer"] > result["per_attack"]["A09"]["eer"]
    assert 0 < result["min_tdcf_2021"] < 1
    rates = ["--pfa-asv", "0.024604674888228765", "--pmiss-asv", "0.024581005586592177",
             "--pmiss-spoof-asv", "0.23934754703985472"]
    assert main(["metrics", RAWGAT, "--format", "text", *rates]) == 0
    text = capsys.readouterr().out
    assert "EER            1.0601 %" in text
    assert "min t-DCF      0.033539" in text


def test_metrics_cli_refuses_mixed_asv_inputs(capsys) -> None:
    assert main(["metrics", RAWGAT, "--asv-scores", ASV, "--pfa-asv", "0.1"]) == 2
    assert "not both" in capsys.readouterr().err
    assert main(["metrics", RAWGAT, "--pfa-asv", "0.1"]) == 2
    assert "all three" in capsys.readouterr().err
