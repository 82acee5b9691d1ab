"""`spoofdetect kfp-local`: the compiled Kubeflow spec run by Kubeflow Pipelines' own local
runner (kfp.local's DockerRunner), every task in the project's container image.

What this side does (in the project's venv): checks the Docker engine and the image, lays out
the work folder, compiles the spec exactly as `spoofdetect compile` does (with the image's
tag and a local pipeline root), and starts pipeline/kfp_local_driver.py under the KFP venv's
Python, which only orchestrates. kfp.local mounts the pipeline root alone into every
container at the same path, so the dataset and the pushed models live under it:

    WORKDIR/spec.yaml      the compiled spec
    WORKDIR/root/          the pipeline root: data/ (the demo data unless --data-root is
                           given under it), one folder per run, serving/ (pushed models)
    WORKDIR/kfp_local.log  everything the tasks printed
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from typing import Any

from spoofdetect.config import PipelineConfig
from spoofdetect.errors import UserError
from spoofdetect.pipeline import kubeflow_runner
from spoofdetect.pipeline.local_runner import workdir_lock

DRIVER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "kfp_local_driver.py")
LOG_LINES_ON_FAILURE = 40


def docker(*args: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=120)
    except FileNotFoundError:
        raise UserError("The docker command is not installed; install Docker (Debian: "
                        "apt-get install docker.io) and start its engine.") from None


def check_image(image: str) -> None:
    """Clear errors for a missing Docker engine or image."""
    if docker("info").returncode != 0:
        raise UserError("No Docker engine is reachable: start one (as root: `dockerd &`, or "
                        "`systemctl start docker`) and check that `docker info` answers.")
    if docker("image", "inspect", image).returncode != 0:
        raise UserError(f"There is no image {image} here: build it with `make image-cpu` "
                        "(or give --image).")


def container_user() -> str:
    """The containers run as the caller's UID in group 0, as clusters that force a UID run
    the image: the tasks read what the caller can read, and their outputs are the caller's."""
    return f"{os.geteuid()}:0"


def data_under_root(data_root: str | None, root: str) -> str:
    if data_root is None:
        from spoofdetect.demo_data import DEFAULT_CLIPS_PER_CLASS, make_demo_dataset

        data_root = os.path.join(root, "data")
        if not os.path.exists(os.path.join(data_root, ".complete")):
            shutil.rmtree(data_root, ignore_errors=True)
            make_demo_dataset(data_root, DEFAULT_CLIPS_PER_CLASS, seed=0)
            open(os.path.join(data_root, ".complete"), "w").close()
        return data_root
    data_root = os.path.abspath(data_root)
    if os.path.commonpath([data_root, root]) != root:
        raise UserError(f"--data-root {data_root} is outside the pipeline root {root}: "
                        "kfp.local mounts only the pipeline root into the containers. Copy "
                        "the dataset under it (a symbolic link would point outside the mount).")
    return data_root


def run_driver(kfp_python: str, spec_path: str, root: str, user: str,
               log_path: str, result_path: str) -> dict[str, Any]:
    command = [kfp_python, DRIVER, spec_path, "--pipeline-root", root, "--result", result_path,
               "--user", user]
    if os.path.exists(result_path):
        os.remove(result_path)
    with open(log_path, "w", encoding="utf-8") as log:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   text=True, bufsize=1)
        assert process.stdout is not None
        for line in process.stdout:
            sys.stdout.write(line)
            log.write(line)
        process.wait()
    if not os.path.exists(result_path):
        raise UserError(f"The KFP local runner stopped before it finished (exit code "
                        f"{process.returncode}); see {log_path}. Is {kfp_python} the venv "
                        "`make kfp-local` makes (kubeflow/requirements-local.txt)?")
    with open(result_path, encoding="utf-8") as handle:
        return json.load(handle)


def last_lines(path: str, count: int) -> str:
    with open(path, encoding="utf-8", errors="replace") as handle:
        return "".join(handle.readlines()[-count:])


def run_kfp_local(config: PipelineConfig, image: str, workdir: str, kfp_python: str,
                  data_root: str | None = None) -> dict[str, Any]:
    """Runs the whole DAG; returns the driver's result (status, run folder). A failed task
    is a UserError naming it, with its last log lines."""
    workdir = os.path.abspath(workdir)
    root = os.path.join(workdir, "root")
    if not os.access(kfp_python, os.X_OK):
        raise UserError(f"{kfp_python} is not a Python: make the KFP venv with `make "
                        "kfp-local` (it installs kubeflow/requirements-local.txt).")
    check_image(image)
    os.makedirs(root, exist_ok=True)
    with workdir_lock(workdir):
        data = data_under_root(data_root, root)
        cluster = kubeflow_runner.kubeflow_config(config, image, root, data, gpus=0)
        spec_path = os.path.join(workdir, "spec.yaml")
        kubeflow_runner.write_spec(kubeflow_runner.compile_spec(cluster), spec_path)
        log_path = os.path.join(workdir, "kfp_local.log")
        result = run_driver(kfp_python, spec_path, root, container_user(), log_path,
                            os.path.join(workdir, "kfp_local_result.json"))
    if result["status"] != "SUCCESS":
        raise UserError(f"Task {result.get('failed_task') or '(unknown)'} failed in its "
                        f"container; its last log lines:\n"
                        f"{last_lines(log_path, LOG_LINES_ON_FAILURE)}\nFull log: {log_path}")
    result["serving_dir"] = cluster.serving_dir
    return result
