"""Lineage and runs read back from ML Metadata through the CLI: on the SQLite store of the
demo run, and on a real MariaDB server (CI starts one: .ci/mariadb)."""

import json
import os
import re
import uuid

import pytest
from ml_metadata.proto import metadata_store_pb2

from spoofdetect.cli import main
from spoofdetect.components import code_version
from spoofdetect.config import load_config
from spoofdetect.pipeline.local_runner import run_local
from spoofdetect.pipeline.metadata import latest_run, open_store, run_outputs
from tests.conftest import FAST

# Every test reads the stores of whole pipeline runs.
pytestmark = pytest.mark.slow

MYSQL = os.environ.get("SPOOFDETECT_TEST_MYSQL", "")
# CI sets SPOOFDETECT_REQUIRE_MYSQL so that a missing server fails instead of skipping.
needs_mysql = pytest.mark.skipif(
    not MYSQL and not os.environ.get("SPOOFDETECT_REQUIRE_MYSQL"),
    reason="no MySQL/MariaDB server: set SPOOFDETECT_TEST_MYSQL (see .ci/mariadb)")


def lineage_of(metadata: str, capsys, *extra) -> str:
    capsys.readouterr()
    assert main(["lineage", "--metadata", metadata, *extra]) == 0
    return capsys.readouterr().out


def check_text_lineage(text: str, data_root: str) -> None:
    # From the pushed model back to the dataset, each stage once, in walking order.
    order = [text.index(marker) for marker in (
        "PushedModel #", "<- Pusher", "<- Trainer", "<- FeatureExtractor",
        "<- WganPretrainer", "<- SpoofEvaluator")]
    assert order == sorted(order)
    assert f"data_root: {data_root}" in text
    assert "num_clips: 16" in text and "num_rejected: 0" in text
    assert re.search(r"validation: no anomalies \(ExampleAnomalies #\d+", text)
    assert '"epochs": 1' in text and "custom_config.classifier" in text  # hyperparameters
    # The code that made the examples and the critic, and that the Trainer was compiled with.
    version = code_version.current()
    assert text.count(f"code_version: {version}") >= 2
    assert f"custom_config.code_version: {version}" in text
    assert "blessed: 1" in text and re.search(r"\beer: [\d.]+", text)
    assert "min_tdcf:" in text and "also output ModelEvaluation" in text
    assert "COMPLETE" in text and "UTC .." in text


def test_lineage_text_json_and_dot_on_sqlite(pipeline_run, demo_root, capsys):
    metadata = pipeline_run.metadata_path
    check_text_lineage(lineage_of(metadata, capsys), demo_root)
    walked = json.loads(lineage_of(metadata, capsys, "--format", "json"))
    types = {execution["type"] for execution in walked["executions"]}
    assert {"Pusher", "Trainer", "SpoofEvaluator", "WganPretrainer", "FeatureExtractor",
            "ImportSchemaGen"} <= types
    artifacts = {a["id"]: a for a in walked["artifacts"]}
    assert artifacts[walked["start_artifact"]]["type"] == "PushedModel"
    assert all(edge["artifact"] in artifacts for edge in walked["edges"])
    dot = lineage_of(metadata, capsys, "--format", "dot")
    assert dot.startswith("digraph lineage {") and dot.rstrip().endswith("}")
    assert dot.count(" -> ") == len(walked["edges"])


def test_lineage_of_a_given_pushed_version(pipeline_run, capsys):
    version = max(os.listdir(pipeline_run.push_destination), key=int)
    destination = os.path.join(pipeline_run.push_destination, version)
    text = lineage_of(pipeline_run.metadata_path, capsys, "--model", destination)
    assert f"pushed_destination: {destination}" in text
    assert main(["lineage", "--metadata", pipeline_run.metadata_path, "--model",
                 "/no/such/model"]) == 2
    assert "No pushed model or model artifact" in capsys.readouterr().err


