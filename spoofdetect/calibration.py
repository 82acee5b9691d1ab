"""Score calibration: an affine map of the network's log-odds to a log-likelihood ratio,
fitted on dev by logistic regression (the standard back end of ASVspoof 5 systems). Plain
NumPy and scikit-learn; no TFX.

The fit weighs both classes equally, so the calibrated score is an LLR free of dev's class
balance: higher = more bona fide, 0 = no evidence either way, and the Bayes threshold of a
cost model (metrics.DcfCosts.bayes_threshold) applies to it directly. That is what makes
actDCF and Cllr meaningful, and what lets `p_fake` be read as a probability (at even prior).
"""

from __future__ import annotations

import dataclasses

import numpy as np
from sklearn.linear_model import LogisticRegression

from spoofdetect.errors import UserError


@dataclasses.dataclass(frozen=True)
class Calibration:
    """calibrated score = scale * score + offset (identity by default: uncalibrated)."""

    scale: float = 1.0
    offset: float = 0.0

    def apply(self, scores: np.ndarray) -> np.ndarray:
        return self.scale * np.asarray(scores, np.float64) + self.offset

    def inverse(self) -> Calibration:
        """The map back from calibrated to raw scores."""
        if self.scale == 0:
            raise UserError("A calibration with scale 0 maps every score to one value; it "
                            "cannot be undone.")
        return Calibration(1.0 / self.scale, -self.offset / self.scale)


def fit_calibration(scores: np.ndarray, is_spoof: np.ndarray) -> Calibration:
    """Logistic regression of bona fide on the score, classes weighted equally."""
    scores = np.asarray(scores, np.float64)
    is_spoof = np.asarray(is_spoof, bool)
    if is_spoof.all() or not is_spoof.any():
        raise UserError(f"Cannot fit the calibration: dev has {int((~is_spoof).sum())} bona "
                        f"fide and {int(is_spoof.sum())} spoof examples; it needs both (or "
                        "set classifier.calibrate=false).")
    if not np.isfinite(scores).all():
        raise UserError("Cannot fit the calibration: some dev scores are NaN or infinite.")
    # C large: the fit is two numbers on thousands of scores, it needs no regularisation.
    fit = LogisticRegression(C=1e6, class_weight="balanced").fit(scores[:, None], ~is_spoof)
    return Calibration(float(fit.coef_[0, 0]), float(fit.intercept_[0]))
