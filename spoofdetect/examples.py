"""The tf.Example format of the feature TFRecords: names, writing and parsing.

schemas/examples_schema.pbtxt describes the same features for TFDV; tests check they agree.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from spoofdetect.config import FUSION_MAP, LFCC_MAP, FeatureConfig

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
# The fused systems' maps (FeatureConfig.fused_maps), each in log_mel's format with its
# summaries: the second system's (features.fusion) and LFCC-GMM's (features.lfcc_gmm).
FUSION_FEATURES = FUSION_MAP
LFCC_FEATURES = LFCC_MAP


def summary_names(map_key: str) -> tuple[str, str, str]:
    """The summaries written beside the map stored under `map_key`, for schema validation:
    statistics over all of its values hide one bad example (a NaN changes no count, a
    constant map no range), these do not. How many values (the shape's rows x frames), how
    many are NaN or infinite (int64), the finite ones' standard deviation (float, 0:
    constant)."""
    return f"{map_key}_values", f"{map_key}_non_finite", f"{map_key}_std"


SUMMARIES = LOG_MEL_VALUES, LOG_MEL_NON_FINITE, LOG_MEL_STD = summary_names(LOG_MEL)
# What the FeatureExtractor writes, as one of its parameters: a change makes TFX's cache
# extract again rather than hand older examples to a schema that expects these.
RECORD_FORMAT = "uncompressed tfrecord, log_mel as float32 bytes, summaries (3)"


def _add_map(feature: tf.train.Features, map_key: str, values: np.ndarray) -> None:
    values = np.asarray(values, "<f4").ravel()
    finite = values[np.isfinite(values)]
    count, non_finite, std = summary_names(map_key)
    feature[map_key].bytes_list.value.append(values.tobytes())
    feature[count].int64_list.value.append(values.size)
    feature[non_finite].int64_list.value.append(values.size - finite.size)
    feature[std].float_list.value.append(float(finite.std()) if finite.size else 0.0)


def make_example(log_mel: np.ndarray, label: int, path: str, clip_id: str, segment_index: int,
                 sample_rate: int, duration_seconds: float, attack: str = "",
                 speaker: str = "", augmentation: str = "",
                 fused_maps: dict[str, np.ndarray] | None = None) -> bytes:
    """One example; `fused_maps`: the fused systems' maps, by where they are stored."""
    example = tf.train.Example()
    feature = example.features.feature
    _add_map(feature, LOG_MEL, log_mel)
    for map_key, values in (fused_maps or {}).items():
        _add_map(feature, map_key, values)
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
    # Deterministic: a map's entries are otherwise written in an order that changes from
    # process to process (string hashing is seeded per process), so a chunk retried in
    # another worker wrote the same example as other bytes.
    return example.SerializeToString(deterministic=True)


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


def parse_examples(serialized: tf.Tensor, config: FeatureConfig,
                   map_key: str = LOG_MEL) -> dict[str, tf.Tensor]:
    """Batch of serialised examples -> tensors; the map stored under `map_key` (the first
    system's, or a fused system's with its own `config`) as LOG_MEL, reshaped to
    [batch, rows, frames]; and each of config.fused_maps under its own key."""
    spec = feature_spec(config)
    spec[map_key] = spec.pop(LOG_MEL)
    maps = {LOG_MEL: (map_key, config)}
    for fused_key, fused in config.fused_maps.items():
        spec[fused_key] = tf.io.FixedLenFeature([], tf.string)
        maps[fused_key] = (fused_key, fused)
    parsed = tf.io.parse_example(serialized, spec)
    for name, (stored, shape) in maps.items():
        values = tf.io.decode_raw(parsed.pop(stored), tf.float32, little_endian=True)
        parsed[name] = tf.reshape(values, [-1, shape.num_rows, shape.num_frames])
    return parsed
