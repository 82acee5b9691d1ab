"""WganPretrainer component: Examples -> Model (critic and generator).

Inputs:
  examples: the FeatureExtractor's Examples; the train split feeds the critic.
Outputs:
  model: Model. Format-Serving/critic.keras (the base model for fine-tuning) and
    generator.keras; history.json, losses.png, samples.png (generated next to real) and
    logs/ (TensorBoard) beside it. MLMD custom properties (readers' names in
    components/keys.py): steps, epochs, critic_loss,
    generator_loss, wasserstein, gradient_penalty (final epoch means), wall_seconds, device,
    resumed_from_step, critic_examples, code_version (the code that ran).
Parameters:
  gan_config, feature_config: the GanConfig and FeatureConfig sections as JSON.
  code_version: the package's code version (components/code_version.py, set by the
    component), so other code is not served a critic from the cache.
"""

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

from spoofdetect.components import code_version, keys
from spoofdetect.components.wgan_pretrainer import executor


class WganPretrainerSpec(ComponentSpec):
    PARAMETERS = {
        keys.GAN_CONFIG_KEY: ExecutionParameter(type=str),
        keys.FEATURE_CONFIG_KEY: ExecutionParameter(type=str),
        keys.CODE_VERSION_KEY: ExecutionParameter(type=str),
    }
    INPUTS = {keys.EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples)}
    OUTPUTS = {keys.MODEL_KEY: ChannelParameter(type=standard_artifacts.Model)}


class WganPretrainer(base_component.BaseComponent):
    SPEC_CLASS = WganPretrainerSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(self, examples: types.BaseChannel, gan_config: str, feature_config: str):
        super().__init__(spec=WganPretrainerSpec(
            examples=examples, gan_config=gan_config, feature_config=feature_config,
            code_version=code_version.current(),
            model=types.Channel(type=standard_artifacts.Model)))
