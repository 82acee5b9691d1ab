"""Stage 2 and the exported SavedModel: fine-tuning, the three signatures, their parity."""

import io
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import soundfile
import tensorflow as tf

from spoofdetect import examples
from spoofdetect.audio import decode_audio
from spoofdetect.config import ClassifierConfig, GanConfig
from spoofdetect.data import example_dataset, split_files
from spoofdetect.errors import UserError
from spoofdetect.evaluation import score_examples
from spoofdetect.export import SIGNATURES, export_serving_model
from spoofdetect.finetune import (
    class_weights,
    copy_pairs,
    nuisance_directions,
    project_out,
    solve_head,
    summarise,
    train_classifier,
)
from spoofdetect.metrics import equal_error_rate
from spoofdetect.models import (
    CLASSIFIER_LOGIT,
    CRITIC_SCORE,
    READ_OUT_NORMALISATION,
    block_output,
    build_critic,
    logit_model,
)
from spoofdetect.pipeline.run_summary import kept_weights
from spoofdetect.pretraining import CRITIC_FILE
from tests.conftest import ONE_SYSTEM

FEATURES = ONE_SYSTEM
GAN = GanConfig(critic_widths=(8, 16, 32))


def test_class_weights_balance_the_classes():
    weights = class_weights(num_real=30, num_fake=10)
    assert weights[0] * 30 == pytest.approx(weights[1] * 10)
    assert weights[0] * 30 + weights[1] * 10 == pytest.approx(40)


def test_fine_tuning_records_history_plots_and_logs(exported):
    _, run_dir, history, _ = exported
    assert {"loss", "accuracy", "auc", "val_loss", "val_accuracy", "val_auc", "val_eer",
            "val_worst_attack_eer"} <= set(history)
    assert len(history["val_auc"]) == 2
    # The demo data names no attacks: the worst attack's EER is the pooled EER.
    assert history["val_worst_attack_eer"] == history["val_eer"]
    for name in ("history.json", "training.png"):
        assert os.path.getsize(os.path.join(run_dir, name)) > 100
    assert os.listdir(os.path.join(run_dir, "logs"))


def test_fine_tuning_without_stage_1_needs_from_scratch(demo_examples, tmp_path):
    with pytest.raises(UserError, match="from_scratch"):
        train_classifier(split_files(demo_examples, "train"), split_files(demo_examples, "dev"),
                         FEATURES, ClassifierConfig(epochs=1), GAN, None, str(tmp_path))
    with pytest.raises(UserError, match="No pre-trained critic"):
        train_classifier(split_files(demo_examples, "train"), split_files(demo_examples, "dev"),
                         FEATURES, ClassifierConfig(epochs=1), GAN, str(tmp_path), str(tmp_path))


def test_saved_model_has_the_three_signatures_and_agrees_with_keras(exported):
    path, _, _, model = exported
    loaded = tf.saved_model.load(path)
    assert set(loaded.signatures) == set(SIGNATURES)
    log_mel = np.random.default_rng(0).standard_normal(
        (3, FEATURES.num_rows, FEATURES.num_frames)).astype("float32")
    out = loaded.signatures["from_features"](log_mel=tf.constant(log_mel))
    p_fake = model(log_mel).numpy()[:, 0]
    np.testing.assert_allclose(out["p_fake"].numpy(), p_fake, atol=1e-5)
    # The score is the negated logit itself, exact where p_fake has saturated towards 1 and
    # log((1 - p) / p) of the rounded probability is not.
    np.testing.assert_allclose(out["score"].numpy(), -logit_model(model)(log_mel).numpy()[:, 0],
                               atol=1e-4)
    np.testing.assert_array_equal(out["label"].numpy(), (p_fake >= 0.5).astype(int))


