"""Score fusion of the pipeline's systems (features.fusion, features.lfcc_gmm): the config,
every map in the Examples, the fused SavedModel's signatures, the Trainer's run_fn and the
evaluator on its output."""

import os

import apache_beam as beam
import numpy as np
import pytest
import tensorflow as tf
from apache_beam.options.pipeline_options import PipelineOptions

from spoofdetect import examples, metrics
from spoofdetect.audio import decode_audio, segment_waveform
from spoofdetect.calibration import Calibration
from spoofdetect.components import code_version, keys
from spoofdetect.config import (
    ClassifierConfig,
    FeatureConfig,
    FusionConfig,
    GanConfig,
    load_config,
)
from spoofdetect.data import example_dataset, split_files
from spoofdetect.errors import UserError
from spoofdetect.evaluation import WrongShapeError, score_examples
from spoofdetect.export import ScoredSystem, export_fused_model
from spoofdetect.extraction import run_extraction
from spoofdetect.features import spectral_features
from spoofdetect.fusion import (
    FUSION_RUN_DIR,
    dev_standardisation,
    labels_in_one_order,
    standardised_systems,
)
from spoofdetect.models import build_critic, classifier_from_critic, logit_model
from tests.conftest import ONE_SYSTEM, SEED_PRESET, run_trainer, uncalibrated_dev_scores

# The fused map narrowed to keep the tests quick: 40 mel bands of a 25 ms window and their
# group delay every 10 ms (80 x 401), beside the default's 160 x 126; and LFCC-GMM's map.
FUSED = FeatureConfig(augment=0, fusion=FusionConfig(enabled=True, n_mels=40), lfcc_gmm=True)
NARROW = GanConfig(critic_widths=(8, 16, 32))


@pytest.fixture(scope="module")
def fused_examples(demo_root, tmp_path_factory):
    output = str(tmp_path_factory.mktemp("fused_examples"))
    run_extraction(beam.Pipeline(options=PipelineOptions(["--direct_num_workers=1"])),
                   demo_root, output, FUSED, show_progress=False)
    return output


def read_all(files: list[str], config: FeatureConfig, map_key: str = examples.LOG_MEL) -> dict:
    batches = list(example_dataset(files, config, 64, map_key=map_key))
    return {name: np.concatenate([batch[name].numpy() for batch in batches])
            for name in batches[0]}


def test_fusion_features_differ_from_the_features_in_the_front_end_only():
    # On by default (the 10 ms group-delay map); the seed's preset has one system.
    default = FeatureConfig().fusion_features
    assert (default.num_rows, default.num_frames) == (160, 401)
    assert load_config(SEED_PRESET).features.fusion_features is None
    second = FUSED.fusion_features
    assert (second.num_rows, second.num_frames) == (80, 401)
    assert (second.n_fft, second.hop_length, second.phase, second.extra_windows) == (
        400, 160, True, ())
    assert not second.fusion.enabled
    shared = ("sample_rate", "segment_seconds", "segment_mode", "peak_normalise", "augment",
              "silence_peak", "top_db", "standardise")
    assert all(getattr(second, name) == getattr(FUSED, name) for name in shared)


def test_a_bad_fusion_front_end_is_a_config_error_naming_its_key():
    with pytest.raises(UserError, match=r"features\.fusion\.hop_length \(800\).*"
                                        r"features\.fusion\.n_fft"):
        load_config(overrides=["features.fusion.enabled=true",
                               "features.fusion.hop_length=800"])
    with pytest.raises(UserError, match=r"features\.fusion\.front_end"):
        load_config(overrides=["features.fusion.enabled=true", "features.fusion.front_end=cqt"])
    # Off, the fusion front end is not used and so not checked.
    load_config(overrides=["features.fusion.enabled=false", "features.fusion.hop_length=800"])


