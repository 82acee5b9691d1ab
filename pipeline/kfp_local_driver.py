"""Runs a compiled spec with Kubeflow Pipelines' own local runner: `kfp.local`'s
DockerRunner plans the DAG and runs every task in its container image.

    python pipeline/kfp_local_driver.py SPEC --pipeline-root DIR --result FILE --user UID:GID

It runs in its own venv (kubeflow/requirements-local.txt: kfp >= 2.7 needs a protobuf the
TFX stack forbids) and imports nothing of the project; `spoofdetect kfp-local` (the
`make kfp-local` target) prepares the spec and reads FILE: {"status": "SUCCESS" or
"FAILURE", "failed_task": name or null, "run_dir": the run's folder under DIR}.
"""

from __future__ import annotations

import argparse
import json
import os
import re

import yaml
from kfp import local
from kfp.components import load_component_from_text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("spec")
    parser.add_argument("--pipeline-root", required=True)
    parser.add_argument("--result", required=True)
    parser.add_argument("--user", required=True, help="UID:GID the containers run as")
    args = parser.parse_args()
    with open(args.spec, encoding="utf-8") as handle:
        # The first document is the PipelineSpec; kfp.local has no use for the Kubernetes
        # PlatformSpec (node selectors, tolerations) that may follow it.
        pipeline_spec = next(document for document in yaml.safe_load_all(handle) if document)
    runner = local.DockerRunner(user=args.user)
    local.init(runner=runner, pipeline_root=args.pipeline_root, raise_on_error=True)
    pipeline = load_component_from_text(yaml.safe_dump(pipeline_spec))
    before = set(os.listdir(args.pipeline_root))
    result = {"status": "SUCCESS", "failed_task": None, "run_dir": None}
    try:
        pipeline()
    except RuntimeError as error:
        # kfp.local's message: "... Inner task failed: 'NAME'." (with terminal colours).
        plain = re.sub(r"\x1b\[[0-9;]*m", "", str(error))
        failed = re.search(r"Inner task failed: '([^']+)'", plain)
        result.update(status="FAILURE", failed_task=failed.group(1) if failed else None,
                      error=plain)
    runs = sorted(set(os.listdir(args.pipeline_root)) - before)
    prefix = pipeline_spec["pipelineInfo"]["name"] + "-"
    runs = [name for name in runs if name.startswith(prefix)]
    result["run_dir"] = os.path.join(args.pipeline_root, runs[-1]) if runs else None
    with open(args.result, "w", encoding="utf-8") as handle:
        json.dump(result, handle)


if __name__ == "__main__":
    main()
