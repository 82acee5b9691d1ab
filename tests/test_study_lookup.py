"""The studies find a kept run's SavedModel in their ML Metadata store by its exact settings
(benchmarks/quality.py::kept_output_dir, read through the fusion probe's Trainer reader)."""

import json
import os

import pytest
from ml_metadata.proto import metadata_store_pb2

from spoofdetect.config import load_config, section_to_json
from spoofdetect.pipeline.metadata import open_store


def find(probe, workdir: str, sections: dict) -> str | None:
    return probe.kept_output_dir([workdir], probe.TRAINER_TYPE, probe.trainer_sections,
                                 sections)


def record_trainer(store, workdir: str, name: str, sections: dict[str, str],
                   state=metadata_store_pb2.Execution.COMPLETE) -> str:
    """A Trainer execution with `sections` as its custom_config and one output model."""
    execution_type = metadata_store_pb2.ExecutionType(
        name="tfx.components.trainer.component.Trainer")
    execution = metadata_store_pb2.Execution(
        type_id=store.put_execution_type(execution_type), last_known_state=state)
    execution.custom_properties["custom_config"].string_value = json.dumps(sections)
    model = os.path.join(workdir, "pipeline_root", "Trainer", "model", name)
    os.makedirs(os.path.join(model, "Format-Serving"))
    artifact = metadata_store_pb2.Artifact(
        type_id=store.put_artifact_type(metadata_store_pb2.ArtifactType(name="Model")),
        uri=model)
    event = metadata_store_pb2.Event(type=metadata_store_pb2.Event.OUTPUT)
    store.put_execution(execution, [(artifact, event)], [])
    return os.path.join(model, "Format-Serving")


def sections_of(config, *drop: str) -> dict[str, str]:
    sections = {}
    for name in ("features", "gan", "classifier"):
        values = json.loads(section_to_json(getattr(config, name)))
        for key in drop:
            values.pop(key, None)
        sections[name] = json.dumps(values)
    return sections


def test_finds_the_run_with_the_settings_and_not_another(tmp_path, fusion_probe):
    store = open_store(str(tmp_path / "metadata.sqlite"))
    wanted = load_config(None, ["features.extra_windows=[512]", "classifier.seed=1"])
    other = load_config(None, ["features.extra_windows=[512]", "classifier.seed=2"])
    # The protocol is an absolute path of the machine that ran the study: not a setting.
    moved = load_config(None, ["features.extra_windows=[512]", "classifier.seed=1",
                               "features.protocol=[/elsewhere/protocol.csv]"])
    expected = record_trainer(store, str(tmp_path), "1", sections_of(moved))
    record_trainer(store, str(tmp_path), "2", sections_of(other))
    record_trainer(store, str(tmp_path), "3", sections_of(wanted),
                   state=metadata_store_pb2.Execution.FAILED)
    sections = {name: getattr(wanted, name) for name in ("features", "gan", "classifier")}

    assert find(fusion_probe, str(tmp_path), sections) == expected
    sections["classifier"] = load_config(None, ["classifier.seed=3"]).classifier
    assert find(fusion_probe, str(tmp_path), sections) is None


def test_a_field_added_since_the_run_counts_at_the_seeds_value(tmp_path, fusion_probe):
    """A run kept before `features.phase_windows` existed recorded no such field; it ran with
    the seed's value of it (every option is added off), and is found."""
    store = open_store(str(tmp_path / "metadata.sqlite"))
    config = load_config(None, ["features.phase=true"])
    expected = record_trainer(store, str(tmp_path), "1",
                              sections_of(config, "phase_windows"))
    sections = {name: getattr(config, name) for name in ("features", "gan", "classifier")}
    assert find(fusion_probe, str(tmp_path), sections) == expected
    changed = load_config(None, ["features.phase=true", "features.phase_windows=[512]",
                                 "features.extra_windows=[512]"])
    sections["features"] = changed.features
    assert find(fusion_probe, str(tmp_path), sections) is None
    # A run from before features.fusion and features.lfcc_gmm existed ran one system, though
    # both are now on by default: it is the one-system run, not the fused default's.
    one_system = load_config(None, ["features.fusion.enabled=false", "features.lfcc_gmm=false"])
    before_fusion = record_trainer(store, str(tmp_path), "2",
                                   sections_of(one_system, "fusion", "lfcc_gmm"))
    sections["features"] = one_system.features
    assert find(fusion_probe, str(tmp_path), sections) == before_fusion
    sections["features"] = load_config(None).features
    assert find(fusion_probe, str(tmp_path), sections) is None


def test_a_folder_without_a_store_is_named(tmp_path, fusion_probe):
    sections = {"features": load_config(None).features}
    with pytest.raises(SystemExit, match=f"{tmp_path}.*--workdir"):
        find(fusion_probe, str(tmp_path), sections)


def test_a_run_whose_output_is_elsewhere_is_named_not_missed(tmp_path, fusion_probe, monkeypatch):
    """A study run from another folder with a relative --workdir recorded relative outputs:
    from here the run matches but its model is not found, which must say so."""
    workdir = tmp_path / "study"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    store = open_store("metadata.sqlite")
    config = load_config(None)
    record_trainer(store, ".", "1", sections_of(config))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit, match=r"pipeline_root/Trainer/model/1 is not there from "):
        find(fusion_probe, "study", {"features": config.features, "gan": config.gan,
                              "classifier": config.classifier})


def test_a_dataset_without_protocol_stops_the_study_before_any_work(fusion_probe, tmp_path, capsys):
    import argparse

    import quality  # on the path that the fusion_probe fixture set

    parser = argparse.ArgumentParser()
    quality.dataset_arguments(parser, "dataset", "cross")
    (tmp_path / "made" / "eval").mkdir(parents=True)
    (tmp_path / "made" / "protocol.csv").write_text("split,label,file\n")
    with pytest.raises(SystemExit) as stopped:
        parser.parse_args([str(tmp_path / "made"), str(tmp_path / "cross")])
    assert stopped.value.code == 2
    error = capsys.readouterr().err
    assert f"{tmp_path / 'cross'} has no protocol.csv" in error
    assert "benchmarks/speech_dataset.py" in error
    assert vars(parser.parse_args([str(tmp_path / "made")] * 2)) == {
        "dataset": str(tmp_path / "made"), "cross": str(tmp_path / "made")}


def test_a_setting_the_seed_preset_pins_later_is_not_a_change_of_a_kept_run(fusion_probe):
    import quality  # on the path that the fusion_probe fixture set

    today = quality.study_settings(None, ["features.augment=2"])
    pinned_later = 'classifier.head_solver="adam"'
    assert pinned_later in today  # the preset pins the option at the seed's value
    kept = [setting for setting in today if setting != pinned_later]
    assert quality.changed_settings(kept, today) == []
    # A kept run that recorded another value, or today's run overriding the preset, is one.
    assert quality.changed_settings([*kept, 'classifier.head_solver="lbfgs"'], today) == [
        'classifier.head_solver: "lbfgs" -> "adam"']
    assert quality.changed_settings(kept, [*today, 'classifier.head_solver="lbfgs"']) == [
        'classifier.head_solver: "adam" -> "lbfgs"']
