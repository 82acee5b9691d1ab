"""Which schema file the pipeline imports: schemas/examples_schema.pbtxt, fitted to the config."""

from __future__ import annotations

import os
from importlib import resources

import tensorflow as tf
from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2

from spoofdetect.config import FeatureConfig
from spoofdetect.examples import LOG_MEL

SCHEMA_FILE = "examples_schema.pbtxt"


def packaged_schema_path() -> str:
    return str(resources.files("spoofdetect.schemas").joinpath(SCHEMA_FILE))


def load_schema(path: str) -> schema_pb2.Schema:
    with open(path, encoding="utf-8") as handle:
        return text_format.Parse(handle.read(), schema_pb2.Schema())


def schema_path_for(config: FeatureConfig, scratch_dir: str) -> str:
    """The packaged schema, or a copy in scratch_dir whose log_mel size matches `config`."""
    path = packaged_schema_path()
    schema = load_schema(path)
    size = config.num_rows * config.num_frames
    log_mel = next(feature for feature in schema.feature if feature.name == LOG_MEL)
    if log_mel.value_count.min == size and log_mel.value_count.max == size:
        return path
    log_mel.value_count.min = log_mel.value_count.max = size
    # gfile: on Kubeflow the scratch folder is under the pipeline root (gs://, s3://, ...).
    tf.io.gfile.makedirs(scratch_dir)
    fitted = os.path.join(scratch_dir, SCHEMA_FILE)
    with tf.io.gfile.GFile(fitted, "w") as handle:
        handle.write(text_format.MessageToString(schema))
    return fitted
