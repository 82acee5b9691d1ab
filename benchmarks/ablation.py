"""What stage 1 adds over training from scratch on the real-speech benchmark, and why the
overall EER hides it: the ablation study behind the README's answer. Each experiment is the
local pipeline with a few settings changed (benchmarks/quality.py's runner, same dataset,
splits and seeds).

    python benchmarks/ablation.py DATASET [--config benchmarks/quality.yaml] [--seeds 0 1 2]
        [--only NAME ...] [--without A04] [--output benchmarks]

Every run's result is kept in OUTPUT/ablation_runs/NAME-seedK.json, so an interrupted study
resumes where it stopped, and OUTPUT/ABLATION.md is rewritten after each run from every kept
run (--only picks what runs, not what the table shows; `--table-only` runs nothing). "EER without"
pools every eval clip except the attacks named by --without: Griffin-Lim (A04) keeps the STFT
magnitude, every system is at chance on it, and it would otherwise hide any other difference.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any, NamedTuple

from quality import (
    dataset_arguments,
    eer_without,
    run_pipeline,
    run_settings,
    run_study,
    study_arguments,
    study_command,
    summarise,
)


class Experiment(NamedTuple):
    name: str
    from_scratch: bool
    overrides: tuple[str, ...]
    question: str
    seeds: tuple[int, ...] | None = None  # None: the command line's seeds


EXPERIMENTS = (
    Experiment("pipeline", False, (), "the pipeline as configured (reference)"),
    Experiment("scratch", True, (), "the same classifier without stage 1 (reference)"),
    Experiment("probe-pretrained", False, ("classifier.freeze_critic=true",),
               "what did stage 1 alone learn? Frozen pre-trained critic, only the head trained"),
    Experiment("probe-random", True, ("classifier.freeze_critic=true",),
               "the same probe on a frozen random critic"),
    Experiment("pipeline-lr1e-5", False, ("classifier.learning_rate=1e-5",),
               "does a 10x gentler fine-tune keep more of stage 1?"),
    Experiment("scratch-lr1e-5", True, ("classifier.learning_rate=1e-5",),
               "scratch at the same gentler learning rate"),
    Experiment("pipeline-ncritic1", False, ("gan.critic_steps_per_generator_step=1",),
               "n_critic 1 instead of 5: five times the generator updates", seeds=(0, 1)),
    Experiment("pipeline-critic-all", False, ("gan.critic_data=all",),
               "critic trained on real and fake clips instead of fake only", seeds=(0, 1)),
    Experiment("pipeline-gan30", False, ("gan.epochs=30",),
               "three times longer stage 1", seeds=(0,)),
)


def result_of(run: dict[str, Any], without: set[str]) -> dict[str, Any]:
    """The numbers of one run that the table reports."""
    classifier = run["classifier"]
    return {
        "eer": run["metrics"]["eer"],
        "eer_without": eer_without(run["scores"], without),
        "min_tdcf": run["metrics"]["min_tdcf"],
        "min_tdcf_2021": run["metrics"]["min_tdcf_2021"],
        "per_attack": {attack: values["eer"]
                       for attack, values in run["metrics"]["per_attack"].items()},
        "best_dev_auc": classifier.get("best_dev_auc"),
        "best_epoch": classifier.get("best_epoch"),
        "epochs_run": classifier.get("epochs_run"),
        "seconds": run["seconds"],
    }


def write_table(results: dict[str, list[dict[str, Any]]], without: list[str], command: str,
                path: str) -> None:
    attacks = sorted({attack for runs in results.values() for run in runs
                      for attack in run["per_attack"]})
    excluded = ", ".join(without) or "nothing"
    lines = ["# Ablation: what stage 1 adds over training from scratch, and why the overall "
             "EER hides it", "",
             f"Measured with `{command}` on {time.strftime('%Y-%m-%d')}, CPU only. Eval split, "
             "EER in %, mean ± standard deviation over seeds (min-max). The README's quality "
             "section reads these numbers.", "",
             f"| experiment | seeds | EER % | EER % without {excluded} | min t-DCF (2019) | "
             + " | ".join(f"{attack} EER %" for attack in attacks)
             + " | best dev AUC | best epoch / run |",
             "| --- " * (7 + len(attacks)) + "|"]
    for experiment in EXPERIMENTS:
        runs = results.get(experiment.name)
        if not runs:
            continue
        cells = [experiment.name, str(len(runs)),
                 summarise([100 * r["eer"] for r in runs]),
                 summarise([100 * r["eer_without"] for r in runs]),
                 summarise([r["min_tdcf"] for r in runs]),
                 *[summarise([100 * r["per_attack"][attack] for r in runs]) for attack in attacks],
                 summarise([r["best_dev_auc"] for r in runs]),
                 ", ".join(f"{r['best_epoch']}/{r['epochs_run']}" for r in runs)]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "What each experiment asks:", ""]
    lines += [f"- `{experiment.name}` ({' '.join(experiment.overrides) or 'no changes'}"
              f"{', from scratch' if experiment.from_scratch else ''}): {experiment.question}"
              for experiment in EXPERIMENTS if experiment.name in results]
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    dataset_arguments(parser, "dataset")
    study_arguments(parser, [e.name for e in EXPERIMENTS], "quality_workdir", "ABLATION.md")
    parser.add_argument("--without", nargs="*", default=["A04"], metavar="ATTACK")
    args = parser.parse_args()
    experiments = {experiment.name: experiment for experiment in EXPERIMENTS}

    def compute(name: str, seed: int, settings: list[str]) -> dict[str, Any]:
        run = run_pipeline(args.dataset, args.workdir, settings)
        return {"experiment": name, "seed": seed, **result_of(run, set(args.without))}

    def describe(result: dict[str, Any]) -> str:
        return (f"EER {100 * result['eer']:.2f} %, without {', '.join(args.without)} "
                f"{100 * result['eer_without']:.2f} %, min t-DCF {result['min_tdcf']:.4f} "
                f"({result['seconds']:.0f} s)")

    run_study(args, os.path.join(args.output, "ablation_runs"),
              [(e.name, seed) for e in EXPERIMENTS for seed in e.seeds or args.seeds],
              compute, describe,
              lambda results: write_table(
                  results, args.without,
                  study_command("ablation.py", results),
                  os.path.join(args.output, "ABLATION.md")),
              lambda name, seed: run_settings(seed, experiments[name].from_scratch,
                                              args.config, list(experiments[name].overrides)))
    print(f"Wrote {os.path.join(args.output, 'ABLATION.md')}")


if __name__ == "__main__":
    main()
