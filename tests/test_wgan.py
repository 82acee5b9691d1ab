"""Stage 1: the WGAN-GP losses, determinism, divergence and resuming a killed run."""

import json
import os
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from spoofdetect.config import GanConfig, section_to_json
from spoofdetect.data import example_dataset, split_files
from spoofdetect.examples import LABEL, LOG_MEL
from spoofdetect.pretraining import (
    CRITIC_FILE,
    GENERATOR_FILE,
    critic_dataset,
    run_pretraining,
)
from spoofdetect.wgan import (
    TrainingDiverged,
    WganTrainer,
    cpu_supports_bfloat16,
    precision_policy,
    train_wgan,
)
from tests.conftest import ONE_SYSTEM, SEED_FEATURES

FEATURES = SEED_FEATURES  # for the synthetic 80 x 126 maps below
# What the demo's examples were extracted with (tests/conftest.py): the default's first map.
DEMO_FEATURES = ONE_SYSTEM
# Narrow networks and tiny batches: the tests check the mechanics, not the quality.
SMALL = GanConfig(critic_widths=(8, 16, 32), generator_widths=(32, 16, 8, 8), batch_size=2,
                  epochs=6, critic_data="all", checkpoint_every_steps=1, shuffle_buffer=8)


def test_gradient_penalty_is_per_example_norm_minus_one_squared():
    trainer = WganTrainer(FEATURES, SMALL)
    weights = np.full((80, 126), 3.0 / np.sqrt(80 * 126), np.float32)  # ||w|| = 3
    linear = keras.Sequential([keras.Input((80, 126)),
                               keras.layers.Lambda(lambda x: tf.reduce_sum(x * weights,
                                                                           axis=[1, 2]))])
    trainer.critic = linear
    real = tf.random.normal([4, 80, 126])
    fake = tf.random.normal([4, 80, 126])
    # A linear critic has gradient w everywhere: every example's norm is 3.
    assert float(trainer._gradient_penalty(real, fake)) == pytest.approx(4.0, rel=1e-5)


def _random_data(seed: int, corrupt: bool = False):
    data = np.random.default_rng(seed).standard_normal((8, 80, 126)).astype("float32")
    if corrupt:
        data[:] = np.nan

    def make() -> tf.data.Dataset:
        return tf.data.Dataset.from_tensor_slices(data).repeat().batch(2, drop_remainder=True)
    return make


def test_fixed_seeds_give_identical_first_losses(tmp_path):
    config = GanConfig(**{**SMALL.__dict__, "epochs": 1})
    first = train_wgan(_random_data(0), 8, FEATURES, config, str(tmp_path / "a"))
    second = train_wgan(_random_data(0), 8, FEATURES, config, str(tmp_path / "b"))
    assert first.history["steps"][0] == second.history["steps"][0]
    losses = first.history["steps"][0]
    assert losses["critic_loss"] == pytest.approx(
        -losses["wasserstein"] + 10.0 * losses["gradient_penalty"], rel=1e-4)


def test_nan_loss_stops_with_the_step_and_what_to_change(demo_examples, tmp_path):
    with pytest.raises(TrainingDiverged, match=r"at step 1 \(epoch 1\).*gan.learning_rate"):
        train_wgan(_random_data(0, corrupt=True), 8, FEATURES, SMALL, str(tmp_path / "ck"))


def test_too_little_data_is_a_clear_error(tmp_path):
    config = GanConfig(**{**SMALL.__dict__, "batch_size": 16})
    with pytest.raises(Exception, match="fewer than one batch"):
        train_wgan(_random_data(0), 8, FEATURES, config, str(tmp_path / "ck"))


PRETRAIN_SCRIPT = """
import json, sys
from spoofdetect.config import FeatureConfig, GanConfig, section_from_json
from spoofdetect.pretraining import run_pretraining
config = section_from_json(GanConfig, sys.argv[2])
features = section_from_json(FeatureConfig, sys.argv[5])
summary = run_pretraining(sys.argv[1], features, config, sys.argv[3],
                          sys.argv[4] + "/Format-Serving", sys.argv[4])
print(json.dumps(summary))
"""


