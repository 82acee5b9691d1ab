"""The TFX pipeline on real runners with a real SQLite ML Metadata store."""

import json
import os

import pytest
import tensorflow as tf
import tensorflow_data_validation as tfdv
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2
from tfx import v1 as tfx

from spoofdetect.config import load_config
from spoofdetect.errors import UserError
from spoofdetect.pipeline.local_runner import latest_run_summary, run_local
from spoofdetect.pipeline.schema import load_schema, packaged_schema_path, schema_path_for

pytestmark = pytest.mark.slow

# Seconds, not minutes: narrow networks, one epoch of each stage.
FAST = ["gan.epochs=1", "gan.batch_size=4", "gan.critic_widths=[8,16,32]",
        "gan.generator_widths=[32,16,8,8]", "classifier.epochs=1", "classifier.batch_size=4"]


def store_for(config):
    return metadata_store.MetadataStore(
        tfx.orchestration.metadata.sqlite_metadata_connection_config(config.metadata_path))


@pytest.fixture(scope="module")
def pipeline_run(demo_root, tmp_path_factory):
    config = load_config(None, FAST, data_root=demo_root,
                         workdir=str(tmp_path_factory.mktemp("workdir")))
    assert run_local(config, runner="beam") == 0
    return config


def test_examples_artifact_carries_counts_and_rejects_in_mlmd(pipeline_run):
    store = store_for(pipeline_run)
    [examples] = store.get_artifacts_by_type("Examples")
    props = {name: value.int_value if value.HasField("int_value") else value.string_value
             for name, value in examples.custom_properties.items()}
    assert props["num_clips"] == 16 and props["num_rejected"] == 0
    assert props["train_real_clips"] == 4 and props["eval_fake_examples"] == 2
    assert json.loads(examples.properties["split_names"].string_value) == [
        "train", "dev", "eval"]
    assert props["report_uri"].startswith(examples.uri)
    assert json.loads(props["rejected_files"]) == []
    assert props["payload_format"] == "FORMAT_TF_EXAMPLE"
    executions = store.get_executions()
    types = {store.get_execution_types_by_id([e.type_id])[0].name for e in executions}
    assert any("FeatureExtractor" in name for name in types)
    assert any("ExampleValidator" in name for name in types)


def test_statistics_and_validation_ran_against_the_schema(pipeline_run):
    summary = latest_run_summary(pipeline_run)
    assert summary["anomalies"] == {}
    store = store_for(pipeline_run)
    [schema] = store.get_artifacts_by_type("Schema")
    imported = load_schema(os.path.join(schema.uri, "schema.pbtxt"))
    assert imported == load_schema(packaged_schema_path())
    [statistics] = store.get_artifacts_by_type("ExampleStatistics")
    stats = tfdv.load_stats_binary(os.path.join(statistics.uri, "Split-train",
                                                "FeatureStats.pb"))
    assert stats.datasets[0].num_examples == 8


def test_second_run_reuses_the_cache(pipeline_run):
    store = store_for(pipeline_run)
    before = len(store.get_artifacts_by_type("Examples"))
    assert run_local(pipeline_run) == 0
    assert len(store.get_artifacts_by_type("Examples")) == before
    states = [e.last_known_state for e in store.get_executions()]
    assert states.count(metadata_store_pb2.Execution.CACHED) == 6


def test_schema_catches_examples_of_the_wrong_shape(pipeline_run, tmp_path):
    schema = load_schema(packaged_schema_path())
    store = store_for(pipeline_run)
    [statistics] = store.get_artifacts_by_type("ExampleStatistics")
    stats = tfdv.load_stats_binary(os.path.join(statistics.uri, "Split-dev",
                                                "FeatureStats.pb"))
    assert not tfdv.validate_statistics(stats, schema).anomaly_info
    wrong = load_config(None, ["features.n_mels=64"]).features
    fitted = load_schema(schema_path_for(wrong, str(tmp_path)))
    assert "log_mel" in tfdv.validate_statistics(stats, fitted).anomaly_info


def test_both_training_stages_ran_and_recorded_their_settings(pipeline_run):
    store = store_for(pipeline_run)
    [pretrained] = [a for a in store.get_artifacts_by_type("Model")
                    if "/WganPretrainer/" in a.uri]
    assert pretrained.custom_properties["steps"].int_value == 1
    assert pretrained.custom_properties["device"].string_value == "CPU"
    assert os.path.exists(os.path.join(pretrained.uri, "Format-Serving", "critic.keras"))
    [trainer_type] = [t for t in store.get_execution_types() if t.name.endswith("Trainer")]
    [trainer_run] = [e for e in store.get_executions_by_type(trainer_type.name)
                     if e.last_known_state == metadata_store_pb2.Execution.COMPLETE]
    custom = json.loads(trainer_run.custom_properties["custom_config"].string_value)
    assert json.loads(custom["gan"])["epochs"] == 1
    assert json.loads(custom["classifier"])["from_scratch"] is False
    summary = latest_run_summary(pipeline_run)
    assert 0.0 <= summary["classifier"]["best_dev_auc"] <= 1.0
    saved = tf.saved_model.load(os.path.join(summary["model_uri"], "Format-Serving"))
    assert set(saved.signatures) == {"serving_default", "from_features", "from_audio_bytes"}


def test_from_scratch_ablation_on_the_local_dag_runner(demo_root, tmp_path):
    config = load_config(None, [*FAST, "classifier.from_scratch=true"], data_root=demo_root,
                         workdir=str(tmp_path), beam_pipeline_args=["--direct_num_workers=1"])
    assert run_local(config, runner="local") == 0
    summary = latest_run_summary(config)
    assert summary["num_clips"] == 16
    assert summary["pretrained"] is None and summary["model_uri"]
    store = store_for(config)
    assert not [t for t in store.get_execution_types() if "WganPretrainer" in t.name]


def test_an_unusable_dataset_is_a_user_error_through_the_runner(small_layout, tmp_path):
    for name in os.listdir(os.path.join(small_layout, "eval", "real")):
        with open(os.path.join(small_layout, "eval", "real", name), "w") as handle:
            handle.write("text")
    config = load_config(data_root=small_layout, workdir=str(tmp_path),
                         beam_pipeline_args=["--direct_num_workers=1"])
    with pytest.raises(UserError, match="eval/real"):
        run_local(config)
