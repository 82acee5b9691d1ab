"""Stage 2: the pre-trained critic (or a fresh one: `from_scratch`) fine-tuned as a real/fake
classifier. Plain Keras; the TFX Trainer's run_fn and the tests call `train_classifier`."""

from __future__ import annotations

import json
import math
import os
import warnings
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from spoofdetect import examples, metrics
from spoofdetect.calibration import Calibration, fit_calibration
from spoofdetect.config import (
    LABELS,
    SELECTION_METRICS,
    ClassifierConfig,
    FeatureConfig,
    GanConfig,
)
from spoofdetect.data import count_labels, example_dataset
from spoofdetect.errors import UserError
from spoofdetect.models import (
    CLASSIFIER_LOGIT,
    READ_OUT_NORMALISATION,
    build_critic,
    classifier_from_critic,
    logit_model,
)
from spoofdetect.plots import plot_classifier_history
from spoofdetect.pretraining import CRITIC_FILE


def class_weights(num_real: int, num_fake: int) -> dict[int, float]:
    """Balanced weights: each class contributes half of the loss whatever its count."""
    total = num_real + num_fake
    return {LABELS["real"]: total / (2.0 * num_real), LABELS["fake"]: total / (2.0 * num_fake)}


def _pairs(dataset: tf.data.Dataset) -> tf.data.Dataset:
    return dataset.map(lambda batch: (batch[examples.LOG_MEL],
                                      tf.cast(batch[examples.LABEL], tf.float32)))


def scores_of(logits: keras.Model, dataset: tf.data.Dataset
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(log-odds of bona fide, is_spoof, attack names) of every example of `dataset`."""
    scores, labels, attacks = [], [], []
    for batch in dataset:
        scores.append(-logits(batch[examples.LOG_MEL], training=False).numpy()
                      .astype(np.float64)[:, 0])
        labels.append(batch[examples.LABEL].numpy())
        attacks.append(batch[examples.ATTACK].numpy())
    return (np.concatenate(scores), np.concatenate(labels) == LABELS["fake"],
            np.concatenate(attacks))


def fit_dev_calibration(score: np.ndarray, is_spoof: np.ndarray
                        ) -> tuple[Calibration, dict[str, float]]:
    """The calibration fitted on dev's scores (the exported model's before calibration),
    and dev's Cllr and actDCF before and after."""
    calibration = fit_calibration(score, is_spoof)
    calibrated = calibration.apply(score)
    report = {"scale": calibration.scale, "offset": calibration.offset}
    for name, values in (("raw", score), ("calibrated", calibrated)):
        report[f"dev_cllr_{name}"] = metrics.cllr(values[~is_spoof], values[is_spoof])
        report[f"dev_act_dcf_{name}"] = metrics.act_dcf(values[~is_spoof], values[is_spoof])
    return calibration, report


class DevErrorRates(keras.callbacks.Callback):
    """Adds `val_eer` and `val_worst_attack_eer` to each epoch's logs: the dev EER, and the
    highest per-attack dev EER (all bona fide against each attack's spoofs; without attack
    names, the pooled EER). Listed before the callbacks that read them."""

    def __init__(self, dev: tf.data.Dataset):
        super().__init__()
        self.dev = dev
        self.logits: keras.Model | None = None

    def on_train_begin(self, logs: dict[str, float] | None = None) -> None:
        self.logits = logit_model(self.model)

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        score, is_spoof, attack = scores_of(self.logits, self.dev)
        bonafide = score[~is_spoof]
        eer = metrics.equal_error_rate(bonafide, score[is_spoof])[0]
        per_attack = [metrics.equal_error_rate(bonafide, score[is_spoof & (attack == name)])[0]
                      for name in set(attack[is_spoof].tolist()) if name]
        if logs is not None:
            logs["val_eer"] = eer
            logs["val_worst_attack_eer"] = max(per_attack, default=eer)


def standardise_read_out(model: keras.Model, train: tf.data.Dataset) -> None:
    """Fits the read-out's Normalization to the training split's statistics (each pooled
    value's mean and variance, as the probe's StandardScaler), once, before training: with
    a frozen critic they stay exact; fine-tuned, the head adapts to their drift."""
    normalisation = model.get_layer(READ_OUT_NORMALISATION)
    pooled = keras.Model(model.input, normalisation.input)
    normalisation.adapt(train.map(lambda batch: pooled(batch[examples.LOG_MEL],
                                                       training=False)))


def classifier_with_read_out(critic: keras.Model, config: ClassifierConfig,
                             train: tf.data.Dataset) -> keras.Model:
    """The classifier on `critic` that `config` describes (its read-out and head penalty),
    its read-out's standardisation fitted on `train` (batches of examples) when it has one;
    `train` is not read otherwise."""
    model = classifier_from_critic(critic, config.read_out, config.head_l2)
    if config.read_out != "critic":
        standardise_read_out(model, train)
    return model


