"""Shared fixtures: every test makes its own small audio."""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import pytest
import soundfile

from spoofdetect.config import LABELS, SPLITS, FeatureConfig, FusionConfig, load_config
from spoofdetect.demo_data import make_demo_dataset


def tone(seconds: float = 1.0, sample_rate: int = 16000, frequency: float = 440.0,
         amplitude: float = 0.5, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    mono = (amplitude * np.sin(2 * np.pi * frequency * t)).astype(np.float32)
    return mono if channels == 1 else np.stack([mono] * channels, axis=1)


def write_layout(root: str, per_class: int = 2, seconds: float = 1.0) -> list[str]:
    """A tiny valid dataset: `per_class` tones per split and class, 16-bit WAV at 16 kHz."""
    paths = []
    for split in SPLITS:
        for label in LABELS:
            folder = os.path.join(root, split, label)
            os.makedirs(folder, exist_ok=True)
            for index in range(per_class):
                frequency = 300.0 + 50 * index + (500 if label == "fake" else 0)
                path = os.path.join(folder, f"{label}_{index}.wav")
                soundfile.write(path, tone(seconds, frequency=frequency), 16000,
                                subtype="PCM_16")
                paths.append(path)
    return paths


@pytest.fixture
def small_layout(tmp_path):
    root = str(tmp_path / "data")
    write_layout(root)
    return root


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory):
    """A small demo dataset (4/2/2 clips per class) made once per test session."""
    root = str(tmp_path_factory.mktemp("demo"))
    make_demo_dataset(root, {"train": 4, "dev": 2, "eval": 2}, seed=1)
    return root


@pytest.fixture(scope="session")
def demo_examples(demo_root, tmp_path_factory):
    """The demo dataset's feature TFRecords (Split-*/), extracted in-process once, without
    augmented copies: the training tests count the demo's clips (4 fake in train)."""
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    from spoofdetect.extraction import run_extraction

    output = str(tmp_path_factory.mktemp("demo_examples"))
    run_extraction(beam.Pipeline(options=PipelineOptions(["--direct_num_workers=1"])),
                   demo_root, output, dataclasses.replace(ONE_SYSTEM, augment=0),
                   show_progress=False)
    return output


@pytest.fixture(scope="session")
def exported(demo_examples, tmp_path_factory):
    """A narrow classifier trained 2 epochs from scratch on the demo examples, the seed's
    way (the whole network, its head on the last map), exported: (SavedModel path, run
    folder, history, Keras model). Imperfect on the demo's eval clips, which the evaluator's
    tests need; the default head's export is tested in tests/test_classifier.py."""
    from spoofdetect.config import ClassifierConfig, GanConfig
    from spoofdetect.data import split_files
    from spoofdetect.export import export_serving_model
    from spoofdetect.finetune import train_classifier

    run_dir = str(tmp_path_factory.mktemp("run"))
    config = with_seed_head(ClassifierConfig(from_scratch=True, epochs=2, batch_size=4))
    model, history = train_classifier(split_files(demo_examples, "train"),
                                      split_files(demo_examples, "dev"), ONE_SYSTEM,
                                      config, GanConfig(critic_widths=(8, 16, 32)), None,
                                      run_dir)
    path = str(tmp_path_factory.mktemp("serving"))
    export_serving_model(model, ONE_SYSTEM, path, max_seconds=600.0)
    return path, run_dir, history, model


@pytest.fixture(scope="session")
def untrained_export(tmp_path_factory):
    """A narrow, untrained classifier exported (seconds to make): for what the signatures do
    with input they cannot judge, which needs no training."""
    from spoofdetect.config import GanConfig
    from spoofdetect.export import export_serving_model
    from spoofdetect.models import build_critic, classifier_from_critic

    path = str(tmp_path_factory.mktemp("untrained_serving"))
    classifier = classifier_from_critic(build_critic(SEED_FEATURES,
                                                     GanConfig(critic_widths=(8, 16, 32))))
    export_serving_model(classifier, SEED_FEATURES, path, max_seconds=600.0)
    return path


SEED_PRESET = os.path.join(os.path.dirname(__file__), "..", "pipeline", "seed.yaml")
# The default's first system alone (no features.fusion): the features of the demo examples
# and of the tests that train, export and score one system on them (tests/test_fusion.py and
# the pipeline's tests run the default's fusion).
ONE_SYSTEM = dataclasses.replace(FeatureConfig(), fusion=FusionConfig(enabled=False),
                                 lfcc_gmm=False)
# The seed's 80 x 126 log-Mel map, whatever the default front end: for tests that build
# models on, or compare against, maps of that shape.
SEED_FEATURES = load_config(SEED_PRESET).features
# The settings that make the classifier's head: the default's frozen block-1 read-out, or the
# seed's fine-tuned whole network (config.py chooses them together).
HEAD_SETTINGS = ("freeze_critic", "read_out", "head_l2", "head_solver", "learning_rate")


