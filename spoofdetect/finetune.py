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
from absl import logging
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.utils.extmath import randomized_svd

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

# The L-BFGS head's iteration limit: the default head (10,240 inputs, 7,188 examples) takes
# a few hundred.
HEAD_ITERATIONS = 3000


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


def dev_error_rates(score: np.ndarray, is_spoof: np.ndarray, attack: np.ndarray
                    ) -> tuple[float, float]:
    """The dev EER of `scores_of`'s arrays, and the highest per-attack dev EER (all bona fide
    against each attack's spoofs; without attack names, the pooled EER)."""
    bonafide = score[~is_spoof]
    eer = metrics.equal_error_rate(bonafide, score[is_spoof])[0]
    per_attack = [metrics.equal_error_rate(bonafide, score[is_spoof & (attack == name)])[0]
                  for name in set(attack[is_spoof].tolist()) if name]
    return eer, max(per_attack, default=eer)


class DevErrorRates(keras.callbacks.Callback):
    """Adds `val_eer` and `val_worst_attack_eer` (`dev_error_rates`) to each epoch's logs.
    Listed before the callbacks that read them."""

    def __init__(self, dev: tf.data.Dataset):
        super().__init__()
        self.dev = dev
        self.logits: keras.Model | None = None

    def on_train_begin(self, logs: dict[str, float] | None = None) -> None:
        self.logits = logit_model(self.model)

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        eer, worst_attack_eer = dev_error_rates(*scores_of(self.logits, self.dev))
        if logs is not None:
            logs["val_eer"] = eer
            logs["val_worst_attack_eer"] = worst_attack_eer


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


