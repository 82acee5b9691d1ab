"""What a pipeline run produced, read back from ML Metadata: the summary `spoofdetect run`
prints and benchmarks read. No TFX import, so readers start in a fraction of a second."""

from __future__ import annotations

import json
import os

from tensorflow_metadata.proto.v0 import anomalies_pb2

from spoofdetect.config import LABELS, SPLITS, PipelineConfig
from spoofdetect.errors import UserError
from spoofdetect.pipeline.metadata import (
    custom_property,
    latest_run,
    open_store,
    run_outputs,
    store_location,
)


def read_anomalies(anomalies_uri: str) -> dict[str, list[str]]:
    """split -> human-readable anomaly descriptions, from an ExampleAnomalies artifact."""
    found: dict[str, list[str]] = {}
    for split in SPLITS:
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
    examples = output(("FeatureExtractor", "Examples"))
    anomalies = output(("ExampleValidator", "ExampleAnomalies"))
    counts = {f"{split}/{label}": custom_property(examples, f"{split}_{label}_clips")
              for split in SPLITS for label in LABELS}
    pretrained = output(("WganPretrainer", "Model"))
    trained = output(("Trainer", "Model"))
    model_run = output(("Trainer", "ModelRun"))
    classifier = {}
    if model_run and os.path.exists(os.path.join(model_run.uri, "summary.json")):
        with open(os.path.join(model_run.uri, "summary.json")) as handle:
            classifier = json.load(handle)
    evaluation = output(("SpoofEvaluator", "ModelEvaluation"))
    blessing = output(("SpoofEvaluator", "ModelBlessing"))
    pushed = output(("Pusher", "PushedModel"))
    return {
        "evaluation": ({name: custom_property(evaluation, name) for name in (
            "eer", "min_tdcf", "min_tdcf_2021", "min_dcf", "act_dcf", "cllr", "auc",
            "accuracy", "f1", "num_clips", "report_uri")} if evaluation else None),
        "blessing": ({"blessed": bool(custom_property(blessing, "blessed")),
                      "reason": custom_property(blessing, "reason")} if blessing else None),
        "pushed_to": (custom_property(pushed, "pushed_destination")
                      if pushed and custom_property(pushed, "pushed") == 1 else None),
        "pretrained": ({name: custom_property(pretrained, name) for name in (
            "steps", "wall_seconds", "wasserstein", "device")} | {"uri": pretrained.uri}
            if pretrained else None),
        "model_uri": trained.uri if trained else None,
        "classifier": classifier,
        "examples_uri": examples.uri,
        "num_clips": custom_property(examples, "num_clips"),
        "num_examples": custom_property(examples, "num_examples"),
        "num_rejected": custom_property(examples, "num_rejected"),
        "rejected_files": json.loads(custom_property(examples, "rejected_files") or "[]"),
        "clips": counts,
        "anomalies": read_anomalies(anomalies.uri) if anomalies else {},
    }


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
        lines.append(f"Stage 2 (fine-tuning): dev AUC {classifier['best_dev_auc']:.3f}, "
                     f"EER {100 * classifier.get('best_dev_eer', float('nan')):.1f} %, "
                     f"accuracy {classifier['best_dev_accuracy']:.3f} at epoch "
                     f"{classifier['best_epoch']}/{classifier['epochs_run']} (kept by dev "
                     f"{classifier.get('selection', 'auc')}); SavedModel "
                     f"{summary['model_uri']}/Format-Serving")
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
