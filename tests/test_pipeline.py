"""The TFX pipeline on real runners with a real SQLite ML Metadata store."""

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import time

import pytest
import tensorflow as tf
import tensorflow_data_validation as tfdv
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2
from tfx import v1 as tfx

from spoofdetect.cli import main as cli_main
from spoofdetect.components import code_version
from spoofdetect.config import load_config
from spoofdetect.errors import UserError
from spoofdetect.examples import LOG_MEL_VALUES
from spoofdetect.pipeline.local_runner import run_local
from spoofdetect.pipeline.pipeline import create_pipeline
from spoofdetect.pipeline.run_summary import format_run_summary, latest_run_summary
from spoofdetect.pipeline.schema import load_schema, packaged_schema_path, schema_path_for
from tests.conftest import FAST, with_seed_head

pytestmark = pytest.mark.slow

def store_for(config):
    return metadata_store.MetadataStore(
        tfx.orchestration.metadata.sqlite_metadata_connection_config(config.metadata_path))


def first_of_type(store, type_name: str):
    return min(store.get_artifacts_by_type(type_name), key=lambda artifact: artifact.id)


def custom_properties(artifact) -> dict:
    return {name: getattr(value, value.WhichOneof("value"))
            for name, value in artifact.custom_properties.items()}


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
    # The demo's 8 training clips, each with the default two augmented copies.
    assert stats.datasets[0].num_examples == 24


def test_second_run_reuses_the_cache(pipeline_run):
    store = store_for(pipeline_run)
    before = len(store.get_artifacts_by_type("Examples"))
    assert run_local(pipeline_run) == 0
    assert len(store.get_artifacts_by_type("Examples")) == before
    states = [e.last_known_state for e in store.get_executions()]
    # Features, statistics, schema, validation and both training stages come from the cache.
    assert states.count(metadata_store_pb2.Execution.CACHED) == 6
    # The evaluator runs again: it now has a baseline, the first run's blessed model.
    latest = max(store.get_artifacts_by_type("ModelEvaluation"), key=lambda a: a.id)
    with open(os.path.join(latest.uri, "metrics.json")) as handle:
        assert "/Trainer/model/" in json.load(handle)["baseline"]["model"]


def test_other_code_runs_each_of_our_steps_again(pipeline_run, tmp_path, monkeypatch):
    """TFX keys its cache by parameters, not code: after an upgrade the same config and
    dataset must not be served the old release's examples, critic, model or evaluation."""
    workdir = tmp_path / "workdir"
    shutil.copytree(pipeline_run.workdir, workdir)  # the first runs' store and artifacts
    config = dataclasses.replace(pipeline_run, workdir=str(workdir))
    upgraded = "9.9.9+0123456789ab"
    monkeypatch.setattr(code_version, "current", lambda: upgraded)
    store = store_for(config)
    before = {execution.id for execution in store.get_executions()}
    assert run_local(config) == 0
    types = {t.id: t.name.rsplit(".", 1)[-1] for t in store.get_execution_types()}
    states = {types[e.type_id]: e.last_known_state for e in store.get_executions()
              if e.id not in before}
    for step in ("FeatureExtractor", "WganPretrainer", "Trainer", "SpoofEvaluator"):
        assert states[step] == metadata_store_pb2.Execution.COMPLETE, step
    examples = max(store.get_artifacts_by_type("Examples"), key=lambda a: a.id)
    assert custom_properties(examples)["code_version"] == upgraded
    assert latest_run_summary(config)["classifier"]["code_version"] == upgraded


