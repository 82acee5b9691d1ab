"""Detection quality on the real-speech dataset (benchmarks/speech_dataset.py): this pipeline
against its ablation and the classic baseline, with several seeds, on the same splits.

Systems:
  pipeline  WGAN-GP pre-trained critic, fine-tuned (the local TFX pipeline, `spoofdetect run`)
  scratch   the same classifier without stage 1 (classifier.from_scratch=true)
  lfcc-gmm  LFCC with deltas and two diagonal GMMs (spoofdetect/gmm.py)

For each system and seed it records eval EER and min t-DCF (2019 and 2021 forms), overall
and per attack, then writes the table (mean and spread over seeds) and DET curves to
benchmarks/RESULTS.md and benchmarks/results_det.png, with the command that made them.
All pipeline runs share one work directory, so the features come from TFX's cache after the
first run.

    python benchmarks/quality.py DATASET [--seeds 0 1 2] [--systems pipeline scratch lfcc-gmm]
        [--config pipeline/quality.yaml] [--set KEY=VALUE ...] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import yaml

from spoofdetect import metrics
from spoofdetect.audio import decode_audio
from spoofdetect.config import FeatureConfig, load_config, section_from_json, section_to_json
from spoofdetect.errors import UserError
from spoofdetect.gmm import LfccGmm
from spoofdetect.pipeline.metadata import open_store
from spoofdetect.pipeline.run_summary import latest_run_summary
from spoofdetect.plots import det_axis_ticks
from spoofdetect.protocol import read_protocol

HERE = os.path.dirname(os.path.abspath(__file__))
# Every study run starts from the seed's recipe, whatever the pipeline's defaults become.
SEED_PRESET = os.path.join(HERE, "..", "pipeline", "seed.yaml")
SYSTEMS = ("pipeline", "scratch", "lfcc-gmm")


def file_settings(path: str) -> list[str]:
    """A config file as KEY=VALUE settings (dotted keys, JSON values), so that files can be
    layered: later settings win."""
    with open(path, encoding="utf-8") as handle:
        section = yaml.safe_load(handle) or {}

    def leaves(section: dict[str, Any], prefix: str) -> list[str]:
        return [setting for key, value in section.items()
                for setting in (leaves(value, f"{prefix}{key}.") if isinstance(value, dict)
                                else [f"{prefix}{key}={json.dumps(value)}"])]

    return leaves(section, "")


def study_settings(config: str | None, overrides: list[str]) -> list[str]:
    """A study run's settings: the seed's recipe (SEED_PRESET), `config`'s over it, then
    `overrides`'. `load_config(None, study_settings(...))` is the run's config."""
    return [*file_settings(SEED_PRESET), *(file_settings(config) if config else []),
            *overrides]


def seed_settings(seed: int) -> list[str]:
    """The settings that make a study run seed `seed`'s."""
    return [f"gan.seed={seed}", f"classifier.seed={seed}"]


def run_settings(seed: int, from_scratch: bool, config: str | None,
                 overrides: list[str]) -> list[str]:
    """The settings of a study's run at `seed` (what run_pipeline passes the pipeline)."""
    return study_settings(config, [
        *seed_settings(seed),
        f"classifier.from_scratch={str(from_scratch).lower()}",
        # Every model is evaluated; blessing is not what is measured here.
        "evaluation.max_eer=1", "evaluation.max_min_tdcf=1000000",
        "evaluation.eer_tolerance=1", "evaluation.min_tdcf_tolerance=1000000",
        *overrides])


def run_pipeline(dataset: str, workdir: str, settings: list[str]) -> dict[str, Any]:
    """One local pipeline run with `settings` (run_settings'); returns the evaluator's metrics
    and its clip score file."""
    command = [sys.executable, "-m", "spoofdetect.cli", "run", "--data-root", dataset,
               "--protocol", os.path.join(dataset, "protocol.csv"), "--workdir", workdir,
               *[f"--set={setting}" for setting in settings]]
    started = time.monotonic()
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"pipeline run failed (work folder {workdir}):\n{result.stdout[-3000:]}"
                 f"\n{result.stderr[-3000:]}")
    # The run's own evaluation from ML Metadata: after a fully cached run it is an older one.
    summary = latest_run_summary(load_config(None, [*settings, f"workdir={workdir}"]))
    evaluation_dir = os.path.dirname(summary["evaluation"]["report_uri"])
    with open(os.path.join(evaluation_dir, "metrics.json"), encoding="utf-8") as handle:
        evaluated = json.load(handle)
    scores = metrics.read_score_file(os.path.join(evaluation_dir, "scores_clip.txt"))
    return {"metrics": evaluated["clip"], "scores": scores, "classifier": summary["classifier"],
            "model_dir": os.path.join(summary["model_uri"], "Format-Serving"),
            "seconds": time.monotonic() - started}


