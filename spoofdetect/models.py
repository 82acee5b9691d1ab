"""The networks: SAGAN self-attention, the WGAN critic, the generator, the classifier.

Plain Keras 3; no TFX. Every custom layer is registered and has `get_config`, so a saved
`.keras` file loads wherever `spoofdetect` is importable, and the exported SavedModel needs no
project code at all.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import layers, ops

from spoofdetect.config import FeatureConfig, GanConfig
from spoofdetect.features import standardise_per_example

PACKAGE = "spoofdetect"
CRITIC_SCORE = "critic_score"
CLASSIFIER_LOGIT = "logit"
READ_OUT_NORMALISATION = "read_out_normalisation"
CLASSIFIER_OUTPUT = "p_fake"


@keras.saving.register_keras_serializable(package=PACKAGE)
class SelfAttention(layers.Layer):
    """SAGAN self-attention over the positions of a [batch, height, width, channels] map.

    1x1 query and key projections to channels/8, a 1x1 value projection, softmax over
    positions, a 1x1 output projection, and a residual add scaled by a learnable gamma that
    starts at 0, so the layer begins as the identity and learns how much attention to use.
    """

    def __init__(self, key_divisor: int = 8, **kwargs: Any):
        super().__init__(**kwargs)
        self.key_divisor = key_divisor

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        channels = int(input_shape[-1])
        key_channels = max(1, channels // self.key_divisor)
        self.query = layers.Conv2D(key_channels, 1, name="query")
        self.key = layers.Conv2D(key_channels, 1, name="key")
        self.value = layers.Conv2D(channels, 1, name="value")
        self.output_projection = layers.Conv2D(channels, 1, name="output_projection")
        for projection, width in ((self.query, channels), (self.key, channels),
                                  (self.value, channels), (self.output_projection, channels)):
            projection.build((None, None, None, width))
        self.gamma = self.add_weight(name="gamma", shape=(), initializer="zeros")

    def call(self, inputs: Any) -> Any:
        shape = ops.shape(inputs)
        batch, height, width, channels = shape[0], shape[1], shape[2], shape[3]
        positions = height * width
        query = ops.reshape(self.query(inputs), (batch, positions, -1))
        key = ops.reshape(self.key(inputs), (batch, positions, -1))
        value = ops.reshape(self.value(inputs), (batch, positions, channels))
        attention = ops.softmax(ops.matmul(query, ops.transpose(key, (0, 2, 1))), axis=-1)
        attended = ops.reshape(ops.matmul(attention, value), (batch, height, width, channels))
        return inputs + ops.cast(self.gamma, inputs.dtype) * self.output_projection(attended)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "key_divisor": self.key_divisor}


@keras.saving.register_keras_serializable(package=PACKAGE)
class Standardise(layers.Layer):
    """Per-example mean 0, std 1 for each of `blocks` equal row blocks (FeatureConfig's
    num_blocks): generated maps are standardised exactly like the features."""

    def __init__(self, blocks: int = 1, **kwargs: Any):
        super().__init__(**kwargs)
        self.blocks = blocks

    def call(self, inputs: Any) -> Any:
        return ops.concatenate([standardise_per_example(block)
                                for block in ops.split(inputs, self.blocks, axis=1)], axis=1)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "blocks": self.blocks}


@keras.saving.register_keras_serializable(package=PACKAGE)
class TimeStatistics(layers.Layer):
    """[batch, rows, frames, channels] -> [batch, rows, 2 * channels]: each row's and
    channel's mean and standard deviation over time (x-vector-style statistics pooling).

    The standard deviation is sqrt(variance + 1e-5): the gradient penalty differentiates
    the critic twice, and a bare sqrt has no finite gradient at zero variance.
    """

    def call(self, inputs: Any) -> Any:
        mean = ops.mean(inputs, axis=2)
        variance = ops.mean(ops.square(inputs - ops.expand_dims(mean, 2)), axis=2)
        return ops.concatenate([mean, ops.sqrt(variance + 1e-5)], axis=-1)


def build_critic(features: FeatureConfig, gan: GanConfig) -> keras.Model:
    """The seed's critic: [batch, rows, frames] -> one unbounded score per example.

    Layer normalisation, not batch normalisation: the gradient penalty needs each example's
    score to depend on that example alone. With gan.critic_head 'time_statistics' the last
    convolution's map is pooled over time before the Dense: the score no longer depends on
    where in the segment a cue sits, and the head has rows/8 x 2 x width inputs instead of
    rows/8 x frames/8 x width (40,960 for the seed's map), far fewer to overfit with.
    """
    first, second, third = gan.critic_widths
    spectrogram = keras.Input((features.num_rows, features.num_frames), name="log_mel")
    x = layers.Reshape((features.num_rows, features.num_frames, 1))(spectrogram)
    x = layers.Conv2D(first, 4, strides=2, padding="same", name="conv1")(x)
    x = layers.LeakyReLU(0.2)(x)
    x = layers.Conv2D(second, 4, strides=2, padding="same", use_bias=False, name="conv2")(x)
    x = layers.LayerNormalization(name="norm2")(x)
    x = layers.LeakyReLU(0.2)(x)
    x = SelfAttention(name="attention")(x)
    x = layers.Conv2D(third, 4, strides=2, padding="same", use_bias=False, name="conv3")(x)
    x = layers.LayerNormalization(name="norm3")(x)
    x = layers.LeakyReLU(0.2)(x)
    if gan.critic_head == "time_statistics":
        x = TimeStatistics(name="time_statistics")(x)
    x = layers.Flatten(name="flatten")(x)
    score = layers.Dense(1, name=CRITIC_SCORE, dtype="float32")(x)
    return keras.Model(spectrogram, score, name="critic")


def build_generator(features: FeatureConfig, gan: GanConfig) -> keras.Model:
    """Noise -> [batch, rows, frames], standardised like the features (block by block).

    Four stride-2 transposed convolutions grow a (rows/16 x frames/16) seed map to full size,
    with self-attention after the second (a quarter of the final resolution).
    """
    widths = gan.generator_widths
    seed_height = -(-features.num_rows // 16)
    seed_width = -(-features.num_frames // 16)
    noise = keras.Input((gan.noise_dim,), name="noise")
    x = layers.Dense(seed_height * seed_width * widths[0], name="project")(noise)
    x = layers.Reshape((seed_height, seed_width, widths[0]))(x)
    x = layers.LayerNormalization(name="norm0")(x)
    x = layers.ReLU()(x)
    for index, width in enumerate(widths[1:], start=1):
        x = layers.Conv2DTranspose(width, 4, strides=2, padding="same", use_bias=False,
                                   name=f"up{index}")(x)
        x = layers.LayerNormalization(name=f"norm{index}")(x)
        x = layers.ReLU()(x)
        if index == 2:
            x = SelfAttention(name="attention")(x)
    x = layers.Conv2DTranspose(1, 4, strides=2, padding="same", name="to_spectrogram",
                               dtype="float32")(x)
    x = layers.Cropping2D(((0, seed_height * 16 - features.num_rows),
                           (0, seed_width * 16 - features.num_frames)))(x)
    x = layers.Reshape((features.num_rows, features.num_frames))(x)
    spectrogram = Standardise(blocks=features.num_blocks, name="standardise",
                              dtype="float32")(x)
    return keras.Model(noise, spectrogram, name="generator")


def logit_model(classifier: keras.Model) -> keras.Model:
    """The classifier up to its logit: scores without the sigmoid's saturation (ties at 0
    and 1 that blur the EER, and log-odds that cannot be recovered from a rounded 1.0)."""
    return keras.Model(classifier.input, classifier.get_layer(CLASSIFIER_LOGIT).output)


def block_output(critic: keras.Model, block: int) -> Any:
    """The map at the end of the critic's convolution block 1, 2 or 3: block 1's activation,
    block 2's self-attention, block 3's activation (found from the named layers, since the
    activations' own names depend on what else the process has built)."""
    if block == 2:
        return critic.get_layer("attention").output
    names = [layer.name for layer in critic.layers]
    follows = {1: "conv1", 3: "norm3"}[block]
    return critic.layers[names.index(follows) + 1].output


def classifier_from_critic(critic: keras.Model, read_out: str = "critic",
                           head_l2: float = 0.0) -> keras.Model:
    """The critic without its last Dense, topped by Dense(1) and a sigmoid: p(fake).

    With read_out 'blockN_statistics' the head reads block N's map pooled into time
    statistics and standardised (a Normalization layer, fitted on the training split by
    `finetune.standardise_read_out`, or by `finetune.fit_head_lbfgs` on the read-out it
    solves on) instead of the whole critic: the linear probe of
    benchmarks/CRITIC_PROBE.md, which carried further to unseen speakers and attacks than
    the critic's last map. `head_l2` penalises the head's weights. The logit stays a named
    layer so the export can report log-odds without the loss of precision of inverting a
    saturated sigmoid.
    """
    if read_out == "critic":
        body = critic.get_layer("flatten").output
    else:
        pooled = TimeStatistics(name="read_out_statistics")(
            block_output(critic, int(read_out[len("block")])))
        body = layers.Normalization(name=READ_OUT_NORMALISATION, dtype="float32")(
            layers.Flatten(name="read_out_flatten")(pooled))
    regulariser = keras.regularizers.L2(head_l2) if head_l2 else None
    logit = layers.Dense(1, name=CLASSIFIER_LOGIT, dtype="float32",
                         kernel_regularizer=regulariser)(body)
    p_fake = layers.Activation("sigmoid", name=CLASSIFIER_OUTPUT, dtype="float32")(logit)
    return keras.Model(critic.input, p_fake, name="classifier")