def test_schema_catches_examples_of_the_wrong_shape(pipeline_run, tmp_path):
    schema = load_schema(packaged_schema_path())
    store = store_for(pipeline_run)
    [statistics] = store.get_artifacts_by_type("ExampleStatistics")
    stats = tfdv.load_stats_binary(os.path.join(statistics.uri, "Split-dev",
                                                "FeatureStats.pb"))
    assert not tfdv.validate_statistics(stats, schema).anomaly_info
    wrong = load_config(None, ["features.n_mels=64"]).features
    fitted = load_schema(schema_path_for(wrong, str(tmp_path)))
    # The statistics leave log_mel out; its value-count summary catches the shape.
    assert LOG_MEL_VALUES in tfdv.validate_statistics(stats, fitted).anomaly_info


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
    # The default's heads, both at their loss's minimum, and the summary says so.
    iterations = summary["classifier"]["solver_iterations"]
    assert summary["classifier"]["head_solver"] == "lbfgs" and iterations >= 1
    assert (f"at the loss's minimum (L-BFGS, {iterations} iterations)"
            in format_run_summary(summary))
    saved = tf.saved_model.load(os.path.join(summary["model_uri"], "Format-Serving"))
    assert set(saved.signatures) == {"serving_default", "from_features", "from_audio_bytes"}
    # FAST calibrates: the fitted map is in the Trainer's summary and in the model's scores.
    calibration = summary["classifier"]["calibration"]
    assert calibration["dev_cllr_calibrated"] <= calibration["dev_cllr_raw"] + 1e-9
    assert (f"dev Cllr {calibration['dev_cllr_raw']:.3f} -> "
            f"{calibration['dev_cllr_calibrated']:.3f} bits") in format_run_summary(summary)
    assert summary["evaluation"]["cllr"] is not None


def test_statistics_gen_runs_in_the_direct_runners_own_process(demo_root, tmp_path):
    # Beam's worker processes cost StatisticsGen more than they saved (docs/performance.md);
    # the option comes after the pipeline's own, so it is the one Beam's parser keeps.
    config = load_config(data_root=demo_root, workdir=str(tmp_path))
    [statistics_gen] = [component for component in create_pipeline(config).components
                        if component.id == "StatisticsGen"]
    assert statistics_gen.executor_spec.beam_pipeline_args == [
        *config.beam_pipeline_args, "--direct_running_mode=in_memory"]
    assert "--direct_running_mode=multi_processing" in config.beam_pipeline_args


def test_from_scratch_ablation_on_the_local_dag_runner(demo_root, tmp_path):
    config = load_config(None, [*FAST, "classifier.from_scratch=true"], data_root=demo_root,
                         workdir=str(tmp_path), beam_pipeline_args=["--direct_num_workers=1"])
    assert run_local(config, runner="local") == 0
    summary = latest_run_summary(config)
    assert summary["num_clips"] == 16
    assert summary["pretrained"] is None and summary["model_uri"]
    store = store_for(config)
    assert not [t for t in store.get_execution_types() if "WganPretrainer" in t.name]


def test_fused_systems_from_extraction_to_scoring_on_the_local_dag_runner(demo_root, tmp_path):
    """features.fusion through every stage: both maps extracted and validated, both systems
    trained, and the pushed model, computing both maps from the waveform, scores each clip as
    the evaluator did from the Examples."""
    config = load_config(None, [*FAST, "classifier.from_scratch=true",
                                "features.fusion.enabled=true", "features.fusion.n_mels=40"],
                         data_root=demo_root, workdir=str(tmp_path),
                         beam_pipeline_args=["--direct_num_workers=1"])
    assert run_local(config, runner="local") == 0
    summary = latest_run_summary(config)
    assert summary["anomalies"] == {} and summary["model_uri"]
    assert summary["classifier"]["fusion"]["second_system"]["head_solver"] == "lbfgs"
    output = tmp_path / "scores.json"
    assert cli_main(["score", "--model", config.push_destination, "--segments", "first",
                     os.path.join(demo_root, "eval"), "--output", str(output)]) == 0
    evaluator = _evaluator_clip_scores(config)
    records = json.load(open(output))
    assert len(records) == len(evaluator) == 4
    for record in records:
        clip_id = os.path.splitext(os.path.relpath(record["path"], demo_root))[0].replace(
            os.sep, "_")
        # Calibrated scores of tens (the demo is easy): float32's relative noise counts.
        assert record["score"] == pytest.approx(evaluator[clip_id], rel=1e-5, abs=1e-4)


