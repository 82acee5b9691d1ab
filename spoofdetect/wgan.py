"""Stage 1: WGAN-GP training of the self-attention critic against the generator.

Losses (Gulrajani et al., 2017):
    critic    = E[D(G(z))] - E[D(x)] + lambda * E[(||grad D(x_hat)||_2 - 1)^2]
    generator = -E[D(G(z))]
with x_hat drawn uniformly on lines between real and generated examples and the gradient norm
taken per example. One training step = n_critic critic updates, then one generator update.

The step is one `tf.function` (optionally XLA-compiled), runs under a `tf.distribute`
strategy, and can use float16 compute with loss scaling. Training checkpoints every N steps
and resumes exactly where a killed run stopped: the data order, the noise and the optimiser
state all come back from the checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from spoofdetect.config import FeatureConfig, GanConfig
from spoofdetect.errors import UserError
from spoofdetect.models import build_critic, build_generator

LOSS_NAMES = ("critic_loss", "generator_loss", "wasserstein", "gradient_penalty")


class TrainingDiverged(UserError):
    """A loss became NaN or infinite; the message names the step and what to change."""


def device_description() -> str:
    gpus = tf.config.list_logical_devices("GPU")
    return f"{len(gpus)} x GPU ({gpus[0].name})" if gpus else "CPU"


def choose_strategy() -> tf.distribute.Strategy:
    """MirroredStrategy over the visible GPUs, the default strategy otherwise."""
    if len(tf.config.list_logical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def cpu_supports_bfloat16() -> bool:
    """Whether the CPU has bfloat16 arithmetic (AVX512_BF16 or AMX), which oneDNN uses."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="ignore") as handle:
            flags = handle.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def precision_policy(config: GanConfig) -> str:
    """The Keras dtype policy for stage 1's networks.

    With gan.mixed_precision: float16 compute with loss scaling on a GPU; bfloat16 compute on a
    CPU with bfloat16 arithmetic (same exponent range as float32, so no loss scaling);
    float32 anywhere else.
    """
    if not config.mixed_precision:
        return "float32"
    if tf.config.list_logical_devices("GPU"):
        return "mixed_float16"
    return "mixed_bfloat16" if cpu_supports_bfloat16() else "float32"


@dataclasses.dataclass
class WganResult:
    critic: keras.Model
    generator: keras.Model
    history: dict[str, list[dict[str, float]]]
    steps: int
    epochs: int
    seconds: float
    device: str
    resumed_from_step: int


