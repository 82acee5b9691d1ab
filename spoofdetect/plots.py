"""PNG figures saved with every training and evaluation run (matplotlib, no display)."""

from __future__ import annotations

import os
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
from scipy.stats import norm
from sklearn.metrics import precision_recall_curve, roc_curve

from spoofdetect import metrics


def plot_gan_history(history: dict[str, list[dict[str, float]]], path: str) -> None:
    """Critic loss, generator loss, Wasserstein estimate and gradient penalty per step."""
    steps = [entry["step"] for entry in history["steps"]]
    figure, axes = plt.subplots(2, 2, figsize=(10, 6), sharex=True)
    for axis, (name, title) in zip(axes.ravel(), (
            ("critic_loss", "critic loss"), ("generator_loss", "generator loss"),
            ("wasserstein", "Wasserstein estimate E[D(x)] - E[D(G(z))]"),
            ("gradient_penalty", "gradient penalty")), strict=True):
        axis.plot(steps, [entry[name] for entry in history["steps"]], linewidth=1)
        axis.set_title(title)
        axis.grid(alpha=0.3)
    for axis in axes[1]:
        axis.set_xlabel("generator step")
    figure.suptitle("Stage 1: WGAN-GP pre-training")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def plot_spectrogram_grid(generated: np.ndarray, real: np.ndarray, path: str) -> None:
    """Generated spectrograms (top row) next to real training spectrograms (bottom row)."""
    columns = min(len(generated), len(real), 6)
    figure, axes = plt.subplots(2, columns, figsize=(2.2 * columns, 4.2), squeeze=False)
    for row, (name, images) in enumerate((("generated", generated), ("training data", real))):
        for column in range(columns):
            axis = axes[row, column]
            axis.imshow(images[column], origin="lower", aspect="auto", cmap="magma",
                        vmin=-3, vmax=3)
            axis.set_xticks([])
            axis.set_yticks([])
            if column == 0:
                axis.set_ylabel(name)
    rows, frames = real.shape[1:3]
    figure.suptitle(f"feature maps (standardised), {rows} rows x {frames} frames")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def plot_classifier_history(history: dict[str, list[float]], path: str) -> None:
    """Training and dev loss, accuracy and AUC per epoch."""
    figure, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for axis, name in zip(axes, ("loss", "accuracy", "auc"), strict=True):
        epochs = np.arange(1, len(history.get(name, [])) + 1)
        axis.plot(epochs, history.get(name, []), marker="o", label="train")
        axis.plot(epochs, history.get(f"val_{name}", []), marker="o", label="dev")
        axis.set_title(name)
        axis.set_xlabel("epoch")
        axis.grid(alpha=0.3)
        axis.legend()
    figure.suptitle("Stage 2: classifier fine-tuning")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _save(figure: plt.Figure, output_dir: str, name: str) -> str:
    figure.tight_layout()
    figure.savefig(os.path.join(output_dir, name), dpi=100)
    plt.close(figure)
    return name


def det_axis_ticks(axis: plt.Axes, which: str) -> None:
    """Normal-deviate axis labelled in percent, as DET plots are drawn.

    Up to 80 %, not the customary 40 %: a system at chance on one attack family (Griffin-Lim
    on magnitude features) has half its curve beyond 40 %.
    """
    percents = [0.1, 0.5, 1, 2, 5, 10, 20, 40, 60, 80]
    ticks = norm.ppf(np.array(percents) / 100)
    getattr(axis, f"set_{which}ticks")(ticks)
    getattr(axis, f"set_{which}ticklabels")([f"{p:g}" for p in percents])
    getattr(axis, f"set_{which}lim")(ticks[0], ticks[-1])


def _curve(output_dir: str, name: str, x: Any, y: Any, label: str, x_label: str,
           y_label: str, title: str, legend: str, diagonal: bool = False,
           marker: str | None = None) -> str:
    """One curve on a square unit plot, optionally with the diagonal for reference."""
    figure, axis = plt.subplots(figsize=(5, 5))
    if diagonal:
        axis.plot([0, 1], [0, 1], "--", color="grey", linewidth=0.8)
    axis.plot(x, y, marker=marker, label=label)
    axis.set_xlabel(x_label)
    axis.set_ylabel(y_label)
    axis.set_title(title)
    axis.legend(loc=legend)
    axis.grid(alpha=0.3)
    return _save(figure, output_dir, name)


