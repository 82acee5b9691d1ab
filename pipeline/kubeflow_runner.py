"""The Kubeflow runner: compiles `create_pipeline(config)` into a KFP v2 pipeline spec (YAML)
with TFX's KubeflowV2DagRunner, and submits it to a Kubeflow Pipelines endpoint.

What compiling adds to TFX's output, and why:
- every container runs `python -m spoofdetect.pipeline.kubeflow_entrypoint` (the image's
  entrypoint), which repairs what open-source KFP v2 hands TFX 1.16's executor runner;
- `--artifact_types` on each container: the TFX type of every input and output, from the
  spec's own definitions, because the open-source launcher does not pass them on;
- `defaultPipelineRoot`, and a second YAML document, the Kubernetes PlatformSpec, that puts
  the GPU steps on GPU nodes (node selector, tolerations): TFX does not write it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import tempfile
from typing import Any

import yaml
from tfx.orchestration.kubeflow.v2 import kubeflow_v2_dag_runner

from spoofdetect.config import PipelineConfig
from spoofdetect.errors import UserError
from spoofdetect.pipeline.kubeflow_entrypoint import ARTIFACT_TYPES_FLAG
from spoofdetect.pipeline.kubeflow_resources import kubernetes_platform_spec
from spoofdetect.pipeline.pipeline import create_pipeline

ENTRYPOINT = ["python", "-m", "spoofdetect.pipeline.kubeflow_entrypoint"]


def kubeflow_config(config: PipelineConfig, image: str, pipeline_root: str, data_root: str,
                    gpus: int | None = None) -> PipelineConfig:
    """The config as the cluster sees it: remote data and root, pushes under the root, and
    the baseline taken from the pushed models (open-source KFP cannot run TFX's resolver)."""
    if not image:
        raise UserError("Give the container image: --image REGISTRY/spoof-detection:TAG "
                        "(built from docker/Dockerfile).")
    check_cluster_location(pipeline_root, "--pipeline-root")
    check_cluster_location(data_root, "--data-root")
    if gpus is not None and gpus < 0:
        raise UserError(f"--gpus {gpus}: give 0 (CPU nodes) or more GPUs per training step.")
    kubeflow = dataclasses.replace(config.kubeflow, image=image,
                                   gpus=config.kubeflow.gpus if gpus is None else gpus)
    kubeflow.validate()
    return dataclasses.replace(
        config, data_root=data_root, pipeline_root_uri=pipeline_root,
        serving_dir=config.serving_dir or pipeline_root.rstrip("/") + "/serving",
        kubeflow=kubeflow,
        evaluation=dataclasses.replace(config.evaluation, baseline="serving_dir"))


def check_cluster_location(location: str, flag: str) -> None:
    """A location the cluster can resolve: SCHEME://BUCKET/... or an absolute path (a volume
    mounted in every step). Anything else would be resolved against a step's working folder."""
    scheme, separator, rest = location.partition("://")
    if separator:
        valid = (re.fullmatch(r"[a-z][a-z0-9+.-]*", scheme) is not None
                 and rest.strip("/") != "" and not any(c.isspace() for c in location))
    else:
        valid = location.startswith("/") and location.strip("/") != "" and not any(
            c.isspace() for c in location)
    if not valid:
        raise UserError(f"{flag} {location!r} is not a location the cluster can use: give a "
                        "URI (gs://BUCKET/PATH, s3://BUCKET/PATH, minio://BUCKET/PATH) or an "
                        "absolute path on a volume mounted in every step.")


def _title(type_schema: dict[str, Any]) -> str:
    if "schemaTitle" in type_schema:
        return type_schema["schemaTitle"]
    return yaml.safe_load(type_schema["instanceSchema"])["title"]


def artifact_types(component: dict[str, Any]) -> dict[str, dict[str, str]]:
    """{'inputs': {key: TFX type title}, 'outputs': {...}} of one component of the spec."""
    return {
        direction: {key: _title(value["artifactType"]) for key, value in
                    component.get(definitions, {}).get("artifacts", {}).items()}
        for direction, definitions in (("inputs", "inputDefinitions"),
                                       ("outputs", "outputDefinitions"))}


def annotate_artifact_types(pipeline_spec: dict[str, Any]) -> None:
    executors = pipeline_spec["deploymentSpec"]["executors"]
    for component in pipeline_spec["components"].values():
        container = executors.get(component.get("executorLabel", ""), {}).get("container")
        if container is not None:
            container["args"] += [ARTIFACT_TYPES_FLAG,
                                  json.dumps(artifact_types(component), sort_keys=True)]


COMPONENT_PREFIX = "comp-"


def prefix_component_names(pipeline_spec: dict[str, Any]) -> None:
    """Names each component `comp-<task>` as the KFP SDK's compiler does (TFX's leaves the
    prefix out). KFP's local runner takes it for granted: it strips five characters from
    every component name to name the task's folders and log lines ('Trainer' became 'er')."""
    pipeline_spec["components"] = {
        name if name.startswith(COMPONENT_PREFIX) else COMPONENT_PREFIX + name: component
        for name, component in pipeline_spec["components"].items()}
    for task in pipeline_spec["root"]["dag"]["tasks"].values():
        reference = task["componentRef"]
        if not reference["name"].startswith(COMPONENT_PREFIX):
            reference["name"] = COMPONENT_PREFIX + reference["name"]


def compile_spec(config: PipelineConfig) -> list[dict[str, Any]]:
    """The YAML documents of the KFP v2 package: the PipelineSpec and, if any, the
    Kubernetes PlatformSpec."""
    pipeline = create_pipeline(config, on_kubeflow=True)
    runner = kubeflow_v2_dag_runner.KubeflowV2DagRunner(
        config=kubeflow_v2_dag_runner.KubeflowV2DagRunnerConfig(
            default_image=config.kubeflow.image, default_commands=ENTRYPOINT,
            # Schema 2.1: parameters typed as the open-source KFP v2 backend sends them
            # (`parameterValues`), and each container told its inputs spec.
            use_pipeline_spec_2_1=True),
        output_dir=tempfile.gettempdir())
    spec = runner.run(pipeline, write_out=False)["pipelineSpec"]
    spec["defaultPipelineRoot"] = config.pipeline_root
    prefix_component_names(spec)
    annotate_artifact_types(spec)
    platform = kubernetes_platform_spec(spec, config.kubeflow)
    return [spec, platform] if platform else [spec]


def write_spec(documents: list[dict[str, Any]], path: str) -> None:
    folder = os.path.dirname(path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("# KFP v2 pipeline spec of spoof-detection, written by `spoofdetect "
                     "compile`.\n# Submit it with `spoofdetect submit` or the Kubeflow "
                     "Pipelines UI.\n")
        yaml.safe_dump_all(documents, handle, sort_keys=True)


def read_spec(path: str) -> list[dict[str, Any]]:
    try:
        with open(path, encoding="utf-8") as handle:
            documents = [document for document in yaml.safe_load_all(handle) if document]
    except OSError as error:
        raise UserError(f"Cannot read the pipeline spec {path}: {error.strerror}; run "
                        "`spoofdetect compile` first.") from error
    except yaml.YAMLError as error:
        raise UserError(f"{path} is not valid YAML: {error}") from error
    if not documents or "root" not in documents[0] or "deploymentSpec" not in documents[0]:
        raise UserError(f"{path} is not a KFP v2 pipeline spec (no root DAG or deployment "
                        "spec); compile it with `spoofdetect compile`.")
    return documents


def describe_submit_error(error: BaseException, host: str) -> str:
    """One message for what the server (or the network) said, with what to check."""
    status = getattr(error, "status", None)
    if status:
        body = str(getattr(error, "body", "") or "").strip().replace("\n", " ")[:300]
        reason = getattr(error, "reason", "") or ""
        hint = {401: "the request was not authenticated: pass credentials (e.g. a session "
                     "cookie or token) or port-forward the ml-pipeline service",
                403: "the credentials lack permission for this namespace (--namespace)",
                404: "nothing answers this path: --host must be the Kubeflow Pipelines API "
                     "or UI address (for example http://localhost:8080 after kubectl "
                     "port-forward -n kubeflow svc/ml-pipeline-ui 8080:80)"}.get(
            status, "the server refused the pipeline spec or the run: check the message, "
                    "and that the spec was compiled by this version (`spoofdetect compile`)"
            if 400 <= status < 500 else "the server failed; check its logs")
        return (f"Kubeflow Pipelines at {host} answered HTTP {status} {reason}: {hint}."
                + (f" Server said: {body}" if body else ""))
    text = " ".join(str(error).split())[:300]
    return (f"Cannot reach Kubeflow Pipelines at {host} ({type(error).__name__}: {text}). "
            "Check --host and that the endpoint is reachable from here (for example kubectl "
            "port-forward -n kubeflow svc/ml-pipeline-ui 8080:80, then --host "
            "http://localhost:8080).")


def submit(spec_path: str, host: str, namespace: str | None, experiment: str,
           run_name: str | None) -> str:
    """Uploads the spec and starts a run; returns the run id."""
    documents = read_spec(spec_path)
    import kfp

    # kfp logs each failed health check with a traceback on the root logger; the one
    # message below says what went wrong instead.
    root_logger = logging.getLogger()
    level = root_logger.level
    root_logger.setLevel(logging.CRITICAL)
    try:
        client = kfp.Client(host=host, namespace=namespace or "kubeflow")
        result = client.create_run_from_pipeline_package(
            spec_path, arguments={}, run_name=run_name, experiment_name=experiment,
            namespace=namespace, pipeline_root=documents[0].get("defaultPipelineRoot"))
    except TimeoutError as error:
        # Without --namespace, kfp.Client retries the health check and then reports only a
        # timeout: ask once more to learn what the server answers.
        raise UserError(describe_submit_error(_health_check_error(host) or error, host)
                        ) from error
    except Exception as error:  # kfp raises ApiException, urllib3 and requests errors
        raise UserError(describe_submit_error(error, host)) from error
    finally:
        root_logger.setLevel(level)
    return result.run_id


def _health_check_error(host: str) -> BaseException | None:
    import kfp_server_api

    client = kfp_server_api.ApiClient(kfp_server_api.Configuration(host=host))
    try:
        kfp_server_api.HealthzServiceApi(client).get_healthz()
    except Exception as error:  # the error to describe, whatever its kind
        return error
    return None


def task_order(pipeline_spec: dict[str, Any]) -> list[str]:
    """The root DAG's tasks in an order that runs each after its dependencies."""
    tasks = pipeline_spec["root"]["dag"]["tasks"]
    order: list[str] = []
    while len(order) < len(tasks):
        ready = sorted(name for name, task in tasks.items() if name not in order
                       and set(task.get("dependentTasks", [])) <= set(order))
        if not ready:
            raise UserError("The pipeline spec's tasks depend on each other in a cycle.")
        order += ready
    return order


def describe_spec(documents: list[dict[str, Any]]) -> str:
    """What a run of this spec would do: its tasks in order, images and GPU requests."""
    spec = documents[0]
    tasks = spec["root"]["dag"]["tasks"]
    executors = spec["deploymentSpec"]["executors"]
    lines = [f"pipeline {spec['pipelineInfo']['name']}, root "
             f"{spec.get('defaultPipelineRoot', '(set at submit)')}, {len(tasks)} tasks:"]
    for name in task_order(spec):
        label = spec["components"][tasks[name]["componentRef"]["name"]]["executorLabel"]
        container = executors[label].get("container", {})
        accelerator = container.get("resources", {}).get("accelerator")
        gpu = f", {accelerator['count']} x {accelerator['type']}" if accelerator else ""
        after = ", ".join(tasks[name].get("dependentTasks", [])) or "start"
        lines.append(f"  {name:<16} image {container.get('image', '-')}{gpu}; after {after}")
    if len(documents) > 1:
        executors = documents[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
        for label, placement in executors.items():
            lines.append(f"  {label}: node selector "
                         f"{placement.get('nodeSelector', {}).get('labels', {})}, "
                         f"tolerations {placement.get('tolerations', [])}")
    return "\n".join(lines)