def test_examples_hold_every_map_of_the_same_segment(fused_examples, demo_examples,
                                                      demo_root):
    fused = read_all(split_files(fused_examples, "eval"), FUSED)
    alone = read_all(split_files(demo_examples, "eval"), ONE_SYSTEM)
    assert fused[examples.LOG_MEL].shape[1:] == (160, 126)
    assert fused[examples.FUSION_FEATURES].shape[1:] == (80, 401)
    assert fused[examples.LFCC_FEATURES].shape[1:] == (61, 401)
    order = np.argsort(fused[examples.CLIP_ID])
    alone_order = np.argsort(alone[examples.CLIP_ID])
    # The first map is what extraction without fusion writes.
    np.testing.assert_array_equal(fused[examples.LOG_MEL][order],
                                  alone[examples.LOG_MEL][alone_order])
    # The second is the feature function of the same segment with the fusion front end.
    for index, path in enumerate(fused[examples.PATH][:4]):
        with open(os.path.join(demo_root, path.decode()), "rb") as handle:
            decoded = decode_audio(handle.read(), 16000)
        segment = np.stack(segment_waveform(decoded.samples, FUSED))
        for map_key, features in FUSED.fused_maps.items():
            expected = spectral_features(segment, features).numpy()[0]
            np.testing.assert_allclose(fused[map_key][index], expected, atol=1e-4)
    # Read as the second system reads it, the fused map is its LOG_MEL.
    second = read_all(split_files(fused_examples, "eval"), FUSED.fusion_features,
                      examples.FUSION_FEATURES)
    np.testing.assert_array_equal(second[examples.LOG_MEL], fused[examples.FUSION_FEATURES])
    assert examples.FUSION_FEATURES not in second and examples.LFCC_FEATURES not in second


def test_dev_standardisation_gives_mean_zero_and_unit_spread():
    scores = np.random.default_rng(0).normal(3.0, 2.5, 500)
    mapped = dev_standardisation(scores).apply(scores)
    assert mapped.mean() == pytest.approx(0.0, abs=1e-12)
    assert mapped.std() == pytest.approx(1.0)
    with pytest.raises(UserError, match="not all equal"):
        dev_standardisation(np.full(10, 0.3))
    with pytest.raises(UserError, match="finite"):
        dev_standardisation(np.array([0.0, np.nan, 1.0]))


def test_standardised_systems_weigh_each_system_or_their_sum_alike():
    rng = np.random.default_rng(5)
    dev = [rng.normal(4.0, 3.0, 400), rng.normal(-1.0, 0.5, 400)]
    dev[1] += 0.2 * dev[0]  # correlated, so their sum's spread is not sqrt(2)
    systems = [ScoredSystem(None, FUSED), ScoredSystem(None, FUSED.fusion_features)]
    for standardise_sum, spread in ((False, None), (True, 1.0)):
        mapped, fused = standardised_systems(systems, dev, standardise_sum)
        parts = [system.standardisation.apply(score)
                 for system, score in zip(mapped, dev, strict=True)]
        np.testing.assert_allclose(np.sum(parts, axis=0), fused)
        assert fused.mean() == pytest.approx(0.0, abs=1e-9)
        if spread is None:  # each system standardised alone
            assert [part.std() for part in parts] == pytest.approx([1.0, 1.0])
            assert fused.std() > 1.1
        else:  # their sum standardised too: LFCC-GMM, added next, weighs as much as both
            assert fused.std() == pytest.approx(spread)


@pytest.fixture(scope="module")
def fused_model(tmp_path_factory):
    """Two untrained narrow classifiers, fused with arbitrary maps and a calibration."""
    tf.keras.utils.set_random_seed(3)
    second_features = FUSED.fusion_features
    systems = [
        ScoredSystem(classifier_from_critic(build_critic(FUSED, NARROW)), FUSED,
                     standardisation=Calibration(0.5, 1.0)),
        ScoredSystem(classifier_from_critic(build_critic(second_features, NARROW)),
                     second_features, examples.FUSION_FEATURES, Calibration(2.0, -1.0)),
    ]
    path = str(tmp_path_factory.mktemp("fused_model"))
    export_fused_model(systems, path, 600.0, Calibration(1.5, 0.2))
    return path, systems


