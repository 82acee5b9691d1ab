"""Runs a compiled KFP v2 spec on this machine the way the open-source KFP v2 launcher runs it
on a cluster, without the cluster: each task's container command in DAG order, with an
ExecutorInput JSON substituted for `{{$}}`.

What it reproduces of the launcher: constant parameters as `parameterValues`; input
artifacts from upstream tasks' outputs, with the URI the launcher assigned and the metadata
the producer's executor output reported; output artifacts with fresh URIs under the pipeline
root (<root>/<run id>/<task>/<key>); `outputFile` for the executor output; and, as the
open-source launcher does, artifact types without TFX's instance schema (the breakage the
image's entrypoint repairs). What it does not: containers, Kubernetes, object-store
uploads, ML Metadata and caching; the image is not used, the venv's Python runs the command.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from typing import Any

from spoofdetect.pipeline.kubeflow_runner import read_spec, task_order


def _parameter_values(task: dict[str, Any]) -> dict[str, Any]:
    values = {}
    for key, parameter in task.get("inputs", {}).get("parameters", {}).items():
        # Pipeline spec 2.1: the constant is a JSON value, passed on as it is.
        values[key] = parameter["runtimeValue"]["constant"]
    return values


def run_spec(spec_path: str, work_dir: str, timeout: int = 900) -> dict[str, dict[str, Any]]:
    """Runs every task; returns {task: {output key: runtime artifact}}."""
    spec = read_spec(spec_path)[0]
    root = spec["defaultPipelineRoot"]
    run_id = uuid.uuid4().hex[:8]
    produced: dict[str, dict[str, Any]] = {}
    for name in task_order(spec):
        task = spec["root"]["dag"]["tasks"][name]
        component = spec["components"][task["componentRef"]["name"]]
        container = spec["deploymentSpec"]["executors"][component["executorLabel"]]["container"]
        inputs = {}
        for key, source in task.get("inputs", {}).get("artifacts", {}).items():
            upstream = source["taskOutputArtifact"]
            artifact = produced[upstream["producerTask"]][upstream["outputArtifactKey"]]
            inputs[key] = {"artifacts": [{**artifact, "type": {}}]}
        outputs = {
            key: {"artifacts": [{"name": f"{run_id}-{name}-{key}", "type": {},
                                 "uri": f"{root}/{run_id}/{name}/{key}", "metadata": {}}]}
            for key in component.get("outputDefinitions", {}).get("artifacts", {})}
        output_file = os.path.join(work_dir, run_id, name, "executor_output.json")
        executor_input = {"inputs": {"parameterValues": _parameter_values(task),
                                     "artifacts": inputs},
                          "outputs": {"artifacts": outputs, "outputFile": output_file}}
        command = [sys.executable if part == "python" else part
                   for part in container["command"]]
        args = [json.dumps(executor_input) if arg == "{{$}}" else arg
                for arg in container["args"]]
        result = subprocess.run(command + args, capture_output=True, text=True,
                                timeout=timeout)
        if result.returncode != 0:
            raise AssertionError(f"task {name} failed:\n{result.stderr[-4000:]}")
        with open(output_file, encoding="utf-8") as handle:
            reported = json.load(handle).get("artifacts", {})
        produced[name] = {}
        for key, artifact_list in outputs.items():
            artifact = artifact_list["artifacts"][0]
            metadata = reported.get(key, {}).get("artifacts", [{}])[0].get("metadata", {})
            produced[name][key] = {**artifact, "metadata": metadata}
    return produced
