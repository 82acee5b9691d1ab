"""benchmarks/head_noise.py's optimum is the minimum of the loss the Trainer's head trains
on (mean log-loss + head_l2 |w|^2), not of another penalty."""

import os
import sys

import numpy as np
import pytest


@pytest.fixture
def head_noise(monkeypatch):
    monkeypatch.syspath_prepend(os.path.join(os.path.dirname(__file__), "..", "benchmarks"))
    import head_noise

    yield head_noise
    for module in ("head_noise", "critic_probe", "front_end_probe", "generalisation",
                   "quality"):
        sys.modules.pop(module, None)


def test_the_optimum_zeroes_the_trainer_heads_loss_gradient(head_noise):
    rng = np.random.default_rng(0)
    inputs = rng.normal(size=(400, 30))
    is_spoof = (inputs[:, 0] + 0.5 * rng.normal(size=400)) > 0
    head_l2 = 0.007
    optimum = head_noise.optimum_head(inputs, is_spoof, head_l2)
    weights, bias = optimum.coef_[0], optimum.intercept_[0]
    p_spoof = 1 / (1 + np.exp(-(inputs @ weights + bias)))
    # The gradient of mean log-loss + head_l2 |w|^2 (Keras's L2 regulariser) at the optimum.
    gradient = inputs.T @ (p_spoof - is_spoof) / len(inputs) + 2 * head_l2 * weights
    assert np.abs(gradient).max() < 1e-4
    # With another penalty (C off by the factor n) the gradient would not vanish.
    assert np.abs(2 * head_l2 * weights).max() > 1e-2
