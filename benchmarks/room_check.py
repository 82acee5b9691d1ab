"""A check after the fact of what the cross set decided: the generalisation study's kept
models, and LFCC-GMM, on the room set (benchmarks/speech_dataset.py --room: the cross set's
speakers, three attack families that neither the dataset nor the cross set has, and a channel
that no training clip and no augmentation has, a reverberant room).

No choice of the project was made on the room set; it was built after them, to see whether
the cross set predicts a benchmark it never saw. For each variant and seed, the SavedModel
that benchmarks/generalisation.py trained (found in the study's ML Metadata stores by its
exact settings, as benchmarks/fusion_probe.py finds it) scores the eval split, the cross set
and the room set (the first 4 s, as the evaluator scores). A fused variant is also split into
its systems and the `min` rule (fusion_probe.py --fused). LFCC-GMM is trained on the
train split at each seed. Each variant's seeds are kept as OUTPUT/room_check_runs/NAME/seedK.json
(a stopped check resumes); OUTPUT/ROOM_CHECK.md is written from them.

    python benchmarks/room_check.py DATASET CROSS ROOM --variants VARIANT ...
        [--config benchmarks/quality.yaml] [--seeds 0 1 2] [--workdir DIR ...]
        [--output benchmarks]
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

from fusion_probe import (
    MappedSets,
    fused_features,
    model_dir,
    split_fused_seed,
    system_scores,
)
from generalisation import LFCC_GMM, VARIANTS, variant_config
from quality import (
    dataset_arguments,
    kept_model_arguments,
    kept_per_seed,
    study_command,
    study_numbers,
    summarise,
    test_set_tables,
)

# How each of fusion_probe.fused_rules' rules is named after its variant (each system:
# "system N alone"); the sum is the model's own score, so it takes the variant's name alone.
RULE_NAMES = {"sum": "", "min": "min rule"}


def test_sets(args: argparse.Namespace) -> dict[str, tuple[str, str | None]]:
    """The sets each system is checked on: (a speech_dataset.py folder, its split or None
    for all)."""
    return {"eval": (args.dataset, "eval"), "cross": (args.cross, None),
            "room": (args.room, None)}


def check_variant(args: argparse.Namespace, name: str, seed: int,
                  mapped: MappedSets) -> dict[str, dict[str, Any]]:
    """Row name -> its numbers on eval, cross and room for one variant (or LFCC-GMM) at one
    seed; a fused variant's rules each a row."""
    if (name != LFCC_GMM and variant_config(name, seed, args.config).features.fusion_features
            is not None):
        numbers = split_fused_seed(model_dir(args.workdir, args.config, name, seed),
                                   mapped.of(fused_features(name, seed, args.config)))
        return {f"{name} {RULE_NAMES.get(rule, f'{rule} alone')}".strip(): result
                for rule, result in numbers.items()}
    scored = system_scores(args, name, seed, test_sets(args))
    return {name: {test_set: study_numbers(scores) for test_set, scores in scored.items()}}


def write_table(rows: dict[str, list[dict[str, Any]]], path: str) -> None:
    lines = ["# The room set: a check of the cross set's choices on a benchmark they never saw",
             "", f"Measured with `{study_command('room_check.py')}` on "
             f"{time.strftime('%Y-%m-%d')}, CPU only. EER in %; mean ± standard deviation over "
             "seeds (min-max). The room set shares the cross set's speakers and nothing else "
             "with what came before: attacks C01-C03 and a reverberant room.", ""]
    lines += test_set_tables(rows, ["system", "seeds", "EER %", "min t-DCF", "minDCF",
                                    "actDCF", "Cllr"],
                             lambda name, runs, test_set: [
                                 name, str(len(runs)),
                                 summarise([100 * run[test_set]["eer"] for run in runs]),
                                 *[summarise([run[test_set][key] for run in runs])
                                   for key in ("min_tdcf", "min_dcf", "act_dcf", "cllr")]])
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    dataset_arguments(parser, "dataset", "cross", "room")
    parser.add_argument("--variants", nargs="+", required=True,
                        choices=[variant.name for variant in VARIANTS] + [LFCC_GMM])
    kept_model_arguments(parser)
    args = parser.parse_args()
    # The fused variants' split standardises each system on dev.
    mapped = MappedSets({"dev": (args.dataset, "dev"), **test_sets(args)})
    rows: dict[str, list[dict[str, Any]]] = {}
    for name in args.variants:
        kept = kept_per_seed(os.path.join(args.output, "room_check_runs", name), args.seeds,
                             lambda seed, name=name: check_variant(args, name, seed, mapped))
        for seed, numbers in kept.items():
            for row, result in numbers.items():
                rows.setdefault(row, []).append(result)
            print(f"{name} seed {seed}: " + ", ".join(
                f"{row} room EER {100 * result['room']['eer']:.1f} %"
                for row, result in numbers.items()), flush=True)
    write_table(rows, os.path.join(args.output, "ROOM_CHECK.md"))
    print(f"Wrote {os.path.join(args.output, 'ROOM_CHECK.md')}")


if __name__ == "__main__":
    main()