def solve_head(read_out: np.ndarray, is_spoof: np.ndarray, head_l2: float,
               sample_weight: np.ndarray | None = None, ignored: np.ndarray | None = None
               ) -> tuple[np.ndarray, float, int]:
    """(weights, bias, iterations) of the linear head that minimises the Trainer's loss on
    `read_out` (one row per example): the mean of sample_weight x log-loss, plus head_l2
    |w|^2 (the bias not penalised). scikit-learn's L-BFGS minimises C x the summed weighted
    log-loss + |w|^2 / 2, the same up to a factor when C = 1 / (2 head_l2 n). The loss is
    strictly convex for head_l2 > 0, so the answer is unique.

    With `ignored` (orthonormal rows: `nuisance_directions`), `read_out` is first projected
    off them, in place (the read-out can be gigabytes), and so are the weights: the minimum
    has no component along them anyway (the projected rows have none, and any would only
    add to the penalty); projecting makes that exact, so the head gives the same score to
    unprojected read-outs that differ only along them."""
    if ignored is not None:
        project_out(read_out, ignored)
    solver = LogisticRegression(C=1.0 / (2 * head_l2 * len(read_out)), max_iter=HEAD_ITERATIONS,
                                tol=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        try:
            solver.fit(read_out, is_spoof, sample_weight=sample_weight)
        except ConvergenceWarning as error:
            raise UserError(f"L-BFGS did not reach the head's minimum in {HEAD_ITERATIONS} "
                            "iterations; raise classifier.head_l2, or use "
                            "classifier.head_solver='adam'.") from error
    weights = solver.coef_[0]
    if ignored is not None:
        project_out(weights[None, :], ignored)
    return weights, float(solver.intercept_[0]), int(solver.n_iter_[0])


def copy_pairs(clip_ids: list[str], segment_index: np.ndarray, augmentation: list[str],
               is_spoof: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows of augmented copies, rows of their clips' own examples): each augmented copy
    paired with the example of the same clip and segment that is not a copy. A copy of the
    other class than its clip (a vocoded copy, which is the spoof) is left out: what it
    changes is what the head should see."""
    own = {(clip_id, int(index)): row for row, (clip_id, index, name) in enumerate(
        zip(clip_ids, segment_index, augmentation, strict=True)) if not name}
    copies, originals = [], []
    for row, (clip_id, index, name) in enumerate(zip(clip_ids, segment_index, augmentation,
                                                     strict=True)):
        original = own.get((clip_id.rpartition("~")[0], int(index))) if name else None
        if original is not None and is_spoof[original] == is_spoof[row]:
            copies.append(row)
            originals.append(original)
    return np.asarray(copies, int), np.asarray(originals, int)


def nuisance_directions(read_out: np.ndarray, copies: np.ndarray, originals: np.ndarray,
                        count: int) -> tuple[np.ndarray, float]:
    """([count, width] orthonormal rows, the share of the differences' energy they carry):
    the directions along which `read_out`'s augmented copies differ most from their clips'
    rows (the top right singular vectors of the differences, by a randomized SVD with a
    fixed seed, so the same read-out gives the same directions; float32, which halves the
    differences' memory)."""
    if count >= min(len(copies), read_out.shape[1]):
        raise UserError(f"classifier.nuisance_directions is {count}, but the training split "
                        f"has {len(copies)} augmented copies paired with their clips and a "
                        f"read-out of {read_out.shape[1]} values: use fewer directions than "
                        "either.")
    # Filled a slice at a time: whole-array arithmetic would hold two float64 temporaries of
    # the copies' rows, twice the float32 array's size each.
    differences = np.empty((len(copies), read_out.shape[1]), np.float32)
    for start in range(0, len(copies), 1024):
        rows = slice(start, start + 1024)
        differences[rows] = read_out[copies[rows]] - read_out[originals[rows]]
    _, singular, directions = randomized_svd(differences, count, random_state=0)
    share = float(np.sum(singular.astype(np.float64) ** 2)
                  / np.einsum("ij,ij->", differences, differences, dtype=np.float64))
    # Orthonormal to float64's precision (the SVD's are to float32's), so that projecting
    # the head's kernel leaves nothing along them.
    return np.linalg.qr(directions.astype(np.float64).T)[0].T, share


def project_out(values: np.ndarray, directions: np.ndarray) -> None:
    """Removes from each row of `values` (in place, a slice at a time; `kernel[None, :]`
    for one vector) its components along the orthonormal `directions`."""
    for start in range(0, len(values), 1024):
        rows = values[start:start + 1024]
        rows -= (rows @ directions.T) @ directions


def head_metrics(logit: np.ndarray, is_spoof: np.ndarray, sample_weight: np.ndarray,
                 kernel: np.ndarray, head_l2: float) -> dict[str, float]:
    """The loss (weighted mean log-loss + head_l2 |w|^2, as Keras reports it), accuracy and
    AUC of a linear head's logits of p(fake)."""
    log_loss = np.logaddexp(0.0, logit) - is_spoof * logit
    return {"loss": np.mean(sample_weight * log_loss) + head_l2 * float(kernel @ kernel),
            "accuracy": np.average((logit >= 0) == is_spoof, weights=sample_weight),
            "auc": roc_auc_score(is_spoof, logit, sample_weight=sample_weight)}


def fit_head_lbfgs(model: keras.Model, train: tf.data.Dataset, dev: tf.data.Dataset,
                   config: ClassifierConfig, weights: dict[int, float], num_examples: int
                   ) -> dict[str, list[float]]:
    """Sets the head of `model` (its critic frozen; a block read-out's standardisation not
    yet fitted) to the minimum of its loss on `train` (batches of its `num_examples`
    examples), and returns a one-entry history with the metrics the Adam path records per
    epoch. The critic runs once over the split: its pooled read-out fits the standardisation
    (as `standardise_read_out` would, on the same values) and, standardised, the head. It is
    held in memory as the solver takes it, float64: examples x read-out width x 8 bytes
    (7,188 x 10,240 is 589 MB), filled in place so that no second copy exists."""
    normalisation = (model.get_layer(READ_OUT_NORMALISATION) if config.read_out != "critic"
                     else None)
    read_out = keras.Model(model.input, normalisation.input if normalisation
                           else model.get_layer(CLASSIFIER_LOGIT).input)
    values = np.empty((num_examples, read_out.output.shape[-1]), np.float64)
    is_spoof = np.empty(num_examples, bool)
    segment_index = np.empty(num_examples, np.int64)
    clip_ids: list[str] = []
    augmentation: list[str] = []
    filled = 0
    logging.info("Stage 2: reading the frozen critic's read-out of %d training examples "
                 "(%d values each) for the head's L-BFGS fit", num_examples, values.shape[1])
    for batch in train:
        batch_values = read_out(batch[examples.LOG_MEL], training=False).numpy()
        if filled + len(batch_values) > num_examples:
            raise ValueError(f"The train split gave more examples than the {num_examples} "
                             "counted.")
        values[filled:filled + len(batch_values)] = batch_values
        is_spoof[filled:filled + len(batch_values)] = (batch[examples.LABEL].numpy()
                                                       == LABELS["fake"])
        segment_index[filled:filled + len(batch_values)] = batch[examples.SEGMENT_INDEX].numpy()
        clip_ids += [value.decode() for value in batch[examples.CLIP_ID].numpy()]
        augmentation += [value.decode() for value in batch[examples.AUGMENTATION].numpy()]
        filled += len(batch_values)
    if filled != num_examples:
        raise ValueError(f"The train split gave {filled} examples, not the {num_examples} "
                         "counted.")
    if normalisation is not None:
        normalisation.adapt(values)
        for start in range(0, num_examples, 1024):  # the layer itself, a slice at a time
            values[start:start + 1024] = normalisation(
                values[start:start + 1024].astype(np.float32)).numpy()
    nuisance: dict[str, float] = {}
    directions = None
    if config.nuisance_directions:
        directions, share = nuisance_directions(
            values, *copy_pairs(clip_ids, segment_index, augmentation, is_spoof),
            config.nuisance_directions)
        nuisance = {"nuisance_directions": len(directions), "nuisance_energy_share": share}
        logging.info("Stage 2: the head ignores %d directions of the read-out, %.1f %% of "
                     "what augmentation changes in it", len(directions), 100 * share)
    sample_weight = np.where(is_spoof, weights[LABELS["fake"]], weights[LABELS["real"]])
    # values is projected in place: the training metrics below are of what the head saw.
    kernel, bias, iterations = solve_head(values, is_spoof, config.head_l2, sample_weight,
                                          ignored=directions)
    model.get_layer(CLASSIFIER_LOGIT).set_weights(
        [kernel[:, None].astype(np.float32), np.array([bias], np.float32)])
    # Dev read once: its scores (log-odds of bona fide) give every dev metric.
    score, dev_spoof, attack = scores_of(logit_model(model), dev)
    history = {**head_metrics(values @ kernel + bias, is_spoof, sample_weight, kernel,
                              config.head_l2),
               **{f"val_{name}": value for name, value in head_metrics(
                   -score, dev_spoof, np.ones(len(score)), kernel, config.head_l2).items()},
               "solver_iterations": iterations, **nuisance}
    history["val_eer"], history["val_worst_attack_eer"] = dev_error_rates(score, dev_spoof,
                                                                          attack)
    logging.info("Stage 2: the head's loss minimum in %d L-BFGS iterations: train loss %.4f, "
                 "dev EER %.2f %%", iterations, history["loss"], 100 * history["val_eer"])
    return {name: [float(value)] for name, value in history.items()}


def fit_head_adam(model: keras.Model, train_files: list[str], dev: tf.data.Dataset,
                  features: FeatureConfig, config: ClassifierConfig,
                  weights: dict[int, float], num_examples: int, run_dir: str, map_key: str
                  ) -> dict[str, list[float]]:
    """Trains `model` for up to `config.epochs` and restores the epoch best by
    `config.selection` on dev; returns the per-epoch history."""
    # Endless, with a fixed number of steps per epoch: Keras then knows the epoch's length.
    train = _pairs(example_dataset(train_files, features, config.batch_size,
                                   shuffle_buffer=config.shuffle_buffer, seed=config.seed,
                                   repeat=True, masking=config.masking, map_key=map_key))
    monitor, mode = f"val_{config.selection}", SELECTION_METRICS[config.selection]
    callbacks = [
        DevErrorRates(dev),
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
        fit = model.fit(train, validation_data=_pairs(dev), epochs=config.epochs,
                        steps_per_epoch=math.ceil(num_examples / config.batch_size),
                        callbacks=callbacks, class_weight=weights, verbose=2)
    return {name: [float(value) for value in values] for name, values in fit.history.items()}


def train_classifier(train_files: list[str], dev_files: list[str], features: FeatureConfig,
                     config: ClassifierConfig, gan: GanConfig, base_model_dir: str | None,
                     run_dir: str, map_key: str = examples.LOG_MEL
                     ) -> tuple[keras.Model, dict[str, list[float]]]:
    """Fits the classifier on the map stored under `map_key` (of `features`' shape) by
    `config.head_solver`: Adam, keeping the weights of the epoch best by
    `config.selection`, or the head's loss minimum (L-BFGS).

    Writes run_dir/{history.json, training.png}, and logs/ (TensorBoard) for Adam.
    """
    keras.utils.set_random_seed(config.seed)
    if config.from_scratch:
        critic = build_critic(features, gan)
    elif base_model_dir:
        critic = load_critic(base_model_dir)
    else:
        raise UserError("Fine-tuning needs the pre-trained critic (stage 1), or "
                        "classifier.from_scratch=true.")
    counts = count_labels(train_files, features)
    num_real, num_fake = counts[LABELS["real"]], counts[LABELS["fake"]]
    if not num_real or not num_fake:
        raise UserError(f"The train split has {num_real} real and {num_fake} fake examples; "
                        "the classifier needs both.")
    train_once = example_dataset(train_files, features, 256, map_key=map_key)
    if config.head_solver == "lbfgs":
        # fit_head_lbfgs fits the standardisation on the read-out it computes anyway.
        model = classifier_from_critic(critic, config.read_out, config.head_l2)
    else:
        model = classifier_with_read_out(critic, config, train_once)
    if config.freeze_critic:
        for layer in model.layers:
            layer.trainable = layer.name == CLASSIFIER_LOGIT
    model.compile(
        optimizer=keras.optimizers.Adam(config.learning_rate),
        loss=keras.losses.BinaryCrossentropy(),
        metrics=[keras.metrics.BinaryAccuracy(name="accuracy"), keras.metrics.AUC(name="auc")],
    )
    weights = class_weights(num_real, num_fake)
    # Dev is read whole (no repeat), so its metrics are exactly the dev set's.
    dev = example_dataset(dev_files, features, config.batch_size, map_key=map_key)
    if config.head_solver == "lbfgs":
        history = fit_head_lbfgs(model, train_once, dev, config, weights, num_real + num_fake)
    else:
        history = fit_head_adam(model, train_files, dev, features, config, weights,
                                num_real + num_fake, run_dir, map_key)
    tf.io.gfile.makedirs(run_dir)
    with tf.io.gfile.GFile(os.path.join(run_dir, "history.json"), "w") as handle:
        json.dump(history, handle, indent=1)
    plot_classifier_history(history, os.path.join(run_dir, "training.png"))
    return model, history


def summarise(history: dict[str, list[float]], config: ClassifierConfig) -> dict[str, Any]:
    """The kept weights (Adam's epoch best by `config.selection`, as EarlyStopping restored
    it, or the L-BFGS minimum) and their dev metrics."""
    signal = history[f"val_{config.selection}"]
    sign = 1.0 if SELECTION_METRICS[config.selection] == "max" else -1.0
    best = max(range(len(signal)), key=lambda epoch: sign * signal[epoch])
    trained = ("the head" if config.freeze_critic else "the whole network") + (
        f" on {config.read_out}" if config.read_out != "critic" else "")
    summary = {"epochs_run": len(signal), "best_epoch": best + 1, "selection": config.selection,
               "trained": trained, "head_solver": config.head_solver,
               "best_dev_auc": history["val_auc"][best],
               "best_dev_accuracy": history["val_accuracy"][best],
               "best_dev_eer": history["val_eer"][best],
               "best_dev_worst_attack_eer": history["val_worst_attack_eer"][best]}
    if config.head_solver == "lbfgs":
        summary["solver_iterations"] = int(history["solver_iterations"][0])
    if "nuisance_directions" in history:
        summary["nuisance_directions"] = int(history["nuisance_directions"][0])
        summary["nuisance_energy_share"] = history["nuisance_energy_share"][0]
    return summary