def save_evaluation_plots(scores: np.ndarray, is_spoof: np.ndarray, result: dict[str, Any],
                          output_dir: str) -> list[str]:
    """Every evaluation figure as a PNG in output_dir; returns their file names.

    `scores` are log-odds of bona fide; the positive class of ROC/PR curves is spoof, so they
    are drawn on -scores.
    """
    bonafide, spoof = scores[~is_spoof], scores[is_spoof]
    names = []

    miss, false_alarm, _ = metrics.det_curve(bonafide, spoof)
    clip = 1e-6  # keeps 0 and 1 on the normal-deviate scale
    figure, axis = plt.subplots(figsize=(5, 5))
    axis.plot(norm.ppf(np.clip(false_alarm, clip, 1 - clip)),
              norm.ppf(np.clip(miss, clip, 1 - clip)), linewidth=1.5)
    eer = norm.ppf(np.clip(result["eer"], clip, 1 - clip))
    axis.plot([eer], [eer], "o", label=f"EER {100 * result['eer']:.2f} %")
    det_axis_ticks(axis, "x")
    det_axis_ticks(axis, "y")
    axis.set_xlabel("false alarm rate: spoof accepted (%)")
    axis.set_ylabel("miss rate: bona fide rejected (%)")
    axis.set_title("DET curve")
    axis.grid(alpha=0.3)
    axis.legend()
    names.append(_save(figure, output_dir, "det.png"))

    false_positive, true_positive, _ = roc_curve(is_spoof, -scores)
    names.append(_curve(output_dir, "roc.png", false_positive, true_positive,
                        f"AUC {result['auc']:.4f}", "false positive rate (bona fide flagged)",
                        "true positive rate (spoof detected)", "ROC (positive class: spoof)",
                        "lower right", diagonal=True))
    precision, recall, _ = precision_recall_curve(is_spoof, -scores)
    names.append(_curve(output_dir, "precision_recall.png", recall, precision,
                        f"AP {result['average_precision']:.4f}", "recall (spoof)",
                        "precision (spoof)", "Precision-recall (positive class: spoof)",
                        "lower left"))
    calibration = result["calibration"]
    names.append(_curve(output_dir, "calibration.png", calibration["mean_predicted_p_spoof"],
                        calibration["fraction_spoof"], f"model (Brier {result['brier']:.4f})",
                        "mean predicted p(spoof)", "fraction spoof", "Calibration",
                        "upper left", diagonal=True, marker="o"))

    # Cumulative counts over the sorted scores: O(n log n) for ASVspoof-sized sets.
    order = np.argsort(scores, kind="stable")
    sorted_scores = scores[order]
    thresholds = np.unique(sorted_scores)
    last = np.searchsorted(sorted_scores, thresholds, side="right") - 1
    hits = np.cumsum(is_spoof[order])[last]
    precision_at = hits / (last + 1)
    recall_at = hits / max(int(is_spoof.sum()), 1)
    f1_at = 2 * precision_at * recall_at / np.maximum(precision_at + recall_at, 1e-12)
    figure, axis = plt.subplots(figsize=(6, 4))
    for values, label in ((precision_at, "precision"), (recall_at, "recall"), (f1_at, "F1")):
        axis.plot(thresholds, values, label=label)
    axis.axvline(result["eer_threshold"], color="grey", linestyle="--", label="EER threshold")
    axis.axvline(0.0, color="black", linestyle=":", label="p(spoof) = 0.5")
    axis.set_xlabel("threshold on score (spoof when score <= threshold)")
    axis.set_title("Spoof precision, recall and F1 against threshold")
    axis.legend()
    axis.grid(alpha=0.3)
    names.append(_save(figure, output_dir, "threshold_metrics.png"))

    figure, axes = plt.subplots(1, 2, figsize=(9, 4))
    for axis, (key, title) in zip(axes, (("at_probability_0_5", "at p(spoof) = 0.5"),
                                         ("at_eer_threshold", "at the EER threshold")),
                                  strict=True):
        matrix = np.array(result[key]["confusion_matrix"])
        axis.imshow(matrix, cmap="Blues")
        for (row, column), count in np.ndenumerate(matrix):
            axis.text(column, row, str(count), ha="center", va="center",
                      color="white" if count > matrix.max() / 2 else "black")
        axis.set_xticks([0, 1], ["bona fide", "spoof"])
        axis.set_yticks([0, 1], ["bona fide", "spoof"])
        axis.set_xlabel("predicted")
        axis.set_ylabel("true")
        axis.set_title(f"Confusion {title}")
    names.append(_save(figure, output_dir, "confusion.png"))

    figure, axis = plt.subplots(figsize=(6, 4))
    bins = np.linspace(scores.min(), scores.max(), 40) if scores.max() > scores.min() else 10
    axis.hist(bonafide, bins=bins, alpha=0.6, label=f"bona fide ({bonafide.size})")
    axis.hist(spoof, bins=bins, alpha=0.6, label=f"spoof ({spoof.size})")
    axis.axvline(result["eer_threshold"], color="grey", linestyle="--", label="EER threshold")
    axis.set_xlabel("score (log-odds of bona fide)")
    axis.set_ylabel("clips")
    axis.set_title("Score distributions")
    axis.legend()
    names.append(_save(figure, output_dir, "score_histograms.png"))
    return names