def dataset_arguments(parser: argparse.ArgumentParser, *names: str) -> None:
    """Positional arguments for benchmark datasets (speech_dataset.py's folders): each must
    hold protocol.csv, or the script stops before any work with what to run."""

    def dataset(path: str) -> str:
        if not os.path.isfile(os.path.join(path, "protocol.csv")):
            raise argparse.ArgumentTypeError(
                f"{path} has no protocol.csv: make the benchmark's data first, with `python "
                "benchmarks/speech_dataset.py DATASET --cross CROSS --room ROOM` (docs/quality.md)")
        return path

    for name in names:
        parser.add_argument(name, type=dataset)


def study_arguments(parser: argparse.ArgumentParser, names: list[str], workdir: str,
                    table: str) -> None:
    """The options every resumable study (ablation.py, generalisation.py) takes."""
    parser.add_argument("--config", help="pipeline config for every run")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--only", nargs="+", choices=names,
                        help="run only these; the table still shows every kept run")
    parser.add_argument("--workdir", default=os.path.join(HERE, "_data", workdir))
    parser.add_argument("--output", default=HERE, help=f"where {table} and the runs go")
    parser.add_argument("--table-only", action="store_true",
                        help=f"rewrite {table} from the kept runs, running nothing")


def probe_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of a probe of the generalisation study's trained models on the dataset
    and the cross set (critic_probe.py, head_noise.py)."""
    dataset_arguments(parser, "dataset", "cross")
    kept_model_arguments(parser)


def kept_model_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of a script that reads the generalisation study's kept models from its
    work folders (the probes, room_check.py)."""
    parser.add_argument("--config", default=None)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--workdir", nargs="+",
                        default=[os.path.join(HERE, "_data", "generalisation_workdir")],
                        help="the study's work folders (its --workdir), searched in order")
    parser.add_argument("--output", default=HERE)


def kept_per_seed(runs_dir: str, seeds: list[int], compute: Callable[[int], Any]
                  ) -> dict[int, Any]:
    """Each seed's result, computed once and kept as `runs_dir`/seedN.json (written through a
    temporary file, so an interrupted probe never keeps half a seed)."""
    os.makedirs(runs_dir, exist_ok=True)
    results = {}
    for seed in seeds:
        path = os.path.join(runs_dir, f"seed{seed}.json")
        if not os.path.exists(path):
            with open(path + ".tmp", "w", encoding="utf-8") as handle:
                json.dump(compute(seed), handle, indent=1)
            os.replace(path + ".tmp", path)
        results[seed] = read_json(path)
    return results


def rows_over_seeds(results: dict[int, dict[str, dict[str, Any]]]
                    ) -> dict[str, list[dict[str, Any]]]:
    """A probe's kept seeds (seed -> row name -> numbers) as row name -> each seed's
    numbers, in the seeds' order."""
    rows: dict[str, list[dict[str, Any]]] = {}
    for result in results.values():
        for name, numbers in result.items():
            rows.setdefault(name, []).append(numbers)
    return rows


def study_command(script: str, results: dict[str, list[dict[str, Any]]] | None = None) -> str:
    """The command line that makes a table: the study's own, without --table-only (which only
    rewrites it) and without --only (which picks what runs now, not what the table shows);
    given a resumable study's table `results`, naming their seeds instead of --seeds' (the
    table holds every kept seed, whichever seeds this invocation ran)."""
    seeds = sorted({run["seed"] for runs in (results or {}).values() for run in runs}) or None
    kept, skipping = [], False
    for argument in sys.argv[1:]:
        if argument.startswith("--"):
            skipping = argument.startswith("--only") or (
                seeds is not None and argument.startswith("--seeds"))
        if not skipping and argument != "--table-only":
            kept.append(shlex.quote(argument))
    if seeds is not None:
        kept += ["--seeds", *map(str, seeds)]
    return f"python benchmarks/{script} " + " ".join(kept)