def _pretrain_process(examples_dir, checkpoint_dir, output_dir):
    return subprocess.Popen(
        [sys.executable, "-c", PRETRAIN_SCRIPT, examples_dir, section_to_json(SMALL),
         checkpoint_dir, output_dir, section_to_json(DEMO_FEATURES)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})


def _latest_checkpoint_step(checkpoint_dir: str) -> int:
    latest = tf.train.latest_checkpoint(checkpoint_dir)
    return int(latest.rsplit("-", 1)[1]) if latest else 0


class Crash(Exception):
    """Stands in for a kill at a chosen point of a save."""


@pytest.mark.slow  # several interrupted trainings
def test_a_crash_during_or_between_saves_resumes_with_the_uninterrupted_history(
        tmp_path, monkeypatch):
    config = GanConfig(**{**SMALL.__dict__, "epochs": 3})
    reference = train_wgan(_random_data(0), 20, FEATURES, config, str(tmp_path / "reference"))
    checkpoints = str(tmp_path / "crashed")
    save = tf.train.CheckpointManager.save

    def crash_before_checkpoint_3(manager, checkpoint_number=None, **kwargs):
        if checkpoint_number == 3:
            raise Crash
        return save(manager, checkpoint_number=checkpoint_number, **kwargs)

    with monkeypatch.context() as patch:  # step 3's history is written, its checkpoint not
        patch.setattr(tf.train.CheckpointManager, "save", crash_before_checkpoint_3)
        with pytest.raises(Crash):
            train_wgan(_random_data(0), 20, FEATURES, config, checkpoints)

    def crash_mid_write(history, handle):
        handle.write('{"steps": [{"st')
        raise Crash

    with monkeypatch.context() as patch:  # the history file is being rewritten
        patch.setattr(json, "dump", crash_mid_write)
        with pytest.raises(Crash):
            train_wgan(_random_data(0), 20, FEATURES, config, checkpoints)

    resumed = train_wgan(_random_data(0), 20, FEATURES, config, checkpoints)
    assert resumed.resumed_from_step == 2 and resumed.steps == 6
    assert [h["step"] for h in resumed.history["steps"]] == [1, 2, 3, 4, 5, 6]
    for got, expected in zip(resumed.history["steps"], reference.history["steps"],
                             strict=True):
        assert got == pytest.approx(expected, rel=1e-3, abs=1e-4)


@pytest.mark.slow
def test_a_killed_run_resumes_from_its_checkpoint_and_ends_like_an_uninterrupted_one(
        demo_examples, tmp_path):
    killed = _pretrain_process(demo_examples, str(tmp_path / "ck"), str(tmp_path / "out1"))
    deadline = time.monotonic() + 300
    while _latest_checkpoint_step(str(tmp_path / "ck")) < 2:
        assert killed.poll() is None, killed.stderr.read()[-2000:]
        assert time.monotonic() < deadline
        time.sleep(0.2)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    stopped_at = _latest_checkpoint_step(str(tmp_path / "ck"))
    assert 2 <= stopped_at < 6
    assert not os.path.exists(tmp_path / "out1" / "Format-Serving" / CRITIC_FILE)

    resumed = _pretrain_process(demo_examples, str(tmp_path / "ck"), str(tmp_path / "out1"))
    out, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err[-3000:]
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["resumed_from_step"] >= stopped_at and summary["steps"] == 6

    fresh = _pretrain_process(demo_examples, str(tmp_path / "ck2"), str(tmp_path / "out2"))
    out, err = fresh.communicate(timeout=600)
    assert fresh.returncode == 0, err[-3000:]
    uninterrupted = json.loads(out.strip().splitlines()[-1])
    assert uninterrupted["resumed_from_step"] == 0
    for name in ("critic_loss", "generator_loss", "wasserstein", "gradient_penalty"):
        assert summary[name] == pytest.approx(uninterrupted[name], rel=1e-3, abs=1e-4), name
    with open(tmp_path / "out1" / "history.json") as handle:
        assert [h["step"] for h in json.load(handle)["steps"]] == [1, 2, 3, 4, 5, 6]