def test_runs_lists_outcome_and_headline_metrics(pipeline_run, capsys):
    capsys.readouterr()
    assert main(["runs", "--metadata", pipeline_run.metadata_path, "--format", "json"]) == 0
    runs = json.loads(capsys.readouterr().out)
    first = runs[0]
    assert first["outcome"] == "succeeded" and first["blessed"] is True
    assert 0.0 <= first["eer"] <= 1.0 and first["pushed_to"].startswith(
        pipeline_run.push_destination)
    assert main(["runs", "--metadata", pipeline_run.metadata_path]) == 0
    assert "succeeded" in capsys.readouterr().out


def test_missing_store_and_unreachable_server_are_clear_errors(tmp_path, capsys):
    assert main(["runs", "--metadata", str(tmp_path / "none.sqlite")]) == 2
    assert "No ML Metadata store at" in capsys.readouterr().err
    assert main(["runs", "--metadata", "mysql://someone:secret@127.0.0.1:1/lineage_db"]) == 2
    err = capsys.readouterr().err
    assert "database 'lineage_db' on 127.0.0.1:1" in err and "secret" not in err


@needs_mysql
def test_demo_pipeline_on_mariadb_and_lineage_through_the_cli(demo_root, tmp_path, capsys):
    url = f"{MYSQL.rstrip('/')}/spoofdetect_test_{uuid.uuid4().hex[:8]}"
    config = load_config(None, [*FAST, f"metadata_store={url}"], data_root=demo_root,
                         workdir=str(tmp_path))
    assert run_local(config) == 0
    assert not os.path.exists(config.metadata_path)  # nothing went to SQLite
    check_text_lineage(lineage_of(url, capsys), demo_root)
    assert main(["runs", "--metadata", url, "--format", "json"]) == 0
    [run] = json.loads(capsys.readouterr().out)
    assert run["outcome"] == "succeeded" and run["blessed"] is True


def test_a_cached_run_reports_its_own_outputs_not_the_newest(tmp_path):
    """Run 1 trains model A, run 2 model B, run 3 reuses A from the cache while its Resolver
    brings B in as the baseline: run 3's trained model is A, though B is newer."""
    store = open_store(str(tmp_path / "metadata.sqlite"))
    model_type = store.put_artifact_type(metadata_store_pb2.ArtifactType(name="Model"))
    trainer = store.put_execution_type(metadata_store_pb2.ExecutionType(
        name="tfx.components.trainer.component.Trainer"))
    resolver = store.put_execution_type(metadata_store_pb2.ExecutionType(
        name="tfx.dsl.components.common.resolver.Resolver"))
    run_type = store.put_context_type(metadata_store_pb2.ContextType(name="pipeline_run"))
    Event, Execution = metadata_store_pb2.Event, metadata_store_pb2.Execution

    def run(name: str, *steps: tuple[int, int, metadata_store_pb2.Artifact, int]) -> list[int]:
        [context] = store.put_contexts([metadata_store_pb2.Context(type_id=run_type, name=name)])
        ids = []
        for execution_type, state, artifact, event_type in steps:
            _, [artifact_id], _ = store.put_execution(
                Execution(type_id=execution_type, last_known_state=state),
                [(artifact, Event(type=event_type))],
                [metadata_store_pb2.Context(id=context, type_id=run_type, name=name)])
            ids.append(artifact_id)
        return ids

    new_model = metadata_store_pb2.Artifact(type_id=model_type, uri="/root/Trainer/model/1")
    [model_a] = run("1", (trainer, Execution.COMPLETE, new_model, Event.OUTPUT))
    [model_b] = run("2", (trainer, Execution.COMPLETE,
                          metadata_store_pb2.Artifact(type_id=model_type,
                                                      uri="/root/Trainer/model/2"),
                          Event.OUTPUT))
    [a, b] = store.get_artifacts_by_id([model_a, model_b])
    run("3", (resolver, Execution.COMPLETE, b, Event.INTERNAL_OUTPUT),
        (trainer, Execution.CACHED, a, Event.OUTPUT))
    latest = latest_run(store)
    assert latest.name == "3"
    assert run_outputs(store, latest)[("Trainer", "Model")].id == model_a
    assert not [key for key in run_outputs(store, latest) if key[0] == "Resolver"]
