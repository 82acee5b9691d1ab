"""What pipeline runs produced, read back from ML Metadata: the summary `spoofdetect run`
prints and benchmarks read, and the list `spoofdetect runs` prints. No TFX import, so readers
start in a fraction of a second."""

from __future__ import annotations

import json
import os
from typing import Any

from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2
from tensorflow_metadata.proto.v0 import anomalies_pb2

from spoofdetect.components import keys
from spoofdetect.config import LABELS, SPLITS, PipelineConfig
from spoofdetect.errors import UserError
from spoofdetect.pipeline.metadata import (
    custom_property,
    format_time,
    latest_run,
    open_store,
    run_outputs,
    store_location,
)

Execution = metadata_store_pb2.Execution
# What the summary shows of the evaluation.
EVALUATION_SHOWN = (keys.EER_PROPERTY, keys.MIN_TDCF_PROPERTY, keys.MIN_TDCF_2021_PROPERTY,
                    keys.MIN_DCF_PROPERTY, keys.ACT_DCF_PROPERTY, keys.CLLR_PROPERTY,
                    keys.AUC_PROPERTY, keys.ACCURACY_PROPERTY, keys.F1_PROPERTY,
                    keys.NUM_CLIPS_PROPERTY, keys.REPORT_URI_PROPERTY)


def read_anomalies(anomalies_uri: str, splits: tuple[str, ...] = SPLITS
                   ) -> dict[str, list[str]]:
    """split -> human-readable anomaly descriptions, from an ExampleAnomalies artifact."""
    found: dict[str, list[str]] = {}
    for split in splits:
        path = os.path.join(anomalies_uri, f"Split-{split}", "SchemaDiff.pb")
        if not os.path.exists(path):
            continue
        anomalies = anomalies_pb2.Anomalies()
        with open(path, "rb") as handle:
            anomalies.ParseFromString(handle.read())
        for feature, info in anomalies.anomaly_info.items():
            found.setdefault(split, []).append(f"{feature}: {info.description}")
    return found


def latest_run_summary(config: PipelineConfig) -> dict[str, object]:
    """What the newest run produced or reused from the cache, read from ML Metadata."""
    store = open_store(store_location(config), read_only=True)
    run = latest_run(store)
    if run is None:
        raise UserError(f"No pipeline run in the metadata store {store_location(config)}.")
    output = run_outputs(store, run).get
    examples = output((keys.FEATURE_EXTRACTOR, "Examples"))
    anomalies = output((keys.EXAMPLE_VALIDATOR, "ExampleAnomalies"))
    counts = {f"{split}/{label}": custom_property(examples, keys.clips_property(split, label))
              for split in SPLITS for label in LABELS}
    pretrained = output((keys.WGAN_PRETRAINER, "Model"))
    trained = output((keys.TRAINER, "Model"))
    model_run = output((keys.TRAINER, "ModelRun"))
    classifier = {}
    if model_run and os.path.exists(os.path.join(model_run.uri, "summary.json")):
        with open(os.path.join(model_run.uri, "summary.json")) as handle:
            classifier = json.load(handle)
    evaluation = output((keys.SPOOF_EVALUATOR, "ModelEvaluation"))
    blessing = output((keys.SPOOF_EVALUATOR, "ModelBlessing"))
    pushed = output((keys.PUSHER, "PushedModel"))
    return {
        "evaluation": ({name: custom_property(evaluation, name) for name in EVALUATION_SHOWN}
                       if evaluation else None),
        "blessing": ({"blessed": bool(custom_property(blessing, keys.BLESSED_PROPERTY)),
                      "reason": custom_property(blessing, keys.REASON_PROPERTY)}
                     if blessing else None),
        "pushed_to": pushed_destination(pushed),
        "pretrained": ({name: custom_property(pretrained, name) for name in (
            keys.STEPS_PROPERTY, keys.WALL_SECONDS_PROPERTY, keys.WASSERSTEIN_PROPERTY,
            keys.DEVICE_PROPERTY)} | {"uri": pretrained.uri} if pretrained else None),
        "model_uri": trained.uri if trained else None,
        "classifier": classifier,
        "examples_uri": examples.uri,
        "num_clips": custom_property(examples, keys.NUM_CLIPS_PROPERTY),
        "num_examples": custom_property(examples, keys.NUM_EXAMPLES_PROPERTY),
        "num_rejected": custom_property(examples, keys.NUM_REJECTED_PROPERTY),
        "rejected_files": json.loads(
            custom_property(examples, keys.REJECTED_FILES_PROPERTY) or "[]"),
        "clips": counts,
        "anomalies": read_anomalies(anomalies.uri) if anomalies else {},
    }


