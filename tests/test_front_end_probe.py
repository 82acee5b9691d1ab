"""The front-end screening (benchmarks/front_end_probe.py): each row is the front end its
name says, whatever the pipeline's defaults have become since it was written."""

import dataclasses

import pytest

from tests.conftest import benchmark_module


@pytest.fixture
def probe(monkeypatch):
    yield from benchmark_module(monkeypatch, "front_end_probe", "quality")


def test_each_row_is_a_valid_front_end_over_the_seeds(probe):
    # The rows were written over the seed's front end; read over today's default (which adds
    # a 512-sample window) a 512-window row was refused and the others gained rows unnamed.
    seed = probe.FEATURES
    assert (seed.front_end, seed.n_fft, seed.hop_length, seed.extra_windows, seed.phase) == (
        "log_mel", 2048, 512, (), False)
    for name, settings in probe.FRONT_ENDS.items():
        config = dataclasses.replace(seed, **settings)
        config.validate()
        assert (config.extra_windows != ()) == ("multi-resolution" in name or "+512" in name)