def test_waveform_signature_equals_beam_features_then_spectrogram_signature(
        exported, demo_root, demo_examples):
    path = exported[0]
    loaded = tf.saved_model.load(path)
    batch = next(iter(example_dataset(split_files(demo_examples, "eval"), FEATURES, 8)))
    from_features = loaded.signatures["from_features"](log_mel=batch[examples.LOG_MEL])
    for index, relative in enumerate(batch[examples.PATH].numpy()):
        with open(os.path.join(demo_root, relative.decode()), "rb") as handle:
            waveform = decode_audio(handle.read(), 16000).samples  # any length
        out = loaded.signatures["serving_default"](waveforms=tf.constant(waveform[None]))
        for name in ("p_fake", "score"):
            np.testing.assert_allclose(out[name].numpy()[0],
                                       from_features[name].numpy()[index], atol=1e-5)


def _wav_bytes(samples: np.ndarray, sample_rate: int) -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, sample_rate, subtype="PCM_16", format="WAV")
    return buffer.getvalue()


def test_audio_bytes_signature_decodes_like_the_beam_job(exported):
    loaded = tf.saved_model.load(exported[0])
    rng = np.random.default_rng(3)
    t = np.arange(5 * 16000) / 16000
    clip = (0.3 * np.sin(2 * np.pi * 220 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
            + 0.01 * rng.standard_normal(len(t))).astype("float32")
    stereo = np.stack([clip, 0.5 * clip], axis=1)
    encoded = _wav_bytes(stereo, 16000)
    by_bytes = loaded.signatures["from_audio_bytes"](audio=tf.constant([encoded, encoded]))
    decoded = decode_audio(encoded, 16000).samples
    by_waveform = loaded.signatures["serving_default"](waveforms=tf.constant(decoded[None]))
    np.testing.assert_allclose(by_bytes["score"].numpy(),
                               np.repeat(by_waveform["score"].numpy(), 2), atol=1e-5)


def test_saved_model_loads_without_the_project(exported):
    script = (
        "import os, sys\n"
        "sys.meta_path = [f for f in sys.meta_path if 'editable' not in repr(f).lower()]\n"
        "sys.path = [p for p in sys.path if p not in ('', '.')\n"
        "            and not os.path.isdir(os.path.join(p, 'spoofdetect'))]\n"
        "try:\n    import spoofdetect\nexcept ImportError:\n    pass\n"
        "else:\n    raise SystemExit('spoofdetect is importable: the test proves nothing')\n"
        "import tensorflow as tf\n"
        "model = tf.saved_model.load(sys.argv[1])\n"
        "out = model.signatures['serving_default'](waveforms=tf.zeros([1, 16000]))\n"
        "print(float(out['p_fake'][0]))\n")
    result = subprocess.run([sys.executable, "-c", script, exported[0]], capture_output=True,
                            text=True, cwd="/", timeout=300,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert 0.0 <= float(result.stdout.strip().splitlines()[-1]) <= 1.0


def test_dev_eer_is_the_eer_of_the_kept_model_and_can_pick_the_epoch(exported, demo_examples):
    history = exported[2]

    with_eer = ClassifierConfig(head_solver="adam", selection="eer")
    summary = summarise({**history, "val_eer": [0.4, 0.1]}, with_eer)
    assert summary["best_epoch"] == 2 and summary["best_dev_eer"] == 0.1
    by_auc = ClassifierConfig(head_solver="adam", selection="auc")
    assert summarise({**history, "val_auc": [0.9, 0.5]}, by_auc)["best_epoch"] == 1
    assert summary["trained"] == "the head on block1_statistics"  # the default
    assert summarise(history, ClassifierConfig(freeze_critic=False, read_out="critic",
                                               head_solver="adam")
                     )["trained"] == "the whole network"
    # The callback's EER is the dev EER of the model's own scores (here: the last epoch's,
    # which the exported fixture keeps when it is best or equal).
    scored = score_examples(exported[0], split_files(demo_examples, "dev"), FEATURES, 8)
    eer = equal_error_rate(scored.scores[~scored.is_spoof], scored.scores[scored.is_spoof])[0]
    assert eer in [pytest.approx(value, abs=1e-9) for value in history["val_eer"]]


def test_fixed_seeds_give_identical_first_epoch_losses(demo_examples, tmp_path):
    config = ClassifierConfig(from_scratch=True, head_solver="adam", epochs=1, batch_size=4)
    losses = []
    for name in ("a", "b"):
        _, history = train_classifier(split_files(demo_examples, "train"),
                                      split_files(demo_examples, "dev"), FEATURES, config, GAN,
                                      None, str(tmp_path / name))
        losses.append((history["loss"][0], history["val_loss"][0]))
    assert losses[0] == pytest.approx(losses[1], rel=1e-6)


def test_freeze_critic_trains_only_the_head(demo_examples, tmp_path):
    critic = build_critic(FEATURES, GAN)
    critic.save(str(tmp_path / CRITIC_FILE))
    config = ClassifierConfig(freeze_critic=True, read_out="critic", epochs=1, batch_size=4)
    model, _ = train_classifier(split_files(demo_examples, "train"),
                                split_files(demo_examples, "dev"), FEATURES, config, GAN,
                                str(tmp_path), str(tmp_path / "run"))
    assert [weight.name for weight in model.trainable_weights] == ["kernel", "bias"]
    for layer in critic.layers:
        if layer.weights and layer.name != CRITIC_SCORE:
            for before, after in zip(layer.get_weights(),
                                     model.get_layer(layer.name).get_weights(), strict=True):
                np.testing.assert_array_equal(before, after)
    assert model.get_layer(CLASSIFIER_LOGIT).trainable


# Each solver fits the standardisation its own way: Adam's before training, L-BFGS's from
# the read-out it computes for the solve.
@pytest.mark.parametrize("head_solver", ["adam", "lbfgs"])
def test_block_statistics_read_out_trains_a_penalised_head_on_standardised_statistics(
        demo_examples, tmp_path, head_solver):
    critic = build_critic(FEATURES, GAN)
    critic.save(str(tmp_path / CRITIC_FILE))
    config = ClassifierConfig(freeze_critic=True, read_out="block1_statistics", head_l2=0.01,
                              head_solver=head_solver, epochs=1, batch_size=4)
    model, _ = train_classifier(split_files(demo_examples, "train"),
                                split_files(demo_examples, "dev"), FEATURES, config, GAN,
                                str(tmp_path), str(tmp_path / "run"))
    # Block 1 of the narrow critic (stride 2): half the map's rows x 8 channels, a mean and a
    # deviation each.
    assert model.get_layer(CLASSIFIER_LOGIT).input.shape[-1] == FEATURES.num_rows // 2 * 8 * 2
    assert [weight.name for weight in model.trainable_weights] == ["kernel", "bias"]
    assert len(model.losses) == 1  # the head's L2 penalty
    # The normalisation holds the training split's statistics of the pooled block-1 map.
    maps = np.concatenate([batch[examples.LOG_MEL].numpy() for batch in example_dataset(
        split_files(demo_examples, "train"), FEATURES, 8)])
    block = keras.Model(critic.input, block_output(critic, 1))(maps).numpy()
    pooled = np.concatenate([block.mean(axis=2), np.sqrt(block.var(axis=2) + 1e-5)], axis=-1)
    normalisation = model.get_layer(READ_OUT_NORMALISATION)
    np.testing.assert_allclose(normalisation.adapt_mean.numpy(),
                               pooled.reshape(len(maps), -1).mean(axis=0), atol=1e-4)
    np.testing.assert_allclose(normalisation.adapt_variance.numpy(),
                               pooled.reshape(len(maps), -1).var(axis=0), rtol=1e-3, atol=1e-6)
    # The statistics and their normalisation are part of the exported model.
    export_serving_model(model, FEATURES, str(tmp_path / "serving"), max_seconds=10.0)
    out = tf.saved_model.load(str(tmp_path / "serving")).signatures["from_features"](
        log_mel=tf.constant(maps[:3]))
    np.testing.assert_allclose(out["p_fake"].numpy(), model(maps[:3]).numpy()[:, 0],
                               atol=1e-5)


def weighted_loss_gradient(inputs, is_spoof, weights, bias, head_l2, sample_weight):
    """The gradient of mean(sample_weight x log-loss) + head_l2 |w|^2 (the Trainer's loss:
    Keras's class weights and L2 regulariser) with respect to (weights, bias)."""
    residual = sample_weight * (1 / (1 + np.exp(-(inputs @ weights + bias))) - is_spoof)
    return (inputs.T @ residual / len(inputs) + 2 * head_l2 * weights,
            residual.sum() / len(inputs))


def test_solve_head_finds_the_minimum_of_the_trainers_loss():
    rng = np.random.default_rng(0)
    inputs = rng.normal(size=(400, 30))
    is_spoof = (inputs[:, 0] + 0.5 * rng.normal(size=400)) > 0
    sample_weight = np.where(is_spoof, 0.7, 1.6)
    head_l2 = 0.007
    weights, bias, iterations = solve_head(inputs, is_spoof, head_l2, sample_weight)
    assert iterations > 1
    gradient, bias_gradient = weighted_loss_gradient(inputs, is_spoof, weights, bias, head_l2,
                                                     sample_weight)
    assert np.abs(gradient).max() < 1e-4 and abs(bias_gradient) < 1e-4
    # With another penalty (C off by the factor n) or without the sample weights, the
    # gradient would not vanish.
    assert np.abs(2 * head_l2 * weights).max() > 1e-2
    unweighted = solve_head(inputs, is_spoof, head_l2)
    assert np.abs(weighted_loss_gradient(inputs, is_spoof, *unweighted[:2], head_l2,
                                         sample_weight)[0]).max() > 1e-3


def test_solve_head_that_does_not_converge_is_a_user_error(monkeypatch):
    from spoofdetect import finetune

    monkeypatch.setattr(finetune, "HEAD_ITERATIONS", 2)
    rng = np.random.default_rng(0)
    inputs = rng.normal(size=(200, 50))
    with pytest.raises(UserError, match="did not reach the head's minimum in 2 iterations"):
        solve_head(inputs, inputs[:, 0] > 0, 1e-5)


def test_lbfgs_head_is_the_minimum_whatever_the_seed(demo_examples, tmp_path):
    critic = build_critic(FEATURES, GAN)
    critic.save(str(tmp_path / CRITIC_FILE))
    train_files = split_files(demo_examples, "train")
    heads, histories = [], []
    for seed in (0, 1):
        config = ClassifierConfig(head_solver="lbfgs", head_l2=0.01, seed=seed)
        model, history = train_classifier(train_files, split_files(demo_examples, "dev"),
                                          FEATURES, config, GAN, str(tmp_path),
                                          str(tmp_path / f"run{seed}"))
        heads.append(model.get_layer(CLASSIFIER_LOGIT).get_weights())
        histories.append(history)
    # Adam's head depends on its seed (initial weights, shuffling); the minimum does not.
    for first, second in zip(*heads, strict=True):
        np.testing.assert_allclose(first, second, rtol=1e-5, atol=1e-6)
    # It is the minimum of the class-weighted, penalised loss on the training read-out.
    batches = list(example_dataset(train_files, FEATURES, 64))
    read_out = keras.Model(model.input, model.get_layer(CLASSIFIER_LOGIT).input)
    inputs = np.concatenate([read_out(batch[examples.LOG_MEL]).numpy() for batch in batches]
                            ).astype(np.float64)
    is_spoof = np.concatenate([batch[examples.LABEL].numpy() for batch in batches]) == 1
    weights = class_weights(int((~is_spoof).sum()), int(is_spoof.sum()))
    kernel, bias = heads[0]
    gradient, bias_gradient = weighted_loss_gradient(
        inputs, is_spoof, kernel[:, 0].astype(np.float64), float(bias[0]), 0.01,
        np.where(is_spoof, weights[1], weights[0]))
    assert np.abs(gradient).max() < 1e-4 and abs(bias_gradient) < 1e-4
    # The critic's block 1 stays as stage 1 left it.
    kept = {layer.name for layer in model.layers}
    assert "conv1" in kept
    for layer in critic.layers:
        if layer.weights and layer.name in kept:
            for before, after in zip(layer.get_weights(),
                                     model.get_layer(layer.name).get_weights(), strict=True):
                np.testing.assert_array_equal(before, after)
    # One entry of each metric the Adam path records, and the run's files.
    history = histories[0]
    assert {"loss", "accuracy", "auc", "val_loss", "val_accuracy", "val_auc", "val_eer",
            "val_worst_attack_eer", "solver_iterations"} <= set(history)
    assert all(len(values) == 1 for values in history.values())
    assert os.path.getsize(tmp_path / "run0" / "training.png") > 100
    summary = summarise(history, ClassifierConfig(head_solver="lbfgs"))
    assert kept_weights(summary) == (f"the loss's minimum (L-BFGS, "
                                     f"{int(history['solver_iterations'][0])} iterations)")
    # The dev metrics are the model's: its dev EER from the exported model's own scores.
    export_serving_model(model, FEATURES, str(tmp_path / "serving"), max_seconds=10.0)
    scored = score_examples(str(tmp_path / "serving"), split_files(demo_examples, "dev"),
                            FEATURES, 8)
    eer = equal_error_rate(scored.scores[~scored.is_spoof], scored.scores[scored.is_spoof])[0]
    assert history["val_eer"][0] == pytest.approx(eer, abs=1e-9)


def test_kept_weights_of_an_adam_record_names_the_epoch():
    summary = {"epochs_run": 8, "best_epoch": 3, "selection": "eer"}
    assert kept_weights(summary) == "epoch 3/8 (kept by dev eer)"
    assert kept_weights({**summary, "head_solver": "adam"}) == "epoch 3/8 (kept by dev eer)"


def test_copy_pairs_pair_each_augmented_copy_with_its_own_segment_of_the_same_class():
    clip_ids = ["a~b", "a~b~1", "a~b~2", "c", "c", "c~1", "c~1", "a~b~3", "d~1"]
    segment_index = np.array([0, 0, 0, 0, 1, 0, 1, 0, 0])
    augmentation = ["", "gain", "noise", "", "", "mu_law", "mu_law", "gain", "gain"]
    # a~b~3 is a vocoded copy (fake) of a bona fide clip: its difference is the spoof. d~1
    # has no clip of its own among the examples.
    is_spoof = np.array([False, False, False, True, True, True, True, True, False])
    copies, originals = copy_pairs(clip_ids, segment_index, augmentation, is_spoof)
    assert copies.tolist() == [1, 2, 5, 6]
    assert originals.tolist() == [0, 0, 3, 4]


def test_nuisance_directions_are_what_augmentation_changes_and_the_head_ignores_them():
    rng = np.random.default_rng(0)
    clips, width = 200, 12
    is_spoof = np.arange(clips) % 2 == 1
    originals = rng.normal(0, 0.1, (clips, width))
    originals[:, 0] += np.where(is_spoof, 1.0, -1.0)  # the spoof's trace
    # Augmentation moves copies along dimensions 1 and 2, and, in this training split, moves
    # the spoofs' copies further along 1: a head that reads 1 learns the augmentation.
    shift = rng.normal(0, 3.0, (clips, 2)) + np.where(is_spoof, 2.0, 0.0)[:, None] * [1, 0]
    copies = originals + rng.normal(0, 0.1, (clips, width))
    copies[:, 1:3] += shift
    values = np.concatenate([originals, copies])
    pairs = np.arange(clips, 2 * clips), np.arange(clips)
    directions, share = nuisance_directions(values, *pairs, 2)
    # Orthonormal, spanning dimensions 1 and 2, with most of the differences' energy.
    np.testing.assert_allclose(directions @ directions.T, np.eye(2), atol=1e-8)
    assert np.linalg.norm(directions[:, 1:3], axis=1) == pytest.approx([1, 1], abs=1e-2)
    assert 0.95 < share <= 1.0
    labels = np.concatenate([is_spoof, is_spoof])
    plain, _, _ = solve_head(values, labels, 0.01)
    assert abs(plain[1]) > 0.05  # without the projection the head reads the augmentation
    projected = values.copy()
    blind, _, _ = solve_head(projected, labels, 0.01, ignored=directions)
    # The read-out is projected in place, and the head scores it as it scores the original.
    np.testing.assert_allclose(projected @ directions.T, 0, atol=1e-9)
    assert np.abs(directions @ blind).max() < 1e-3 and abs(blind[0]) > 1.0
    np.testing.assert_allclose(values @ blind, projected @ blind, atol=1e-9)
    alone = values[:3].copy()
    project_out(alone[:1], directions)  # a slice: only its own rows change
    np.testing.assert_array_equal(alone[1:], values[1:3])
    np.testing.assert_allclose(alone[0], projected[0], atol=1e-12)
    with pytest.raises(UserError, match="200 augmented copies paired with their clips"):
        nuisance_directions(values, *pairs, 200)


@pytest.fixture(scope="module")
def augmented_examples(demo_root, tmp_path_factory):
    """The demo dataset's Examples with two augmented copies of each training clip and a
    vocoded copy of each bona fide one."""
    import dataclasses

    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    from spoofdetect.extraction import run_extraction

    output = str(tmp_path_factory.mktemp("augmented_examples"))
    run_extraction(beam.Pipeline(options=PipelineOptions(["--direct_num_workers=1"])),
                   demo_root, output, dataclasses.replace(
                       FEATURES, augment=2, augment_families=("gain", "mu_law", "noise"),
                       vocoded=1), show_progress=False)
    return output


def test_lbfgs_head_with_nuisance_directions_ignores_them(augmented_examples, tmp_path):
    train_files = split_files(augmented_examples, "train")
    heads, summaries = {}, {}
    for count in (0, 3):
        keras.utils.set_random_seed(0)  # the same random critic for both
        config = ClassifierConfig(head_solver="lbfgs", head_l2=0.01, from_scratch=True,
                                  nuisance_directions=count)
        model, history = train_classifier(train_files, split_files(augmented_examples, "dev"),
                                          FEATURES, config, GAN, None,
                                          str(tmp_path / f"run{count}"))
        heads[count] = model.get_layer(CLASSIFIER_LOGIT).get_weights()[0][:, 0]
        summaries[count] = summarise(history, config)
    # The directions, found again from the model's own standardised read-out.
    read_out = keras.Model(model.input, model.get_layer(CLASSIFIER_LOGIT).input)
    batches = list(example_dataset(train_files, FEATURES, 64))
    values = np.concatenate([read_out(batch[examples.LOG_MEL]).numpy() for batch in batches]
                            ).astype(np.float64)

    def strings(key: str) -> list[str]:
        return [value.decode() for batch in batches for value in batch[key].numpy()]

    pairs = copy_pairs(strings(examples.CLIP_ID),
                       np.concatenate([batch[examples.SEGMENT_INDEX] for batch in batches]),
                       strings(examples.AUGMENTATION),
                       np.concatenate([batch[examples.LABEL] for batch in batches]) == 1)
    assert len(pairs[0]) == 16  # 8 training clips x 2 copies; the 4 vocoded ones are not
    directions, share = nuisance_directions(values, *pairs, 3)
    assert np.abs(directions @ heads[3]).max() < 1e-6 * np.abs(heads[3]).max()
    assert np.abs(directions @ heads[0]).max() > 1e-2 * np.abs(heads[0]).max()
    assert summaries[3]["nuisance_directions"] == 3
    assert summaries[3]["nuisance_energy_share"] == pytest.approx(share, rel=1e-6)
    assert "nuisance_directions" not in summaries[0]
    assert kept_weights(summaries[3]).endswith(
        f"ignoring 3 directions that carry {100 * share:.0f} % of what augmentation changes)")
