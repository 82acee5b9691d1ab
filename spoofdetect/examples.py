"""The tf.Example format of the feature TFRecords: names, writing and parsing.

schemas/examples_schema.pbtxt describes the same features for TFDV; tests check they agree.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from spoofdetect.config import FeatureConfig

# The front end's features (the seed's log-Mel by default, whence the name): one bytes value,
# float32 little-endian, row-major [rows, frames]. Packed rather than a float list of 10,080
# values: serialising and parsing it cost as much as computing it.
LOG_MEL = "log_mel"
LABEL = "label"  # int64: 0 real (bona fide), 1 fake (spoof)
PATH = "path"  # bytes: source file relative to the dataset root
CLIP_ID = "clip_id"  # bytes: shared by every segment of one file
SEGMENT_INDEX = "segment_index"  # int64: 0 for the first 4 s window
SAMPLE_RATE = "sample_rate"  # int64: the file's original sample rate
DURATION = "duration_seconds"  # float: the file's original duration
ATTACK = "attack"  # bytes, only when the dataset names the attack
SPEAKER = "speaker"  # bytes, only when the dataset names the speaker
AUGMENTATION = "augmentation"  # bytes, only on augmented copies: the transform's name
# Summaries of log_mel written beside it, for schema validation: statistics over all of its
# values hide one bad example (a NaN changes no count, a constant map no range), these do not.
LOG_MEL_VALUES = "log_mel_values"  # int64: how many values (the shape's rows x frames)
LOG_MEL_NON_FINITE = "log_mel_non_finite"  # int64: how many are NaN or infinite
LOG_MEL_STD = "log_mel_std"  # float: standard deviation of the finite ones (0: constant)
SUMMARIES = (LOG_MEL_VALUES, LOG_MEL_NON_FINITE, LOG_MEL_STD)
# What the FeatureExtractor writes, as one of its parameters: a change makes TFX's cache
# extract again rather than hand older examples to a schema that expects these.
RECORD_FORMAT = "uncompressed tfrecord, log_mel as float32 bytes, summaries (3)"


def make_example(log_mel: np.ndarray, label: int, path: str, clip_id: str, segment_index: int,
                 sample_rate: int, duration_seconds: float, attack: str = "",
                 speaker: str = "", augmentation: str = "") -> bytes:
    example = tf.train.Example()
    feature = example.features.feature
    values = np.asarray(log_mel, "<f4").ravel()
    finite = values[np.isfinite(values)]
    feature[LOG_MEL].bytes_list.value.append(values.tobytes())
    feature[LOG_MEL_VALUES].int64_list.value.append(values.size)
    feature[LOG_MEL_NON_FINITE].int64_list.value.append(values.size - finite.size)
    feature[LOG_MEL_STD].float_list.value.append(float(finite.std()) if finite.size else 0.0)
    feature[LABEL].int64_list.value.append(label)
    feature[PATH].bytes_list.value.append(path.encode())
    feature[CLIP_ID].bytes_list.value.append(clip_id.encode())
    feature[SEGMENT_INDEX].int64_list.value.append(segment_index)
    feature[SAMPLE_RATE].int64_list.value.append(sample_rate)
    feature[DURATION].float_list.value.append(duration_seconds)
    if attack:
        feature[ATTACK].bytes_list.value.append(attack.encode())
    if speaker:
        feature[SPEAKER].bytes_list.value.append(speaker.encode())
    if augmentation:
        feature[AUGMENTATION].bytes_list.value.append(augmentation.encode())
    return example.SerializeToString()


def feature_spec(config: FeatureConfig) -> dict[str, tf.io.FixedLenFeature]:
    """Parsing spec for tf.io.parse_example; attack, speaker, augmentation default to ''."""
    return {
        LOG_MEL: tf.io.FixedLenFeature([], tf.string),
        LABEL: tf.io.FixedLenFeature([], tf.int64),
        PATH: tf.io.FixedLenFeature([], tf.string),
        CLIP_ID: tf.io.FixedLenFeature([], tf.string),
        SEGMENT_INDEX: tf.io.FixedLenFeature([], tf.int64),
        SAMPLE_RATE: tf.io.FixedLenFeature([], tf.int64),
        DURATION: tf.io.FixedLenFeature([], tf.float32),
        ATTACK: tf.io.FixedLenFeature([], tf.string, default_value=""),
        SPEAKER: tf.io.FixedLenFeature([], tf.string, default_value=""),
        AUGMENTATION: tf.io.FixedLenFeature([], tf.string, default_value=""),
    }


def parse_examples(serialized: tf.Tensor, config: FeatureConfig) -> dict[str, tf.Tensor]:
    """Batch of serialised examples -> tensors, log_mel reshaped to [batch, rows, frames]."""
    parsed = tf.io.parse_example(serialized, feature_spec(config))
    values = tf.io.decode_raw(parsed[LOG_MEL], tf.float32, little_endian=True)
    parsed[LOG_MEL] = tf.reshape(values, [-1, config.num_rows, config.num_frames])
    return parsed