class WganTrainer:
    """Owns the two models, their optimisers, the noise generator and the checkpoint."""

    def __init__(self, features: FeatureConfig, config: GanConfig,
                 strategy: tf.distribute.Strategy | None = None):
        self.config = config
        self.strategy = strategy or choose_strategy()
        self.policy = precision_policy(config)
        keras.utils.set_random_seed(config.seed)
        previous_policy = keras.mixed_precision.global_policy()
        # The policy is global in Keras: set it only while these networks are built.
        keras.mixed_precision.set_global_policy(self.policy)
        try:
            with self.strategy.scope():
                self.critic = build_critic(features, config)
                self.generator = build_generator(features, config)
                # Built now, not at the first update: a checkpoint then restores the
                # optimisers' moments at once instead of deferring (and warning about) them.
                self.critic_optimizer = self._optimizer(self.critic)
                self.generator_optimizer = self._optimizer(self.generator)
                self.noise = tf.random.Generator.from_seed(config.seed)
                self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        finally:
            keras.mixed_precision.set_global_policy(previous_policy)
        self.checkpoint = tf.train.Checkpoint(
            critic=self.critic, generator=self.generator,
            critic_optimizer=self.critic_optimizer,
            generator_optimizer=self.generator_optimizer, noise=self.noise, step=self.step)
        self._train_step = tf.function(self._distributed_step,
                                       jit_compile=config.jit_compile or None)

    def _optimizer(self, model: keras.Model) -> keras.optimizers.Optimizer:
        optimizer = keras.optimizers.Adam(self.config.learning_rate, beta_1=self.config.beta_1,
                                          beta_2=self.config.beta_2)
        if self.policy == "mixed_float16":
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        optimizer.build(model.trainable_variables)
        return optimizer

    def _objective(self, optimizer: keras.optimizers.Optimizer, loss: tf.Tensor) -> tf.Tensor:
        """What to differentiate, computed inside the tape: the loss divided over replicas
        (the optimiser sums their gradients) and, in float16, scaled against underflow."""
        objective = loss / float(self.strategy.num_replicas_in_sync)
        return optimizer.scale_loss(objective) if hasattr(optimizer, "scale_loss") else objective

    @staticmethod
    def _apply(optimizer: keras.optimizers.Optimizer, tape: tf.GradientTape,
               objective: tf.Tensor, variables: list[Any]) -> None:
        gradients = tape.gradient(objective, variables)
        optimizer.apply_gradients(zip(gradients, variables, strict=True))

    def _gradient_penalty(self, real: tf.Tensor, fake: tf.Tensor) -> tf.Tensor:
        batch = tf.shape(real)[0]
        mix = self.noise.uniform([batch, 1, 1], dtype=real.dtype)
        interpolated = mix * real + (1.0 - mix) * fake
        with tf.GradientTape() as tape:
            tape.watch(interpolated)
            scores = self.critic(interpolated, training=True)
        gradients = tf.cast(tape.gradient(scores, interpolated), tf.float32)
        norms = tf.sqrt(tf.reduce_sum(tf.square(gradients), axis=[1, 2]) + 1e-12)
        return tf.reduce_mean(tf.square(norms - 1.0))

    def _critic_update(self, real: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        noise = self.noise.normal([tf.shape(real)[0], self.config.noise_dim])
        with tf.GradientTape() as tape:
            fake = self.generator(noise, training=True)
            # One critic call on real and generated together: fewer, larger kernels. Safe
            # because the critic has no batch statistics (layer norm only).
            scores = tf.cast(self.critic(tf.concat([real, tf.cast(fake, real.dtype)], axis=0),
                                         training=True), tf.float32)
            real_scores, fake_scores = tf.split(scores, 2, axis=0)
            real_score, fake_score = tf.reduce_mean(real_scores), tf.reduce_mean(fake_scores)
            penalty = self._gradient_penalty(real, fake)
            critic_loss = (fake_score - real_score
                           + self.config.gradient_penalty_weight * penalty)
            objective = self._objective(self.critic_optimizer, critic_loss)
        self._apply(self.critic_optimizer, tape, objective, self.critic.trainable_variables)
        return critic_loss, real_score - fake_score, penalty

    def _replica_step(self, real_batches: tf.Tensor) -> dict[str, tf.Tensor]:
        config = self.config
        n_critic = config.critic_steps_per_generator_step
        totals = tf.zeros([3])
        # A graph loop, not n_critic unrolled copies: tracing stays fast for any n_critic.
        for index in tf.range(n_critic):
            totals += tf.stack(self._critic_update(real_batches[index]))
        critic_loss, wasserstein, penalty = tf.unstack(totals / float(n_critic))
        noise = self.noise.normal([tf.shape(real_batches)[1], config.noise_dim])
        with tf.GradientTape() as tape:
            generated_score = tf.reduce_mean(tf.cast(
                self.critic(self.generator(noise, training=True), training=True), tf.float32))
            generator_loss = -generated_score
            objective = self._objective(self.generator_optimizer, generator_loss)
        self._apply(self.generator_optimizer, tape, objective, self.generator.trainable_variables)
        return {"critic_loss": critic_loss, "generator_loss": generator_loss,
                "wasserstein": wasserstein, "gradient_penalty": penalty}

    def _distributed_step(self, real_batches: tf.Tensor) -> dict[str, tf.Tensor]:
        per_replica = self.strategy.run(self._replica_step, args=(real_batches,))
        self.step.assign_add(1)
        return {name: self.strategy.reduce(tf.distribute.ReduceOp.MEAN, value, axis=None)
                for name, value in per_replica.items()}

    def train_step(self, real_batches: Any) -> dict[str, float]:
        return {name: float(value) for name, value in self._train_step(real_batches).items()}


def steps_per_epoch(num_real: int, config: GanConfig) -> int:
    """Generator steps that use each real example about once as a critic input."""
    per_step = config.batch_size * config.critic_steps_per_generator_step
    return max(1, math.ceil(num_real / per_step))


def critic_input(dataset: tf.data.Dataset, config: GanConfig) -> tf.data.Dataset:
    """Groups critic batches n_critic at a time: one element feeds one training step."""
    return dataset.batch(config.critic_steps_per_generator_step, drop_remainder=True)


def train_wgan(make_dataset: Callable[[], tf.data.Dataset], num_real: int,
               features: FeatureConfig, config: GanConfig, checkpoint_dir: str,
               log_dir: str | None = None, progress: Any = sys.stderr) -> WganResult:
    """Trains for `config.epochs` epochs, resuming from `checkpoint_dir` if it holds a run.

    `make_dataset` returns an endless, seeded dataset of log-Mel batches
    ([batch, rows, frames], drop_remainder), the same on every call.
    """
    if num_real < config.batch_size:
        raise UserError(
            f"Stage 1 has {num_real} training examples for the critic, fewer than one batch "
            f"(gan.batch_size = {config.batch_size}); lower gan.batch_size or add data.")
    trainer = WganTrainer(features, config)
    manager = tf.train.CheckpointManager(trainer.checkpoint, checkpoint_dir, max_to_keep=2)
    if manager.latest_checkpoint:
        trainer.checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
    resumed_from = int(trainer.step.numpy())
    tf.io.gfile.makedirs(checkpoint_dir)
    history_path = os.path.join(checkpoint_dir, "history.json")
    history: dict[str, list[dict[str, float]]] = {"steps": [], "epochs": []}
    if resumed_from and tf.io.gfile.exists(history_path):
        with tf.io.gfile.GFile(history_path) as handle:
            saved = json.load(handle)
        history = {"steps": [h for h in saved["steps"] if h["step"] <= resumed_from],
                   "epochs": [h for h in saved["epochs"]
                              if h["epoch"] * steps_per_epoch(num_real, config) <= resumed_from]}
    per_epoch = steps_per_epoch(num_real, config)
    total_steps = per_epoch * config.epochs
    # The same seeded stream as an uninterrupted run, advanced past the steps already done.
    stream = critic_input(make_dataset(), config).skip(resumed_from)
    stream = trainer.strategy.experimental_distribute_dataset(stream)
    writer = tf.summary.create_file_writer(log_dir) if log_dir else None
    start = time.monotonic()
    iterator = iter(stream)
    step = resumed_from
    while step < total_steps:
        losses = trainer.train_step(next(iterator))
        step += 1
        bad = [name for name, value in losses.items() if not math.isfinite(value)]
        if bad:
            raise TrainingDiverged(
                f"Stage 1 (WGAN-GP) diverged: {', '.join(bad)} became {losses[bad[0]]} at step "
                f"{step} (epoch {(step - 1) // per_epoch + 1}). No model was written; the last "
                f"checkpoint before it is kept. Lower gan.learning_rate (now "
                f"{config.learning_rate:g}), raise gan.gradient_penalty_weight (now "
                f"{config.gradient_penalty_weight:g}) or set gan.mixed_precision=false.")
        history["steps"].append({"step": step, **losses})
        if writer:
            with writer.as_default(step=step):
                for name, value in losses.items():
                    tf.summary.scalar(f"gan/{name}", value)
        if step % per_epoch == 0:
            epoch_steps = [h for h in history["steps"] if h["step"] > step - per_epoch]
            summary = {name: float(np.mean([h[name] for h in epoch_steps]))
                       for name in LOSS_NAMES}
            history["epochs"].append({"epoch": step // per_epoch, **summary})
            progress.write(f"[pretrain] epoch {step // per_epoch}/{config.epochs} step "
                           f"{step}/{total_steps}: " + ", ".join(
                               f"{name} {value:.3f}" for name, value in summary.items()) + "\n")
            progress.flush()
        if step % config.checkpoint_every_steps == 0 or step % per_epoch == 0:
            # History first, replaced whole (a kill mid-write leaves the previous one); then
            # the checkpoint. A kill between the two leaves history ahead of the checkpoint,
            # and resuming drops the steps after it.
            with tf.io.gfile.GFile(history_path + ".tmp", "w") as handle:
                json.dump(history, handle)
            tf.io.gfile.rename(history_path + ".tmp", history_path, overwrite=True)
            manager.save(checkpoint_number=step)
    if writer:
        writer.flush()
    return WganResult(trainer.critic, trainer.generator, history, step, config.epochs,
                      time.monotonic() - start, device_description(), resumed_from)