def test_the_fused_model_scores_the_calibrated_sum_of_mapped_scores(fused_model):
    path, systems = fused_model
    waveforms = tf.random.stateless_normal([3, FUSED.segment_samples], [4, 5]) * 0.2
    maps = [spectral_features(waveforms, system.features) for system in systems]
    expected = 0.2 + 1.5 * sum(
        system.standardisation.apply(-logit_model(system.classifier)(features).numpy()[:, 0])
        for system, features in zip(systems, maps, strict=True))
    signatures = tf.saved_model.load(path).signatures
    from_waveforms = signatures["serving_default"](waveforms=waveforms)
    from_maps = signatures["from_features"](log_mel=maps[0], fusion_features=maps[1])
    np.testing.assert_allclose(from_waveforms["score"], expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(from_maps["score"], expected, rtol=1e-4, atol=1e-4)
    assert set(signatures["from_features"].structured_input_signature[1]) == {
        examples.LOG_MEL, examples.FUSION_FEATURES}


def test_a_bad_second_map_is_not_judged(fused_model):
    path, systems = fused_model
    score = tf.saved_model.load(path).signatures["from_features"]
    waveforms = tf.random.stateless_normal([2, FUSED.segment_samples], [6, 7]) * 0.2
    first, second = (spectral_features(waveforms, system.features).numpy()
                     for system in systems)
    wrong = score(log_mel=first, fusion_features=second[:, :, :126])
    assert wrong["status"].numpy().tolist() == [b"wrong_shape"] * 2
    second[1, 5, 5] = np.nan
    out = score(log_mel=first, fusion_features=second)
    assert out["status"].numpy().tolist() == [b"ok", b"non_finite"]
    assert out["score"][1] == -np.inf
    alone = score(log_mel=first[:1], fusion_features=second[:1])
    np.testing.assert_allclose(out["score"][0], alone["score"][0], rtol=1e-5)


def test_a_model_of_one_map_on_fused_examples_is_a_wrong_shape(exported, fused_examples):
    with pytest.raises(WrongShapeError, match="fusion_features"):
        score_examples(exported[0], split_files(fused_examples, "eval"), FUSED, 8)


def test_trainer_trains_every_system_and_exports_their_standardised_sum(fused_examples,
                                                                        tmp_path):
    summary = run_trainer(fused_examples, FUSED, ClassifierConfig(
        from_scratch=True, batch_size=4, calibrate=True), tmp_path)
    assert summary[keys.CODE_VERSION_PROPERTY] == code_version.current()
    # Both heads by the default's solver, the second too.
    for system in (summary, summary["fusion"]["second_system"]):
        assert system["head_solver"] == "lbfgs" and system["solver_iterations"] >= 1
    assert summary["fusion"]["systems"] == ["classifier", "second", "lfcc-gmm"]
    assert len(summary["fusion"]["dev_standardisation"]) == 3
    assert os.path.exists(tmp_path / "run" / FUSION_RUN_DIR / "history.json")
    # On dev, each standardised score has mean 0, so their sum does: undo the calibration
    # of the exported scores and the mean is 0 (it would not be without standardisation).
    fused, is_spoof = uncalibrated_dev_scores(fused_examples, FUSED, tmp_path, summary)
    assert fused.mean() == pytest.approx(0.0, abs=1e-4)
    assert fused.std() > 0.1
    # The calibration was fitted on these same scores, all three systems' sum: its raw Cllr
    # is theirs.
    assert summary["calibration"]["dev_cllr_raw"] == pytest.approx(
        metrics.cllr(fused[~is_spoof], fused[is_spoof]), rel=1e-4)


def test_systems_that_read_dev_in_different_orders_are_not_summed():
    labels = np.array([True, False, False])
    scored = [(np.zeros(3), labels), (np.ones(3), labels.copy())]
    assert labels_in_one_order(scored) is labels
    scored.append((np.ones(3), labels[::-1]))
    with pytest.raises(ValueError, match="different orders"):
        labels_in_one_order(scored)
