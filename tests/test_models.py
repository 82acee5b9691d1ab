"""The networks: self-attention, critic, generator, classifier head, serialisation."""

import dataclasses

import keras
import numpy as np
import pytest

from spoofdetect.config import FeatureConfig, GanConfig
from spoofdetect.models import (
    SelfAttention,
    TimeStatistics,
    build_critic,
    build_generator,
    classifier_from_critic,
)
from tests.conftest import SEED_FEATURES

FEATURES, GAN = SEED_FEATURES, GanConfig()


def test_self_attention_starts_as_identity_and_attends_once_gamma_moves():
    layer = SelfAttention()
    x = np.random.default_rng(0).standard_normal((2, 5, 7, 16)).astype("float32")
    np.testing.assert_allclose(layer(x), x, atol=1e-6)
    assert layer.query.filters == 2 and layer.key.filters == 2  # C/8
    assert layer.value.filters == 16 and layer.output_projection.filters == 16
    layer.gamma.assign(1.0)
    moved = np.asarray(layer(x))
    assert np.abs(moved - x).max() > 1e-3
    # Attention mixes positions: changing one position changes the output at another.
    x2 = x.copy()
    x2[:, 0, 0, :] += 5.0
    assert np.abs(np.asarray(layer(x2))[:, 4, 6] - moved[:, 4, 6]).max() > 1e-4


def test_critic_matches_the_seed_architecture():
    critic = build_critic(FEATURES, GAN)
    kinds = [type(layer).__name__ for layer in critic.layers]
    assert "BatchNormalization" not in kinds
    convs = [layer for layer in critic.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [c.filters for c in convs] == [64, 128, 256]
    assert [c.use_bias for c in convs] == [True, False, False]
    assert all(c.kernel_size == (4, 4) and c.strides == (2, 2) for c in convs)
    assert kinds.index("SelfAttention") == kinds.index("LayerNormalization") + 2
    assert critic.output_shape == (None, 1)
    narrow = build_critic(FEATURES, GanConfig(critic_widths=(8, 16, 32)))
    assert narrow.count_params() < critic.count_params() / 20


def test_generator_outputs_standardised_spectrograms():
    generator = build_generator(FEATURES, GAN)
    out = np.asarray(generator(np.random.default_rng(1).standard_normal((3, 128)).astype(
        "float32")))
    assert out.shape == (3, 80, 126)
    np.testing.assert_allclose(out.mean(axis=(1, 2)), 0.0, atol=1e-4)
    np.testing.assert_allclose(out.std(axis=(1, 2)), 1.0, atol=1e-3)
    assert any(isinstance(layer, SelfAttention) for layer in generator.layers)


@pytest.mark.parametrize(("features", "blocks"), [
    (dataclasses.replace(SEED_FEATURES, phase=True), 2),
    (dataclasses.replace(SEED_FEATURES, extra_windows=(512,)), 2),
    (FeatureConfig(extra_windows=(512, 1024), phase=True), 6),
    (FeatureConfig(phase=True, phase_windows=(512,)), 3)])
def test_generator_standardises_each_row_block_like_the_features(features, blocks):
    """Every window's magnitude and phase block is standardised on its own in the features, so
    a generator that standardised the whole map would be told apart by block statistics."""
    generator = build_generator(features, GanConfig(generator_widths=(16, 8, 8, 8)))
    out = np.asarray(generator(np.random.default_rng(1).standard_normal((2, 128)).astype(
        "float32")))
    assert out.shape == (2, features.num_rows, 126) and features.num_blocks == blocks
    for block in np.split(out, blocks, axis=1):
        np.testing.assert_allclose(block.mean(axis=(1, 2)), 0.0, atol=1e-4)
        np.testing.assert_allclose(block.std(axis=(1, 2)), 1.0, atol=1e-3)


def test_classifier_reuses_the_critic_body_with_a_sigmoid_head():
    critic = build_critic(FEATURES, GAN)
    classifier = classifier_from_critic(critic)
    assert classifier.get_layer("conv2") is critic.get_layer("conv2")
    assert "critic_score" not in [layer.name for layer in classifier.layers]
    p = np.asarray(classifier(np.zeros((2, 80, 126), "float32")))
    assert p.shape == (2, 1) and ((p > 0) & (p < 1)).all()


def test_time_statistics_pool_each_row_and_channel_over_time():
    x = np.random.default_rng(2).standard_normal((2, 3, 9, 4)).astype("float32")
    pooled = np.asarray(TimeStatistics()(x))
    assert pooled.shape == (2, 3, 8)
    np.testing.assert_allclose(pooled[..., :4], x.mean(axis=2), atol=1e-6)
    np.testing.assert_allclose(pooled[..., 4:], np.sqrt(x.var(axis=2) + 1e-5), atol=1e-6)
    # No position in time is special: reversing time changes nothing.
    np.testing.assert_allclose(np.asarray(TimeStatistics()(x[:, :, ::-1])), pooled, atol=1e-6)


def test_time_statistics_head_makes_the_score_blind_to_where_a_cue_sits_in_time():
    gan = GanConfig(critic_widths=(8, 16, 32), critic_head="time_statistics")
    critic = build_critic(FEATURES, gan)
    flat = build_critic(FEATURES, GanConfig(critic_widths=(8, 16, 32)))
    # The Dense sees rows/8 x 2 x width inputs, not rows/8 x frames/8 x width.
    assert critic.get_layer("flatten").output.shape[-1] == 10 * 2 * 32
    assert flat.get_layer("flatten").output.shape[-1] == 10 * 16 * 32
    # A cue moved by whole stride-8 steps, away from the padded edges, gives the same score:
    # the convolutions are shift-equivariant, attention is equivariant to any reordering of
    # positions, and the pooling forgets position. The flattening head does not.
    cue = np.random.default_rng(3).standard_normal((1, 80, 8)).astype("float32")
    early, late = np.zeros((1, 80, 126), "float32"), np.zeros((1, 80, 126), "float32")
    early[:, :, 40:48], late[:, :, 72:80] = cue, cue
    gap = abs(float(critic(early)[0, 0]) - float(critic(late)[0, 0]))
    flat_gap = abs(float(flat(early)[0, 0]) - float(flat(late)[0, 0]))
    assert gap < 1e-4 < flat_gap
    classifier = classifier_from_critic(critic)
    assert classifier.get_layer("time_statistics") is critic.get_layer("time_statistics")


@pytest.mark.parametrize("build", [build_critic, build_generator])
def test_saved_models_load_with_identical_outputs(build, tmp_path):
    model = build(FEATURES, GAN)
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    x = np.random.default_rng(2).standard_normal((2, *model.input_shape[1:])).astype("float32")
    np.testing.assert_allclose(loaded(x), model(x), atol=1e-6)