def changed_settings(kept: list[str], today: list[str]) -> list[str]:
    """The settings whose value differs between two `key=value` lists (a later one of a key
    overriding an earlier one, as the pipeline reads them), as `key: kept -> today`. A key
    the kept run lacks but the seed preset now pins had the preset's value in that run, as
    `recorded_section` reads a field its record lacks (every option was added at the seed's
    value)."""
    def values(settings: list[str]) -> dict[str, str]:
        return dict(setting.split("=", 1) for setting in settings)

    before, after, preset = values(kept), values(today), values(file_settings(SEED_PRESET))
    before |= {key: preset[key] for key in after.keys() - before.keys() if key in preset}
    return [f"{key}: {before.get(key, '(unset)')} -> {after.get(key, '(unset)')}"
            for key in sorted(before.keys() | after.keys()) if before.get(key) != after.get(key)]


def run_study(args: argparse.Namespace, runs_dir: str, runs: list[tuple[str, int]],
              compute: Callable[[str, int, list[str]], dict[str, Any]],
              describe: Callable[[dict], str],
              write_table: Callable[[dict[str, list[dict[str, Any]]]], None],
              settings: Callable[[str, int], list[str]]) -> None:
    """A resumable study's runs, each (name, seed) kept as JSON in `runs_dir`.

    The table is written from every kept run first, then each missing run that this
    invocation computes (all of them, or those of --only; none with --table-only) is computed,
    kept (through a temporary file, so an interrupted study never keeps half a run) and the
    table rewritten: at every moment, even during a run of hours, the table shows every kept
    run in the study's order, never only what ran so far, and of every kept seed, not only
    --seeds' (so a study run at one seed adds that seed to the table). Each run is computed
    with its `settings` (the pipeline's, `key=value`) and keeps them; a kept run whose
    settings are not today's is named with what changed, since a kept number is not redone
    by itself (delete its JSON to redo it).
    """
    def path(name: str, seed: int) -> str:
        return os.path.join(runs_dir, f"{name}-seed{seed}.json")

    def kept() -> dict[str, list[dict[str, Any]]]:
        files = [re.fullmatch(r"(.+)-seed(\d+)\.json", file) for file in os.listdir(runs_dir)]
        seeds = sorted((match.group(1), int(match.group(2))) for match in files if match)
        results: dict[str, list[dict[str, Any]]] = {}
        for name in dict.fromkeys(name for name, _ in runs):
            found = [read_json(path(name, seed)) for other, seed in seeds if other == name]
            if found:
                results[name] = found
        return results

    os.makedirs(runs_dir, exist_ok=True)
    for name, seed in runs:
        if os.path.exists(path(name, seed)):
            result = read_json(path(name, seed))
            print(f"{name} seed {seed} (kept): {describe(result)}")
            changed = changed_settings(result.get("settings", []), settings(name, seed))
            if "settings" in result and changed:
                print(f"  its settings are not today's: {'; '.join(changed)}")
    write_table(kept())
    for name, seed in runs:
        if os.path.exists(path(name, seed)) or args.table_only or (args.only
                                                                  and name not in args.only):
            continue
        today = settings(name, seed)
        result = {**compute(name, seed, today), "settings": today}
        with open(path(name, seed) + ".tmp", "w", encoding="utf-8") as handle:
            json.dump(result, handle, indent=1)
        os.replace(path(name, seed) + ".tmp", path(name, seed))
        print(f"{name} seed {seed}: {describe(result)}", flush=True)
        write_table(kept())


