"""WganPretrainer's executor called directly (Executor().Do on the demo examples), as TFX's
own executor tests do: the Model artifact's files and ML Metadata properties, and the
checkpoints removed once training finished."""

import os

import keras
from tfx.types import standard_artifacts

from spoofdetect.components import code_version, keys
from spoofdetect.components.wgan_pretrainer.executor import Executor, checkpoint_dir_for
from spoofdetect.config import GanConfig, section_to_json
from spoofdetect.pretraining import CRITIC_FILE, GENERATOR_FILE
from spoofdetect.wgan import steps_per_epoch
from tests.conftest import ONE_SYSTEM

GAN = GanConfig(critic_widths=(8, 16, 32), generator_widths=(32, 16, 8, 8), batch_size=2,
                epochs=1, shuffle_buffer=8)


def test_do_writes_the_critic_and_records_the_training(demo_examples, tmp_path, caplog):
    examples = standard_artifacts.Examples()
    examples.uri = demo_examples
    model = standard_artifacts.Model()
    # TFX's layout: PIPELINE_ROOT/WganPretrainer/model/EXECUTION_ID.
    model.uri = str(tmp_path / "WganPretrainer" / "model" / "7")
    # As on Kubeflow when the pipeline was compiled by another installation than the image's.
    compiled = "0.0.1+compiled0else"
    properties = {keys.GAN_CONFIG_KEY: section_to_json(GAN),
                  keys.FEATURE_CONFIG_KEY: section_to_json(ONE_SYSTEM),
                  keys.CODE_VERSION_KEY: compiled}
    Executor().Do({keys.EXAMPLES_KEY: [examples]}, {keys.MODEL_KEY: [model]}, properties)

    critic = keras.saving.load_model(os.path.join(model.uri, "Format-Serving", CRITIC_FILE))
    assert critic.output_shape == (None, 1)
    assert os.path.exists(os.path.join(model.uri, "Format-Serving", GENERATOR_FILE))
    for picture in ("losses.png", "samples.png"):
        assert os.path.exists(os.path.join(model.uri, picture))
    # The demo's train split has 4 fake clips: one epoch is what they make.
    assert model.get_int_custom_property(keys.STEPS_PROPERTY) == steps_per_epoch(4, GAN)
    assert model.get_int_custom_property(keys.EPOCHS_PROPERTY) == 1
    assert model.get_int_custom_property("critic_examples") == 4
    assert model.get_string_custom_property(keys.DEVICE_PROPERTY) == "CPU"
    for name in (keys.WASSERSTEIN_PROPERTY, keys.WALL_SECONDS_PROPERTY):
        assert model.has_custom_property(name), name
    # The model names the code that trained it, and the log says it is not the compiled one.
    running = code_version.current()
    assert model.get_string_custom_property(keys.CODE_VERSION_PROPERTY) == running
    assert f"runs code version {running} but the pipeline was compiled with {compiled}" in (
        caplog.text)
    checkpoints = checkpoint_dir_for(model.uri, examples.uri, properties[keys.GAN_CONFIG_KEY],
                                     properties[keys.FEATURE_CONFIG_KEY], running)
    assert checkpoints.startswith(str(tmp_path / "WganPretrainer" / ".checkpoints"))
    assert not os.path.exists(checkpoints)