def pushed_destination(pushed: metadata_store_pb2.Artifact | None) -> str | None:
    """Where the Pusher copied the model, or None when it did not push (not blessed)."""
    if custom_property(pushed, keys.PUSHED_PROPERTY) != 1:
        return None
    return custom_property(pushed, keys.PUSHED_DESTINATION_PROPERTY)


def kept_weights(summary: dict[str, Any]) -> str:
    """Which weights a `summarise` record kept, in words (records from before head_solver
    existed were Adam's)."""
    if summary.get("head_solver") == "lbfgs":
        ignored = (f", ignoring {summary['nuisance_directions']} directions that carry "
                   f"{100 * summary['nuisance_energy_share']:.0f} % of what augmentation "
                   "changes" if summary.get("nuisance_directions") else "")
        return (f"the loss's minimum (L-BFGS, {summary['solver_iterations']} iterations"
                f"{ignored})")
    return (f"epoch {summary['best_epoch']}/{summary['epochs_run']} (kept by dev "
            f"{summary.get('selection', 'auc')})")


def format_run_summary(summary: dict[str, object]) -> str:
    lines = [f"Examples: {summary['examples_uri']}",
             "  clips per split/label: " + ", ".join(
                 f"{key} {value}" for key, value in summary["clips"].items()),
             f"  {summary['num_clips']} clips, {summary['num_examples']} examples, "
             f"{summary['num_rejected']} rejected files"]
    lines += [f"    rejected {entry}" for entry in summary["rejected_files"]]
    pretrained = summary.get("pretrained")
    if pretrained:
        lines.append(f"Stage 1 (WGAN-GP): {pretrained['steps']} steps in "
                     f"{pretrained['wall_seconds']:.0f} s on {pretrained['device']}, final "
                     f"Wasserstein estimate {pretrained['wasserstein']:.3f}; {pretrained['uri']}")
    classifier = summary.get("classifier")
    if classifier:
        trained = classifier.get("trained", "the whole network")
        lines.append(f"Stage 2 ({trained}): dev AUC {classifier['best_dev_auc']:.3f}, "
                     f"EER {100 * classifier.get('best_dev_eer', float('nan')):.1f} %, "
                     f"accuracy {classifier['best_dev_accuracy']:.3f} at "
                     f"{kept_weights(classifier)}; SavedModel "
                     f"{summary['model_uri']}/Format-Serving")
        fusion = classifier.get("fusion")
        if fusion:
            fused = []
            if "second_system" in fusion:
                second = fusion["second_system"]
                fused.append(f"a second system ({second['trained']}, features.fusion) at "
                             f"{kept_weights(second)}")
            if "lfcc-gmm" in fusion.get("systems", []):
                fused.append("LFCC-GMM (features.lfcc_gmm)")
            lines.append("  fused with " + " and ".join(fused) + ": dev EER "
                         + ", ".join(f"{100 * eer:.1f} %" for eer in fusion["dev_eer_each"])
                         + f" alone, {100 * fusion['dev_eer']:.1f} % fused")
        calibration = classifier.get("calibration")
        if calibration:
            lines.append(f"  scores calibrated on dev (LLR = {calibration['scale']:.3f} x log-odds "
                         f"{calibration['offset']:+.3f}): dev Cllr "
                         f"{calibration['dev_cllr_raw']:.3f} -> "
                         f"{calibration['dev_cllr_calibrated']:.3f} bits")
    evaluation = summary.get("evaluation")
    if evaluation:
        lines.append(f"Evaluation ({evaluation['num_clips']} eval clips): EER "
                     f"{100 * evaluation['eer']:.2f} %, min t-DCF {evaluation['min_tdcf']:.4f} "
                     f"(2021 form {evaluation['min_tdcf_2021']:.4f}), AUC {evaluation['auc']:.4f}, "
                     f"accuracy {evaluation['accuracy']:.4f}, F1 {evaluation['f1']:.4f}")
        if evaluation.get("min_dcf") is not None:  # runs before the ASVspoof 5 metrics
            lines.append(f"  ASVspoof 5: minDCF {evaluation['min_dcf']:.4f}, actDCF "
                         f"{evaluation['act_dcf']:.4f}, Cllr {evaluation['cllr']:.4f} bits")
        lines.append(f"  report: {evaluation['report_uri']}")
    blessing = summary.get("blessing")
    if blessing:
        verdict = "blessed" if blessing["blessed"] else "NOT blessed"
        lines.append(f"Model {verdict}: {blessing['reason']}")
        lines.append(f"Pushed to {summary['pushed_to']}" if summary["pushed_to"] else
                     "Not pushed: the Pusher pushes blessed models only.")
    if summary["anomalies"]:
        lines.append("Schema validation found anomalies:")
        for split, descriptions in summary["anomalies"].items():
            lines += [f"  {split}: {description}" for description in descriptions]
    else:
        lines.append("Schema validation: no anomalies in train, dev or eval.")
    return "\n".join(lines)


