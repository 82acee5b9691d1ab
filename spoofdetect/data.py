"""tf.data input from the feature TFRecords, shared by both training stages and evaluation."""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

from spoofdetect import examples
from spoofdetect.config import LABELS, FeatureConfig


def split_files(examples_uri: str, split: str) -> list[str]:
    """The gzipped TFRecord files of one split of an Examples artifact (or `features` output)."""
    pattern = os.path.join(examples_uri, f"Split-{split}", "*.gz")
    files = sorted(tf.io.gfile.glob(pattern))
    if not files:
        raise FileNotFoundError(f"No TFRecord files match {pattern}")
    return files


def expand_patterns(files: list[str]) -> list[str]:
    """Files, with glob patterns (TFX's FnArgs give `Split-train/*`) expanded, sorted."""
    expanded = []
    for entry in files:
        expanded.extend(sorted(tf.io.gfile.glob(entry)) if "*" in entry else [entry])
    if not expanded:
        raise FileNotFoundError(f"No files match {files}")
    return expanded


def example_dataset(files: list[str], config: FeatureConfig, batch_size: int,
                    shuffle_buffer: int = 0, seed: int | None = None,
                    label: int | None = None, repeat: bool = False,
                    drop_remainder: bool = False) -> tf.data.Dataset:
    """Batches of parsed examples ({log_mel: [batch, n_mels, frames], label, ...}).

    `label` keeps only examples of that class. With a seed, the order (shuffle included) is
    the same on every run, so training can be reproduced and resumed exactly.
    """
    dataset = tf.data.TFRecordDataset(expand_patterns(files), compression_type="GZIP")
    if label is not None:
        spec = {examples.LABEL: examples.feature_spec(config)[examples.LABEL]}
        dataset = dataset.filter(
            lambda record: tf.equal(tf.io.parse_single_example(record, spec)[examples.LABEL],
                                    label))
    if shuffle_buffer:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        dataset = dataset.repeat()
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    dataset = dataset.map(lambda records: examples.parse_examples(records, config),
                          num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return dataset.prefetch(tf.data.AUTOTUNE)


def count_labels(files: list[str], config: FeatureConfig) -> dict[int, int]:
    """Examples per label, in one pass over the files (labels only are parsed)."""
    spec = {examples.LABEL: examples.feature_spec(config)[examples.LABEL]}
    dataset = tf.data.TFRecordDataset(expand_patterns(files), compression_type="GZIP")
    dataset = dataset.batch(1024).map(lambda records: tf.io.parse_example(records, spec))
    counts = {label: 0 for label in LABELS.values()}
    for batch in dataset:
        for label, count in zip(*np.unique(batch[examples.LABEL].numpy(), return_counts=True),
                                strict=True):
            counts[int(label)] += int(count)
    return counts
