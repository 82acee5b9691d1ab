"""Countermeasure metrics: EER and min t-DCF as ASVspoof defines them, and the usual
classification metrics. Plain numpy and scikit-learn; no TFX.

Conventions everywhere in this module:
- A higher score means more bona fide (ASVspoof's direction). The pipeline's score is the
  log-odds of bona fide, so p(spoof) = sigmoid(-score) and probability 0.5 is score 0.
- A clip is classified spoof when its score is at or below the threshold.
- For precision, recall, F1, AUC and average precision the positive class is *spoof*: the
  system is a spoof detector.
- Rates are fractions (0.0106 means 1.06 %).
"""

from __future__ import annotations

import dataclasses
import gzip
import math
import re
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from sklearn import metrics as skm
from sklearn.calibration import calibration_curve

from spoofdetect.config import EvaluationConfig
from spoofdetect.errors import UserError

BONAFIDE, SPOOF = "bonafide", "spoof"


@dataclasses.dataclass(frozen=True)
class AsvErrorRates:
    """Error rates of the speaker verification (ASV) system the countermeasure protects, at
    the ASV's own EER threshold: false alarms on non-targets, misses on targets, and the
    fraction of spoofs the ASV rejects by itself."""

    pfa: float
    pmiss: float
    pmiss_spoof: float


# The official ASVspoof 2019 LA eval ASV system (ASVspoof2019.LA.asv.eval.gi.trl.scores.txt,
# distributed with the ASVspoof 2019 evaluation package), taken at its EER threshold: the
# evaluation config's defaults.
ASVSPOOF2019_LA_EVAL_ASV = AsvErrorRates(
    pfa=EvaluationConfig.pfa_asv, pmiss=EvaluationConfig.pmiss_asv,
    pmiss_spoof=EvaluationConfig.pmiss_spoof_asv)


def asv_rates(config: EvaluationConfig) -> AsvErrorRates:
    """The ASV error rates t-DCF is computed with: at the EER threshold of the ASV score file
    `asv_scores` when one is given, else the config's three rates."""
    if config.asv_scores:
        return read_asv_score_file(config.asv_scores)
    return AsvErrorRates(config.pfa_asv, config.pmiss_asv, config.pmiss_spoof_asv)


@dataclasses.dataclass(frozen=True)
class TdcfCosts:
    """The t-DCF cost model of the ASVspoof 2019 evaluation plan (also used by 2021)."""

    p_spoof: float = 0.05
    p_target: float = 0.95 * 0.99  # 0.9405
    p_nontarget: float = 0.95 * 0.01  # 0.0095
    cmiss_asv: float = 1.0
    cfa_asv: float = 10.0
    cmiss_cm: float = 1.0
    cfa_cm: float = 10.0


