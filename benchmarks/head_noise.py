"""How much of the study's spread over seeds is the classifier head's optimisation: the
default's head trained as the Trainer trains it, at several initialisations on one stage-1
critic and the same data, against the optimum of the same loss.

For each seed, the critic is the stage 1 that the study's default variant
(`augment-multi-resolution-block1-statistics`) trained at that seed, found in the study's ML
Metadata store (run that variant first). The default's read-out, block 1's time statistics
(spoofdetect/models.py), is computed on the train split and two augmented copies of each
clip drawn with that seed (front_end_probe.py's copies) and standardised on them, as the
read-out's Normalization is. On it:
- the Trainer's optimiser: the head (one Dense unit with the config's `head_l2`), Adam at the
  config's learning rate, batch size and epochs, at INITIALISATIONS seeds of its initial
  weights and shuffling (without the Trainer's dev-based selection, which picks an epoch of
  the same run);
- the optimum of the same convex loss (mean log-loss + head_l2 |w|^2): scikit-learn's L-BFGS
  logistic regression with C = 1 / (2 head_l2 n).
Each is measured on the eval split and the cross-dataset test set.

    python benchmarks/head_noise.py DATASET CROSS [--config benchmarks/quality.yaml]
        [--seeds 0 1 2] [--workdir benchmarks/_data/generalisation_workdir] [--output benchmarks]
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

import keras
import numpy as np
from critic_probe import block_statistics, stage1_critic_dir
from front_end_probe import augmented_copies, feature_maps, first_segments
from generalisation import VARIANTS, variant_settings
from quality import (
    kept_per_seed,
    load_split,
    probe_arguments,
    study_command,
    study_numbers,
    summarise,
    test_set_tables,
)
from sklearn.linear_model import LogisticRegression

from spoofdetect import metrics
from spoofdetect.config import ClassifierConfig, FeatureConfig, load_config
from spoofdetect.finetune import load_critic

DEFAULT_VARIANT = "augment-multi-resolution-block1-statistics"
INITIALISATIONS = 5


def read_out(critic: keras.Model, features: FeatureConfig, clips: list[np.ndarray]
             ) -> np.ndarray:
    """Block 1's time statistics of each clip's first segment."""
    return block_statistics(critic, 1, feature_maps(features, first_segments(clips)))


def adam_head(train: np.ndarray, is_spoof: np.ndarray, config: ClassifierConfig,
              initialisation: int) -> keras.Model:
    """The head as the Trainer fits it (its penalty, optimiser, batch and epochs)."""
    keras.utils.set_random_seed(initialisation)
    inputs = keras.Input(train.shape[1:])
    logit = keras.layers.Dense(1, kernel_regularizer=keras.regularizers.L2(config.head_l2))(inputs)
    head = keras.Model(inputs, logit)
    head.compile(optimizer=keras.optimizers.Adam(config.learning_rate),
                 loss=keras.losses.BinaryCrossentropy(from_logits=True))
    head.fit(train, is_spoof.astype("float32"), batch_size=config.batch_size,
             epochs=config.epochs, shuffle=True, verbose=0)
    return head


def optimum_head(train: np.ndarray, is_spoof: np.ndarray, head_l2: float
                 ) -> LogisticRegression:
    """The minimum of the Trainer head's loss, mean log-loss + head_l2 |w|^2 (the bias not
    penalised): scikit-learn minimises C * sum(log-loss) + |w|^2 / 2, the same up to a factor
    when C = 1 / (2 head_l2 n)."""
    return LogisticRegression(C=1.0 / (2 * head_l2 * len(train)), max_iter=3000,
                              tol=1e-6).fit(train, is_spoof)


def probe_seed(dataset: str, cross: str, critic_dir: str, seed: int, features: FeatureConfig,
               config: ClassifierConfig) -> dict[str, list[dict[str, Any]]]:
    train, train_spoof, _ = load_split(dataset, "train", features.segment_seconds)
    copies, copies_spoof = augmented_copies(train, train_spoof, seed)
    critic = load_critic(critic_dir)
    statistics = read_out(critic, features, train + copies)
    is_spoof = np.concatenate([train_spoof, copies_spoof])
    mean, std = statistics.mean(axis=0), np.maximum(statistics.std(axis=0), 1e-7)
    standardised = (statistics - mean) / std
    tests = {name: load_split(root, "eval", features.segment_seconds)
             for name, root in (("eval", dataset), ("cross", cross))}
    test_inputs = {name: (read_out(critic, features, clips) - mean) / std
                   for name, (clips, _, _) in tests.items()}

    def measured(logits: dict[str, np.ndarray]) -> dict[str, Any]:
        # Higher is bona fide, as everywhere in spoofdetect.metrics.
        return {name: study_numbers(metrics.ScoreFile(
            [str(i) for i in range(len(spoof))], attacks, spoof, -logits[name]))
            for name, (_, spoof, attacks) in tests.items()}

    rows: dict[str, list[dict[str, Any]]] = {"adam": [], "optimum": []}
    for initialisation in range(INITIALISATIONS):
        head = adam_head(standardised, is_spoof, config, initialisation)
        rows["adam"].append(measured({name: head.predict(values, verbose=0)[:, 0]
                                      for name, values in test_inputs.items()}))
        print(f"seed {seed}, initialisation {initialisation}: cross EER "
              f"{100 * rows['adam'][-1]['cross']['eer']:.1f} %", flush=True)
    optimum = optimum_head(standardised, is_spoof, config.head_l2)
    rows["optimum"].append(measured({name: optimum.decision_function(values)
                                     for name, values in test_inputs.items()}))
    print(f"seed {seed}, optimum: cross EER {100 * rows['optimum'][0]['cross']['eer']:.1f} %",
          flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    probe_arguments(parser)
    args = parser.parse_args()
    variant = next(v for v in VARIANTS if v.name == DEFAULT_VARIANT)

    def compute(seed: int) -> dict[str, list[dict[str, Any]]]:
        settings = load_config(None, variant_settings(variant, seed, args.config))
        return probe_seed(args.dataset, args.cross,
                          stage1_critic_dir(args.workdir, args.config, seed, DEFAULT_VARIANT),
                          seed, settings.features, settings.classifier)

    results = kept_per_seed(os.path.join(args.output, "head_noise_runs"), args.seeds, compute)
    heads = {"adam": f"Adam, {INITIALISATIONS} initialisations",
             "optimum": "optimum of the same loss"}
    rows = {f"{seed} | {title}": result[head]
            for seed, result in results.items() for head, title in heads.items()}
    rows |= {f"all | {title}": [run for result in results.values() for run in result[head]]
             for head, title in heads.items()}
    lines = ["# How much of the spread is the head's optimisation", "",
             f"Measured with `{study_command('head_noise.py')}` on "
             f"{time.strftime('%Y-%m-%d')}. EER in %; mean ± standard deviation over the "
             "row's runs (min-max). Each critic seed is the stage 1 of the study's default "
             f"(`{DEFAULT_VARIANT}`) at that seed; on one critic and one training set, the "
             "Adam rows differ only in the head's initial weights and shuffling. "
             "docs/generalisation.md reads these numbers.", ""]
    lines += test_set_tables(rows, ["critic seed", "head", "runs", "EER %"],
                             lambda name, runs, test_set: [
                                 *name.split(" | "), str(len(runs)),
                                 summarise([100 * run[test_set]["eer"] for run in runs])])
    with open(os.path.join(args.output, "HEAD_NOISE.md"), "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines))
    print(f"Wrote {os.path.join(args.output, 'HEAD_NOISE.md')}")


if __name__ == "__main__":
    main()
