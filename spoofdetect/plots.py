"""PNG figures saved with every training and evaluation run (matplotlib, no display)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np


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
    figure.suptitle("log-Mel spectrograms (standardised), 80 mels x 126 frames")
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
