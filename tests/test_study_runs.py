"""A resumable study (benchmarks/quality.py::run_study) keeps each run with its settings and
names a kept run whose settings are no longer today's."""

import argparse
import json
import sys

import pytest

from tests.conftest import benchmark_module


@pytest.fixture
def quality(monkeypatch):
    yield from benchmark_module(monkeypatch, "quality")


def study(quality, runs_dir, settings, computed):
    args = argparse.Namespace(table_only=False, only=None)
    tables = []

    def compute(name, seed, settings):
        computed.append((name, seed, settings))
        return {"eer": 0.1 * seed, "seed": seed}

    quality.run_study(args, str(runs_dir), [("a", 0), ("a", 1)], compute,
                      lambda result: f"EER {result['eer']:.1f}", tables.append, settings)
    return tables


def test_each_run_is_kept_with_its_settings_and_not_redone(quality, tmp_path, capsys):
    computed = []
    tables = study(quality, tmp_path, lambda name, seed: [f"gan.seed={seed}", "x=1"], computed)
    # Each run is computed with the settings it keeps.
    assert computed == [("a", 0, ["gan.seed=0", "x=1"]), ("a", 1, ["gan.seed=1", "x=1"])]
    with open(tmp_path / "a-seed1.json") as handle:
        assert json.load(handle) == {"eer": 0.1, "seed": 1, "settings": ["gan.seed=1", "x=1"]}
    # The last table shows both runs.
    assert [run["eer"] for run in tables[-1]["a"]] == [0.0, 0.1]
    capsys.readouterr()
    study(quality, tmp_path, lambda name, seed: [f"gan.seed={seed}", "x=1"], computed)
    assert len(computed) == 2
    assert "not today's" not in capsys.readouterr().out


def test_a_kept_run_whose_settings_changed_is_named_with_the_change(quality, tmp_path, capsys):
    study(quality, tmp_path, lambda name, seed: [f"gan.seed={seed}", "x=1"], [])
    capsys.readouterr()
    computed = []
    study(quality, tmp_path, lambda name, seed: [f"gan.seed={seed}", "x=1", "x=2", "y=3"],
          computed)
    assert computed == []  # named, not redone
    out = capsys.readouterr().out
    assert out.count("its settings are not today's: x: 1 -> 2; y: (unset) -> 3") == 2


def test_changed_settings_read_later_values_over_earlier_ones(quality):
    assert quality.changed_settings(["a=1", "a=2", "b=x"], ["a=2", "b=x"]) == []
    assert quality.changed_settings(["a=1"], ["a=1", "c=[512]"]) == ["c: (unset) -> [512]"]


def test_the_table_holds_every_kept_seed_not_only_this_invocations(quality, tmp_path):
    study(quality, tmp_path, lambda name, seed: [], [])  # seeds 0 and 1 kept
    with open(tmp_path / "a-seed2.json", "w") as handle:
        json.dump({"eer": 0.2, "seed": 2}, handle)
    with open(tmp_path / "a-extra-seed0.json", "w") as handle:  # another variant's run
        json.dump({"eer": 0.9, "seed": 0}, handle)
    tables = []
    quality.run_study(argparse.Namespace(table_only=True, only=None), str(tmp_path),
                      [("a", 2)], lambda name, seed, settings: {}, lambda result: "", tables.append,
                      lambda name, seed: [])
    assert [run["eer"] for run in tables[-1]["a"]] == [0.0, 0.1, 0.2]
    assert list(tables[-1]) == ["a"]


def test_a_tables_command_names_the_seeds_it_shows(quality, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["generalisation.py", "data", "--seeds", "1",
                                      "--only", "x", "y", "--config", "q.yaml", "--table-only"])
    table = {"a": [{"seed": 2}, {"seed": 0}], "b": [{"seed": 2}, {"seed": 1}]}
    assert quality.study_command("generalisation.py", table) == (
        "python benchmarks/generalisation.py data --config q.yaml --seeds 0 1 2")
    assert quality.study_command("generalisation.py", {"a": [{"seed": 2}]}) == (
        "python benchmarks/generalisation.py data --config q.yaml --seeds 2")
    # Without a table (the probes), or an empty one, --seeds stays as given.
    for results in (None, {}):
        assert quality.study_command("generalisation.py", results) == (
            "python benchmarks/generalisation.py data --seeds 1 --config q.yaml")


def test_the_room_table_shows_only_the_runs_that_have_the_room_set(quality):
    numbers = {"eer": 0.25, "per_attack": {"C01": 0.5}}
    rows = {"checked": [{"eval": numbers, "cross": numbers, "room": numbers}],
            "unchecked": [{"eval": numbers, "cross": numbers}]}
    lines = quality.test_set_tables(rows, ["system"], lambda name, runs, test_set: [name])
    room = lines[next(i for i, line in enumerate(lines) if line.startswith("## Room")):]
    assert [line for line in room if line.startswith("| checked")] == [
        "| checked | 50.00 (50.00-50.00) |"]
    assert not [line for line in room if "unchecked" in line]
    without = quality.test_set_tables({"unchecked": rows["unchecked"]}, ["system"],
                                      lambda name, runs, test_set: [name])
    assert not [line for line in without if line.startswith("## Room")]
    assert [line for line in without if line.startswith("## Cross")]
