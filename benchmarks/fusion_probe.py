"""Score-level fusion of two systems of the generalisation study: do a detector that catches
one set of attacks and one that catches another make a better detector together?

For each seed, each system is the SavedModel that benchmarks/generalisation.py trained for
that variant at that seed (found in the study's ML Metadata stores by its exact settings; run
the variants first), or `lfcc-gmm`, the classic baseline, trained here at that seed. Each
scores the benchmark's dev and eval splits and the cross-dataset test set (the first 4 s, as
the evaluator scores), and the two are fused two ways:

- `equal`: each system's scores standardised by its dev mean and standard deviation, then
  summed. Nothing is fitted on labels, so nothing learns dev's speakers and channel.
- `dev-weighted`: a logistic regression on dev's two scores (classes weighted equally): the
  usual ASVspoof fusion, whose weights favour whichever system is best on dev's domain.

Both are invariant to an affine map of either system's scores, so a calibrated variant fuses
exactly as its uncalibrated twin. This probes kept models after the fact; it is not a
pipeline option.

With `--fused VARIANT` instead, the systems are those inside the one SavedModel that a fused
variant of the study trained (features.fusion, features.lfcc_gmm): each system's score is the
model's `from_features` output with every other system's map all zeros, so that the others
add the same constant to every clip, and standardising on dev (as the pipeline does) takes it
away. The model's own score is a fixed weighted sum of them (checked at every seed), so the
other rules score the very systems the pipeline trained: each system alone, and `min`, the
lowest standardised score (a clip is bona fide only if every system finds it so: any
system's alarm counts). Writes FUSION_RULES.md.

    python benchmarks/fusion_probe.py DATASET CROSS (--systems VARIANT VARIANT | --fused VARIANT)
        [--config benchmarks/quality.yaml] [--seeds 0 1 2] [--workdir DIR ...]
        [--output benchmarks]
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
import time
from typing import Any

import numpy as np
import tensorflow as tf
from generalisation import (
    LFCC_GMM,
    VARIANTS,
    lfcc_gmm_scores,
    protocol_scores,
    study_scorer,
    variant_config,
)
from quality import (
    dataset_arguments,
    execution_property,
    kept_model_arguments,
    kept_output_dir,
    load_split,
    study_command,
    study_numbers,
    summarise,
    test_set_tables,
)
from sklearn.linear_model import LogisticRegression

from spoofdetect import metrics
from spoofdetect.audio import first_segments
from spoofdetect.config import FeatureConfig
from spoofdetect.examples import LOG_MEL
from spoofdetect.features import feature_maps
from spoofdetect.fusion import dev_standardisation
from spoofdetect.pipeline import trainer_module

TRAINER_TYPE = "tfx.components.trainer.component.Trainer"
TEST_SETS = ("eval", "cross")


def trainer_sections(execution: Any) -> dict[str, str]:
    """The config sections a Trainer execution recorded (its custom_config)."""
    custom = json.loads(execution_property(execution, "custom_config") or "{}")
    return {name: custom.get(name) for name in (trainer_module.FEATURES, trainer_module.GAN,
                                                trainer_module.CLASSIFIER)}


def model_dir(workdirs: list[str], config: str | None, variant_name: str, seed: int) -> str:
    """The SavedModel that the study's run of `variant_name` at `seed` trained."""
    settings = variant_config(variant_name, seed, config)
    found = kept_output_dir(workdirs, TRAINER_TYPE, trainer_sections,
                            {trainer_module.FEATURES: settings.features,
                             trainer_module.GAN: settings.gan,
                             trainer_module.CLASSIFIER: settings.classifier})
    if found is None:
        raise SystemExit(f"No completed run of {variant_name} at seed {seed} in "
                         f"{', '.join(workdirs)}: run benchmarks/generalisation.py --seeds "
                         f"{seed} --only {variant_name} first (with its --workdir here).")
    return found


