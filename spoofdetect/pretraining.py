"""Stage 1 end to end, without TFX: examples -> trained critic and generator, with their
history, plots and TensorBoard logs. The WganPretrainer executor and the tests call this."""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np
import tensorflow as tf

from spoofdetect import examples
from spoofdetect.config import LABELS, FeatureConfig, GanConfig
from spoofdetect.data import count_labels, example_dataset, split_files
from spoofdetect.plots import plot_gan_history, plot_spectrogram_grid
from spoofdetect.wgan import LOSS_NAMES, train_wgan

CRITIC_FILE = "critic.keras"
GENERATOR_FILE = "generator.keras"


def critic_dataset(files: list[str], features: FeatureConfig, config: GanConfig,
                   repeat: bool = True) -> tf.data.Dataset:
    """The critic's real batches (spectrograms alone): the train split's fake clips, or every
    clip with critic_data 'all'; shuffled and masked as configured."""
    label = LABELS["fake"] if config.critic_data == "fake" else None
    return example_dataset(
        files, features, config.batch_size, shuffle_buffer=config.shuffle_buffer,
        seed=config.seed, label=label, repeat=repeat, drop_remainder=True,
        masking=config.masking,
    ).map(lambda batch: batch[examples.LOG_MEL])


def run_pretraining(examples_uri: str, features: FeatureConfig, config: GanConfig,
                    checkpoint_dir: str, serving_dir: str, output_dir: str) -> dict[str, Any]:
    """Trains stage 1 on the train split; returns the summary recorded in ML Metadata.

    Writes serving_dir/{critic,generator}.keras and output_dir/{history.json, losses.png,
    samples.png, logs/}. Nothing is written if training diverges.
    """
    files = split_files(examples_uri, "train")
    counts = count_labels(files, features)
    num_real = (counts[LABELS["fake"]] if config.critic_data == "fake" else
                sum(counts.values()))

    def make_dataset() -> tf.data.Dataset:
        return critic_dataset(files, features, config)

    result = train_wgan(make_dataset, num_real, features, config, checkpoint_dir,
                        log_dir=os.path.join(output_dir, "logs"))
    tf.io.gfile.makedirs(serving_dir)
    result.critic.save(os.path.join(serving_dir, CRITIC_FILE))
    result.generator.save(os.path.join(serving_dir, GENERATOR_FILE))
    with tf.io.gfile.GFile(os.path.join(output_dir, "history.json"), "w") as handle:
        json.dump(result.history, handle, indent=1)
    plot_gan_history(result.history, os.path.join(output_dir, "losses.png"))
    real = next(iter(make_dataset())).numpy()
    noise = tf.random.Generator.from_seed(config.seed).normal([real.shape[0], config.noise_dim])
    generated = result.generator(noise, training=False).numpy()
    plot_spectrogram_grid(generated, real, os.path.join(output_dir, "samples.png"))
    last_epoch = result.history["epochs"][-1] if result.history["epochs"] else {}
    return {
        "steps": result.steps,
        "epochs": result.epochs,
        **{name: float(last_epoch.get(name, np.nan)) for name in LOSS_NAMES},
        "wall_seconds": round(result.seconds, 2),
        "device": result.device,
        "resumed_from_step": result.resumed_from_step,
        "critic_examples": num_real,
    }