def load_critic(base_model_dir: str) -> keras.Model:
    path = os.path.join(base_model_dir, CRITIC_FILE)
    if not tf.io.gfile.exists(path):
        raise UserError(f"No pre-trained critic at {path}: run stage 1 first, or set "
                        "classifier.from_scratch=true.")
    return keras.saving.load_model(path)


def train_classifier(train_files: list[str], dev_files: list[str], features: FeatureConfig,
                     config: ClassifierConfig, gan: GanConfig, base_model_dir: str | None,
                     run_dir: str, map_key: str = examples.LOG_MEL
                     ) -> tuple[keras.Model, dict[str, list[float]]]:
    """Fits the classifier on the map stored under `map_key` (of `features`' shape); keeps
    the weights of the epoch best by `config.selection`.

    Writes run_dir/{history.json, training.png, logs/ (TensorBoard)}.
    """
    keras.utils.set_random_seed(config.seed)
    if config.from_scratch:
        critic = build_critic(features, gan)
    elif base_model_dir:
        critic = load_critic(base_model_dir)
    else:
        raise UserError("Fine-tuning needs the pre-trained critic (stage 1), or "
                        "classifier.from_scratch=true.")
    model = classifier_with_read_out(critic, config,
                                     example_dataset(train_files, features, 256,
                                                     map_key=map_key))
    if config.freeze_critic:
        for layer in model.layers:
            layer.trainable = layer.name == CLASSIFIER_LOGIT
    model.compile(
        optimizer=keras.optimizers.Adam(config.learning_rate),
        loss=keras.losses.BinaryCrossentropy(),
        metrics=[keras.metrics.BinaryAccuracy(name="accuracy"), keras.metrics.AUC(name="auc")],
    )
    counts = count_labels(train_files, features)
    num_real, num_fake = counts[LABELS["real"]], counts[LABELS["fake"]]
    if not num_real or not num_fake:
        raise UserError(f"The train split has {num_real} real and {num_fake} fake examples; "
                        "the classifier needs both.")
    # Endless, with a fixed number of steps per epoch: Keras then knows the epoch's length.
    train = _pairs(example_dataset(train_files, features, config.batch_size,
                                   shuffle_buffer=config.shuffle_buffer, seed=config.seed,
                                   repeat=True, masking=config.masking, map_key=map_key))
    steps_per_epoch = math.ceil((num_real + num_fake) / config.batch_size)
    # Dev is read whole each epoch (no repeat), so its metrics are exactly the dev set's.
    dev_examples = example_dataset(dev_files, features, config.batch_size, map_key=map_key)
    dev = _pairs(dev_examples)
    monitor, mode = f"val_{config.selection}", SELECTION_METRICS[config.selection]
    callbacks = [
        DevErrorRates(dev_examples),
        keras.callbacks.EarlyStopping(monitor=monitor, mode=mode,
                                      patience=config.early_stopping_patience,
                                      restore_best_weights=True),
        keras.callbacks.ReduceLROnPlateau(monitor=monitor, mode=mode,
                                          patience=config.reduce_lr_patience,
                                          factor=config.reduce_lr_factor),
        keras.callbacks.TensorBoard(log_dir=os.path.join(run_dir, "logs")),
    ]
    with warnings.catch_warnings():
        # Keras warns "input ran out of data" whenever the dev set (of unknown length) ends,
        # which is what should happen: train has steps_per_epoch, dev is read whole.
        warnings.filterwarnings("ignore", message="Your input ran out of data")
        fit = model.fit(train, validation_data=dev, epochs=config.epochs,
                        steps_per_epoch=steps_per_epoch, callbacks=callbacks,
                        class_weight=class_weights(num_real, num_fake), verbose=2)
    history = {name: [float(value) for value in values] for name, values in fit.history.items()}
    tf.io.gfile.makedirs(run_dir)
    with tf.io.gfile.GFile(os.path.join(run_dir, "history.json"), "w") as handle:
        json.dump(history, handle, indent=1)
    plot_classifier_history(history, os.path.join(run_dir, "training.png"))
    return model, history


def summarise(history: dict[str, list[float]], config: ClassifierConfig) -> dict[str, Any]:
    """The kept epoch (the best by `config.selection`, as EarlyStopping restored it) and its
    dev metrics."""
    signal = history[f"val_{config.selection}"]
    sign = 1.0 if SELECTION_METRICS[config.selection] == "max" else -1.0
    best = max(range(len(signal)), key=lambda epoch: sign * signal[epoch])
    trained = ("the head" if config.freeze_critic else "the whole network") + (
        f" on {config.read_out}" if config.read_out != "critic" else "")
    return {"epochs_run": len(signal), "best_epoch": best + 1, "selection": config.selection,
            "trained": trained,
            "best_dev_auc": history["val_auc"][best],
            "best_dev_accuracy": history["val_accuracy"][best],
            "best_dev_eer": history["val_eer"][best],
            "best_dev_worst_attack_eer": history["val_worst_attack_eer"][best]}