def system_scores(args: argparse.Namespace, name: str, seed: int,
                  sets: dict[str, tuple[str, str | None]]) -> dict[str, metrics.ScoreFile]:
    """A system's scores at `seed` of each test set of `sets` (name -> (a speech_dataset.py
    folder, its split or None for all)): the SavedModel the study trained for the variant
    `name` (found in args.workdir by args.config's settings), or LFCC-GMM trained here on
    args.dataset."""
    if name == LFCC_GMM:
        return lfcc_gmm_scores(args.dataset, seed, sets)
    scorer = study_scorer(model_dir(args.workdir, args.config, name, seed))
    return {test_set: protocol_scores(scorer, root, split)
            for test_set, (root, split) in sets.items()}


def fuse_seed(scored: list[dict[str, metrics.ScoreFile]]) -> dict[str, dict[str, Any]]:
    """Each system's (its system_scores) and both fusions' numbers on the eval split and the
    cross set."""
    dev = np.stack([system["dev"].scores for system in scored], axis=1)
    weights = LogisticRegression(C=1e6, class_weight="balanced").fit(
        dev, ~scored[0]["dev"].is_spoof).coef_[0]
    rows: dict[str, dict[str, Any]] = {}
    for test_set in TEST_SETS:
        files = [system[test_set] for system in scored]
        if files[0].utterances != files[1].utterances:
            raise SystemExit(f"The two systems scored different {test_set} clips.")
        table = np.stack([file.scores for file in files], axis=1)
        # The pipeline's fusion (features.fusion) standardises the same way.
        fused = {"equal": dev_standardisation(dev[:, 0]).apply(table[:, 0])
                 + dev_standardisation(dev[:, 1]).apply(table[:, 1]),
                 "dev-weighted": table @ weights}
        for index, file in enumerate(files):
            rows.setdefault(f"system {index + 1}", {})[test_set] = study_numbers(file)
        for name, scores in fused.items():
            rows.setdefault(name, {})[test_set] = study_numbers(
                dataclasses.replace(files[0], scores=scores))
    rows["dev-weighted"]["weights"] = weights.tolist()
    return rows


def segment_maps(features: FeatureConfig, waveforms: list[np.ndarray], batch_size: int = 64
                 ) -> dict[str, np.ndarray]:
    """Every system's map of the first segment of each waveform, by the pipeline's feature
    function, under its Examples key: the configured features' (LOG_MEL), then each fused
    system's (features.fused_maps)."""
    segments = first_segments(waveforms, features)
    return {LOG_MEL: feature_maps(features, segments, batch_size),
            **{map_key: feature_maps(config, segments, batch_size)
               for map_key, config in features.fused_maps.items()}}


def fused_system_scores(serving: Any, maps: dict[str, np.ndarray], batch_size: int = 64
                        ) -> tuple[np.ndarray, ...]:
    """(the fused model's scores, then each system's in `maps` order) from a fused
    SavedModel's from_features signature (`serving`): on every map, and on each system's map
    with the others all zeros (that system's standardised score through the model's
    weights and calibration, plus one constant: the others' scores of zeros)."""

    def score(chosen: dict[str, np.ndarray]) -> np.ndarray:
        length = len(next(iter(chosen.values())))
        return np.concatenate([
            serving(**{map_key: tf.constant(values[start:start + batch_size])
                       for map_key, values in chosen.items()})["score"].numpy()
            for start in range(0, length, batch_size)])

    zeros = {map_key: np.zeros_like(values) for map_key, values in maps.items()}
    return (score(maps), *(score({**zeros, map_key: values})
                           for map_key, values in maps.items()))


