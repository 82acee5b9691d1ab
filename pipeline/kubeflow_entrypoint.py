"""The container entrypoint on Kubeflow Pipelines (the image's ENTRYPOINT).

A thin wrapper around TFX's `kubeflow_v2_run_executor` that first repairs what the
open-source KFP v2 launcher hands a TFX 1.16 executor (tensorflow/tfx#7768), then lets TFX
run the executor unchanged:

- Artifact types. TFX recovers each artifact's Python class from its type's instance schema
  or schema title. The open-source launcher sends artifacts with neither (TFX then fails
  with an unbound title / "class path not found") or with KFP's own `system.*` titles, which
  are not TFX classes. Each artifact gets the TFX type the compiled spec declared for its
  input or output key, passed in `--artifact_types` by `spoofdetect compile`.
- Object-store URIs. The launcher downloads inputs to, and uploads outputs from, local paths
  that mirror the bucket (`minio://b/x` <-> `/minio/b/x`, `s3://b/x` <-> `/s3/b/x`), and TFX's
  file I/O cannot open `minio://` at all. Executors get the local paths; the executor output
  written for the launcher carries the original URIs again.
  `gs://` URIs are left alone: TensorFlow's file system reads and writes them directly.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

# Local mount point of each object-store scheme, as the open-source KFP v2 launcher lays
# them out.
LOCAL_MOUNTS = {"minio://": "/minio/", "s3://": "/s3/"}
ARTIFACT_TYPES_FLAG = "--artifact_types"


def to_local(uri: str) -> str:
    for scheme, mount in LOCAL_MOUNTS.items():
        if uri.startswith(scheme):
            return mount + uri[len(scheme):]
    return uri


def _declared_title_needed(type_schema: dict[str, Any]) -> bool:
    title = type_schema.get("schemaTitle")
    if not title and "instanceSchema" in type_schema:
        return "title: " not in type_schema["instanceSchema"]
    return not title or title.startswith("system.")


def repair_executor_input(executor_input: dict[str, Any],
                          declared: dict[str, dict[str, str]]) -> dict[str, str]:
    """Fixes artifact types and URIs in place; returns {local path: original URI}."""
    originals: dict[str, str] = {}
    for direction in ("inputs", "outputs"):
        for key, artifact_list in executor_input.get(direction, {}).get("artifacts",
                                                                         {}).items():
            for artifact in artifact_list.get("artifacts", []):
                if _declared_title_needed(artifact.get("type", {})):
                    if key not in declared.get(direction, {}):
                        raise SystemExit(
                            f"The {direction[:-1]} artifact {key!r} arrived without a TFX type "
                            "and the spec declares none for it; recompile the pipeline with "
                            "`spoofdetect compile`.")
                    artifact["type"] = {"schemaTitle": declared[direction][key]}
                local = to_local(artifact.get("uri", ""))
                if local != artifact.get("uri"):
                    originals[local] = artifact["uri"]
                    artifact["uri"] = local
    return originals


def restore_uris(output_file: str, originals: dict[str, str]) -> None:
    """Puts the original URIs back into the executor output that the launcher reads."""
    if not originals or not os.path.exists(output_file):
        return
    with open(output_file, encoding="utf-8") as handle:
        output = json.load(handle)
    for artifact_list in output.get("artifacts", {}).values():
        for artifact in artifact_list.get("artifacts", []):
            artifact["uri"] = originals.get(artifact.get("uri", ""), artifact.get("uri", ""))
    with open(output_file, "w", encoding="utf-8") as handle:
        json.dump(output, handle)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--executor_class_path", required=True)
    parser.add_argument("--json_serialized_invocation_args", required=True)
    parser.add_argument("--json_serialized_inputs_spec_args")
    parser.add_argument(ARTIFACT_TYPES_FLAG, default="{}")
    args, beam_args = parser.parse_known_args(argv)
    executor_input = json.loads(args.json_serialized_invocation_args)
    originals = repair_executor_input(executor_input, json.loads(args.artifact_types))
    args.json_serialized_invocation_args = json.dumps(executor_input)
    del args.artifact_types

    from absl import logging
    from tfx.orchestration.kubeflow.v2.container import kubeflow_v2_run_executor

    # TFX's runner expects absl's flags to be parsed (it logs through absl).
    logging.use_absl_handler()
    kubeflow_v2_run_executor.main((args, beam_args))
    restore_uris(executor_input["outputs"]["outputFile"], originals)


if __name__ == "__main__":
    main(sys.argv[1:])
