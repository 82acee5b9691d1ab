"""The local pipeline killed with SIGKILL in each stage and started again: it completes,
reuses what finished from TFX's cache, resumes stage 1 from its checkpoint, and ends with the
metrics of an uninterrupted run with the same seeds."""

import glob
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable

import pytest
from ml_metadata.proto import metadata_store_pb2

from spoofdetect.config import load_config
from spoofdetect.pipeline.metadata import open_store
from tests.conftest import FAST

pytestmark = pytest.mark.slow

# Stage 1 with two steps per epoch and a checkpoint after every step, so that it can be
# killed mid-epoch; the features in chunks of four files, so Beam can be killed mid-job.
SETTINGS = [*FAST, "gan.epochs=2", "gan.batch_size=2", "gan.critic_steps_per_generator_step=1",
            "gan.checkpoint_every_steps=1", "features.batch_size=4"]


def start(demo_root: str, workdir: str) -> subprocess.Popen:
    log = open(workdir + ".log", "a")  # the child process writes to it
    return subprocess.Popen(
        [sys.executable, "-m", "spoofdetect.cli", "run", "--data-root", demo_root,
         "--workdir", workdir, *[f"--set={setting}" for setting in SETTINGS]],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def log_tail(workdir: str) -> str:
    """The end of a run's log without TensorFlow's warnings, which can bury the error."""
    with open(workdir + ".log") as handle:
        lines = [line for line in handle if "WARNING tensorflow" not in line]
    return "".join(lines)[-3000:]


def found(workdir: str, pattern: str) -> bool:
    return bool(glob.glob(os.path.join(workdir, "pipeline_root", pattern)))


def kill_when(demo_root: str, workdir: str, stage: str, reached: Callable[[], bool]) -> None:
    """Runs the pipeline and kills it (all its processes) as soon as `reached()`."""
    process = start(demo_root, workdir)
    while process.poll() is None:
        if reached():
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            return
        time.sleep(0.02)
    raise AssertionError(f"the run ended (exit {process.returncode}) before {stage}:\n"
                         f"{log_tail(workdir)}")


def run_to_the_end(demo_root: str, workdir: str) -> None:
    process = start(demo_root, workdir)
    assert process.wait(timeout=900) == 0, log_tail(workdir)


def final_metrics(workdir: str) -> dict:
    [evaluation] = glob.glob(os.path.join(workdir, "pipeline_root", "SpoofEvaluator",
                                          "evaluation", "*", "metrics.json"))
    with open(evaluation) as handle:
        clip = json.load(handle)["clip"]
    return {key: clip[key] for key in ("eer", "min_tdcf", "min_tdcf_2021", "auc", "brier")}


def test_killed_in_every_stage_and_rerun_ends_like_an_uninterrupted_run(demo_root, tmp_path):
    reference = str(tmp_path / "reference")
    os.makedirs(reference)
    run_to_the_end(demo_root, reference)

    workdir = str(tmp_path / "killed")
    os.makedirs(workdir)
    stages = [
        ("feature extraction mid-Beam",
         lambda: found(workdir, "FeatureExtractor/examples/*/_summary/chunk-*.json")),
        # TensorFlow's `checkpoint` state file is written last (and atomically): only then
        # is ckpt-1 whole. Killed between ckpt-1.index and it, stage 1 rightly starts over.
        ("pre-training mid-epoch",
         lambda: found(workdir, "WganPretrainer/.checkpoints/*/checkpoint")),
        # The Trainer's run folder is made as its execution starts; the default's L-BFGS
        # heads write nothing else before they are fitted.
        ("fine-tuning", lambda: found(workdir, "Trainer/model_run/*")),
        ("evaluation", lambda: found(workdir, "SpoofEvaluator/evaluation/*")),
    ]
    for stage, reached in stages:
        kill_when(demo_root, workdir, stage, reached)
    run_to_the_end(demo_root, workdir)

    assert final_metrics(workdir) == pytest.approx(final_metrics(reference), abs=1e-6)
    store = open_store(load_config(None, [], workdir=workdir).metadata_path)
    [last_run] = sorted(store.get_contexts_by_type("pipeline_run"), key=lambda c: c.id)[-1:]
    types = {t.id: t.name.rsplit(".", 1)[-1] for t in store.get_execution_types()}
    states = {types[e.type_id]: metadata_store_pb2.Execution.State.Name(e.last_known_state)
              for e in store.get_executions_by_context(last_run.id)}
    cached = {"FeatureExtractor", "StatisticsGen", "ImportSchemaGen", "ExampleValidator",
              "WganPretrainer", "Trainer"}
    assert {name for name, state in states.items() if state == "CACHED"} == cached
    assert states["SpoofEvaluator"] == states["Pusher"] == "COMPLETE"
    # Stage 1 went on from the checkpoint its killed run left.
    [pretrained] = [a for a in store.get_artifacts_by_type("Model")
                    if "/WganPretrainer/" in a.uri and a.state == a.LIVE and os.path.exists(
                        os.path.join(a.uri, "Format-Serving", "critic.keras"))]
    assert pretrained.custom_properties["resumed_from_step"].int_value >= 1
    assert os.listdir(os.path.join(workdir, "serving"))