def fused_rules(dev: tuple[np.ndarray, ...], test: tuple[np.ndarray, ...]
                ) -> dict[str, np.ndarray]:
    """Each rule's scores of `test` from fused_system_scores' outputs on dev and on `test`:
    each system alone, `sum` (the model's own score: the pipeline's weighted sum of its
    systems) and `min` (the lowest system), every score standardised on dev. Raises
    SystemExit if the model's score is not a fixed weighted sum of its systems' as split
    (then the split is not the model's)."""
    model, *systems = (dev_standardisation(on_dev).apply(on_test)
                       for on_dev, on_test in zip(dev, test, strict=True))
    model_dev, *systems_dev = (dev_standardisation(on_dev).apply(on_dev) for on_dev in dev)
    # The Trainer weighs its systems by dev standardisations (spoofdetect/fusion.py), then
    # calibrates: an affine map of the systems' scores, whose weights dev gives exactly.
    weights = np.linalg.lstsq(np.column_stack([*systems_dev, np.ones_like(model_dev)]),
                              model_dev, rcond=None)[0]
    if not np.allclose(np.column_stack([*systems, np.ones_like(model)]) @ weights, model,
                       atol=1e-3):
        raise SystemExit("The fused model's score is not the sum of its systems' scores as "
                         "split here: is it a model of fused systems?")
    return {**{f"system {index + 1}": scores for index, scores in enumerate(systems)},
            "sum": model, "min": np.minimum.reduce(systems)}


# A test set's maps (segment_maps), which clips are spoofs, and their attacks.
MappedSet = tuple[dict[str, np.ndarray], np.ndarray, list[str]]


class MappedSets:
    """Test sets (name -> (a speech_dataset.py folder, its split)) decoded once, and their
    maps (segment_maps) computed once per front end: the seeds' configs differ in the
    augmentation seed, which no test set sees."""

    def __init__(self, sets: dict[str, tuple[str, str | None]]) -> None:
        self.sets = sets
        # By the seconds decoded, then by front end.
        self.clips: dict[float, dict[str, tuple[list, np.ndarray, list]]] = {}
        self.mapped: dict[FeatureConfig, dict[str, MappedSet]] = {}

    def of(self, features: FeatureConfig) -> dict[str, MappedSet]:
        seconds = features.segment_seconds
        if seconds not in self.clips:
            self.clips[seconds] = {name: load_split(root, split, seconds)
                                   for name, (root, split) in self.sets.items()}
        # The seeds' configs differ only in the training copies, which no test set has.
        front_end = features.without_training_copies
        if front_end not in self.mapped:
            self.mapped[front_end] = {
                name: (segment_maps(features, waveforms), is_spoof, attacks)
                for name, (waveforms, is_spoof, attacks) in self.clips[seconds].items()}
        return self.mapped[front_end]


def fused_features(variant_name: str, seed: int, config: str | None) -> FeatureConfig:
    """The features of a fused variant's run; SystemExit if it fuses nothing."""
    features = variant_config(variant_name, seed, config).features
    if features.fusion_features is None:
        raise SystemExit(f"{variant_name} is not a fused variant (features.fusion).")
    return features


def split_fused_seed(model_dir: str, sets: dict[str, MappedSet]) -> dict[str, dict[str, Any]]:
    """Each rule's numbers (fused_rules) on every test set of `sets` but dev, which
    standardises."""
    serving = tf.saved_model.load(model_dir).signatures["from_features"]
    dev = fused_system_scores(serving, sets["dev"][0])
    rows: dict[str, dict[str, Any]] = {}
    for test_set, (maps, is_spoof, attacks) in sets.items():
        if test_set == "dev":
            continue
        for rule, scores in fused_rules(dev, fused_system_scores(serving, maps)).items():
            rows.setdefault(rule, {})[test_set] = study_numbers(metrics.ScoreFile(
                [str(index) for index in range(len(scores))], attacks, is_spoof, scores))
    return rows


def lower_counts(rows: dict[str, list[dict[str, Any]]], fusions: list[str]) -> str:
    """In how many runs each fusion's EER is below system 1's alone, on each test set."""
    def count(fusion: str, test_set: str) -> str:
        runs = list(zip(rows[fusion], rows["system 1"], strict=True))
        lower = sum(fused[test_set]["eer"] < alone[test_set]["eer"] for fused, alone in runs)
        return f"{lower} of {len(runs)} on {test_set}"

    return " ".join(f"`{fusion}` is lower than system 1 alone in "
                    + " and ".join(count(fusion, test_set) for test_set in TEST_SETS) + "."
                    for fusion in fusions)


