"""The one config object: defaults, files, overrides, validation."""

import json

import pytest

from spoofdetect.config import (
    ClassifierConfig,
    FeatureConfig,
    MaskingConfig,
    load_config,
    section_from_json,
    section_to_json,
)
from spoofdetect.errors import UserError
from tests.conftest import HEAD_SETTINGS, SEED_PRESET


def test_defaults_are_the_seed():
    config = load_config()
    assert config.features.segment_samples == 64000
    assert (config.features.n_mels, config.features.num_frames) == (80, 126)
    assert config.features.segment_mode == "first"
    assert "--direct_running_mode=multi_processing" in config.beam_pipeline_args


def test_file_then_keywords_then_overrides(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("workdir: from_file\nfeatures:\n  top_db: 60\n  n_mels: 64\n")
    config = load_config(str(path), ["features.n_mels=40", "features.top_db=null"],
                         workdir="from_keyword")
    assert config.workdir == "from_keyword"
    assert config.features.n_mels == 40
    assert config.features.top_db is None


def test_a_relative_work_folder_gives_absolute_local_paths(tmp_path, monkeypatch):
    """ML Metadata records artifact URIs as the pipeline root gives them: a relative one is
    not found by a later run from another folder (the evaluator's baseline model was not)."""
    monkeypatch.chdir(tmp_path)
    config = load_config(None, workdir="work")
    assert config.pipeline_root == str(tmp_path / "work" / "pipeline_root")
    assert config.metadata_path == str(tmp_path / "work" / "metadata.sqlite")
    assert config.push_destination == str(tmp_path / "work" / "serving")
    assert load_config(None, ["serving_dir=pushed"]).push_destination == str(
        tmp_path / "pushed")
    # A URI stays as it is.
    assert load_config(None, pipeline_root_uri="gs://bucket/root").pipeline_root == (
        "gs://bucket/root")


def test_numbers_are_read_as_their_fields_type(tmp_path):
    # YAML reads 1e-5 (no dot) as a string; the optimiser would reject it at training time.
    path = tmp_path / "config.yaml"
    path.write_text("gan:\n  learning_rate: 2e-4\nclassifier:\n  learning_rate: 1\n")
    config = load_config(str(path), ["evaluation.max_eer=1", "features.top_db=1e1"])
    assert config.gan.learning_rate == 2e-4 and config.classifier.learning_rate == 1.0
    assert isinstance(config.classifier.learning_rate, float)
    assert config.evaluation.max_eer == 1.0 and config.features.top_db == 10.0


def test_json_round_trip_for_components():
    config = FeatureConfig(segment_mode="all", top_db=None)
    assert section_from_json(FeatureConfig, section_to_json(config)) == config
    # A section nested in a section (masking) comes back as its own dataclass.
    classifier = ClassifierConfig(head_solver="adam",
                                  masking=MaskingConfig(freq_masks=2, time_masks=1))
    assert section_from_json(ClassifierConfig, section_to_json(classifier)) == classifier
    assert json.loads(section_to_json(config))["segment_mode"] == "all"


@pytest.mark.parametrize(("overrides", "message"), [
    (["features.n_mel=3"], "Unknown config key 'features.n_mel'"),
    (["features.segment_mode=some"], "segment_mode"),
    (["features.hop_length=0"], "hop_length must be positive"),
    (["no_equals_sign"], "KEY=VALUE"),
    (["gan.epochs=2.5"], "gan.epochs must be a whole number, got 2.5"),
    (["classifier.from_scratch=1"], "classifier.from_scratch must be true or false"),
    (["classifier.learning_rate=fast"], "classifier.learning_rate must be a number"),
    # A section given a value, a value given keys, a list given a number.
    (["features=3"], "features is a section of settings"),
    (["workdir.x=1"], "workdir is not a section of settings"),
    (["gan.critic_widths=5"], "gan.critic_widths takes a list"),
    (["gan.critic_widths=[8, x, 32]"], r"gan.critic_widths\[1\] must be a whole number"),
    (["gan.critic_widths=[8, -16, 32]"], "lists of positive whole numbers"),
    (["kubeflow.gpu_node_selector=[a]"], "takes a mapping"),
    # Settings that produced garbage without a word.
    (["features.n_fft=1"], "hop_length \\(512\\) is longer than the window"),
    (["features.n_fft=64", "features.hop_length=32"], "n_mels = 80 bands get no FFT bin"),
    (["features.front_end=log_linear", "features.n_fft=64", "features.hop_length=32"],
     "linear_bands = 80 bands get no FFT bin"),
    (["features.front_end=cqt"], "features.front_end is .cqt.; use one of log_mel, log_linear"),
    (["gan.critic_head=pool"], "gan.critic_head is .pool.; use one of flatten, time_statistics"),
    (["features.n_fft=100000"], "longer than a segment"),
    (["features.extra_windows=[256]"], "extra_windows has 256: each extra window must be even"),
    (["features.extra_windows=[513]"], "extra_windows has 513"),
    (["features.extra_windows=[2048]"], "extra_windows has 2048, which is features.n_fft"),
    # The default's 512 window: a user who shortens n_fft to it is told how to drop it.
    (["features.n_fft=512"], "For one window only, set features.extra_windows=\\[\\]"),
    (["features.extra_windows=[512, 512]"], "lists a window twice"),
    (["features.phase_windows=[512]"], "features.phase is false: set features.phase=true"),
    (["features.phase=true", "features.phase_windows=[400]"],
     "phase_windows has \\[400\\], not among the map's windows \\[2048, 512\\]"),
    (["features.n_fft=2047", "features.extra_windows=[512]"], "n_fft \\(2047\\) is odd"),
    (["features.extra_windows=[100000]"], "extra_windows \\(100000\\) is longer than a segment"),
    (["features.extra_windows=[512]", "features.n_mels=200"],
     "a 512-sample window \\(features.extra_windows\\)"),
    (["features.max_file_megabytes=-1"], "max_file_megabytes must be positive"),
    (["features.silence_peak=nan"], "silence_peak must be a number"),
    (["features.silence_peak=2"], "silence_peak is a peak amplitude in \\[0, 1\\)"),
    (["features.top_db=0"], "top_db must be positive"),
    (["gan.learning_rate=-1e-4"], "gan.learning_rate must be positive"),
    (["gan.beta_2=1"], "gan.beta_2 is a fraction"),
    (["classifier.learning_rate=0"], "classifier.learning_rate must be positive"),
    (["classifier.reduce_lr_factor=1.5"], "reduce_lr_factor"),
    (["evaluation.eer_tolerance=-0.1"], "eer_tolerance must not be negative"),
    (["kubeflow.gpus=-1"], "kubeflow.gpus must not be negative"),
    (["classifier.selection=loss"], "classifier.selection is 'loss'; use one of auc, eer"),
    (["classifier.read_out=block4_statistics"],
     "classifier.read_out is 'block4_statistics'; use one of critic, block1_statistics"),
    (["classifier.head_l2=-0.1"], "classifier.head_l2 must not be negative"),
    (["classifier.head_solver=sgd"], "classifier.head_solver is 'sgd'; use one of adam, lbfgs"),
    (["classifier.head_solver=lbfgs", "classifier.freeze_critic=false"],
     "fits a head on a frozen critic: set classifier.freeze_critic=true"),
    (["classifier.head_solver=lbfgs", "classifier.head_l2=0"], "needs classifier.head_l2 > 0"),
    (["classifier.head_solver=lbfgs", "classifier.masking.time_masks=2"],
     "reads each training example once, unmasked"),
    (["classifier.masking.freq_masks=-1"], "classifier.masking.freq_masks must not be"),
    (["gan.masking=2"], "gan.masking is a section of settings"),
    (["features.augment=1", "features.augment_families=[]"], "none given"),
    (["classifier.nuisance_directions=-1"], "nuisance_directions must not be negative"),
    (["classifier.nuisance_directions=8", "classifier.head_solver=adam"],
     "nuisance_directions is fitted by the lbfgs head"),
    (["classifier.nuisance_directions=8", "features.augment=0"],
     "learns what augmentation changes from the augmented copies: set features.augment > 0"),
])
def test_bad_values_are_user_errors(overrides, message):
    with pytest.raises(UserError, match=message):
        load_config(None, overrides)


def test_missing_config_file_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="Cannot read config file"):
        load_config(str(tmp_path / "absent.yaml"))


