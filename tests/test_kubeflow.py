"""Kubeflow: the compiled KFP v2 spec (GPUs, node placement, the committed example), the
image's entrypoint against what the open-source launcher sends, the compiled spec executed
task by task on this machine, and `spoofdetect submit`'s errors."""

import http.server
import json
import os
import subprocess
import sys
import threading

import pytest
import yaml
from kfp.client.client import _extract_pipeline_yaml
from ml_metadata.metadata_store import metadata_store
from tfx import v1 as tfx

from spoofdetect.cli import main
from spoofdetect.config import COMPILED_SPEC, load_config
from spoofdetect.pipeline import kubeflow_entrypoint, kubeflow_runner
from spoofdetect.pipeline.schema import packaged_schema_path
from tests.conftest import FAST
from tests.kfp_launcher import run_spec

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMMITTED = os.path.join(REPO, COMPILED_SPEC)
# The arguments the committed example was compiled with (see kubeflow/README.md).
EXAMPLE_ARGS = ["--image", "registry.example.com/spoof-detection:0.1.0",
                "--pipeline-root", "gs://example-bucket/spoof-detection",
                "--data-root", "gs://example-bucket/datasets/spoof",
                "--set", "kubeflow.gpu_node_selector={cloud.google.com/gke-accelerator: "
                         "nvidia-l4}"]


def compile_to(path, *extra) -> list[dict]:
    assert main(["compile", *EXAMPLE_ARGS, "--output", str(path), *extra]) == 0
    return kubeflow_runner.read_spec(str(path))


def setting_names(value: object, prefix: str = "") -> list[str]:
    """The dotted names of every setting in a parameter's value: JSON objects, also those
    serialised inside strings (as the config's sections are), opened all the way down."""
    if isinstance(value, str) and value.startswith("{"):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return []
    if not isinstance(value, dict):
        return []
    return [name for key, item in sorted(value.items())
            for name in [prefix + key, *setting_names(item, f"{prefix}{key}.")]]


def structure(documents: list[dict]) -> dict:
    """What must not change unnoticed: tasks and their wiring, artifact and parameter types,
    the names of the settings each task is given (a setting added to or removed from the
    config must reach the example), containers (command, image, flags, resources) and the
    Kubernetes platform section. Config values may change without recompiling the example."""
    spec = documents[0]
    executors = spec["deploymentSpec"]["executors"]
    tasks = spec["root"]["dag"]["tasks"]
    return {
        "tasks": {name: (task["componentRef"]["name"], sorted(task.get("dependentTasks", [])),
                         sorted(task.get("inputs", {}).get("artifacts", {})),
                         sorted(task.get("inputs", {}).get("parameters", {})))
                  for name, task in tasks.items()},
        "settings": {name: {parameter: setting_names(value.get("runtimeValue", {})
                                                     .get("constant"))
                            for parameter, value in task.get("inputs", {})
                            .get("parameters", {}).items()}
                     for name, task in tasks.items()},
        "components": {name: kubeflow_runner.artifact_types(component)
                       for name, component in spec["components"].items()},
        "containers": {label: (e["container"]["command"], e["container"]["image"],
                               [a for a in e["container"]["args"] if a.startswith("--")],
                               e["container"].get("resources"))
                       for label, e in executors.items()},
        "platform": documents[1:],
        "root": spec["defaultPipelineRoot"], "schema": spec["schemaVersion"],
    }


def test_compile_matches_the_committed_example(tmp_path, capsys):
    documents = compile_to(tmp_path / "spec.yaml")
    with open(COMMITTED) as handle:
        committed = [d for d in yaml.safe_load_all(handle) if d]
    assert structure(documents) == structure(committed), (
        "the compiled spec changed: recompile kubeflow/spoof_detection_pipeline.yaml with "
        "the command in kubeflow/README.md")
    out = capsys.readouterr().out
    assert "Trainer" in out and "1 x nvidia.com/gpu" in out


