"""Schema validation as the pipeline runs it (TFX's StatisticsGen, with the pipeline's
options, and ExampleValidator executors against schemas/examples_schema.pbtxt): one bad
example among clean ones, whether NaN, infinite, constant or of the wrong shape, is an
anomaly; clean examples have none. The same holds of the fused system's map
(features.fusion), which the schema fitted to such a config checks alike."""

import dataclasses
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_data_validation as tfdv
from tfx.components.example_validator import executor as validator_executor
from tfx.components.statistics_gen import executor as statistics_executor
from tfx.types import artifact_utils, standard_artifacts, standard_component_specs

from spoofdetect import examples
from spoofdetect.config import FusionConfig
from spoofdetect.pipeline.run_summary import read_anomalies
from spoofdetect.pipeline.schema import schema_path_for, statistics_features
from tests.conftest import SEED_FEATURES

# The seed's map and a fused second map (features.fusion's default front end, 160 x 401).
VALIDATED = dataclasses.replace(SEED_FEATURES, fusion=FusionConfig(enabled=True))

BAD = {
    "nan": lambda m: np.where(np.arange(m.size).reshape(m.shape) == 7, np.nan, m),
    "inf": lambda m: np.where(np.arange(m.size).reshape(m.shape) == 7, -np.inf, m),
    "constant": lambda m: np.zeros_like(m),
    "shape": lambda m: m[:, :100],
}
# A split named fusion_KIND has one bad fused map of that kind; KIND, one bad log_mel.
SPLITS = ("clean", *BAD, "fusion_nan", "fusion_shape")


@pytest.fixture(scope="module")
def anomalies(tmp_path_factory):
    """split -> anomalies, for an Examples artifact whose every split but `clean` holds one
    bad example among 20."""
    root = tmp_path_factory.mktemp("validation")
    rng = np.random.default_rng(0)
    data = standard_artifacts.Examples()
    data.uri = str(root / "examples")
    data.split_names = artifact_utils.encode_split_names(list(SPLITS))
    for split in SPLITS:
        os.makedirs(os.path.join(data.uri, f"Split-{split}"))
        # Uncompressed, as the FeatureExtractor writes them.
        path = os.path.join(data.uri, f"Split-{split}", "data_tfrecord-0000000")
        with tf.io.TFRecordWriter(path) as writer:
            for index in range(20):
                log_mel = rng.standard_normal((80, 126)).astype(np.float32)
                fused = rng.standard_normal((160, 401)).astype(np.float32)
                if index == 11 and split in BAD:
                    log_mel = BAD[split](log_mel)
                if index == 11 and split.startswith("fusion_"):
                    fused = BAD[split.removeprefix("fusion_")](fused)
                writer.write(examples.make_example(log_mel, index % 2, f"{index}.wav",
                                                   str(index), 0, 16000, 4.0,
                                                   fused_maps={examples.FUSION_FEATURES: fused}))
    statistics = standard_artifacts.ExampleStatistics()
    statistics.uri = str(root / "statistics")
    statistics.split_names = data.split_names
    statistics_executor.Executor().Do(
        {standard_component_specs.EXAMPLES_KEY: [data]},
        {standard_component_specs.STATISTICS_KEY: [statistics]},
        {standard_component_specs.EXCLUDE_SPLITS_KEY: "[]",
         # As the pipeline configures StatisticsGen.
         standard_component_specs.STATS_OPTIONS_JSON_KEY: tfdv.StatsOptions(
             feature_allowlist=statistics_features(VALIDATED)).to_json()})
    schema = standard_artifacts.Schema()
    schema.uri = str(root / "schema")
    os.makedirs(schema.uri)
    shutil.copy(schema_path_for(VALIDATED, str(root / "scratch")),
                os.path.join(schema.uri, "schema.pbtxt"))
    result = standard_artifacts.ExampleAnomalies()
    result.uri = str(root / "anomalies")
    validator_executor.Executor().Do(
        {standard_component_specs.STATISTICS_KEY: [statistics],
         standard_component_specs.SCHEMA_KEY: [schema]},
        {standard_component_specs.ANOMALIES_KEY: [result]},
        {standard_component_specs.EXCLUDE_SPLITS_KEY: "[]"})
    return read_anomalies(result.uri, SPLITS)


def test_clean_examples_have_no_anomaly(anomalies):
    assert "clean" not in anomalies


def test_statistics_leave_out_the_spectrogram_and_keep_its_summaries():
    assert examples.LOG_MEL not in statistics_features(SEED_FEATURES)
    assert set(examples.SUMMARIES) <= set(statistics_features(SEED_FEATURES))
    assert examples.FUSION_FEATURES not in statistics_features(VALIDATED)
    fused_summaries = set(examples.summary_names(examples.FUSION_FEATURES))
    assert fused_summaries <= set(statistics_features(VALIDATED))
    assert not fused_summaries & set(statistics_features(SEED_FEATURES))


@pytest.mark.parametrize("split, feature", [
    ("nan", examples.LOG_MEL_NON_FINITE), ("inf", examples.LOG_MEL_NON_FINITE),
    ("constant", examples.LOG_MEL_STD), ("shape", examples.LOG_MEL_VALUES),
    ("fusion_nan", "fusion_features_non_finite"), ("fusion_shape", "fusion_features_values")])
def test_one_bad_example_is_an_anomaly_of_its_summary(anomalies, split, feature):
    assert any(line.startswith(f"{feature}: ") for line in anomalies[split]), anomalies
