"""Stage 1 training speed: this implementation's compiled WGAN-GP step against a seed-style
loop (same networks, batch size and data; an eager GradientTape loop, no compilation, as
notebooks write it). Prints critic updates per second of each, the ratio, peak memory, and,
where available, the compiled step with mixed precision (float16 on a GPU, bfloat16 on a CPU
with AVX512_BF16) and XLA (on the CPU only with --xla: compiling the double-backward step
takes many minutes there).

    python benchmarks/training.py [--steps 2] [--batch-size 16] [--xla]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import resource
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np
import tensorflow as tf

from spoofdetect.config import FeatureConfig, GanConfig
from spoofdetect.models import build_critic, build_generator
from spoofdetect.wgan import WganTrainer, precision_policy


def peak_memory_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def seed_style_loop(features: FeatureConfig, config: GanConfig, data: np.ndarray,
                    steps: int) -> float:
    """Critic updates per second of an eager loop, written the way the seed notebook did."""
    critic, generator = build_critic(features, config), build_generator(features, config)
    critic_optimizer = keras.optimizers.Adam(config.learning_rate, config.beta_1, config.beta_2)
    generator_optimizer = keras.optimizers.Adam(config.learning_rate, config.beta_1,
                                                config.beta_2)
    n_critic, batch = config.critic_steps_per_generator_step, config.batch_size

    def one_step(real_batches: np.ndarray) -> None:
        for real in real_batches:
            noise = tf.random.normal([batch, config.noise_dim])
            with tf.GradientTape() as tape:
                fake = generator(noise, training=True)
                mix = tf.random.uniform([batch, 1, 1])
                interpolated = mix * real + (1 - mix) * fake
                with tf.GradientTape() as inner:
                    inner.watch(interpolated)
                    scores = critic(interpolated, training=True)
                norms = tf.sqrt(tf.reduce_sum(tf.square(inner.gradient(scores, interpolated)),
                                              axis=[1, 2]) + 1e-12)
                loss = (tf.reduce_mean(critic(fake, training=True))
                        - tf.reduce_mean(critic(real, training=True))
                        + config.gradient_penalty_weight * tf.reduce_mean((norms - 1) ** 2))
            gradients = tape.gradient(loss, critic.trainable_variables)
            critic_optimizer.apply_gradients(zip(gradients, critic.trainable_variables,
                                                 strict=True))
        with tf.GradientTape() as tape:
            loss = -tf.reduce_mean(critic(generator(tf.random.normal([batch, config.noise_dim]),
                                                    training=True), training=True))
        gradients = tape.gradient(loss, generator.trainable_variables)
        generator_optimizer.apply_gradients(zip(gradients, generator.trainable_variables,
                                                strict=True))

    one_step(data)  # warm-up: builds the optimiser slots
    start = time.perf_counter()
    for _ in range(steps):
        one_step(data)
    return steps * n_critic / (time.perf_counter() - start)


def compiled_loop(features: FeatureConfig, config: GanConfig, data: np.ndarray,
                  steps: int) -> float:
    """Critic updates per second of spoofdetect.wgan's compiled step."""
    trainer = WganTrainer(features, config)
    batches = tf.constant(data)
    trainer.train_step(batches)  # warm-up: traces (and with XLA compiles) the step
    start = time.perf_counter()
    for _ in range(steps):
        trainer.train_step(batches)
    return steps * config.critic_steps_per_generator_step / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=2, help="generator steps timed")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--xla", action="store_true", help="also time XLA on the CPU")
    args = parser.parse_args()
    features = FeatureConfig()
    config = GanConfig(batch_size=args.batch_size)
    data = np.random.default_rng(0).standard_normal(
        (config.critic_steps_per_generator_step, args.batch_size, features.num_rows,
         features.num_frames)).astype(np.float32)
    device = "GPU" if tf.config.list_logical_devices("GPU") else f"CPU ({os.cpu_count()} cores)"
    print(f"WGAN-GP critic updates/s on {device}, batch {args.batch_size}, "
          f"{args.steps} x {config.critic_steps_per_generator_step} critic updates timed")
    seed_rate = seed_style_loop(features, config, data, args.steps)
    seed_memory = peak_memory_mb()
    print(f"  seed-style eager loop:   {seed_rate:6.2f} /s  (peak memory so far "
          f"{seed_memory:.0f} MB)")
    ours = compiled_loop(features, config, data, args.steps)
    print(f"  compiled tf.function:    {ours:6.2f} /s  (peak memory so far "
          f"{peak_memory_mb():.0f} MB)")
    print(f"ratio compiled / seed-style: {ours / seed_rate:.2f}x (target >= 2x on CPU)")
    gpu = bool(tf.config.list_logical_devices("GPU"))
    variants = [("XLA", {"jit_compile": True})] if gpu or args.xla else []
    mixed = precision_policy(dataclasses.replace(config, mixed_precision=True))
    if mixed != "float32":
        variants.append((mixed, {"mixed_precision": True}))
    if gpu:
        variants.append((f"XLA + {mixed}", {"jit_compile": True, "mixed_precision": True}))
    for name, change in variants:
        rate = compiled_loop(features, dataclasses.replace(config, **change), data, args.steps)
        print(f"  compiled, {name + ':':<24}{rate:6.2f} /s  ({rate / seed_rate:.2f}x)")


if __name__ == "__main__":
    main()
