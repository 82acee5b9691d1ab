"""Screening front ends in minutes: a linear probe on each feature map's clip statistics.

A full pipeline run of one variant takes 15-60 minutes on 2 cores, so the front ends worth a
full run are first screened here: each front end's feature map (the pipeline's own feature
function, spoofdetect/features.py) is reduced to clip statistics (per row: the mean and
standard deviation over time, the mean absolute change from frame to frame and from the row
to the next), a logistic regression is fitted on the train split, and its EER is measured on
the eval split and on the cross-dataset test set, with and without the training split's
waveform augmentation (spoofdetect/augment.py, two copies per clip, every family).

A linear probe is not the network: it ranks what the features make visible, and only the
full runs of benchmarks/generalisation.py measure the detector. The augmented rows depend on
the augmentation seed, so they are run per seed; the others are deterministic. Each row's
settings are over the seed's front end (pipeline/seed.yaml), whatever today's defaults are.

    python benchmarks/front_end_probe.py DATASET CROSS [--seeds 0 1 2] [--output benchmarks]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
from typing import Any

import numpy as np
from quality import (
    HERE,
    dataset_arguments,
    load_split,
    study_command,
    study_numbers,
    study_settings,
    summarise,
    test_set_tables,
)
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from spoofdetect import augment, metrics
from spoofdetect.audio import first_segments
from spoofdetect.config import load_config
from spoofdetect.features import feature_maps

# name -> the FeatureConfig settings of that front end.
FRONT_ENDS: dict[str, dict[str, Any]] = {
    "log-mel 2048/512 (the seed)": {},
    "log-mel 1024/256": {"n_fft": 1024, "hop_length": 256},
    "log-mel 512/256": {"n_fft": 512, "hop_length": 256},
    "log-mel 400/160": {"n_fft": 400, "hop_length": 160},
    "log-mel 512/256 + phase": {"n_fft": 512, "hop_length": 256, "phase": True},
    "log-mel 512/512 + phase": {"n_fft": 512, "hop_length": 512, "phase": True},
    "log-mel 2048+512/512 (multi-resolution)": {"extra_windows": (512,)},
    "log-mel 2048+512/512 + phase": {"extra_windows": (512,), "phase": True},
    "log-linear 512/256": {"front_end": "log_linear", "n_fft": 512, "hop_length": 256},
    "log-linear 512/256 + phase": {"front_end": "log_linear", "n_fft": 512,
                                   "hop_length": 256, "phase": True},
    "log-linear 256/128 + phase": {"front_end": "log_linear", "n_fft": 256,
                                   "hop_length": 128, "linear_bands": 64, "phase": True},
}
COPIES = 2
# Each row's settings are over the seed's front end (pipeline/seed.yaml), not today's default,
# so that a row is what its name says whatever the defaults become.
FEATURES = load_config(None, study_settings(None, [])).features


def clip_statistics(maps: np.ndarray) -> np.ndarray:
    """[clips, rows, frames] -> [clips, 4 * rows]: per row the mean and standard deviation
    over time, the mean absolute frame-to-frame change and the mean absolute difference to
    the next row (the last row's is 0)."""
    over_time = np.abs(np.diff(maps, axis=2)).mean(axis=2)
    over_rows = np.pad(np.abs(np.diff(maps, axis=1)).mean(axis=2), ((0, 0), (0, 1)))
    return np.concatenate([maps.mean(axis=2), maps.std(axis=2), over_time, over_rows], axis=1)


def maps_of(settings: dict[str, Any], waveforms: np.ndarray) -> np.ndarray:
    """The feature maps of segments with `settings` over the seed's front end."""
    config = dataclasses.replace(FEATURES, **settings)
    config.validate()
    return feature_maps(config, waveforms, batch_size=128)


def statistics_of(settings: dict[str, Any], waveforms: np.ndarray) -> np.ndarray:
    return np.concatenate([clip_statistics(maps_of(settings, waveforms[i:i + 512]))
                           for i in range(0, len(waveforms), 512)])


def augmented_copies(waveforms: list[np.ndarray], labels: np.ndarray, seed: int
                     ) -> tuple[list[np.ndarray], np.ndarray]:
    families = tuple(augment.AUGMENTATIONS)
    copies = [augment.augment(waveform, FEATURES.sample_rate, families,
                              augment.copy_rng(f"train/{index}", copy, seed))[1]
              for index, waveform in enumerate(waveforms) for copy in range(1, COPIES + 1)]
    return copies, np.repeat(labels, COPIES)


def probe(train: np.ndarray, train_spoof: np.ndarray,
          tests: dict[str, tuple[np.ndarray, np.ndarray, list[str]]], inverse_penalty: float = 0.1
          ) -> dict[str, Any]:
    """A logistic regression on standardised statistics, measured on each test set
    (`inverse_penalty`: its C, the inverse of the L2 penalty's weight)."""
    scaler = StandardScaler().fit(train)
    model = LogisticRegression(C=inverse_penalty, max_iter=3000).fit(scaler.transform(train),
                                                             train_spoof)
    # Higher is bona fide, as everywhere in spoofdetect.metrics.
    return {name: study_numbers(metrics.ScoreFile(
        [str(i) for i in range(len(is_spoof))], attacks, is_spoof,
        -model.decision_function(scaler.transform(statistics))))
        for name, (statistics, is_spoof, attacks) in tests.items()}


def write_table(rows: dict[str, list[dict[str, Any]]], command: str, path: str) -> None:
    lines = ["# Front-end screening: a linear probe on clip statistics", "",
             f"Measured with `{command}` on {time.strftime('%Y-%m-%d')}. EER in %; augmented "
             "rows: mean ± standard deviation over augmentation seeds (min-max). A linear "
             "probe ranks what each feature map makes visible; it is not the detector "
             "(benchmarks/GENERALISATION.md measures that).", ""]
    lines += test_set_tables(
        rows, ["front end", "training data", "seeds", "EER %"],
        lambda name, runs, test_set: [
            *name.split(" | "), str(len(runs)),
            summarise([100 * run[test_set]["eer"] for run in runs])])
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    dataset_arguments(parser, "dataset", "cross")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--output", default=HERE)
    args = parser.parse_args()
    train, train_spoof, _ = load_split(args.dataset, "train", FEATURES.segment_seconds)
    tests = {"eval": load_split(args.dataset, "eval", FEATURES.segment_seconds),
             "cross": load_split(args.cross, "eval", FEATURES.segment_seconds)}
    copies = {seed: augmented_copies(train, train_spoof, seed) for seed in args.seeds}
    rows: dict[str, list[dict[str, Any]]] = {}
    for front_end, settings in FRONT_ENDS.items():
        test_statistics = {name: (statistics_of(settings, first_segments(clips, FEATURES)), spoof,
                                  attacks) for name, (clips, spoof, attacks) in tests.items()}
        original = statistics_of(settings, first_segments(train, FEATURES))
        rows[f"{front_end} | as recorded"] = [probe(original, train_spoof, test_statistics)]
        for clips, spoof in copies.values():
            statistics = np.concatenate([original, statistics_of(settings,
                                                                 first_segments(clips, FEATURES))])
            rows.setdefault(f"{front_end} | + {COPIES} augmented copies", []).append(
                probe(statistics, np.concatenate([train_spoof, spoof]), test_statistics))
        for name in (f"{front_end} | as recorded", f"{front_end} | + {COPIES} augmented copies"):
            print(f"{name}: cross EER " + ", ".join(
                f"{100 * run['cross']['eer']:.1f}" for run in rows[name]), flush=True)
        write_table(rows, study_command("front_end_probe.py"),
                    os.path.join(args.output, "FRONT_END_PROBE.md"))


if __name__ == "__main__":
    main()