def det_curve(bonafide: np.ndarray, spoof: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Miss rate (bona fide rejected), false-alarm rate (spoof accepted) and thresholds at
    every distinct cut of the sorted scores, starting below the lowest score.

    Entry k rejects the k lowest scores. Ties keep bona fide before spoof (a stable sort of
    bona fide scores followed by spoof scores), which is what ASVspoof's code does.
    """
    bonafide = np.asarray(bonafide, np.float64)
    spoof = np.asarray(spoof, np.float64)
    if bonafide.size == 0 or spoof.size == 0:
        raise UserError("EER and t-DCF need both bona fide and spoof scores; one class is "
                        f"empty ({bonafide.size} bona fide, {spoof.size} spoof).")
    scores = np.concatenate([bonafide, spoof])
    order = np.argsort(scores, kind="stable")
    is_bonafide = np.concatenate([np.ones(bonafide.size), np.zeros(spoof.size)])[order]
    bonafide_rejected = np.concatenate([[0.0], np.cumsum(is_bonafide)])
    spoof_rejected = np.arange(scores.size + 1) - bonafide_rejected
    miss = bonafide_rejected / bonafide.size
    false_alarm = 1.0 - spoof_rejected / spoof.size
    thresholds = np.concatenate([[scores[order[0]] - 0.001], scores[order]])
    return miss, false_alarm, thresholds


def equal_error_rate(bonafide: np.ndarray, spoof: np.ndarray) -> tuple[float, float]:
    """(EER, threshold): at the DET point where |miss - false alarm| is smallest, the mean of
    the two rates."""
    miss, false_alarm, thresholds = det_curve(bonafide, spoof)
    index = int(np.argmin(np.abs(miss - false_alarm)))
    return float((miss[index] + false_alarm[index]) / 2), float(thresholds[index])


def asv_error_rates(target: np.ndarray, nontarget: np.ndarray, spoof: np.ndarray
                    ) -> AsvErrorRates:
    """The ASV error rates at the ASV's own EER threshold (target vs non-target trials)."""
    _, threshold = equal_error_rate(target, nontarget)
    return AsvErrorRates(pfa=float(np.mean(np.asarray(nontarget) >= threshold)),
                         pmiss=float(np.mean(np.asarray(target) < threshold)),
                         pmiss_spoof=float(np.mean(np.asarray(spoof) < threshold)))


def _check_asv(asv: AsvErrorRates) -> None:
    for name in ("pfa", "pmiss", "pmiss_spoof"):
        value = getattr(asv, name)
        if not 0.0 <= value <= 1.0:
            raise UserError(f"The ASV error rate {name} must be a fraction in [0, 1], got "
                            f"{value}.")


def tdcf_2019_curve(bonafide: np.ndarray, spoof: np.ndarray, asv: AsvErrorRates,
                    costs: TdcfCosts = TdcfCosts()) -> tuple[np.ndarray, np.ndarray]:
    """Normalised t-DCF of ASVspoof 2019 at every CM threshold: (values, thresholds).

    t-DCF = C1 Pmiss_cm + C2 Pfa_cm, normalised by min(C1, C2), with
    C1 = Ptar (Cmiss_cm - Cmiss_asv Pmiss_asv) - Pnon Cfa_asv Pfa_asv and
    C2 = Cfa_cm Pspoof (1 - Pmiss_spoof_asv).
    """
    _check_asv(asv)
    c1 = (costs.p_target * (costs.cmiss_cm - costs.cmiss_asv * asv.pmiss)
          - costs.p_nontarget * costs.cfa_asv * asv.pfa)
    c2 = costs.cfa_cm * costs.p_spoof * (1.0 - asv.pmiss_spoof)
    if c1 <= 0 or c2 <= 0:
        raise UserError(f"The t-DCF weights are not positive (C1 = {c1:g}, C2 = {c2:g}); the "
                        "ASV error rates are implausible (check --pfa-asv, --pmiss-asv, "
                        "--pmiss-spoof-asv or the ASV score file).")
    miss, false_alarm, thresholds = det_curve(bonafide, spoof)
    return (c1 * miss + c2 * false_alarm) / min(c1, c2), thresholds


def tdcf_2021_curve(bonafide: np.ndarray, spoof: np.ndarray, asv: AsvErrorRates,
                    costs: TdcfCosts = TdcfCosts()) -> tuple[np.ndarray, np.ndarray]:
    """The revised, ASV-constrained t-DCF of ASVspoof 2021 at every CM threshold.

    t-DCF = C0 + C1 Pmiss_cm + C2 Pfa_cm, normalised by C0 + min(C1, C2), with
    C0 = Ptar Cmiss Pmiss_asv + Pnon Cfa Pfa_asv (the cost the ASV incurs on its own),
    C1 = Ptar Cmiss - C0 and C2 = Pspoof Cfa_spoof Pfa_spoof_asv, where
    Pfa_spoof_asv = 1 - Pmiss_spoof_asv (spoofs the ASV accepts).
    """
    _check_asv(asv)
    c0 = costs.p_target * costs.cmiss_asv * asv.pmiss + costs.p_nontarget * costs.cfa_asv * asv.pfa
    c1 = costs.p_target * costs.cmiss_asv - c0
    c2 = costs.p_spoof * costs.cfa_cm * (1.0 - asv.pmiss_spoof)
    if c1 < 0 or c2 < 0:
        raise UserError(f"The 2021 t-DCF weights are negative (C1 = {c1:g}, C2 = {c2:g}); the "
                        "ASV error rates are implausible.")
    miss, false_alarm, thresholds = det_curve(bonafide, spoof)
    return (c0 + c1 * miss + c2 * false_alarm) / (c0 + min(c1, c2)), thresholds


def min_tdcf(bonafide: np.ndarray, spoof: np.ndarray,
             asv: AsvErrorRates = ASVSPOOF2019_LA_EVAL_ASV, form: str = "2019"
             ) -> tuple[float, float]:
    """(minimum normalised t-DCF, the CM threshold where it is reached)."""
    curve = {"2019": tdcf_2019_curve, "2021": tdcf_2021_curve}[form]
    values, thresholds = curve(bonafide, spoof, asv)
    index = int(np.argmin(values))
    return float(values[index]), float(thresholds[index])


@dataclasses.dataclass(frozen=True)
class DcfCosts:
    """The countermeasure-only detection cost of ASVspoof 5 (2024): a spoof prior and the
    costs of rejecting bona fide speech (miss) and accepting a spoof (false alarm)."""

    p_spoof: float = 0.05
    cmiss: float = 1.0
    cfa: float = 10.0

    @property
    def normaliser(self) -> float:
        """The cost of the better of the two trivial systems (accept all, reject all)."""
        return min(self.cmiss * (1.0 - self.p_spoof), self.cfa * self.p_spoof)

    @property
    def bayes_threshold(self) -> float:
        """Where a log-likelihood ratio (higher = bona fide) minimises the expected cost."""
        return -math.log(self.cmiss * (1.0 - self.p_spoof) / (self.cfa * self.p_spoof))


def min_dcf(bonafide: np.ndarray, spoof: np.ndarray, costs: DcfCosts = DcfCosts()
            ) -> tuple[float, float]:
    """(ASVspoof 5 minDCF, its threshold): the normalised cost at the best threshold on the
    DET curve (the EER's curve), i.e. with the scores perfectly calibrated."""
    miss, false_alarm, thresholds = det_curve(bonafide, spoof)
    values = (costs.cmiss * (1.0 - costs.p_spoof) * miss
              + costs.cfa * costs.p_spoof * false_alarm) / costs.normaliser
    index = int(np.argmin(values))
    return float(values[index]), float(thresholds[index])


def act_dcf(bonafide: np.ndarray, spoof: np.ndarray, costs: DcfCosts = DcfCosts()) -> float:
    """ASVspoof 5 actDCF: the normalised cost at the Bayes threshold of scores read as
    log-likelihood ratios; a bona fide clip below it is missed, a spoof at or above it
    accepted. Above minDCF by what miscalibration costs."""
    threshold = costs.bayes_threshold
    miss = float(np.mean(np.asarray(bonafide, np.float64) < threshold))
    false_alarm = float(np.mean(np.asarray(spoof, np.float64) >= threshold))
    return (costs.cmiss * (1.0 - costs.p_spoof) * miss
            + costs.cfa * costs.p_spoof * false_alarm) / costs.normaliser


def cllr(bonafide: np.ndarray, spoof: np.ndarray) -> float:
    """Log-likelihood-ratio cost in bits (0: perfect, 1: an uninformative system that always
    says 0), scores read as natural-log LLRs of bona fide."""
    bonafide = np.asarray(bonafide, np.float64)
    spoof = np.asarray(spoof, np.float64)
    # log2(1 + e^-s) for bona fide and log2(1 + e^s) for spoof, without overflow.
    return float(0.5 * (np.mean(np.logaddexp(0.0, -bonafide))
                        + np.mean(np.logaddexp(0.0, spoof))) / math.log(2.0))


def sigmoid(x: np.ndarray | float) -> np.ndarray | float:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # overflow-free logistic


def _classification(is_spoof: np.ndarray, scores: np.ndarray, threshold: float
                    ) -> dict[str, Any]:
    predicted_spoof = scores <= threshold
    matrix = skm.confusion_matrix(is_spoof, predicted_spoof, labels=[False, True])
    return {
        "threshold": float(threshold),
        "accuracy": float(skm.accuracy_score(is_spoof, predicted_spoof)),
        "precision": float(skm.precision_score(is_spoof, predicted_spoof, zero_division=0)),
        "recall": float(skm.recall_score(is_spoof, predicted_spoof, zero_division=0)),
        "f1": float(skm.f1_score(is_spoof, predicted_spoof, zero_division=0)),
        # Rows: true bona fide, true spoof; columns: predicted bona fide, predicted spoof.
        "confusion_matrix": matrix.tolist(),
    }


def evaluate_scores(scores: Sequence[float], is_spoof: Sequence[bool],
                    attacks: Sequence[str] | None = None,
                    asv: AsvErrorRates = ASVSPOOF2019_LA_EVAL_ASV,
                    calibration_bins: int = 10) -> dict[str, Any]:
    """Every metric of one score set, JSON-ready.

    `attacks` names each spoof's attack (bona fide entries are ignored); per-attack EER and
    min t-DCF compare all bona fide scores with that attack's spoofs.
    """
    scores = np.asarray(scores, np.float64)
    is_spoof = np.asarray(is_spoof, bool)
    if scores.shape != is_spoof.shape or scores.ndim != 1:
        raise ValueError("scores and is_spoof must be 1-D and of equal length.")
    if not np.all(np.isfinite(scores)):
        raise UserError(f"{int(np.sum(~np.isfinite(scores)))} scores are NaN or infinite.")
    bonafide, spoof = scores[~is_spoof], scores[is_spoof]
    eer, eer_threshold = equal_error_rate(bonafide, spoof)
    tdcf, tdcf_threshold = min_tdcf(bonafide, spoof, asv, "2019")
    tdcf_2021, _ = min_tdcf(bonafide, spoof, asv, "2021")
    dcf, dcf_threshold = min_dcf(bonafide, spoof)
    p_spoof = sigmoid(-scores)
    fraction_spoof, mean_predicted = calibration_curve(is_spoof, p_spoof,
                                                       n_bins=calibration_bins)
    result: dict[str, Any] = {
        "num_bonafide": int(bonafide.size),
        "num_spoof": int(spoof.size),
        "eer": eer,
        "eer_threshold": eer_threshold,
        "min_tdcf": tdcf,
        "min_tdcf_threshold": tdcf_threshold,
        "min_tdcf_2021": tdcf_2021,
        # ASVspoof 5: DCF with Pspoof 0.05, Cmiss 1, Cfa 10; actDCF and Cllr read the scores
        # as log-likelihood ratios, so they also measure calibration.
        "min_dcf": dcf,
        "min_dcf_threshold": dcf_threshold,
        "act_dcf": act_dcf(bonafide, spoof),
        "cllr": cllr(bonafide, spoof),
        "auc": float(skm.roc_auc_score(is_spoof, -scores)),
        "average_precision": float(skm.average_precision_score(is_spoof, -scores)),
        "brier": float(np.mean((p_spoof - is_spoof) ** 2)),
        "positive_class": SPOOF,
        "at_probability_0_5": _classification(is_spoof, scores, 0.0),
        "at_eer_threshold": _classification(is_spoof, scores, eer_threshold),
        "calibration": {"mean_predicted_p_spoof": mean_predicted.tolist(),
                        "fraction_spoof": fraction_spoof.tolist()},
        "asv_error_rates": dataclasses.asdict(asv),
    }
    if attacks is not None:
        attacks = np.asarray(attacks, dtype=object)
        per_attack = {}
        for attack in sorted({str(a) for a in attacks[is_spoof] if a}):
            attack_spoof = scores[is_spoof & (attacks == attack)]
            attack_eer, _ = equal_error_rate(bonafide, attack_spoof)
            per_attack[attack] = {"num_spoof": int(attack_spoof.size), "eer": attack_eer,
                                  "min_tdcf": min_tdcf(bonafide, attack_spoof, asv)[0]}
        result["per_attack"] = per_attack
    return result


@dataclasses.dataclass
class ScoreFile:
    """An ASVspoof CM score file: lines `utt_id attack key score`."""

    utterances: list[str]
    attacks: list[str]
    is_spoof: np.ndarray
    scores: np.ndarray


def _open_text(path: str) -> Iterable[str]:
    try:
        handle = (gzip.open(path, "rt", encoding="utf-8") if path.endswith(".gz")
                  else open(path, encoding="utf-8"))
        with handle:
            yield from handle
    except UnicodeDecodeError as error:
        raise UserError(f"{path} is not a text score file (byte {error.start} is not "
                        "UTF-8 text).") from error
    except (OSError, EOFError) as error:  # gzip: BadGzipFile is an OSError, EOFError
        raise UserError(f"Cannot read {path}: {getattr(error, 'strerror', None) or error}."
                        ) from error


def _score_value(path: str, number: int, text: str) -> float:
    try:
        score = float(text)
    except ValueError:
        raise UserError(f"{path}, line {number}: score {text!r} is not a number.") from None
    if not math.isfinite(score):
        raise UserError(f"{path}, line {number}: score {text!r} is not finite.")
    return score


def read_score_file(path: str) -> ScoreFile:
    """Reads a CM score file (plain or .gz). Bona fide lines may use '-' as the attack."""
    utterances, attacks, keys, scores = [], [], [], []
    first_line: dict[str, int] = {}
    for number, line in enumerate(_open_text(path), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 4 or fields[2] not in (BONAFIDE, SPOOF):
            raise UserError(f"{path}, line {number}: expected 'utt_id attack key score' with "
                            f"key bonafide or spoof, got {line.strip()!r}.")
        score = _score_value(path, number, fields[3])
        if fields[0] in first_line:
            # Counted twice, a trial would weigh double in every metric; with another key or
            # score, the file contradicts itself.
            raise UserError(f"{path}, line {number}: utterance {fields[0]!r} is already scored "
                            f"on line {first_line[fields[0]]}; each trial must appear once.")
        first_line[fields[0]] = number
        utterances.append(fields[0])
        attacks.append(fields[1])
        keys.append(fields[2] == SPOOF)
        scores.append(score)
    if not scores:
        raise UserError(f"{path} holds no scores.")
    return ScoreFile(utterances, attacks, np.asarray(keys), np.asarray(scores))


def read_asv_score_file(path: str) -> AsvErrorRates:
    """ASV error rates from an ASV score file: lines `[speaker] key score`, key
    target|nontarget|spoof (the ASVspoof 2019 layout has a leading source column)."""
    by_key: dict[str, list[float]] = {"target": [], "nontarget": [], "spoof": []}
    for number, line in enumerate(_open_text(path), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) not in (2, 3) or fields[-2] not in by_key:
            raise UserError(f"{path}, line {number}: expected '[source] key score' with key "
                            f"target, nontarget or spoof, got {line.strip()!r}.")
        by_key[fields[-2]].append(_score_value(path, number, fields[-1]))
    empty = [key for key, values in by_key.items() if not values]
    if empty:
        raise UserError(f"{path} has no {', '.join(empty)} trials; the ASV error rates need "
                        "all three kinds.")
    return asv_error_rates(*(np.asarray(by_key[key]) for key in ("target", "nontarget",
                                                                 "spoof")))


def write_score_file(path: str, utterances: Sequence[str], attacks: Sequence[str],
                     is_spoof: Sequence[bool], scores: Sequence[float]) -> None:
    """An ASVspoof CM score file, lines 'utterance attack key score'; whitespace in an
    utterance id (a clip path) becomes '_', so each line keeps four fields."""
    with open(path, "w", encoding="utf-8") as handle:
        for utterance, attack, spoof, score in zip(utterances, attacks, is_spoof, scores,
                                                   strict=True):
            utterance = re.sub(r"\s", "_", utterance)
            handle.write(f"{utterance} {attack or '-'} {SPOOF if spoof else BONAFIDE} "
                         f"{score:.9g}\n")


def format_summary(result: dict[str, Any]) -> str:
    """The headline metrics for people."""
    lines = [
        f"bona fide {result['num_bonafide']}, spoof {result['num_spoof']}",
        f"EER            {100 * result['eer']:.4f} %  (threshold {result['eer_threshold']:.6g})",
        f"min t-DCF      {result['min_tdcf']:.6f}  (ASVspoof 2019 form)",
        f"min t-DCF 2021 {result['min_tdcf_2021']:.6f}  (ASV-constrained form)",
        f"minDCF         {result['min_dcf']:.6f}  (ASVspoof 5: Pspoof 0.05, Cmiss 1, Cfa 10)",
        f"actDCF         {result['act_dcf']:.6f}  (at the Bayes threshold of LLR scores)",
        f"Cllr           {result['cllr']:.6f} bits",
        f"ROC AUC        {result['auc']:.6f}  (positive class: spoof)",
        f"avg precision  {result['average_precision']:.6f}",
        f"Brier          {result['brier']:.6f}  (scores read as log-odds of bona fide)",
    ]
    for name, key in (("p=0.5", "at_probability_0_5"), ("EER thr", "at_eer_threshold")):
        at = result[key]
        lines.append(f"at {name:<8} accuracy {at['accuracy']:.4f}  precision "
                     f"{at['precision']:.4f}  recall {at['recall']:.4f}  F1 {at['f1']:.4f}")
    for attack, values in result.get("per_attack", {}).items():
        lines.append(f"  {attack:<10} EER {100 * values['eer']:7.3f} %  min t-DCF "
                     f"{values['min_tdcf']:.4f}  ({values['num_spoof']} spoof)")
    return "\n".join(lines)
