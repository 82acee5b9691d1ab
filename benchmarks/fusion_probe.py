"""Score-level fusion of two systems of the generalisation study: do a detector that catches
one set of attacks and one that catches another make a better detector together?

For each seed, each system is the SavedModel that benchmarks/generalisation.py trained for
that variant at that seed (found in the study's ML Metadata stores by its exact settings; run
the variants first). Each scores the benchmark's dev and eval splits and the cross-dataset
test set (the first 4 s, as the evaluator scores), and the two are fused two ways:

- `equal`: each system's scores standardised by its dev mean and standard deviation, then
  summed. Nothing is fitted on labels, so nothing learns dev's speakers and channel.
- `dev-weighted`: a logistic regression on dev's two scores (classes weighted equally): the
  usual ASVspoof fusion, whose weights favour whichever system is best on dev's domain.

Both are invariant to an affine map of either system's scores, so a calibrated variant fuses
exactly as its uncalibrated twin. This probes kept models after the fact; it is not a
pipeline option.

    python benchmarks/fusion_probe.py DATASET CROSS --systems VARIANT VARIANT
        [--config benchmarks/quality.yaml] [--seeds 0 1 2] [--workdir DIR ...]
        [--output benchmarks]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from typing import Any

import numpy as np
from generalisation import VARIANTS, protocol_scores, study_scorer, variant_settings
from quality import (
    HERE,
    dataset_arguments,
    execution_property,
    kept_output_dir,
    study_command,
    study_numbers,
    summarise,
    test_set_tables,
)
from sklearn.linear_model import LogisticRegression

from spoofdetect.config import load_config
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
    variant = next(v for v in VARIANTS if v.name == variant_name)
    settings = load_config(None, variant_settings(variant, seed, config))
    found = kept_output_dir(workdirs, TRAINER_TYPE, trainer_sections,
                            {trainer_module.FEATURES: settings.features,
                             trainer_module.GAN: settings.gan,
                             trainer_module.CLASSIFIER: settings.classifier})
    if found is None:
        raise SystemExit(f"No completed run of {variant_name} at seed {seed} in "
                         f"{', '.join(workdirs)}: run benchmarks/generalisation.py --seeds "
                         f"{seed} --only {variant_name} first (with its --workdir here).")
    return found


def fuse_seed(dataset: str, cross: str, model_dirs: list[str]) -> dict[str, dict[str, Any]]:
    """Each system's and both fusions' numbers on the eval split and the cross set."""
    scored = []
    for path in model_dirs:
        scorer = study_scorer(path)
        scored.append({"dev": protocol_scores(scorer, dataset, "dev"),
                       "eval": protocol_scores(scorer, dataset, "eval"),
                       "cross": protocol_scores(scorer, cross)})
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    dataset_arguments(parser, "dataset", "cross")
    parser.add_argument("--systems", nargs=2, required=True,
                        choices=[variant.name for variant in VARIANTS])
    parser.add_argument("--config", default=None)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--workdir", nargs="+",
                        default=[os.path.join(HERE, "_data", "generalisation_workdir")],
                        help="the study's work folders (its --workdir), searched in order")
    parser.add_argument("--output", default=HERE)
    args = parser.parse_args()
    rows: dict[str, list[dict[str, Any]]] = {}
    for seed in args.seeds:
        dirs = [model_dir(args.workdir, args.config, name, seed) for name in args.systems]
        for name, numbers in fuse_seed(args.dataset, args.cross, dirs).items():
            rows.setdefault(name, []).append(numbers)
        print(f"seed {seed}: " + ", ".join(
            f"{name} cross EER {100 * rows[name][-1]['cross']['eer']:.1f} %"
            for name in rows), flush=True)
    names = {f"system {index + 1}": f"`{name}`" for index, name in enumerate(args.systems)}
    lines = ["# Score-level fusion of two of the study's systems", "",
             f"Measured with `{study_command('fusion_probe.py')}` on "
             f"{time.strftime('%Y-%m-%d')}, CPU only. EER in %; mean ± standard deviation over "
             "seeds (min-max), each seed fusing the two systems trained at that seed. `equal`: "
             "the sum of the two systems' scores, each standardised on dev; `dev-weighted`: "
             "a logistic regression fitted on dev. Dev-weighted weights per seed: "
             + "; ".join(", ".join(f"{weight:.3f}" for weight in run["weights"])
                         for run in rows["dev-weighted"]) + ".", ""]
    lines += test_set_tables(
        {names.get(name, f"{name} fusion"): runs for name, runs in rows.items()},
        ["system", "seeds", "EER %", "min t-DCF", "minDCF"],
        lambda name, runs, test_set: [
            name, str(len(runs)), summarise([100 * run[test_set]["eer"] for run in runs]),
            *[summarise([run[test_set][key] for run in runs])
              for key in ("min_tdcf", "min_dcf")]])
    with open(os.path.join(args.output, "FUSION_PROBE.md"), "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
