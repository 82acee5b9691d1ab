"""benchmarks/head_noise.py reads the fused model's second system as the fusion adds it (its
optimum head is the Trainer's `solve_head`, tested in tests/test_classifier.py)."""


import numpy as np
import pytest

from tests.conftest import benchmark_module


@pytest.fixture
def head_noise(monkeypatch):
    yield from benchmark_module(monkeypatch, "head_noise", "critic_probe", "front_end_probe",
                                "generalisation", "quality")


def test_the_second_system_is_read_out_of_a_fused_model_as_the_fusion_adds_it(head_noise,
                                                                               tmp_path):
    import tensorflow as tf

    from spoofdetect.calibration import Calibration
    from spoofdetect.config import FeatureConfig, FusionConfig, GanConfig
    from spoofdetect.examples import FUSION_FEATURES
    from spoofdetect.export import ScoredSystem, export_fused_model
    from spoofdetect.features import spectral_features
    from spoofdetect.fusion import dev_standardisation
    from spoofdetect.models import build_critic, classifier_from_critic, logit_model

    tf.keras.utils.set_random_seed(5)
    fused = FeatureConfig(augment=0, fusion=FusionConfig(enabled=True, n_mels=40))
    narrow = GanConfig(critic_widths=(8, 16, 32))
    first, second = (classifier_from_critic(build_critic(features, narrow))
                     for features in (fused, fused.fusion_features))
    # Arbitrary maps and calibration: the read-out must undo them.
    export_fused_model([ScoredSystem(first, fused, standardisation=Calibration(0.5, 1.0)),
                        ScoredSystem(second, fused.fusion_features, FUSION_FEATURES,
                                     Calibration(2.0, -1.0))],
                       str(tmp_path), 600.0, Calibration(1.5, 0.2))
    rng = np.random.default_rng(1)
    clips = {name: [0.2 * rng.normal(size=fused.segment_samples).astype(np.float32)
                    for _ in range(count)] for name, count in (("dev", 12), ("eval", 5))}
    read = head_noise.second_system_scores(str(tmp_path), fused, {
        name: np.stack(waveforms) for name, waveforms in clips.items()})

    def alone(waveforms):
        maps = spectral_features(tf.constant(np.stack(waveforms)), fused.fusion_features)
        return -logit_model(second)(maps).numpy()[:, 0]

    standardisation = dev_standardisation(alone(clips["dev"]))
    for name, waveforms in clips.items():
        np.testing.assert_allclose(read[name], standardisation.apply(alone(waveforms)),
                                   rtol=1e-3, atol=1e-3)
    assert read["dev"].std() == pytest.approx(1.0)
