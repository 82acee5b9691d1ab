"""Screening `classifier.nuisance_directions` in minutes, and a one-class head beside it.

The head is the default's: a logistic regression with the Trainer's penalty and class
weights, solved as the Trainer solves it (spoofdetect.finetune.solve_head), on the
standardised block-1 time statistics of a random critic (no stage 1) over the default's first
map, fitted on the train split and two augmented copies of each clip (front_end_probe.py's
copies). Rows:

- `N nuisance directions`: the same head blind to the N directions of the read-out along
  which the copies differ most from their clips (the Trainer's own fit:
  spoofdetect.finetune.nuisance_directions and solve_head); 0 is the default head.
- `one-class`: no spoof is learnt at all: minus the Mahalanobis distance of a clip's
  read-out from the training split's bona fide clips (and their copies), in their first
  128 principal components with a shrunk covariance (Ledoit-Wolf). An attack never seen
  differs from bona fide speech in ways no training attack shows, which this head could
  catch, if bona fide speech of other speakers did not differ from it as much.

Each is measured on the eval split, the cross set and the room set. For each number of
directions it prints the head fit's CPU time (directions, projection and L-BFGS) as a ratio
to the default head's in the same run: what the option costs the Trainer. A probe of one system
on random critics is not the detector: benchmarks/GENERALISATION.md and ROOM_CHECK.md
measure the pipeline's fused models.

    python benchmarks/nuisance_probe.py DATASET CROSS ROOM [--config benchmarks/quality.yaml]
        [--seeds 0 1 2] [--output benchmarks]
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

import keras
import numpy as np
from critic_probe import block_statistics
from front_end_probe import COPIES, augmented_copies
from generalisation import variant_config
from quality import (
    HERE,
    dataset_arguments,
    kept_per_seed,
    load_split,
    rows_over_seeds,
    study_command,
    study_numbers,
    summarise,
    test_set_tables,
)
from sklearn.covariance import LedoitWolf
from sklearn.decomposition import PCA
from sklearn.preprocessing import StandardScaler

from spoofdetect import metrics
from spoofdetect.audio import first_segments
from spoofdetect.config import PipelineConfig
from spoofdetect.features import feature_maps
from spoofdetect.finetune import class_weights, nuisance_directions, solve_head
from spoofdetect.models import build_critic

# The study's name of the default on random critics: its first system is probed.
DEFAULT_TWIN = "lfcc-gmm-lbfgs-fused-augment-multi-resolution-block1-statistics-scratch"
DIRECTIONS = (0, 8, 32, 128)
ONE_CLASS_COMPONENTS = 128


def read_outs(args: argparse.Namespace, seed: int, settings: PipelineConfig
              ) -> dict[str, tuple[np.ndarray, np.ndarray, list[str]]]:
    """Each set's (block-1 statistics, is_spoof, attacks); train's rows are the clips, then
    each clip's COPIES copies in turn."""
    keras.utils.set_random_seed(seed)
    critic = build_critic(settings.features, settings.gan)

    def statistics(clips: list[np.ndarray]) -> np.ndarray:
        return np.concatenate([block_statistics(critic, 1, feature_maps(
            settings.features, first_segments(clips[start:start + 256], settings.features),
            batch_size=128)) for start in range(0, len(clips), 256)])

    train, is_spoof, attacks = load_split(args.dataset, "train", 4.0)
    copies, copies_spoof = augmented_copies(train, is_spoof, seed)
    sets = {"train": (statistics(train + copies), np.concatenate([is_spoof, copies_spoof]),
                      [*attacks, *np.repeat(attacks, COPIES)])}
    for name, (root, split) in {"eval": (args.dataset, "eval"), "cross": (args.cross, "eval"),
                                "room": (args.room, "eval")}.items():
        clips, is_spoof, attacks = load_split(root, split, 4.0)
        sets[name] = (statistics(clips), is_spoof, attacks)
    return sets


