"""What stage 1 learnt that carries to unseen speakers and attacks: a linear probe on the time
statistics of each convolution block of the stage-1 critic, against the same probe on a
randomly initialised critic and on the feature map itself.

For each seed, the critic is the one benchmarks/generalisation.py's `augment-all` run trained
at that seed (found in the study's ML Metadata store by its exact stage-1 settings; run that
variant first). Each block's map is pooled to each row's and channel's mean and standard
deviation over time (the classifier's `blockN_statistics` read-out, spoofdetect/models.py), a
logistic regression is fitted on the train split and two augmented copies of each clip drawn
with that seed (front_end_probe.py's copies: the same families and seed as the pipeline's,
not the same clips' draws), and its EER is measured on the eval split and on the
cross-dataset test set. A random critic of the same shape says how much of a block's score is
the architecture's and how much is stage 1's.

    python benchmarks/critic_probe.py DATASET CROSS [--config benchmarks/quality.yaml]
        [--seeds 0 1 2] [--workdir benchmarks/_data/generalisation_workdir] [--output benchmarks]
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

import keras
import numpy as np
from front_end_probe import (
    FEATURES,
    augmented_copies,
    clip_statistics,
    maps_of,
    probe,
)
from generalisation import variant_config
from quality import (
    execution_property,
    kept_output_dir,
    kept_per_seed,
    load_split,
    probe_arguments,
    rows_over_seeds,
    study_command,
    study_settings,
    summarise,
    test_set_tables,
)

from spoofdetect.audio import first_segments
from spoofdetect.config import FeatureConfig, GanConfig, load_config
from spoofdetect.finetune import load_critic
from spoofdetect.models import TimeStatistics, block_output, build_critic

# The probe's penalty: C 0.01 ranked first of 0.01 and 0.1 on block 1 (docs/generalisation.md).
INVERSE_PENALTY = 0.01
BLOCKS = (1, 2, 3)
WGAN_PRETRAINER_TYPE = "spoofdetect.components.wgan_pretrainer.component.WganPretrainer"


def stage1_critic_dir(workdirs: list[str], config: str | None, seed: int,
                      variant_name: str = "augment-all") -> str:
    """The output folder of the completed stage 1 that the study's `variant_name` ran at
    `seed`."""
    settings = variant_config(variant_name, seed, config)
    wanted = {"gan_config": settings.gan, "feature_config": settings.features}
    found = kept_output_dir(
        workdirs, WGAN_PRETRAINER_TYPE,
        lambda execution: {name: execution_property(execution, name) for name in wanted},
        wanted)
    if found is None:
        raise SystemExit(f"No completed stage 1 of {variant_name} at seed {seed} in "
                         f"{', '.join(workdirs)}: "
                         f"run benchmarks/generalisation.py --seeds {seed} --only "
                         f"{variant_name} first.")
    return found


def block_statistics(critic: keras.Model, block: int, maps: np.ndarray) -> np.ndarray:
    """[clips, rows, frames] -> the block's map pooled by the read-out's own TimeStatistics,
    flattened."""
    body = keras.Model(critic.input, TimeStatistics()(block_output(critic, block)))
    return np.concatenate([body(maps[start:start + 256], training=False).numpy()
                           .reshape(len(maps[start:start + 256]), -1)
                           for start in range(0, len(maps), 256)])


def probe_seed(dataset: str, cross: str, critic_dir: str, seed: int, features: FeatureConfig,
               gan: GanConfig) -> dict[str, dict[str, Any]]:
    train, train_spoof, _ = load_split(dataset, "train", features.segment_seconds)
    copies, copies_spoof = augmented_copies(train, train_spoof, seed)
    labels = np.concatenate([train_spoof, copies_spoof])
    maps = {"train": np.concatenate([maps_of({}, first_segments(clips, FEATURES))
                                     for clips in (train, copies)])}
    tests = {"eval": load_split(dataset, "eval", features.segment_seconds),
             "cross": load_split(cross, "eval", features.segment_seconds)}
    for name, (clips, _, _) in tests.items():
        maps[name] = maps_of({}, first_segments(clips, FEATURES))

    def run(statistics: dict[str, np.ndarray]) -> dict[str, Any]:
        return probe(statistics["train"], labels, {
            name: (statistics[name], spoof, attacks)
            for name, (_, spoof, attacks) in tests.items()}, inverse_penalty=INVERSE_PENALTY)

    rows = {"the feature map (no critic)": run({k: clip_statistics(v) for k, v in maps.items()})}
    keras.utils.set_random_seed(seed)
    critics = {"stage 1": load_critic(critic_dir), "random": build_critic(features, gan)}
    for block in BLOCKS:
        for name, critic in critics.items():
            rows[f"block {block} | {name}"] = run(
                {k: block_statistics(critic, block, v) for k, v in maps.items()})
            print(f"seed {seed}, block {block}, {name}: cross EER "
                  f"{100 * rows[f'block {block} | {name}']['cross']['eer']:.1f} %", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    probe_arguments(parser)
    args = parser.parse_args()
    settings = load_config(None, study_settings(args.config, []))
    results = kept_per_seed(
        os.path.join(args.output, "critic_probe_runs"), args.seeds,
        lambda seed: probe_seed(args.dataset, args.cross,
                                stage1_critic_dir(args.workdir, args.config, seed), seed,
                                settings.features, settings.gan))
    rows = rows_over_seeds(results)
    lines = ["# What stage 1 learnt: a linear probe on the critic's block statistics", "",
             f"Measured with `{study_command('critic_probe.py')}` on "
             f"{time.strftime('%Y-%m-%d')}. EER in %; mean ± standard deviation over seeds "
             "(min-max), each seed with its own stage-1 critic (`augment-all`'s) and "
             "augmented copies. A probe ranks what a representation makes visible; the "
             "detector built on it is measured in benchmarks/GENERALISATION.md "
             "(`augment-block1-statistics`).", ""]
    lines += test_set_tables(rows, ["read-out", "critic", "seeds", "EER %"],
                             lambda name, runs, test_set: [
                                 *(name.split(" | ") if " | " in name else [name, "-"]),
                                 str(len(runs)),
                                 summarise([100 * run[test_set]["eer"] for run in runs])])
    with open(os.path.join(args.output, "CRITIC_PROBE.md"), "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines))


if __name__ == "__main__":
    main()
