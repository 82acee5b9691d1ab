"""Lineage from ML Metadata: from a pushed model back to the dataset, and the list of runs.

The walk follows MLMD events upstream: an artifact to the execution that output it, that
execution's inputs (and its other outputs, e.g. the evaluation beside the blessing), and so
on to the FeatureExtractor, whose parameters name the dataset. Examples also get their
validation result (ExampleValidator's anomalies, two steps downstream).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2

from spoofdetect.components import keys
from spoofdetect.errors import UserError
from spoofdetect.pipeline.metadata import (
    custom_property,
    format_time,
    property_value,
    short_type_name,
)
from spoofdetect.pipeline.run_summary import EVALUATION_SHOWN, read_anomalies

Event = metadata_store_pb2.Event
Execution = metadata_store_pb2.Execution

# Per artifact type, the custom properties worth showing (others stay in --format json).
KEY_PROPERTIES = {
    "Examples": (keys.NUM_CLIPS_PROPERTY, keys.NUM_EXAMPLES_PROPERTY,
                 keys.NUM_REJECTED_PROPERTY, keys.REJECTED_FILES_PROPERTY,
                 keys.SEGMENT_MODE_PROPERTY, keys.RECORD_FORMAT_PROPERTY,
                 keys.CODE_VERSION_PROPERTY),
    "Model": (keys.STEPS_PROPERTY, keys.EPOCHS_PROPERTY, keys.WASSERSTEIN_PROPERTY,
              keys.DEVICE_PROPERTY, keys.WALL_SECONDS_PROPERTY, keys.CODE_VERSION_PROPERTY),
    "ModelEvaluation": EVALUATION_SHOWN,
    "ModelBlessing": (keys.BLESSED_PROPERTY, keys.REASON_PROPERTY, keys.EER_PROPERTY,
                      keys.MIN_TDCF_PROPERTY),
    "PushedModel": (keys.PUSHED_PROPERTY, keys.PUSHED_DESTINATION_PROPERTY,
                    keys.PUSHED_VERSION_PROPERTY),
}
# Per execution (component) type, the parameters worth showing (Trainer's and Pusher's are
# TFX's names).
KEY_PARAMETERS = {
    keys.FEATURE_EXTRACTOR: (keys.DATA_ROOT_KEY, keys.DATASET_FINGERPRINT_KEY,
                             keys.FEATURE_CONFIG_KEY),
    keys.WGAN_PRETRAINER: (keys.GAN_CONFIG_KEY,),
    keys.TRAINER: ("custom_config",),
    keys.SPOOF_EVALUATOR: (keys.EVALUATION_CONFIG_KEY,),
    keys.PUSHER: ("push_destination",),
}


@dataclasses.dataclass
class Lineage:
    artifacts: dict[int, dict[str, Any]] = dataclasses.field(default_factory=dict)
    executions: dict[int, dict[str, Any]] = dataclasses.field(default_factory=dict)
    # (artifact id, execution id, "input"|"output")
    edges: list[tuple[int, int, str]] = dataclasses.field(default_factory=list)
    start: int | None = None

    def as_json(self) -> dict[str, Any]:
        return {"start_artifact": self.start, "artifacts": list(self.artifacts.values()),
                "executions": list(self.executions.values()),
                "edges": [{"artifact": a, "execution": e, "kind": kind}
                          for a, e, kind in self.edges]}


class LineageReader:
    def __init__(self, store: metadata_store.MetadataStore):
        self.store = store
        self._artifact_types = {t.id: t.name for t in store.get_artifact_types()}
        self._execution_types = {t.id: t.name for t in store.get_execution_types()}

    def _artifact(self, artifact: metadata_store_pb2.Artifact) -> dict[str, Any]:
        type_name = self._artifact_types.get(artifact.type_id, "?")
        custom = {k: property_value(v) for k, v in artifact.custom_properties.items()}
        wanted = KEY_PROPERTIES.get(type_name)
        shown = {k: custom[k] for k in (wanted or ()) if k in custom}
        return {"id": artifact.id, "type": type_name, "uri": artifact.uri,
                "properties": shown, "all_properties": custom}

    def _execution(self, execution: metadata_store_pb2.Execution) -> dict[str, Any]:
        type_name = short_type_name(self._execution_types.get(execution.type_id, "?"))
        parameters = {k: property_value(v) for k, v in execution.properties.items()}
        parameters.update({k: property_value(v) for k, v in execution.custom_properties.items()})
        shown = {k: parameters[k] for k in KEY_PARAMETERS.get(type_name, ()) if k in parameters}
        return {"id": execution.id, "type": type_name,
                "state": Execution.State.Name(execution.last_known_state),
                "started": format_time(execution.create_time_since_epoch),
                "finished": format_time(execution.last_update_time_since_epoch),
                "parameters": shown}

    def pushed_models(self) -> list[metadata_store_pb2.Artifact]:
        pushed = [a for a in self.store.get_artifacts_by_type("PushedModel")
                  if custom_property(a, keys.PUSHED_PROPERTY) == 1]
        return sorted(pushed, key=lambda a: a.id)

    def find_start(self, model: str) -> metadata_store_pb2.Artifact:
        """'latest': the newest pushed model; else a URI of a pushed copy, a push destination
        (a serving version folder) or a Trainer model."""
        pushed = self.pushed_models()
        if model == "latest":
            if not pushed:
                raise UserError("No model has been pushed in this metadata store yet (the "
                                "Pusher pushes blessed models only); see `spoofdetect runs`.")
            return pushed[-1]
        wanted = model.rstrip("/")
        for artifact in reversed(pushed):
            destination = custom_property(artifact, keys.PUSHED_DESTINATION_PROPERTY) or ""
            if wanted in (artifact.uri.rstrip("/"), str(destination).rstrip("/")):
                return artifact
        for artifact in self.store.get_artifacts_by_uri(wanted):
            return artifact
        raise UserError(f"No pushed model or model artifact with URI {model} in this store; "
                        "`spoofdetect runs` lists what there is.")

    def walk(self, start: metadata_store_pb2.Artifact) -> Lineage:
        lineage = Lineage(start=start.id)
        lineage.artifacts[start.id] = self._artifact(start)
        pending = [start.id]
        while pending:
            artifact_id = pending.pop()
            events = self.store.get_events_by_artifact_ids([artifact_id])
            producers = [e.execution_id for e in events if e.type == Event.OUTPUT]
            for execution in self.store.get_executions_by_id(producers):
                if execution.id in lineage.executions:
                    continue
                lineage.executions[execution.id] = self._execution(execution)
                for event in self.store.get_events_by_execution_ids([execution.id]):
                    kind = "input" if event.type == Event.INPUT else "output"
                    lineage.edges.append((event.artifact_id, execution.id, kind))
                    if event.artifact_id not in lineage.artifacts:
                        [artifact] = self.store.get_artifacts_by_id([event.artifact_id])
                        lineage.artifacts[artifact.id] = self._artifact(artifact)
                        if kind == "input":
                            pending.append(artifact.id)
        self._add_validation(lineage)
        return lineage

    def _add_validation(self, lineage: Lineage) -> None:
        """For each Examples artifact: ExampleValidator's anomalies (examples -> statistics
        -> anomalies) with the number of anomalous features."""
        for artifact in list(lineage.artifacts.values()):
            if artifact["type"] != "Examples":
                continue
            for anomalies in self._downstream(artifact["id"], "ExampleStatistics",
                                              "ExampleAnomalies"):
                count = sum(map(len, read_anomalies(anomalies.uri).values()))
                artifact["properties"]["validation"] = (
                    "no anomalies" if not count else f"{count} anomalous features") + (
                    f" (ExampleAnomalies #{anomalies.id}, {anomalies.uri})")

    def _downstream(self, artifact_id: int, *types: str) -> list[metadata_store_pb2.Artifact]:
        frontier = [artifact_id]
        for type_name in types:
            consumers = [e.execution_id for e in self.store.get_events_by_artifact_ids(frontier)
                         if e.type == Event.INPUT]
            outputs = [e.artifact_id for e in self.store.get_events_by_execution_ids(consumers)
                       if e.type == Event.OUTPUT]
            frontier = [a.id for a in self.store.get_artifacts_by_id(outputs)
                        if self._artifact_types.get(a.type_id) == type_name]
        return self.store.get_artifacts_by_id(frontier)


def _compact(value: Any) -> Any:
    """JSON held in strings (TFX stores configs so), decoded, to print on one line."""
    if isinstance(value, str) and value[:1] in "{[":
        try:
            return _compact(json.loads(value))
        except ValueError:
            return value
    if isinstance(value, dict):
        return {key: _compact(item) for key, item in value.items()}
    return value


def _format_value(value: Any, limit: int = 400) -> str:
    value = _compact(value)
    text = value if isinstance(value, str) else json.dumps(value, separators=(", ", ": "))
    return text if len(text) <= limit else text[:limit] + "..."


def _property_lines(values: dict[str, Any], pad: str) -> list[str]:
    """One line per property; a config (a JSON object of sections, and perhaps single
    values) one line per entry."""
    lines = []
    for key, value in values.items():
        value = _compact(value)
        if isinstance(value, dict) and any(isinstance(v, dict) for v in value.values()):
            for section, settings in value.items():
                lines.append(f"{pad}{key}.{section}: {_format_value(settings)}")
        else:
            lines.append(f"{pad}{key}: {_format_value(value)}")
    return lines


def format_text(lineage: Lineage) -> str:
    """Upstream from the start artifact, each execution with its inputs, indented."""
    lines: list[str] = []
    producers = {a: e for a, e, kind in lineage.edges if kind == "output"}
    inputs: dict[int, list[int]] = {}
    outputs: dict[int, list[int]] = {}
    for artifact_id, execution_id, kind in lineage.edges:
        (inputs if kind == "input" else outputs).setdefault(execution_id, []).append(
            artifact_id)
    shown: set[int] = set()
    shown_artifacts: set[int] = set()

    def artifact_line(artifact_id: int, depth: int) -> None:
        artifact = lineage.artifacts[artifact_id]
        pad = "  " * depth
        if artifact_id in shown_artifacts:
            lines.append(f"{pad}{artifact['type']} #{artifact['id']}  (shown above)")
            return
        shown_artifacts.add(artifact_id)
        lines.append(f"{pad}{artifact['type']} #{artifact['id']}  {artifact['uri']}")
        lines.extend(_property_lines(artifact["properties"], pad + "    "))
        execution_id = producers.get(artifact_id)
        if execution_id is None or execution_id in shown:
            return
        shown.add(execution_id)
        execution = lineage.executions[execution_id]
        lines.append(f"{pad}  <- {execution['type']} (execution #{execution['id']}, "
                     f"{execution['state']}, {execution['started']} .. "
                     f"{execution['finished']})")
        lines.extend(_property_lines(execution["parameters"], pad + "       "))
        for sibling in outputs.get(execution_id, []):
            if sibling != artifact_id:
                other = lineage.artifacts[sibling]
                shown_artifacts.add(sibling)
                lines.append(f"{pad}     also output {other['type']} #{other['id']}  "
                             f"{other['uri']}")
                lines.extend(_property_lines(other["properties"], pad + "         "))
        for input_id in sorted(inputs.get(execution_id, [])):
            artifact_line(input_id, depth + 2)

    artifact_line(lineage.start, 0)
    return "\n".join(lines)


def format_dot(lineage: Lineage) -> str:
    """Graphviz: artifacts as boxes, executions as ellipses, arrows in the data's direction."""
    lines = ["digraph lineage {", "  rankdir=BT;", '  node [fontname="Helvetica"];']
    for artifact in lineage.artifacts.values():
        detail = "\\n".join(f"{k}: {_format_value(v, 40)}"
                            for k, v in artifact["properties"].items()
                            if k not in (keys.REJECTED_FILES_PROPERTY, keys.REASON_PROPERTY,
                                         keys.REPORT_URI_PROPERTY))
        label = f"{artifact['type']} #{artifact['id']}" + (f"\\n{detail}" if detail else "")
        lines.append(f'  a{artifact["id"]} [shape=box, label="{_escape(label)}"];')
    for execution in lineage.executions.values():
        lines.append(f'  e{execution["id"]} [shape=ellipse, style=filled, fillcolor="#e8eef7", '
                     f'label="{_escape(execution["type"])}\\n{execution["state"]}"];')
    for artifact_id, execution_id, kind in lineage.edges:
        if kind == "input":
            lines.append(f"  a{artifact_id} -> e{execution_id};")
        else:
            lines.append(f"  e{execution_id} -> a{artifact_id};")
    lines.append("}")
    return "\n".join(lines)


def _escape(text: str) -> str:
    return text.replace('"', '\\"')