def list_runs(store: metadata_store.MetadataStore) -> list[dict[str, Any]]:
    """One entry per pipeline run (TFX's pipeline_run contexts), oldest first."""
    runs = []
    for context in sorted(store.get_contexts_by_type("pipeline_run"), key=lambda c: c.id):
        executions = store.get_executions_by_context(context.id)
        states = [e.last_known_state for e in executions]
        if any(s == Execution.FAILED for s in states):
            outcome = "failed"
        elif any(s in (Execution.RUNNING, Execution.NEW) for s in states):
            outcome = "running or interrupted"
        else:
            outcome = "succeeded"
        outputs = run_outputs(store, context)
        evaluation = outputs.get((keys.SPOOF_EVALUATOR, "ModelEvaluation"))
        blessing = outputs.get((keys.SPOOF_EVALUATOR, "ModelBlessing"))
        runs.append({
            "run": context.name,
            "started": format_time(min((e.create_time_since_epoch for e in executions),
                                       default=context.create_time_since_epoch)),
            "outcome": outcome,
            "executions": {Execution.State.Name(s): states.count(s) for s in set(states)},
            **{name: custom_property(evaluation, name) for name in (
                keys.EER_PROPERTY, keys.MIN_TDCF_PROPERTY, keys.AUC_PROPERTY)},
            "blessed": (None if blessing is None else
                        bool(custom_property(blessing, keys.BLESSED_PROPERTY))),
            "pushed_to": pushed_destination(outputs.get((keys.PUSHER, "PushedModel"))),
        })
    return runs


def format_runs(runs: list[dict[str, Any]]) -> str:
    if not runs:
        return "No pipeline runs in this metadata store."
    lines = [f"{'run':<28} {'started':<24} {'outcome':<10} {'EER':>8} {'min t-DCF':>9} "
             f"{'blessed':>8}  pushed to"]
    for run in runs:
        eer = f"{100 * run['eer']:.2f} %" if run["eer"] is not None else "-"
        tdcf = f"{run['min_tdcf']:.4f}" if run["min_tdcf"] is not None else "-"
        blessed = {None: "-", True: "yes", False: "no"}[run["blessed"]]
        lines.append(f"{run['run']:<28} {run['started']:<24} {run['outcome']:<10} {eer:>8} "
                     f"{tdcf:>9} {blessed:>8}  {run['pushed_to'] or '-'}")
    return "\n".join(lines)