def with_seed_head(classifier):
    """`classifier` (a ClassifierConfig) with the seed preset's head: the whole network
    fine-tuned, its head on the critic's last map. Tests that need a model imperfect on the
    demo's few eval clips use it: the default head separates them perfectly."""
    seed = load_config(SEED_PRESET).classifier
    return dataclasses.replace(classifier, **{name: getattr(seed, name)
                                              for name in HEAD_SETTINGS})


def run_trainer(examples_dir: str, features, classifier, output) -> dict:
    """The Trainer's run_fn (with the narrow critic of FAST) on `examples_dir`'s train and
    dev splits; the SavedModel in output/serving, the run in output/run. Returns its
    summary.json."""
    from tfx.components.trainer.fn_args_utils import FnArgs

    from spoofdetect.components import code_version
    from spoofdetect.config import GanConfig, section_to_json
    from spoofdetect.data import split_files
    from spoofdetect.pipeline import trainer_module

    trainer_module.run_fn(FnArgs(
        train_files=split_files(examples_dir, "train"),
        eval_files=split_files(examples_dir, "dev"),
        serving_model_dir=str(output / "serving"), model_run_dir=str(output / "run"),
        custom_config={trainer_module.FEATURES: section_to_json(features),
                       trainer_module.GAN: section_to_json(GanConfig(critic_widths=(8, 16, 32))),
                       trainer_module.CLASSIFIER: section_to_json(classifier),
                       trainer_module.MAX_AUDIO_SECONDS: 600.0,
                       trainer_module.CODE_VERSION: code_version.current()}))
    with open(output / "run" / "summary.json") as handle:
        return json.load(handle)


def uncalibrated_dev_scores(examples_dir: str, features, output, summary: dict
                            ) -> tuple[np.ndarray, np.ndarray]:
    """(score with the calibration in `summary` undone, is_spoof) of every dev example, scored
    by the SavedModel that run_trainer exported to `output`."""
    from spoofdetect.calibration import Calibration
    from spoofdetect.data import split_files
    from spoofdetect.evaluation import score_examples

    dev = score_examples(str(output / "serving"), split_files(examples_dir, "dev"), features, 8)
    calibration = Calibration(summary["calibration"]["scale"],
                              summary["calibration"]["offset"])
    return calibration.inverse().apply(dev.scores), dev.is_spoof


# Seconds, not minutes: narrow networks, one epoch of each stage. Limits that any model
# meets, so the first run is blessed and pushed.
FAST = ["gan.epochs=1", "gan.batch_size=4", "gan.critic_widths=[8,16,32]",
        "gan.generator_widths=[32,16,8,8]", "classifier.epochs=1", "classifier.batch_size=4",
        "classifier.calibrate=true", "evaluation.max_eer=1", "evaluation.max_min_tdcf=1000"]


@pytest.fixture(scope="session")
def pipeline_run(demo_root, tmp_path_factory):
    """The demo pipeline run once on BeamDagRunner with SQLite ML Metadata: its config."""
    from spoofdetect.config import load_config
    from spoofdetect.pipeline.local_runner import run_local

    config = load_config(None, FAST, data_root=demo_root,
                         workdir=str(tmp_path_factory.mktemp("workdir")))
    assert run_local(config, runner="beam") == 0
    return config


def benchmark_module(monkeypatch, name: str, *imports: str):
    """A script of benchmarks/ (and the scripts it `imports`), imported from that folder and
    forgotten after the test."""
    monkeypatch.syspath_prepend(os.path.join(os.path.dirname(__file__), "..", "benchmarks"))
    yield importlib.import_module(name)
    for module in (name, *imports):
        sys.modules.pop(module, None)


@pytest.fixture
def fusion_probe(monkeypatch):
    """benchmarks/fusion_probe.py (with quality.py's study lookup and generalisation.py's
    variants)."""
    yield from benchmark_module(monkeypatch, "fusion_probe", "generalisation", "quality")


@pytest.fixture
def speech_dataset(monkeypatch):
    """benchmarks/speech_dataset.py, the real-speech benchmark's builder."""
    yield from benchmark_module(monkeypatch, "speech_dataset")


def decay_time(response: np.ndarray, rate: int) -> float:
    """An impulse response's RT60 from the Schroeder energy decay curve's fall from -5 to
    -25 dB (T20, times 3)."""
    curve = np.cumsum((response ** 2)[::-1])[::-1]
    level = 10 * np.log10(curve / curve[0] + 1e-30)
    return 3 * (np.argmax(level <= -25) - np.argmax(level <= -5)) / rate