def test_an_unusable_dataset_is_a_user_error_through_the_runner(small_layout, tmp_path):
    for name in os.listdir(os.path.join(small_layout, "eval", "real")):
        with open(os.path.join(small_layout, "eval", "real", name), "w") as handle:
            handle.write("text")
    config = load_config(data_root=small_layout, workdir=str(tmp_path),
                         beam_pipeline_args=["--direct_num_workers=1"])
    with pytest.raises(UserError, match="eval/real"):
        run_local(config)


def test_evaluator_records_metrics_and_blesses_and_the_pusher_pushes(pipeline_run, capsys):
    store = store_for(pipeline_run)
    # The first run's artifacts (test_second_run_reuses_the_cache may have run a second).
    evaluation_artifact = first_of_type(store, "ModelEvaluation")
    evaluated = custom_properties(evaluation_artifact)
    assert evaluated["num_clips"] == 4 and 0.0 <= evaluated["eer"] <= 1.0
    assert {"min_tdcf", "min_tdcf_2021", "auc", "accuracy", "f1", "brier"} <= set(evaluated)
    with open(os.path.join(evaluation_artifact.uri, "metrics.json")) as handle:
        written = json.load(handle)
    assert written["clip"]["eer"] == evaluated["eer"]
    assert written["blessing"]["blessed"] is True
    assert os.path.exists(evaluated["report_uri"])
    blessing = first_of_type(store, "ModelBlessing")
    blessed = custom_properties(blessing)
    [trained] = [a for a in store.get_artifacts_by_type("Model") if "/Trainer/" in a.uri]
    assert blessed["blessed"] == 1 and blessed["current_model_id"] == trained.id
    assert "no blessed model to compare with yet" in blessed["reason"]
    assert os.path.exists(os.path.join(blessing.uri, "BLESSED"))
    pushed = first_of_type(store, "PushedModel")
    destination = custom_properties(pushed)["pushed_destination"]
    assert os.path.dirname(destination) == pipeline_run.push_destination
    assert os.path.exists(os.path.join(destination, "saved_model.pb"))


def _evaluator_clip_scores(config) -> dict[str, float]:
    evaluation_artifact = first_of_type(store_for(config), "ModelEvaluation")
    with open(os.path.join(evaluation_artifact.uri, "scores_clip.txt")) as handle:
        return {line.split()[0]: float(line.split()[3]) for line in handle}


