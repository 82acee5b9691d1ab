"""What the Kubeflow spec asks of the cluster for the training steps: GPUs, CPU and memory
through TFX's platform config (it lands in the spec's `resources`), and GPU node selection
(node selector, tolerations), which TFX cannot express, as the spec's Kubernetes platform
section added after compiling."""

from __future__ import annotations

from typing import Any

from kfp.pipeline_spec import pipeline_spec_pb2
from tfx.dsl.components.base import base_component

from spoofdetect.config import KubeflowConfig

ResourceSpec = pipeline_spec_pb2.PipelineDeploymentConfig.PipelineContainerSpec.ResourceSpec


def request_gpus(components: list[base_component.BaseComponent],
                 config: KubeflowConfig) -> None:
    if not (config.gpus or config.training_cpu or config.training_memory_gb):
        return
    for component in components:
        spec = ResourceSpec(cpu_limit=config.training_cpu,
                            memory_limit=config.training_memory_gb)
        if config.gpus:
            spec.accelerator.type = config.gpu_resource
            spec.accelerator.count = config.gpus
        component.with_platform_config(spec)


def gpu_executor_labels(pipeline_spec: dict[str, Any]) -> list[str]:
    """The executors (deploymentSpec keys) whose containers request an accelerator."""
    executors = pipeline_spec["deploymentSpec"]["executors"]
    return sorted(label for label, executor in executors.items()
                  if executor.get("container", {}).get("resources", {}).get("accelerator"))


def kubernetes_platform_spec(pipeline_spec: dict[str, Any],
                             config: KubeflowConfig) -> dict[str, Any] | None:
    """The KFP v2 PlatformSpec document placing GPU steps on GPU nodes, or None if there is
    nothing to place (no GPUs requested, or no selector and no tolerations)."""
    labels = gpu_executor_labels(pipeline_spec)
    if not labels or not (config.gpu_node_selector or config.gpu_tolerations):
        return None
    placement: dict[str, Any] = {}
    if config.gpu_node_selector:
        placement["nodeSelector"] = {"labels": dict(config.gpu_node_selector)}
    if config.gpu_tolerations:
        placement["tolerations"] = [dict(toleration) for toleration in config.gpu_tolerations]
    return {"platforms": {"kubernetes": {"deploymentSpec": {
        "executors": {label: placement for label in labels}}}}}
