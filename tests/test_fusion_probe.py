"""The fusion probe's split of a fused SavedModel (benchmarks/fusion_probe.py --fused): each
system's score, read through the model's from_features signature with the other systems' maps
all zeros, is that system's own standardised score through the model's weights and
calibration, plus one constant."""

import dataclasses

import numpy as np
import pytest

from spoofdetect import examples
from spoofdetect.calibration import Calibration
from spoofdetect.config import FeatureConfig, FusionConfig, GanConfig
from spoofdetect.export import ScoredSystem, export_fused_model
from spoofdetect.features import spectral_features
from spoofdetect.fusion import dev_standardisation
from spoofdetect.gmm import fit_gmms, gmm_classifier
from spoofdetect.models import build_critic, classifier_from_critic, logit_model

FUSED = FeatureConfig(augment=0, fusion=FusionConfig(enabled=True, n_mels=40))
NARROW = GanConfig(critic_widths=(8, 16, 32))


def clips(count: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    t = np.arange(FUSED.segment_samples) / FUSED.sample_rate
    return [(0.3 * np.sin(2 * np.pi * rng.uniform(100, 2000) * t)
             + rng.uniform(0.01, 0.3) * rng.standard_normal(t.size)).astype(np.float32)
            for _ in range(count)]


@pytest.mark.parametrize("lfcc_gmm", [False, True], ids=["two-systems", "with-lfcc-gmm"])
def test_each_system_is_split_out_of_the_fused_model(fusion_probe, tmp_path, lfcc_gmm):
    import tensorflow as tf

    tf.keras.utils.set_random_seed(0)
    dev, test = clips(24, 0), clips(16, 1)
    features = dataclasses.replace(FUSED, lfcc_gmm=lfcc_gmm)

    def own_scores(system: ScoredSystem, waveforms: list[np.ndarray]) -> np.ndarray:
        """The system's log-odds of bona fide, as the Trainer standardises them."""
        return -logit_model(system.classifier)(spectral_features(
            np.stack(waveforms), system.features)).numpy().ravel()

    unmapped = [ScoredSystem(classifier_from_critic(build_critic(config, NARROW)), config,
                             map_key)
                for config, map_key in ((features, examples.LOG_MEL),
                                        (features.fusion_features, examples.FUSION_FEATURES))]
    if lfcc_gmm:
        rng = np.random.default_rng(2)
        gmms = fit_gmms({"bonafide": rng.normal(0.0, 3.0, (300, 60)),
                         "spoof": rng.normal(1.0, 3.0, (300, 60))}, components=2, seed=0)
        unmapped.append(ScoredSystem(gmm_classifier(gmms, features.lfcc_features),
                                     features.lfcc_features, examples.LFCC_FEATURES))
    # Each standardised on dev, as the Trainer does (fusion.train_fusion).
    systems = [dataclasses.replace(system, standardisation=dev_standardisation(
        own_scores(system, dev))) for system in unmapped]
    # A calibrated model: the probe's rules must not depend on the exported affine map.
    calibration = Calibration(2.0, 1.0)
    export_fused_model(systems, str(tmp_path), 600.0, calibration)
    serving = tf.saved_model.load(str(tmp_path)).signatures["from_features"]
    outputs = {name: fusion_probe.fused_system_scores(
        serving, fusion_probe.segment_maps(features, waveforms, batch_size=8), batch_size=8)
        for name, waveforms in (("dev", dev), ("test", test))}
    assert len(outputs["test"]) == 1 + len(systems)
    for index, system in enumerate(systems):
        own = system.standardisation.apply(own_scores(system, test))
        difference = outputs["test"][index + 1] - calibration.scale * own
        # The other systems' all-zeros maps add one constant to every clip.
        np.testing.assert_allclose(difference, difference[0], atol=1e-4)
    rules = fusion_probe.fused_rules(outputs["dev"], outputs["test"])
    names = [f"system {index + 1}" for index in range(len(systems))]
    assert set(rules) == {*names, "sum", "min"}
    # The pipeline's fusion here is the standardised systems' sum, standardised on dev.
    dev_rules = fusion_probe.fused_rules(outputs["dev"], outputs["dev"])
    summed = dev_standardisation(sum(dev_rules[name] for name in names))
    np.testing.assert_allclose(rules["sum"], summed.apply(sum(rules[name] for name in names)),
                               atol=1e-4)
    np.testing.assert_allclose(rules["min"], np.minimum.reduce([rules[name] for name in names]))
    # Each system standardised on dev: mean 0 and spread 1 there.
    for name in names:
        assert abs(dev_rules[name].mean()) < 1e-4 and dev_rules[name].std() == pytest.approx(1.0)
    # Scores that are not a weighted sum of the systems are refused, not split.
    swapped = (outputs["test"][0][::-1], *outputs["test"][1:])
    with pytest.raises(SystemExit, match="not the sum of its systems"):
        fusion_probe.fused_rules(outputs["dev"], swapped)


def test_lower_counts_says_in_how_many_pairs_a_fusion_beats_the_first_system(fusion_probe):
    def run(eval_eer: float, cross_eer: float) -> dict:
        return {"eval": {"eer": eval_eer}, "cross": {"eer": cross_eer}}

    rows = {"system 1": [run(0.2, 0.3), run(0.2, 0.3), run(0.2, 0.3)],
            "equal": [run(0.1, 0.3), run(0.1, 0.2), run(0.3, 0.2)]}
    # Level is not lower: the second pair's cross EER counts, the first's does not.
    assert fusion_probe.lower_counts(rows, ["equal"]) == (
        "`equal` is lower than system 1 alone in 2 of 3 on eval and 2 of 3 on cross.")