def test_pushed_model_in_a_fresh_process_scores_like_the_evaluator(pipeline_run, demo_root):
    """Plain tf.saved_model.load, no project import: the same scores for the same WAVs.

    The client decodes with libsndfile and resamples the demo's mixed rates to 16 kHz with
    soxr's HQ resampler, as the Beam job does; the model computes the features."""
    version = max(os.listdir(pipeline_run.push_destination), key=int)
    eval_files = sorted(os.path.join(demo_root, "eval", label, name)
                        for label in ("real", "fake")
                        for name in os.listdir(os.path.join(demo_root, "eval", label)))
    script = (
        "import json, os, sys\n"
        "sys.meta_path = [f for f in sys.meta_path if 'editable' not in repr(f).lower()]\n"
        "sys.path = [p for p in sys.path if p not in ('', '.')\n"
        "            and not os.path.isdir(os.path.join(p, 'spoofdetect'))]\n"
        "try:\n    import spoofdetect\nexcept ImportError:\n    pass\n"
        "else:\n    raise SystemExit('spoofdetect is importable: the test proves nothing')\n"
        "import soundfile, soxr, tensorflow as tf\n"
        "score = tf.saved_model.load(sys.argv[1]).signatures['serving_default']\n"
        "out = {}\n"
        "for path in sys.argv[2:]:\n"
        "    samples, rate = soundfile.read(path, dtype='float32', always_2d=True)\n"
        "    mono = soxr.resample(samples.mean(axis=1), rate, 16000, quality='HQ')\n"
        "    waveform = tf.constant(mono[None].astype('float32'))\n"
        "    out[path] = float(score(waveforms=waveform)['score'][0])\n"
        "print(json.dumps(out))\n")
    result = subprocess.run(
        [sys.executable, "-c", script, os.path.join(pipeline_run.push_destination, version),
         *eval_files], capture_output=True, text=True, cwd="/", timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 0, result.stderr[-2000:]
    fresh = json.loads(result.stdout.strip().splitlines()[-1])
    evaluator = _evaluator_clip_scores(pipeline_run)
    assert len(evaluator) == len(fresh) == 4
    for path, score in fresh.items():
        relative = os.path.relpath(path, demo_root)
        clip_id = os.path.splitext(relative)[0].replace(os.sep, "_")
        # Calibrated scores of hundreds (the demo is easy): float32's relative noise counts.
        assert score == pytest.approx(evaluator[clip_id], rel=1e-5, abs=1e-4), path


def test_score_command_on_the_pushed_model_matches_the_evaluator(pipeline_run, demo_root,
                                                                 tmp_path, capsys):
    output = tmp_path / "scores.json"
    assert cli_main(["score", "--model", pipeline_run.push_destination, "--segments", "first",
                     os.path.join(demo_root, "eval"), "--output", str(output)]) == 0
    evaluator = _evaluator_clip_scores(pipeline_run)
    records = json.load(open(output))
    assert len(records) == 4
    for record in records:
        clip_id = os.path.splitext(os.path.relpath(record["path"], demo_root))[0].replace(
            os.sep, "_")
        assert record["score"] == pytest.approx(evaluator[clip_id], rel=1e-5, abs=1e-4)


def test_an_unblessed_model_is_not_pushed_and_the_console_says_why(pipeline_run, capsys):
    store = store_for(pipeline_run)
    pushed_before = os.listdir(pipeline_run.push_destination)
    # No limit refuses a perfect model: the seed's head (retrained, stage 1 from the cache)
    # misses one of the demo's four eval clips after an epoch.
    strict = dataclasses.replace(
        pipeline_run, evaluation=dataclasses.replace(pipeline_run.evaluation, max_eer=0.0),
        classifier=with_seed_head(pipeline_run.classifier))
    capsys.readouterr()
    assert run_local(strict) == 0
    out = capsys.readouterr().out
    assert "Model NOT blessed: EER" in out and "evaluation.max_eer" in out
    assert "Not pushed: the Pusher pushes blessed models only." in out
    assert os.listdir(pipeline_run.push_destination) == pushed_before
    blessings = sorted(store.get_artifacts_by_type("ModelBlessing"), key=lambda a: a.id)
    latest = custom_properties(blessings[-1])
    assert latest["blessed"] == 0
    # The baseline was resolved from ML Metadata: the first run's blessed model.
    assert latest["baseline_model_id"] == custom_properties(blessings[0])["current_model_id"]
    assert os.path.exists(os.path.join(blessings[-1].uri, "NOT_BLESSED"))
    pushes = sorted(store.get_artifacts_by_type("PushedModel"), key=lambda a: a.id)
    assert custom_properties(pushes[-1])["pushed"] == 0


def test_runs_on_two_workdirs_at_once_and_a_second_run_on_one_is_refused(demo_root, tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    sets = [f"--set={override}" for override in FAST]
    background = subprocess.Popen(
        [sys.executable, "-m", "spoofdetect.cli", "run", "--data-root", demo_root,
         "--workdir", str(first), *sets], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True)
    try:
        lock = first / ".run.lock"
        for _ in range(600):
            if lock.exists() and "pid" in lock.read_text():
                break
            assert background.poll() is None, background.stdout.read()[-3000:]
            time.sleep(0.1)
        same = load_config(None, FAST, data_root=demo_root, workdir=str(first))
        with pytest.raises(UserError, match=f"Another pipeline run is using the work "
                                            f"directory {first} \\(pid {background.pid}"):
            run_local(same)
        other = load_config(None, FAST, data_root=demo_root, workdir=str(second))
        assert run_local(other) == 0  # while the first run goes on
    finally:
        output, _ = background.communicate(timeout=900)
    assert background.returncode == 0, output[-3000:]
    for workdir in (first, second):
        [version] = os.listdir(workdir / "serving")
        assert os.path.exists(workdir / "serving" / version / "saved_model.pb")
        store = store_for(load_config(None, [], workdir=str(workdir)))
        assert len(store.get_artifacts_by_type("ModelEvaluation")) == 1