def recorded_section(cls: type, text: str) -> Any:
    """A config section as a run recorded it. A field the record lacks was added after the run,
    and every option was added at the seed's value (off) and made a default only later by
    measurement, so the run had the seed preset's value, not today's default (a run from
    before features.fusion existed ran one system, though fusion is now on by default)."""
    seed = load_config(SEED_PRESET)
    seed_section = next(getattr(seed, field.name) for field in dataclasses.fields(seed)
                        if isinstance(getattr(seed, field.name), cls))

    def filled(values: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
        return {**defaults, **{key: filled(value, defaults[key])
                               if isinstance(value, dict) and isinstance(defaults.get(key), dict)
                               else value for key, value in values.items()}}

    return section_from_json(cls, json.dumps(filled(
        json.loads(text or "{}"), json.loads(section_to_json(seed_section)))))


def comparable(section: Any) -> dict[str, Any]:
    """A config section's values without its protocol paths (a study passes the protocol on
    the command line, as an absolute path)."""
    values = dataclasses.asdict(section)
    values.pop("protocol", None)
    return values


def execution_property(execution: Any, name: str) -> str | None:
    """A string property of an ML Metadata execution (TFX records a component's as custom
    properties), or None."""
    for properties in (execution.custom_properties, execution.properties):
        if name in properties:
            return properties[name].string_value
    return None


def kept_output_dir(workdirs: list[str], execution_type: str,
                    recorded: Callable[[Any], dict[str, str | None]],
                    wanted: dict[str, Any]) -> str | None:
    """The SavedModel of the newest completed execution of `execution_type`, in the ML Metadata
    stores of a study's `workdirs`, whose config sections (`recorded(execution)`: name ->
    the section's JSON) have `wanted`'s values (name -> section). A recorded section is
    read through recorded_section, so a field added since it ran counts at the seed's
    value. A folder without a store is a SystemExit naming it."""
    def matches(execution: Any) -> bool:
        sections = recorded(execution)
        try:
            return all(sections.get(name) is not None and comparable(
                recorded_section(type(section), sections[name])) == comparable(section)
                       for name, section in wanted.items())
        except UserError:  # a section this version no longer accepts
            return False

    # Outputs of matching runs that are not where the store says. TFX records a relative
    # --workdir's artifacts relative to the folder the study ran in.
    missing = []
    for workdir in workdirs:
        try:
            store = open_store(os.path.join(workdir, "metadata.sqlite"), read_only=True)
        except UserError as error:
            raise SystemExit(f"{error} (--workdir: a study's work folder, where "
                             "benchmarks/generalisation.py ran)") from None
        for execution in reversed(store.get_executions_by_type(execution_type)):
            if (execution.last_known_state not in (execution.COMPLETE, execution.CACHED)
                    or not matches(execution)):
                continue
            outputs = [event.artifact_id for event in
                       store.get_events_by_execution_ids([execution.id])
                       if event.type == event.OUTPUT]
            for artifact in store.get_artifacts_by_id(outputs):
                if os.path.exists(os.path.join(artifact.uri, "Format-Serving")):
                    return os.path.join(artifact.uri, "Format-Serving")
                if not os.path.exists(artifact.uri):
                    missing.append(artifact.uri)
    if missing:
        raise SystemExit(f"A run with these settings is recorded, but its output {missing[0]} "
                         f"is not there from {os.getcwd()}: run this from the folder the study "
                         "ran in (a relative --workdir's outputs are recorded relative to it).")
    return None


def read_json(path: str) -> dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def protocol_entries(root: str, split: str | None = None) -> list:
    """The protocol's entries of `split` (or all), in its order (the pipeline's own protocol
    reader)."""
    return [entry for entry in read_protocol(os.path.join(root, "protocol.csv"), FeatureConfig())
            if split is None or entry.split == split]


def load_split(dataset: str, split: str | None, seconds: float
               ) -> tuple[list, np.ndarray, list]:
    """The split's clips (or all) as the protocol lists them: waveforms, which are spoofs,
    attacks."""
    entries = protocol_entries(dataset, split)
    waveforms = []
    for entry in entries:
        with open(os.path.join(dataset, entry.path), "rb") as audio:
            waveforms.append(decode_audio(audio.read(), 16000, max_seconds=seconds).samples)
    return (waveforms, np.asarray([entry.label == "fake" for entry in entries]),
            [entry.attack for entry in entries])


def run_lfcc_gmm(dataset: str, seed: int, components: int) -> dict[str, Any]:
    started = time.monotonic()
    # The same first 4 s the pipeline's features see.
    train, train_spoof, _ = load_split(dataset, "train", 4.0)
    evaluation, eval_spoof, attacks = load_split(dataset, "eval", 4.0)
    model = LfccGmm(components=components, seed=seed).fit(train, train_spoof)
    scores = model.score(evaluation)
    result = metrics.evaluate_scores(scores, eval_spoof, attacks)
    return {"metrics": result,
            "scores": metrics.ScoreFile([str(i) for i in range(len(scores))], attacks,
                                        eval_spoof, scores),
            "seconds": time.monotonic() - started}


def eer_without(scores: metrics.ScoreFile, attacks: set[str]) -> float:
    """EER pooled over every eval clip except the spoofs of the given attacks."""
    kept = np.asarray([attack not in attacks for attack in scores.attacks])
    return metrics.equal_error_rate(scores.scores[kept & ~scores.is_spoof],
                                    scores.scores[kept & scores.is_spoof])[0]


def summarise(values: list[float]) -> str:
    array = np.asarray(values)
    spread = f" ± {array.std(ddof=1):.2f}" if len(array) > 1 else ""
    return f"{array.mean():.2f}{spread} ({array.min():.2f}-{array.max():.2f})"


def study_numbers(scores: metrics.ScoreFile) -> dict[str, Any]:
    """What a study keeps of one test set's scores: EER, min t-DCF, minDCF, actDCF, Cllr and
    each attack's EER."""
    result = metrics.evaluate_scores(scores.scores, scores.is_spoof, scores.attacks)
    return {name: result[name] for name in ("eer", "min_tdcf", "min_dcf", "act_dcf", "cllr")} | {
        "per_attack": {attack: values["eer"] for attack, values in result["per_attack"].items()}}


TEST_SET_TITLES = {"eval": "Eval split", "cross": "Cross-dataset test set",
                   "room": "Room test set (the cross set's speakers; attacks C01-C03 and a "
                           "reverberant room, new to all)",
                   "train": "Training split (the fit: what a model learned of its own data)"}
# Test sets whose table is left out where no run has them.
OPTIONAL_TEST_SETS = ("room", "train")


def test_set_tables(rows: dict[str, list[dict[str, Any]]], columns: list[str],
                    cells: Callable[[str, list[dict[str, Any]], str], list[str]]) -> list[str]:
    """A study's Markdown tables, one per test set ('eval', 'cross', then 'room' and 'train'
    where runs recorded them): a row per entry of `rows` (name -> its runs; only the runs that
    have that set), the `columns` that `cells(name, runs, test_set)` fills, then each attack's
    EER (mean and spread over the runs; '-' where a run lacks the attack)."""
    lines = []
    for test_set, title in TEST_SET_TITLES.items():
        having = {name: [run for run in runs if test_set in run] for name, runs in rows.items()}
        having = {name: runs for name, runs in having.items() if runs}
        if test_set in OPTIONAL_TEST_SETS and not having:
            continue
        attacks = sorted({attack for runs in having.values() for run in runs
                          for attack in run[test_set]["per_attack"]})
        lines += [f"## {title}", "",
                  "| " + " | ".join([*columns, *(f"{attack} EER %" for attack in attacks)])
                  + " |", "| --- " * (len(columns) + len(attacks)) + "|"]
        for name, runs in having.items():
            per_attack = [summarise([100 * run[test_set]["per_attack"][attack] for run in runs])
                          if all(attack in run[test_set]["per_attack"] for run in runs) else "-"
                          for attack in attacks]
            lines.append("| " + " | ".join([*cells(name, runs, test_set), *per_attack]) + " |")
        lines.append("")
    return lines


def write_results(results: dict[str, list[dict[str, Any]]], command: str,
                  dataset_report: dict[str, Any], without: list[str], output: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy.stats import norm

    lines = ["# Detection quality on the real-speech benchmark", "",
             f"Measured with `{command}` on {time.strftime('%Y-%m-%d')}, CPU only.", "",
             "Eval split; EER in %; mean ± standard deviation over seeds (min-max). "
             f"\"Without {', '.join(without)}\" pools every eval clip except those attacks' "
             "spoofs (every system is at chance on Griffin-Lim, A04).", "",
             f"| system | seeds | EER % | EER % without {', '.join(without)} | "
             "min t-DCF (2019) | min t-DCF (2021) |",
             "| --- | --- | --- | --- | --- | --- |"]
    attacks = sorted({attack for runs in results.values() for run in runs
                      for attack in run["metrics"].get("per_attack", {})})
    for system, runs in results.items():
        lines.append(
            f"| {system} | {len(runs)} | "
            f"{summarise([100 * r['metrics']['eer'] for r in runs])} | "
            f"{summarise([100 * eer_without(r['scores'], set(without)) for r in runs])} | "
            f"{summarise([r['metrics']['min_tdcf'] for r in runs])} | "
            f"{summarise([r['metrics']['min_tdcf_2021'] for r in runs])} |")
    lines += ["", "EER % per attack (A05, LPC resynthesis, is in eval only: the unseen attack):",
              "", "| system | " + " | ".join(attacks) + " |",
              "| --- | " + " | ".join("---" for _ in attacks) + " |"]
    for system, runs in results.items():
        cells = [summarise([100 * r["metrics"]["per_attack"][a]["eer"] for r in runs])
                 if all(a in r["metrics"].get("per_attack", {}) for r in runs) else "-"
                 for a in attacks]
        lines.append(f"| {system} | " + " | ".join(cells) + " |")
    lines += ["", "Per run (seconds of this invocation: a run found in TFX's cache is quick):",
              "", "| system | seed | EER % | min t-DCF | seconds |",
              "| --- | --- | --- | --- | --- |"]
    for system, runs in results.items():
        for run in runs:
            lines.append(f"| {system} | {run['seed']} | {100 * run['metrics']['eer']:.2f} | "
                         f"{run['metrics']['min_tdcf']:.4f} | {run['seconds']:.0f} |")
    lines += ["", "Dataset (benchmarks/speech_dataset.py):", "", "```",
              json.dumps(dataset_report, indent=1), "```", "",
              "![DET curves](results_det.png)", ""]
    with open(os.path.join(output, "RESULTS.md"), "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines))
    figure, axis = plt.subplots(figsize=(6, 6))
    clip = 1e-4
    for system, runs in results.items():
        for index, run in enumerate(runs):
            scores = run["scores"]
            miss, false_alarm, _ = metrics.det_curve(scores.scores[~scores.is_spoof],
                                                     scores.scores[scores.is_spoof])
            axis.plot(norm.ppf(np.clip(false_alarm, clip, 1 - clip)),
                      norm.ppf(np.clip(miss, clip, 1 - clip)), linewidth=1.2,
                      color=f"C{list(results).index(system)}",
                      label=system if index == 0 else None, alpha=0.9 - 0.25 * index)
    det_axis_ticks(axis, "x")
    det_axis_ticks(axis, "y")
    axis.set_xlabel("false alarm rate: spoof accepted (%)")
    axis.set_ylabel("miss rate: bona fide rejected (%)")
    axis.set_title("Eval DET curves, every seed")
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    figure.savefig(os.path.join(output, "results_det.png"), dpi=100)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    dataset_arguments(parser, "dataset")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--systems", nargs="+", choices=SYSTEMS, default=list(SYSTEMS))
    parser.add_argument("--config", help="pipeline config for both learned systems")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--gmm-components", type=int, default=64)
    parser.add_argument("--without", nargs="*", default=["A04"], metavar="ATTACK",
                        help="attacks left out of the second EER column")
    parser.add_argument("--workdir", default=os.path.join(HERE, "_data", "quality_workdir"))
    parser.add_argument("--output", default=HERE, help="where RESULTS.md and the plot go")
    args = parser.parse_args()
    command = "python benchmarks/quality.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    with open(os.path.join(args.dataset, "dataset.json"), encoding="utf-8") as handle:
        dataset_report = json.load(handle)
    results: dict[str, list[dict[str, Any]]] = {}
    for system in args.systems:
        for seed in args.seeds:
            if system == "lfcc-gmm":
                run = run_lfcc_gmm(args.dataset, seed, args.gmm_components)
            else:
                run = run_pipeline(args.dataset, args.workdir, run_settings(
                    seed, system == "scratch", args.config, args.set))
            run["seed"] = seed
            results.setdefault(system, []).append(run)
            print(f"{system} seed {seed}: EER {100 * run['metrics']['eer']:.2f} %, min t-DCF "
                  f"{run['metrics']['min_tdcf']:.4f} ({run['seconds']:.0f} s)", flush=True)
    write_results(results, command, dataset_report, args.without, args.output)
    print(f"Wrote {os.path.join(args.output, 'RESULTS.md')} and results_det.png")


if __name__ == "__main__":
    main()
