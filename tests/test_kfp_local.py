"""The compiled spec run by Kubeflow Pipelines' own local runner (kfp.local DockerRunner),
every task in the CPU image: what a user would check against a BeamDagRunner run of the same
data, config and seeds, and the errors of a run that cannot go on (tests/containers.py says
what they need)."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from spoofdetect.config import load_config
from spoofdetect.errors import UserError
from spoofdetect.pipeline import kfp_local
from spoofdetect.pipeline.local_runner import workdir_lock
from tests.conftest import FAST
from tests.containers import IMAGE, KFP_PYTHON, missing, needs_image

TASKS = ("FeatureExtractor", "ImportSchemaGen", "StatisticsGen", "ExampleValidator",
         "WganPretrainer", "Trainer", "SpoofEvaluator", "Pusher")
# Same data, config, seeds, TensorFlow build and CPU: the two runs differ only in process
# layout (threads, the order Beam writes shards in), which moves float sums in the last bits.
METRIC_TOLERANCE = 1e-3
pytestmark = [pytest.mark.slow, needs_image(kfp=True)]


@pytest.fixture(scope="module")
def kfp_run(demo_root, tmp_path_factory):
    """The demo data (copied under the pipeline root, the one folder kfp.local mounts) run
    through kfp.local with the tests' FAST settings."""
    assert missing(kfp=True) is None, missing(kfp=True)
    workdir = str(tmp_path_factory.mktemp("kfp_local"))
    data = os.path.join(workdir, "root", "data")
    shutil.copytree(demo_root, data)
    result = kfp_local.run_kfp_local(load_config(None, FAST), IMAGE, workdir, KFP_PYTHON,
                                     data)
    return result


def _artifact_files(folder: str) -> set[str]:
    """Relative paths of an artifact's files, with the names that hold a time or host
    (TensorBoard event files, the Pusher's version folder) reduced to their kind."""
    found = set()
    for parent, _, files in os.walk(folder):
        for name in files:
            path = os.path.relpath(os.path.join(parent, name), folder)
            if "tfevents" in name:
                path = os.path.join(os.path.dirname(path), "events.out.tfevents")
            found.add(path)
    return found


def _local_artifact(pipeline_root: str, component: str, key: str) -> str:
    """The artifact of the fixture's own run: later tests in the shared workdir (the
    unblessed pipeline) add executions with higher ids, whatever order pytest runs them in."""
    folder = os.path.join(pipeline_root, component, key)
    first = min((name for name in os.listdir(folder) if name.isdigit()), key=int)
    return os.path.join(folder, first)


def test_every_task_succeeded_and_a_model_was_pushed(kfp_run):
    run_dir = kfp_run["run_dir"]
    assert kfp_run["status"] == "SUCCESS"
    for task in TASKS:
        with open(os.path.join(run_dir, task, "executor_output.json")) as handle:
            assert json.load(handle), f"{task} reported nothing"
    with open(os.path.join(run_dir, "SpoofEvaluator", "executor_output.json")) as handle:
        assert "blessing" in json.load(handle)["artifacts"]
    assert os.listdir(os.path.join(run_dir, "SpoofEvaluator", "blessing")) == ["BLESSED"]
    [version] = os.listdir(kfp_run["serving_dir"])
    assert os.path.exists(os.path.join(kfp_run["serving_dir"], version, "saved_model.pb"))
    with open(os.path.join(run_dir, "Pusher", "executor_output.json")) as handle:
        pushed = json.load(handle)["artifacts"]["pushed_model"]["artifacts"][0]["metadata"]
    assert pushed["pushed"] == 1 and pushed["pushed_destination"].endswith(version)


@pytest.mark.parametrize(("component", "key"), [
    ("FeatureExtractor", "examples"), ("StatisticsGen", "statistics"),
    ("ExampleValidator", "anomalies"), ("WganPretrainer", "model"), ("Trainer", "model"),
    ("Trainer", "model_run"), ("SpoofEvaluator", "evaluation"), ("SpoofEvaluator", "blessing")])
def test_artifacts_hold_the_same_files_as_the_local_runners(kfp_run, pipeline_run, component,
                                                            key):
    on_kfp = _artifact_files(os.path.join(kfp_run["run_dir"], component, key))
    local = _artifact_files(_local_artifact(pipeline_run.pipeline_root, component, key))
    assert on_kfp == local


def test_the_evaluation_agrees_with_the_local_runner(kfp_run, pipeline_run):
    def metrics(folder: str) -> dict:
        with open(os.path.join(folder, "metrics.json")) as handle:
            return json.load(handle)

    on_kfp = metrics(os.path.join(kfp_run["run_dir"], "SpoofEvaluator", "evaluation"))
    local = metrics(_local_artifact(pipeline_run.pipeline_root, "SpoofEvaluator",
                                    "evaluation"))
    assert on_kfp["num_clips"] == local["num_clips"] > 0
    assert on_kfp["blessing"] == local["blessing"]
    kfp_numbers, local_numbers = _numbers(on_kfp), _numbers(local)
    assert set(kfp_numbers) == set(local_numbers)
    assert {"clip.eer", "clip.auc", "clip.min_tdcf", "clip.cllr", "clip.act_dcf",
            "clip.at_probability_0_5.accuracy"} <= set(local_numbers)
    for key, value in local_numbers.items():
        assert kfp_numbers[key] == pytest.approx(value, abs=METRIC_TOLERANCE), key


def _numbers(tree: dict, prefix: str = "") -> dict[str, float]:
    """The numeric leaves of the metrics, by dotted path ('clip.eer')."""
    found = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            found.update(_numbers(value, f"{prefix}{key}."))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            found[prefix + key] = value
    return found


def test_a_failing_task_is_named_with_its_last_log_lines(tmp_path):
    empty = tmp_path / "root" / "empty"
    (empty / "train").mkdir(parents=True)
    with pytest.raises(UserError) as raised:
        kfp_local.run_kfp_local(load_config(None, FAST), IMAGE, str(tmp_path), KFP_PYTHON,
                                str(empty))
    message = str(raised.value)
    assert "Task FeatureExtractor failed in its container" in message
    assert "its last log lines" in message and "kfp_local.log" in message


def test_a_second_run_on_the_same_workdir_is_refused(tmp_path):
    with workdir_lock(str(tmp_path)):
        with pytest.raises(UserError, match="Another pipeline run is using"):
            kfp_local.run_kfp_local(load_config(None, FAST), IMAGE, str(tmp_path),
                                    KFP_PYTHON)


def test_a_missing_image_names_make_image_cpu(tmp_path):
    with pytest.raises(UserError, match="make image-cpu"):
        kfp_local.run_kfp_local(load_config(None, FAST), "spoof-detection:no-such-tag",
                                str(tmp_path), KFP_PYTHON)


def test_no_docker_engine_says_how_to_start_one(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "spoofdetect.cli", "kfp-local", "--workdir", str(tmp_path),
         "--kfp-python", KFP_PYTHON],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"})
    assert result.returncode != 0
    assert "No Docker engine is reachable" in result.stderr


def test_a_dataset_outside_the_pipeline_root_is_refused(tmp_path, demo_root):
    with pytest.raises(UserError, match=r"kfp\.local mounts only the pipeline root"):
        kfp_local.run_kfp_local(load_config(None, FAST), IMAGE, str(tmp_path), KFP_PYTHON,
                                demo_root)
