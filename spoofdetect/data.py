"""tf.data input from the feature TFRecords, shared by both training stages and evaluation."""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

from spoofdetect import examples
from spoofdetect.config import LABELS, FeatureConfig, MaskingConfig
from spoofdetect.errors import UserError


def split_files(examples_uri: str, split: str) -> list[str]:
    """The TFRecord files of one split of an Examples artifact (or `features` output)."""
    pattern = os.path.join(examples_uri, f"Split-{split}", "data_tfrecord-*")
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


def record_dataset(files: list[str]) -> tf.data.Dataset:
    """The serialised records of `files` (glob patterns allowed), in order, uncompressed.

    Gzipped files (`.gz`) were written by releases whose spectrograms were float lists, which
    these readers cannot parse: they are refused with what to do, not read into a parse error.
    """
    expanded = expand_patterns(files)
    older = [name for name in expanded if name.endswith(".gz")]
    if older:
        raise UserError(f"{older[0]} was written by an earlier release (gzipped records, "
                        f"spectrograms as float lists; examples.RECORD_FORMAT is now "
                        f"{examples.RECORD_FORMAT!r}): extract the features again "
                        "(`spoofdetect features`, or rerun the pipeline).")
    return tf.data.TFRecordDataset(expanded)


def example_dataset(files: list[str], config: FeatureConfig, batch_size: int,
                    shuffle_buffer: int = 0, seed: int | None = None,
                    label: int | None = None, repeat: bool = False,
                    drop_remainder: bool = False,
                    masking: MaskingConfig | None = None,
                    map_key: str = examples.LOG_MEL,
                    originals_only: bool = False) -> tf.data.Dataset:
    """Batches of parsed examples ({log_mel: [batch, rows, frames], label, ...}); the map
    under log_mel is the one stored under `map_key` (examples.parse_examples).

    `label` keeps only examples of that class; `originals_only` only the clips' own, not
    their augmented copies (each filter reads one small feature, before the maps are
    parsed). With a seed, the order (shuffle included) is
    the same on every run, so training can be reproduced and resumed exactly. `masking`
    masks the spectrograms (training only), seeded by `seed` and the batch's position.
    """
    dataset = record_dataset(files)
    if label is not None:
        dataset = dataset.filter(
            lambda record: tf.equal(_one_feature(record, config, examples.LABEL), label))
    if originals_only:
        dataset = dataset.filter(
            lambda record: tf.equal(_one_feature(record, config, examples.AUGMENTATION), b""))
    if shuffle_buffer:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        dataset = dataset.repeat()
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    dataset = dataset.map(lambda records: examples.parse_examples(records, config, map_key),
                          num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if masking is not None and masking.active:
        dataset = dataset.enumerate().map(
            lambda index, batch: {**batch, examples.LOG_MEL: mask_spectrograms(
                batch[examples.LOG_MEL], masking, tf.stack([tf.cast(seed or 0, tf.int64),
                                                            index]), config.num_blocks)},
            num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return dataset.prefetch(tf.data.AUTOTUNE)


def _one_feature(record: tf.Tensor, config: FeatureConfig, key: str) -> tf.Tensor:
    """One scalar feature of a serialized example, parsed alone."""
    return tf.io.parse_single_example(record, {key: examples.feature_spec(config)[key]})[key]


def _random_spans(seed: tf.Tensor, batch: tf.Tensor, size: int, count: int,
                  max_width: int) -> tf.Tensor:
    """[batch, size] bool: the union of `count` spans per row, each of a width uniform in
    [0, max_width] at a uniform start (stateless: the same for the same seed)."""
    positions = tf.range(size)[tf.newaxis, :]
    covered = tf.zeros([batch, size], tf.bool)
    for span in range(count):
        span_seed = tf.random.experimental.stateless_fold_in(seed, span)
        width = tf.random.stateless_uniform([batch, 1], span_seed, 0, min(max_width, size) + 1,
                                            dtype=tf.int32)
        start_seed = tf.random.experimental.stateless_fold_in(span_seed, 1)
        start = tf.cast(tf.floor(tf.random.stateless_uniform([batch, 1], start_seed)
                                 * tf.cast(size - width + 1, tf.float32)), tf.int32)
        covered |= (positions >= start) & (positions < start + width)
    return covered


def mask_spectrograms(log_mel: tf.Tensor, masking: MaskingConfig, seed: tf.Tensor,
                      blocks: int = 1) -> tf.Tensor:
    """SpecAugment's frequency and time masks on [batch, rows, frames], masked values 0.

    A map of `blocks` row blocks (FeatureConfig.num_blocks: every window's magnitude, then
    phase) has the same bands in every block, so a frequency mask removes its bands from
    every block: a band hidden in one view but shown in another would hide nothing.
    """
    shape = tf.shape(log_mel)
    bands, frames = log_mel.shape[1] // blocks, log_mel.shape[2]
    seed = tf.cast(seed, tf.int64)
    freq = _random_spans(tf.random.experimental.stateless_fold_in(seed, 0), shape[0], bands,
                         masking.freq_masks, masking.max_freq_bins)
    freq = tf.tile(freq, [1, blocks])
    time = _random_spans(tf.random.experimental.stateless_fold_in(seed, 1), shape[0], frames,
                         masking.time_masks, masking.max_time_frames)
    keep = ~(freq[:, :, tf.newaxis] | time[:, tf.newaxis, :])
    return tf.where(keep, log_mel, tf.zeros_like(log_mel))


def count_labels(files: list[str], config: FeatureConfig) -> dict[int, int]:
    """Examples per label, in one pass over the files (labels only are parsed)."""
    spec = {examples.LABEL: examples.feature_spec(config)[examples.LABEL]}
    dataset = record_dataset(files).batch(1024).map(
        lambda records: tf.io.parse_example(records, spec))
    counts = {label: 0 for label in LABELS.values()}
    for batch in dataset:
        for label, count in zip(*np.unique(batch[examples.LABEL].numpy(), return_counts=True),
                                strict=True):
            counts[int(label)] += int(count)
    return counts
