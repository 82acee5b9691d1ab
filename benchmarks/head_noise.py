"""How much of the study's spread over seeds is the classifier head's optimisation: the
default's first system's head trained as the Trainer trains it, at several initialisations
on one stage-1 critic and the same data, against the optimum of the same loss.

For each seed, the critic is the stage 1 that the study's first-system variant
(`augment-multi-resolution-block1-statistics`) trained at that seed, found in the study's ML
Metadata store (run that variant first). Its read-out, block 1's time statistics
(spoofdetect/models.py), is computed on the train split and two augmented copies of each
clip drawn with that seed (front_end_probe.py's copies) and standardised on them, as the
read-out's Normalization is. On it:
- the Trainer's optimiser: the head (one Dense unit with the config's `head_l2`), Adam at the
  config's learning rate, batch size and epochs, at INITIALISATIONS seeds of its initial
  weights and shuffling (without the Trainer's dev-based selection, which picks an epoch of
  the same run);
- the optimum of the same convex loss (mean log-loss + head_l2 |w|^2), as the Trainer's
  `classifier.head_solver: lbfgs` finds it (spoofdetect.finetune.solve_head).
Each is measured on the eval split and the cross-dataset test set, alone and fused with the
pipeline's second system (features.fusion): the one the study's fused variant
(`fused-augment-multi-resolution-block1-statistics`) trained at that seed, read out of its
SavedModel. The fusion is the pipeline's: each system's scores standardised on dev, summed.
With the head's noise measured, this compares the fusion with the head alone over 15 pairs
rather than 3 (the study's rule of "lower at each seed" cannot tell a 3-point gain from it).

    python benchmarks/head_noise.py DATASET CROSS [--config benchmarks/quality.yaml]
        [--seeds 0 1 2] [--workdir benchmarks/_data/generalisation_workdir]
        [--fused-workdir DIR ...] [--output benchmarks]
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from critic_probe import block_statistics, stage1_critic_dir
from front_end_probe import FEATURES, augmented_copies
from fusion_probe import model_dir
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

from spoofdetect import metrics
from spoofdetect.audio import first_segments
from spoofdetect.config import ClassifierConfig, FeatureConfig, load_config
from spoofdetect.features import feature_maps
from spoofdetect.finetune import load_critic, solve_head
from spoofdetect.fusion import dev_standardisation

FIRST_SYSTEM_VARIANT = "augment-multi-resolution-block1-statistics"
FUSED_VARIANT = "fused-augment-multi-resolution-block1-statistics"
INITIALISATIONS = 5
HEADS = {"adam": f"Adam, {INITIALISATIONS} initialisations",
         "optimum": "optimum of the same loss"}
FUSED = " + second system"


def read_out(critic: keras.Model, features: FeatureConfig, segments: np.ndarray) -> np.ndarray:
    """Block 1's time statistics of each segment."""
    return block_statistics(critic, 1, feature_maps(features, segments))


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


def second_system_scores(fused_model_dir: str, features: FeatureConfig,
                         segments: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The fused SavedModel's second system alone, standardised on dev, on each split's
    clips' first segments (`features`: the fused variant's, its fusion on). The exported
    score is affine in each system's mapped score (their sum, calibrated), so with the first
    system's map held at zeros it is an affine map of the second's: the dev standardisation
    removes the map and leaves the second system's score as the fusion adds it."""
    score = tf.saved_model.load(fused_model_dir).signatures["from_features"]
    second = features.fusion_features
    scores = {}
    for name, split_segments in segments.items():
        maps = feature_maps(second, split_segments)
        scores[name] = np.concatenate([score(
            log_mel=tf.zeros([len(batch), features.num_rows, features.num_frames]),
            fusion_features=tf.constant(batch))["score"].numpy()
            for batch in np.array_split(maps, range(256, len(maps), 256))])
    standardisation = dev_standardisation(scores["dev"])
    return {name: standardisation.apply(values) for name, values in scores.items()}


