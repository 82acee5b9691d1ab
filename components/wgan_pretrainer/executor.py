"""WganPretrainer executor: trains stage 1 on the train split, writes the Model artifact."""

from __future__ import annotations

import hashlib
import os
from typing import Any

import tensorflow as tf
from tfx import types
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils
from tfx.utils import path_utils

from spoofdetect.components import keys
from spoofdetect.components.code_version import running_code_version
from spoofdetect.components.properties import record_properties
from spoofdetect.config import FeatureConfig, GanConfig, section_from_json
from spoofdetect.pretraining import run_pretraining


def checkpoint_dir_for(model_uri: str, examples_uri: str, gan_json: str,
                       feature_json: str, code_version: str) -> str:
    """Where this training run keeps its checkpoints.

    TFX gives every execution a new output folder, so a run started again after a crash
    would not find its checkpoints there. This folder is keyed by what determines the run
    (the input examples, both configs and the code that trains) and sits beside the
    component's outputs.
    """
    key = hashlib.sha256("\n".join((examples_uri, gan_json, feature_json,
                                    code_version)).encode())
    component_dir = os.path.dirname(os.path.dirname(model_uri.rstrip("/")))
    return os.path.join(component_dir, ".checkpoints", key.hexdigest()[:16])


class Executor(base_executor.BaseExecutor):
    def Do(self, input_dict: dict[str, list[types.Artifact]],
           output_dict: dict[str, list[types.Artifact]],
           exec_properties: dict[str, Any]) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        examples = artifact_utils.get_single_instance(input_dict[keys.EXAMPLES_KEY])
        model = artifact_utils.get_single_instance(output_dict[keys.MODEL_KEY])
        features = section_from_json(FeatureConfig, exec_properties[keys.FEATURE_CONFIG_KEY])
        gan = section_from_json(GanConfig, exec_properties[keys.GAN_CONFIG_KEY])
        running = running_code_version(exec_properties.get(keys.CODE_VERSION_KEY))
        checkpoint_dir = checkpoint_dir_for(model.uri, examples.uri,
                                            exec_properties[keys.GAN_CONFIG_KEY],
                                            exec_properties[keys.FEATURE_CONFIG_KEY], running)
        summary = run_pretraining(examples.uri, features, gan, checkpoint_dir,
                                  serving_dir=path_utils.serving_model_path(model.uri),
                                  output_dir=model.uri)
        # The summary's names are the properties' (keys.STEPS_PROPERTY, ...; the executor test
        # checks every one the readers use is there).
        record_properties(model, {**summary, keys.CODE_VERSION_PROPERTY: running})
        # Finished: a later run with the same inputs starts afresh.
        tf.io.gfile.rmtree(checkpoint_dir)