def write_tables(path: str, title: str, description: str,
                 rows: dict[str, list[dict[str, Any]]]) -> None:
    lines = [f"# {title}", "", f"Measured with `{study_command('fusion_probe.py')}` on "
             f"{time.strftime('%Y-%m-%d')}, CPU only. EER in %; mean ± standard deviation over "
             f"seeds (min-max). {description}", ""]
    lines += test_set_tables(rows, ["system", "seeds", "EER %", "min t-DCF", "minDCF"],
                             lambda name, runs, test_set: [
                                 name, str(len(runs)),
                                 summarise([100 * run[test_set]["eer"] for run in runs]),
                                 *[summarise([run[test_set][key] for run in runs])
                                   for key in ("min_tdcf", "min_dcf")]])
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    dataset_arguments(parser, "dataset", "cross")
    names = [variant.name for variant in VARIANTS]
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--systems", nargs=2, choices=[*names, LFCC_GMM])
    which.add_argument("--fused", choices=names)
    parser.add_argument("--second-seeds", nargs="+", type=int,
                        help="with --systems: the seeds of the second system to pair with each "
                             "of the first's (default: its own seed). For `lfcc-gmm`, whose "
                             "GMMs start from a seeded k-means, the pairs say how much of a "
                             "fusion's gain is the GMMs' start.")
    kept_model_arguments(parser)
    args = parser.parse_args()
    if args.second_seeds and not args.systems:
        parser.error("--second-seeds pairs the systems of --systems.")
    rows: dict[str, list[dict[str, Any]]] = {}
    sets = {"dev": (args.dataset, "dev"), "eval": (args.dataset, "eval"),
            "cross": (args.cross, None)}
    mapped = MappedSets(sets)
    scored = functools.cache(lambda name, seed: system_scores(args, name, seed, sets))
    pairs = [(seed, second) for seed in args.seeds for second in (args.second_seeds or [seed])]
    for seed, second in pairs:
        if args.fused:
            numbers = split_fused_seed(
                model_dir(args.workdir, args.config, args.fused, seed),
                mapped.of(fused_features(args.fused, seed, args.config)))
        else:
            numbers = fuse_seed([scored(args.systems[0], seed), scored(args.systems[1], second)])
        for name, result in numbers.items():
            rows.setdefault(name, []).append(result)
        print(f"seed {seed}" + (f", second system's seed {second}" if args.second_seeds else "")
              + ": " + ", ".join(f"{name} cross EER {100 * rows[name][-1]['cross']['eer']:.1f} %"
                                 for name in rows), flush=True)
    if args.fused:
        write_tables(
            os.path.join(args.output, "FUSION_RULES.md"),
            f"The systems inside `{args.fused}`, alone and fused by two rules",
            "Each seed splits the one SavedModel the study trained at that seed (every other "
            "system's map all zeros for each system). `sum`: the model's own score, the "
            "pipeline's weighted sum of the standardised systems; `min`: the lowest of them.",
            {{"system 1": "system 1 (the configured features)",
              "system 2": "system 2 (features.fusion)",
              "system 3": "system 3 (LFCC-GMM)",
              "sum": "sum (the pipeline's)"}.get(name, name): runs
             for name, runs in rows.items()})
        return
    system_names = {f"system {index + 1}": f"`{name}`"
                    for index, name in enumerate(args.systems)}
    paired = ("Each seed fuses the two systems trained at that seed." if not args.second_seeds
              else f"Each of {len(pairs)} pairs fuses the first system trained at one seed "
                   f"({', '.join(map(str, args.seeds))}) with the second trained at another "
                   f"({', '.join(map(str, args.second_seeds))}); the means are over the "
                   "pairs. " + lower_counts(rows, ["equal", "dev-weighted"]))
    write_tables(
        os.path.join(args.output, "FUSION_PROBE.md"),
        "Score-level fusion of two of the study's systems",
        f"{paired} `equal`: the sum of the two "
        "systems' scores, each standardised on dev; `dev-weighted`: a logistic regression "
        "fitted on dev. Dev-weighted weights per seed: "
        + "; ".join(", ".join(f"{weight:.3f}" for weight in run["weights"])
                    for run in rows["dev-weighted"]) + ".",
        {system_names.get(name, f"{name} fusion"): runs for name, runs in rows.items()})


if __name__ == "__main__":
    main()