def test_pretraining_writes_models_history_and_pictures(demo_examples, tmp_path):
    config = GanConfig(**{**SMALL.__dict__, "epochs": 2})
    summary = run_pretraining(demo_examples, DEMO_FEATURES, config, str(tmp_path / "ck"),
                              str(tmp_path / "Format-Serving"), str(tmp_path))
    assert summary["steps"] == 2 and summary["critic_examples"] == 8
    assert summary["device"] == "CPU"
    critic = keras.saving.load_model(str(tmp_path / "Format-Serving" / CRITIC_FILE))
    assert critic.output_shape == (None, 1)
    assert os.path.exists(tmp_path / "Format-Serving" / GENERATOR_FILE)
    with open(tmp_path / "history.json") as handle:
        assert len(json.load(handle)["epochs"]) == 2
    for picture in ("losses.png", "samples.png"):
        with open(tmp_path / picture, "rb") as handle:
            assert handle.read(8) == b"\x89PNG\r\n\x1a\n"
    assert os.listdir(tmp_path / "logs")


@pytest.mark.parametrize("critic_data, wanted", [("fake", {1}), ("all", {0, 1})])
def test_the_critic_is_fed_the_clips_critic_data_names(demo_examples, critic_data, wanted):
    """What stage 1's input pipeline yields, matched map by map to the labelled examples:
    with critic_data 'fake' not one bona fide clip reaches the critic."""
    files = split_files(demo_examples, "train")
    [labelled] = list(example_dataset(files, DEMO_FEATURES, 1000))
    label_of = {labelled[LOG_MEL][i].numpy().tobytes(): int(labelled[LABEL][i])
                for i in range(len(labelled[LABEL]))}
    config = GanConfig(**{**SMALL.__dict__, "critic_data": critic_data, "batch_size": 1})
    fed = [batch.numpy() for batch in critic_dataset(files, DEMO_FEATURES, config, repeat=False)]
    labels = [label_of[maps[0].tobytes()] for maps in fed]
    assert set(labels) == wanted
    assert len(labels) == sum(1 for label in label_of.values() if label in wanted)


def test_mixed_precision_is_off_by_default():
    assert precision_policy(SMALL) == "float32"


@pytest.mark.skipif(not cpu_supports_bfloat16(), reason="this CPU has no bfloat16 arithmetic")
def test_mixed_precision_on_a_cpu_computes_in_bfloat16_and_restores_the_policy(tmp_path):
    config = GanConfig(**{**SMALL.__dict__, "mixed_precision": True, "epochs": 1})
    assert precision_policy(config) == "mixed_bfloat16"
    result = train_wgan(_random_data(0), 8, FEATURES, config, str(tmp_path / "ck"))
    assert result.critic.get_layer("conv2").compute_dtype == "bfloat16"
    assert result.critic.get_layer("critic_score").compute_dtype == "float32"
    assert keras.mixed_precision.global_policy().name == "float32"
    assert all(np.isfinite(value) for value in result.history["steps"][0].values())


def test_the_time_statistics_critic_trains_with_a_finite_gradient_penalty(tmp_path):
    """The penalty differentiates through the pooling's square root: it must stay finite."""
    config = GanConfig(**{**SMALL.__dict__, "epochs": 1, "critic_head": "time_statistics"})
    history = train_wgan(_random_data(0), 8, FEATURES, config, str(tmp_path / "ck")).history
    losses = [value for step in history["steps"] for value in step.values()]
    assert losses and np.isfinite(losses).all()