def probe_seed(dataset: str, cross: str, critic_dir: str, fused_model_dir: str, seed: int,
               features: FeatureConfig, fused_features: FeatureConfig,
               config: ClassifierConfig) -> dict[str, list[dict[str, Any]]]:
    train, train_spoof, _ = load_split(dataset, "train", features.segment_seconds)
    copies, copies_spoof = augmented_copies(train, train_spoof, seed)
    critic = load_critic(critic_dir)
    statistics = read_out(critic, features, first_segments(train + copies, FEATURES))
    is_spoof = np.concatenate([train_spoof, copies_spoof])
    mean, std = statistics.mean(axis=0), np.maximum(statistics.std(axis=0), 1e-7)
    standardised = (statistics - mean) / std
    tests = {name: load_split(root, "eval", features.segment_seconds)
             for name, root in (("eval", dataset), ("cross", cross))}
    # Each split's first segments, cut once for both systems' maps.
    segments = {name: first_segments(waveforms, FEATURES) for name, waveforms in [
        ("dev", load_split(dataset, "dev", features.segment_seconds)[0]),
        *((name, waveforms) for name, (waveforms, _, _) in tests.items())]}
    inputs = {name: (read_out(critic, features, split_segments) - mean) / std
              for name, split_segments in segments.items()}
    second = second_system_scores(fused_model_dir, fused_features, segments)

    def measured(scores: dict[str, np.ndarray]) -> dict[str, Any]:
        return {name: study_numbers(metrics.ScoreFile(
            [str(i) for i in range(len(spoof))], attacks, spoof, scores[name]))
            for name, (_, spoof, attacks) in tests.items()}

    def add(head: str, logits: dict[str, np.ndarray]) -> None:
        # Higher is bona fide, as everywhere in spoofdetect.metrics.
        scores = {name: -values for name, values in logits.items()}
        standardisation = dev_standardisation(scores["dev"])
        rows[head].append(measured(scores))
        rows[head + FUSED].append(measured({
            name: standardisation.apply(scores[name]) + second[name] for name in tests}))
        print(f"seed {seed}, {head}: cross EER {100 * rows[head][-1]['cross']['eer']:.1f} %, "
              f"fused {100 * rows[head + FUSED][-1]['cross']['eer']:.1f} %", flush=True)

    rows: dict[str, list[dict[str, Any]]] = {
        name: [] for head in HEADS for name in (head, head + FUSED)}
    rows["second system"] = [measured(second)]
    for initialisation in range(INITIALISATIONS):
        head = adam_head(standardised, is_spoof, config, initialisation)
        add("adam", {name: head.predict(values, verbose=0)[:, 0]
                     for name, values in inputs.items()})
    kernel, bias, _ = solve_head(standardised, is_spoof, config.head_l2)
    add("optimum", {name: values @ kernel + bias for name, values in inputs.items()})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    probe_arguments(parser)
    parser.add_argument("--fused-workdir", nargs="+", default=None,
                        help=f"the study's work folders that hold {FUSED_VARIANT}'s runs, "
                        "searched in order (default: --workdir)")
    args = parser.parse_args()
    variants = {v.name: v for v in VARIANTS}

    def compute(seed: int) -> dict[str, list[dict[str, Any]]]:
        settings, fused = (load_config(None, variant_settings(variants[name], seed, args.config))
                           for name in (FIRST_SYSTEM_VARIANT, FUSED_VARIANT))
        return probe_seed(
            args.dataset, args.cross,
            stage1_critic_dir(args.workdir, args.config, seed, FIRST_SYSTEM_VARIANT),
            model_dir(args.fused_workdir or args.workdir, args.config, FUSED_VARIANT, seed),
            seed, settings.features, fused.features, settings.classifier)

    results = kept_per_seed(os.path.join(args.output, "head_noise_runs"), args.seeds, compute)
    titles = {"second system": "the fused variant's second system alone"} | {
        name: title + suffix for head, title in HEADS.items()
        for name, suffix in ((head, ""), (head + FUSED, ", fused with the second system"))}
    rows = {f"{seed} | {title}": result[name]
            for seed, result in results.items() for name, title in titles.items()}
    rows |= {f"all | {title}": [run for result in results.values() for run in result[name]]
             for name, title in titles.items()}
    lines = ["# How much of the spread is the head's optimisation", "",
             f"Measured with `{study_command('head_noise.py')}` on "
             f"{time.strftime('%Y-%m-%d')}. EER in %; mean ± standard deviation over the "
             "row's runs (min-max). Each critic seed is the stage 1 of the default's first "
             f"system (`{FIRST_SYSTEM_VARIANT}`) at that seed; on one critic and one training "
             "set, the Adam rows differ only in the head's initial weights and shuffling. The "
             "fused rows add the second system of the default's fusion (`"
             f"{FUSED_VARIANT}` at that seed), each score standardised on dev, as the "
             "pipeline sums them. docs/generalisation.md reads these numbers.", ""]
    lines += test_set_tables(rows, ["critic seed", "head", "runs", "EER %"],
                             lambda name, runs, test_set: [
                                 *name.split(" | "), str(len(runs)),
                                 summarise([100 * run[test_set]["eer"] for run in runs])])
    with open(os.path.join(args.output, "HEAD_NOISE.md"), "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines))
    print(f"Wrote {os.path.join(args.output, 'HEAD_NOISE.md')}")


if __name__ == "__main__":
    main()
