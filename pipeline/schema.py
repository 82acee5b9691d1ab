"""Which schema file the pipeline imports: schemas/examples_schema.pbtxt, fitted to the config."""

from __future__ import annotations

import hashlib
import os
from importlib import resources

import tensorflow as tf
from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2

from spoofdetect.config import FUSED_MAPS, FeatureConfig
from spoofdetect.examples import LOG_MEL, summary_names

# Every map the packaged schema describes; a config's fitted schema keeps those it writes.
MAPS = (LOG_MEL, *FUSED_MAPS)

SCHEMA_FILE = "examples_schema.pbtxt"


def packaged_schema_path() -> str:
    return str(resources.files("spoofdetect.schemas").joinpath(SCHEMA_FILE))


def load_schema(path: str) -> schema_pb2.Schema:
    with open(path, encoding="utf-8") as handle:
        return text_format.Parse(handle.read(), schema_pb2.Schema())


def statistics_features(config: FeatureConfig) -> list[str]:
    """What StatisticsGen computes statistics of: every feature of `config`'s schema but the
    feature maps (log_mel, and the fused systems' maps).

    log_mel's 10,080 values per example made statistics the slowest data stage, and their
    ranges and counts could not catch one bad example anyway; each map's summaries
    (log_mel_values, log_mel_non_finite, log_mel_std) carry its checks.
    """
    return [feature.name for feature in fitted_schema(config).feature
            if feature.name not in MAPS]


def fitted_schema(config: FeatureConfig) -> schema_pb2.Schema:
    """The packaged schema (the default's: every system's map and its summaries) with each
    map's size (its value-count summary) from `config`, and without the maps of the fused
    systems that `config` leaves out, and their summaries."""
    schema = load_schema(packaged_schema_path())
    written = {LOG_MEL: config, **config.fused_maps}
    left_out = {name for map_key in MAPS if map_key not in written
                for name in (map_key, *summary_names(map_key))}
    kept = [feature for feature in schema.feature if feature.name not in left_out]
    del schema.feature[:]
    schema.feature.extend(kept)
    packaged = {feature.name: feature for feature in schema.feature}
    for map_key, shape in written.items():
        domain = packaged[summary_names(map_key)[0]].int_domain
        domain.min = domain.max = shape.num_rows * shape.num_frames
    return schema


def packaged_schema_fits(config: FeatureConfig) -> bool:
    return fitted_schema(config) == load_schema(packaged_schema_path())


def schema_path_for(config: FeatureConfig, scratch_dir: str) -> str:
    """The schema fitted to `config`, as a file in scratch_dir named by its content.

    TFX caches ImportSchemaGen by the file's path: a schema that changed (another feature
    shape, or a release that validates more) gets a new path, so a rerun never validates new
    examples against an older schema from the cache.
    """
    text = text_format.MessageToString(fitted_schema(config))
    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    path = os.path.join(scratch_dir, SCHEMA_FILE.replace(".pbtxt", f"-{digest}.pbtxt"))
    # gfile: on Kubeflow the scratch folder is under the pipeline root (gs://, s3://, ...).
    if not tf.io.gfile.exists(path):
        tf.io.gfile.makedirs(scratch_dir)
        with tf.io.gfile.GFile(path, "w") as handle:
            handle.write(text)
    return path