def test_a_lone_string_for_a_list_is_a_list_of_one_not_its_letters():
    config = load_config(None, ["features.protocol=lists/train.csv", "pipeline_name=2024"])
    assert config.features.protocol == ("lists/train.csv",)
    assert config.pipeline_name == "2024"


def test_the_seed_preset_pins_the_seed_recipe():
    config = load_config(SEED_PRESET)
    features = config.features
    assert (features.front_end, features.num_rows, features.num_frames) == ("log_mel", 80, 126)
    assert (features.augment, features.phase, features.segment_mode) == (0, False, "first")
    assert not config.classifier.masking.active and not config.gan.masking.active
    assert (config.classifier.selection, config.classifier.calibrate) == ("auc", False)
    assert not config.classifier.from_scratch and config.gan.critic_data == "fake"
    assert config.gan.critic_head == "flatten" and features.extra_windows == ()
    assert (config.classifier.read_out, config.classifier.head_l2) == ("critic", 0)
    assert config.classifier.head_solver == "adam"
    assert not config.classifier.freeze_critic and config.classifier.learning_rate == 1e-4
    # The preset pins every setting the study may change, so new defaults leave it alone.
    import yaml

    with open(SEED_PRESET, encoding="utf-8") as handle:
        pinned = yaml.safe_load(handle)
    assert {"front_end", "n_mels", "n_fft", "hop_length", "extra_windows", "phase",
            "phase_windows", "augment"} <= set(pinned["features"])
    assert {"critic_head", "critic_data", "masking"} <= set(pinned["gan"])
    assert {*HEAD_SETTINGS, "selection", "calibrate", "nuisance_directions"} <= set(
        pinned["classifier"])


def test_the_studies_default_variant_is_the_default_config(monkeypatch):
    """benchmarks/generalisation.py's DEFAULT, over the seed preset as every study run starts,
    must be the pipeline's defaults, or its screens of "the default with one thing changed"
    measure something else once a default moves."""
    import os

    monkeypatch.syspath_prepend(os.path.join(os.path.dirname(__file__), "..", "benchmarks"))
    from generalisation import DEFAULT
    from quality import study_settings

    studied, default = load_config(None, study_settings(None, list(DEFAULT))), load_config(None)
    for section in ("features", "gan", "classifier"):
        assert getattr(studied, section) == getattr(default, section), section


def test_settings_of_training_copies_alone_do_not_change_what_decides_the_maps():
    plain = FeatureConfig()
    copies = FeatureConfig(augment=3, augment_seed=7, augment_families=("gain",), vocoded=1,
                           vocoders=("world_coded",))
    assert copies != plain
    assert copies.without_training_copies == plain.without_training_copies
    assert FeatureConfig(n_mels=40).without_training_copies != plain.without_training_copies