def probe_seed(args: argparse.Namespace, seed: int) -> dict[str, dict[str, Any]]:
    settings = variant_config(DEFAULT_TWIN, seed, args.config)
    sets = read_outs(args, seed, settings)
    head_l2 = settings.classifier.head_l2
    train, is_spoof, _ = sets["train"]
    scaler = StandardScaler().fit(train)
    train = scaler.transform(train)
    clips = len(train) // (COPIES + 1)
    copies = np.arange(clips, len(train))
    originals = np.repeat(np.arange(clips), COPIES)
    weights = class_weights(int((~is_spoof).sum()), int(is_spoof.sum()))
    sample_weight = np.where(is_spoof, weights[1], weights[0])

    def measured(score: Any) -> dict[str, Any]:
        """Each test set's numbers for `score` (standardised read-out -> higher is bona
        fide)."""
        return {name: study_numbers(metrics.ScoreFile(
            [str(i) for i in range(len(spoof))], attacks, spoof,
            score(scaler.transform(values)))) for name, (values, spoof, attacks) in sets.items()
            if name != "train"}

    rows = {}
    for count in DIRECTIONS:
        # solve_head projects its read-out in place: a copy, as train serves every count.
        read_out = train.copy()
        started = time.process_time()
        directions, share = (nuisance_directions(read_out, copies, originals, count) if count
                             else (None, 0.0))
        kernel, bias, _ = solve_head(read_out, is_spoof, head_l2, sample_weight,
                                     ignored=directions)
        fit_seconds = time.process_time() - started
        row = rows[f"{count} nuisance directions"] = {
            **measured(lambda values, kernel=kernel, bias=bias: -(values @ kernel + bias)),
            "energy_share": share, "fit_cpu_seconds": fit_seconds}
        # The cost of the option: the whole head fit (directions, projection, L-BFGS) against
        # the default head's, in the same run.
        print(f"seed {seed}, {count} directions: cross EER {100 * row['cross']['eer']:.1f} %; "
              f"head fit {fit_seconds:.1f} s CPU, "
              f"{fit_seconds / rows['0 nuisance directions']['fit_cpu_seconds']:.2f}x the "
              "default head's", flush=True)
    bona_fide = PCA(ONE_CLASS_COMPONENTS, random_state=seed).fit(train[~is_spoof])
    shrunk = LedoitWolf().fit(bona_fide.transform(train[~is_spoof]))
    rows["one-class"] = measured(
        lambda values: -shrunk.mahalanobis(bona_fide.transform(values)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    dataset_arguments(parser, "dataset", "cross", "room")
    parser.add_argument("--config", default=None)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--output", default=HERE)
    args = parser.parse_args()
    results = kept_per_seed(os.path.join(args.output, "nuisance_probe_runs"), args.seeds,
                            lambda seed: probe_seed(args, seed))
    rows = rows_over_seeds(results)
    lines = ["# Ignoring what augmentation changes: a probe of the default's head", "",
             f"Measured with `{study_command('nuisance_probe.py')}` on "
             f"{time.strftime('%Y-%m-%d')}. EER in %; mean ± standard deviation over seeds "
             "(min-max), each seed with its own random critic and augmented copies; the "
             "share is that of the copies' differences from their clips that the directions "
             "carry. One system on random critics: the pipeline's fused models are measured "
             "in GENERALISATION.md and ROOM_CHECK.md.", ""]
    lines += test_set_tables(rows, ["head", "seeds", "share of augmentation's changes",
                                    "EER %"],
                             lambda name, runs, test_set: [
                                 name, str(len(runs)),
                                 summarise([100 * run["energy_share"] for run in runs])
                                 if "energy_share" in runs[0] else "-",
                                 summarise([100 * run[test_set]["eer"] for run in runs])])
    with open(os.path.join(args.output, "NUISANCE_PROBE.md"), "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines))


if __name__ == "__main__":
    main()