def test_training_steps_ask_for_gpus_and_gpu_nodes(tmp_path):
    documents = compile_to(tmp_path / "spec.yaml", "--gpus", "2")
    executors = documents[0]["deploymentSpec"]["executors"]
    gpu_steps = {label: e["container"]["resources"]["accelerator"]
                 for label, e in executors.items() if "resources" in e["container"]}
    assert gpu_steps == {label: {"type": "nvidia.com/gpu", "count": "2"}
                         for label in ("Trainer_executor", "WganPretrainer_executor")}
    placement = documents[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert set(placement) == set(gpu_steps)
    assert placement["Trainer_executor"]["nodeSelector"] == {
        "labels": {"cloud.google.com/gke-accelerator": "nvidia-l4"}}
    assert placement["Trainer_executor"]["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    # kfp's own client reads both documents.
    package = _extract_pipeline_yaml(str(tmp_path / "spec.yaml"))
    assert package.pipeline_spec.default_pipeline_root == "gs://example-bucket/spoof-detection"
    assert "Trainer_executor" in str(package.platform_spec)
    # The feature step's Beam options come from the config.
    beam = compile_to(tmp_path / "beam.yaml", "--set",
                      "beam_pipeline_args=[--runner=DataflowRunner,--region=europe-west4]")
    args = beam[0]["deploymentSpec"]["executors"]["FeatureExtractor_executor"]["container"]
    assert "--runner=DataflowRunner" in args["args"]


def test_cpu_only_spec_has_no_gpu_requests_or_placement(tmp_path):
    documents = compile_to(tmp_path / "spec.yaml", "--gpus", "0")
    assert len(documents) == 1
    assert not any("resources" in e["container"]
                   for e in documents[0]["deploymentSpec"]["executors"].values())


def test_entrypoint_repairs_types_and_object_store_uris(tmp_path):
    executor_input = {
        "inputs": {"artifacts": {"examples": {"artifacts": [
            {"type": {}, "uri": "minio://mlpipeline/v2/artifacts/r/FeatureExtractor/examples"}]}}},
        "outputs": {"artifacts": {"model": {"artifacts": [
            {"type": {"schemaTitle": "system.Model"}, "uri": "s3://bucket/r/Trainer/model"}]},
            "model_run": {"artifacts": [
                {"type": {"instanceSchema": "title: tfx.ModelRun\ntype: object\n"},
                 "uri": "gs://bucket/r/Trainer/model_run"}]}},
            "outputFile": str(tmp_path / "out.json")}}
    declared = {"inputs": {"examples": "tfx.Examples"},
                "outputs": {"model": "tfx.Model", "model_run": "tfx.ModelRun"}}
    originals = kubeflow_entrypoint.repair_executor_input(executor_input, declared)
    [examples] = executor_input["inputs"]["artifacts"]["examples"]["artifacts"]
    assert examples == {"type": {"schemaTitle": "tfx.Examples"},
                        "uri": "/minio/mlpipeline/v2/artifacts/r/FeatureExtractor/examples"}
    [model] = executor_input["outputs"]["artifacts"]["model"]["artifacts"]
    assert model["type"] == {"schemaTitle": "tfx.Model"}
    assert model["uri"] == "/s3/bucket/r/Trainer/model"
    [run] = executor_input["outputs"]["artifacts"]["model_run"]["artifacts"]
    assert run["uri"] == "gs://bucket/r/Trainer/model_run"  # TensorFlow opens gs:// itself
    assert "instanceSchema" in run["type"]  # a TFX type already: left as it is
    (tmp_path / "out.json").write_text(json.dumps({"artifacts": {"model": {"artifacts": [
        {"uri": "/s3/bucket/r/Trainer/model", "metadata": {"a": 1}}]}}}))
    kubeflow_entrypoint.restore_uris(str(tmp_path / "out.json"), originals)
    restored = json.loads((tmp_path / "out.json").read_text())
    assert restored["artifacts"]["model"]["artifacts"][0]["uri"] == "s3://bucket/r/Trainer/model"


def _schema_task_command(spec_path, tmp_path, module: str | None = None) -> list[str]:
    """The ImportSchemaGen container command with an ExecutorInput as the open-source
    launcher builds it (artifact types without TFX's instance schema)."""
    spec = kubeflow_runner.read_spec(str(spec_path))[0]
    container = spec["deploymentSpec"]["executors"]["ImportSchemaGen_executor"]["container"]
    parameters = spec["root"]["dag"]["tasks"]["ImportSchemaGen"]["inputs"]["parameters"]
    executor_input = {
        "inputs": {"parameterValues": {k: v["runtimeValue"]["constant"]
                                       for k, v in parameters.items()}},
        "outputs": {"artifacts": {"schema": {"artifacts": [
            {"name": "schema", "type": {}, "uri": str(tmp_path / "schema_out")}]}},
            "outputFile": str(tmp_path / "output" / "executor_output.json")}}
    args = [json.dumps(executor_input) if a == "{{$}}" else a for a in container["args"]]
    if module:  # TFX's own runner does not know the entrypoint's --artifact_types flag
        flag = args.index(kubeflow_entrypoint.ARTIFACT_TYPES_FLAG)
        del args[flag:flag + 2]
        return [sys.executable, "-m", module, *args]
    return [sys.executable, *container["command"][1:], *args]


@pytest.mark.slow  # two executor runs in child processes
def test_stock_tfx_runner_fails_on_launcher_input_and_the_entrypoint_repairs_it(tmp_path):
    spec_path = tmp_path / "spec.yaml"
    compile_to(spec_path, "--set", f"kubeflow.schema_file={packaged_schema_path()}")
    stock = subprocess.run(_schema_task_command(
        spec_path, tmp_path, "tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor"),
        capture_output=True, text=True, timeout=300)
    assert stock.returncode != 0
    assert "title" in stock.stderr  # TFX cannot tell the artifact's type
    ours = subprocess.run(_schema_task_command(spec_path, tmp_path), capture_output=True,
                          text=True, timeout=300)
    assert ours.returncode == 0, ours.stderr[-3000:]
    assert (tmp_path / "schema_out" / "schema.pbtxt").exists()
    output = json.loads((tmp_path / "output" / "executor_output.json").read_text())
    assert output["artifacts"]["schema"]["artifacts"][0]["uri"] == str(tmp_path / "schema_out")


def _relative_files(folder: str) -> set[str]:
    found = set()
    for root, _, names in os.walk(folder):
        for name in names:
            # Numbered shards and TensorBoard event files carry run-specific names.
            relative = os.path.relpath(os.path.join(root, name), folder)
            found.add(relative.split("events.out")[0] if "events.out" in relative else relative)
    return found


@pytest.mark.slow
def test_compiled_spec_runs_task_by_task_like_the_local_runner(pipeline_run, demo_root,
                                                               tmp_path):
    """Every task with its artifacts in the open-source launcher's form (types without TFX's
    instance schema), which KFP's local runner does not reproduce: it sends the declared
    types (tests/test_kfp_local.py runs the spec there, in the image)."""
    root = tmp_path / "root"
    sets = [f"--set={override}" for override in
            [*FAST, f"kubeflow.schema_file={packaged_schema_path()}",
             "beam_pipeline_args=[--direct_num_workers=1]"]]
    assert main(["compile", "--image", "unused-here", "--pipeline-root", str(root),
                 "--data-root", demo_root, "--output", str(tmp_path / "spec.yaml"),
                 *sets]) == 0
    produced = run_spec(str(tmp_path / "spec.yaml"), str(tmp_path / "launcher"))

    # Every output of every component, with the files the local runner's outputs have.
    store = metadata_store.MetadataStore(
        tfx.orchestration.metadata.sqlite_metadata_connection_config(
            pipeline_run.metadata_path))
    local = {}
    for artifact in store.get_artifacts():
        component, key = artifact.uri.split(os.sep)[-3:-1]
        if component in produced:
            local.setdefault((component, key), _relative_files(artifact.uri))
    assert set(local) == {(task, key) for task, outputs in produced.items() for key in outputs}
    for (component, key), files in local.items():
        assert _relative_files(produced[component][key]["uri"]) == files, (component, key)

    # Properties reached the executor outputs the launcher records in ML Metadata.
    examples = produced["FeatureExtractor"]["examples"]["metadata"]
    assert examples["num_clips"] == 16 and json.loads(examples["split_names"]) == [
        "train", "dev", "eval"]
    blessing = produced["SpoofEvaluator"]["blessing"]["metadata"]
    assert blessing["blessed"] == 1
    pushed = produced["Pusher"]["pushed_model"]["metadata"]
    assert pushed["pushed"] == 1
    assert os.path.exists(os.path.join(pushed["pushed_destination"], "saved_model.pb"))
    assert pushed["pushed_destination"].startswith(str(root / "serving"))


def test_submit_dry_run_describes_and_sends_nothing(capsys):
    assert main(["submit", "--host", "http://127.0.0.1:9", "--spec", COMMITTED,
                 "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "Dry run: would submit" in out and "WganPretrainer" in out


def test_submit_to_an_unreachable_host_is_one_clear_message(capsys):
    assert main(["submit", "--host", "http://127.0.0.1:9", "--spec", COMMITTED]) == 2
    err = capsys.readouterr().err
    assert "Cannot reach Kubeflow Pipelines at http://127.0.0.1:9" in err
    assert "Traceback" not in err


class _Refusing(http.server.BaseHTTPRequestHandler):
    status = 401

    def _answer(self) -> None:
        body = json.dumps({"error": "refused by the test server", "code": 16}).encode()
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *args) -> None:
        pass


# Without --namespace kfp.Client first polls the health endpoint (about 20 s of retries);
# with one it goes straight to the experiment and upload calls. Both paths are covered.
@pytest.mark.parametrize("status, expected, namespace", [
    pytest.param(401, "not authenticated", [], marks=pytest.mark.slow),
    (403, "lack permission", ["--namespace", "team-a"]),
    (400, "refused the pipeline spec", ["--namespace", "team-a"])])
def test_submit_reports_what_the_server_answered(status, expected, namespace, capsys):
    handler = type("Handler", (_Refusing,), {"status": status})
    server = http.server.HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        host = f"http://127.0.0.1:{server.server_port}"
        assert main(["submit", "--host", host, "--spec", COMMITTED, *namespace]) == 2
    finally:
        server.shutdown()
    err = capsys.readouterr().err
    assert f"answered HTTP {status}" in err and expected in err
    assert "refused by the test server" in err


def test_compile_needs_an_image(capsys):
    assert main(["compile", "--image", "", "--pipeline-root", "gs://b/r",
                 "--data-root", "gs://b/d"]) == 2
    assert "container image" in capsys.readouterr().err


def test_a_file_that_is_not_a_spec_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "x.yaml").write_text("just: text\n")
    assert main(["submit", "--host", "http://h", "--spec", str(tmp_path / "x.yaml"),
                 "--dry-run"]) == 2
    assert "not a KFP v2 pipeline spec" in capsys.readouterr().err


def test_config_values_reach_the_kubeflow_config():
    config = load_config(None, ["kubeflow.gpus=3", "kubeflow.training_memory_gb=30"])
    cluster = kubeflow_runner.kubeflow_config(config, "img", "gs://b/root", "gs://b/data")
    assert cluster.kubeflow.gpus == 3 and cluster.pipeline_root == "gs://b/root"
    assert cluster.push_destination == "gs://b/root/serving"
    assert cluster.evaluation.baseline == "serving_dir"


def test_a_setting_missing_from_the_committed_example_is_caught(tmp_path):
    documents = compile_to(tmp_path / "spec.yaml")
    config = json.loads(trainer_config(documents)["constant"])
    assert "classifier.nuisance_directions" in setting_names(config)
    classifier = json.loads(config["classifier"])

    def with_classifier(settings: dict) -> list[dict]:
        changed = json.loads(json.dumps(documents))
        trainer_config(changed)["constant"] = json.dumps({**config,
                                                         "classifier": json.dumps(settings)})
        return changed

    missing = {key: value for key, value in classifier.items() if key != "nuisance_directions"}
    assert structure(with_classifier(missing)) != structure(documents)
    # A value alone is not a change of structure.
    assert structure(with_classifier({**classifier, "nuisance_directions": 8})) == structure(
        documents)


def trainer_config(documents: list[dict]) -> dict:
    """The Trainer's custom_config parameter of a compiled spec (its value under 'constant')."""
    return documents[0]["root"]["dag"]["tasks"]["Trainer"]["inputs"]["parameters"][
        "custom_config"]["runtimeValue"]
