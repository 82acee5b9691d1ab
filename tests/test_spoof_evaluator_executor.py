"""SpoofEvaluator's executor called directly (Executor().Do on small artifacts), as TFX's own
executor tests do: the blessing, its file and properties, and the baselines it compares."""

import json
import os

import pytest
from tfx.types import standard_artifacts

from spoofdetect.components import code_version, keys
from spoofdetect.components.spoof_evaluator.executor import Executor
from spoofdetect.config import EvaluationConfig, GanConfig, section_to_json
from spoofdetect.export import export_serving_model
from spoofdetect.models import build_critic, classifier_from_critic
from spoofdetect.pipeline.run_summary import EVALUATION_SHOWN
from tests.conftest import ONE_SYSTEM, SEED_FEATURES

# Limits any model meets, so the blessing turns on the baseline alone.
LENIENT = EvaluationConfig(max_eer=1.0, max_min_tdcf=1000.0)


def _model_artifact(serving_dir: str, root, name: str, artifact_id: int):
    """A Model artifact whose Format-Serving folder is the SavedModel."""
    uri = root / name
    uri.mkdir()
    os.symlink(serving_dir, uri / "Format-Serving")
    artifact = standard_artifacts.Model()
    artifact.uri, artifact.id = str(uri), artifact_id
    return artifact


def _run(demo_examples, model, baselines, tmp_path, config=LENIENT, with_evaluation=False):
    examples = standard_artifacts.Examples()
    examples.uri = demo_examples
    evaluation, blessing = standard_artifacts.ModelEvaluation(), standard_artifacts.ModelBlessing()
    evaluation.uri, blessing.uri = str(tmp_path / "evaluation"), str(tmp_path / "blessing")
    os.makedirs(evaluation.uri)
    os.makedirs(blessing.uri)
    Executor().Do({keys.EXAMPLES_KEY: [examples], keys.MODEL_KEY: [model],
                   keys.BASELINE_MODEL_KEY: baselines},
                  {keys.EVALUATION_KEY: [evaluation], keys.BLESSING_KEY: [blessing]},
                  {keys.FEATURE_CONFIG_KEY: section_to_json(ONE_SYSTEM),
                   keys.EVALUATION_CONFIG_KEY: section_to_json(config),
                   keys.CODE_VERSION_KEY: code_version.current()})
    with open(os.path.join(evaluation.uri, "metrics.json")) as handle:
        result = json.load(handle)
    return (result, blessing, evaluation) if with_evaluation else (result, blessing)


@pytest.fixture(scope="module")
def other_front_end_model(tmp_path_factory):
    """A model for another front end (the seed's one window: 80 x 126 maps)."""
    features = SEED_FEATURES
    path = str(tmp_path_factory.mktemp("other_front_end"))
    export_serving_model(classifier_from_critic(build_critic(
        features, GanConfig(critic_widths=(8, 16, 32)))), features, path, max_seconds=600.0)
    return path


def test_a_baseline_for_other_features_is_skipped_with_the_reason(
        demo_examples, exported, other_front_end_model, tmp_path):
    """A user who changes the front end in the same work folder: the last blessed model
    cannot judge the new examples. The run used to crash on it."""
    model = _model_artifact(exported[0], tmp_path, "model", 2)
    baseline = _model_artifact(other_front_end_model, tmp_path, "baseline", 1)
    result, blessing = _run(demo_examples, model, [baseline], tmp_path)
    assert "does not take 160 x 126 feature maps" in result["baseline"]["skipped"]
    assert result["blessing"]["blessed"]
    assert "the feature settings changed" in result["blessing"]["reason"]
    assert os.listdir(blessing.uri) == [keys.BLESSED_FILE]
    assert blessing.get_int_custom_property(keys.BLESSED_PROPERTY) == 1
    assert blessing.get_int_custom_property(keys.BASELINE_MODEL_ID_PROPERTY) == 1
    assert blessing.get_string_custom_property(keys.BASELINE_MODEL_PROPERTY) == baseline.uri


def test_a_comparable_baseline_is_scored_and_named(demo_examples, exported, tmp_path):
    model = _model_artifact(exported[0], tmp_path, "model", 2)
    baseline = _model_artifact(exported[0], tmp_path, "baseline", 1)
    result, blessing = _run(demo_examples, model, [baseline], tmp_path)
    assert "skipped" not in result["baseline"]
    # The same network on the same examples: the baseline's numbers are the candidate's.
    assert result["baseline"]["clip"]["eer"] == result["clip"]["eer"]
    assert "no regression against the last blessed model" in result["blessing"]["reason"]
    assert os.listdir(blessing.uri) == [keys.BLESSED_FILE]


def test_without_a_baseline_the_limits_decide_and_every_property_is_recorded(
        demo_examples, exported, tmp_path):
    """No baseline (the first run): a model over the EER limit is not blessed, the blessing
    says why, and the evaluation carries every property the run summary and lineage read."""
    model = _model_artifact(exported[0], tmp_path, "model", 2)
    strict = EvaluationConfig(max_eer=0.0, max_min_tdcf=1000.0)
    result, blessing, evaluation = _run(demo_examples, model, [], tmp_path, strict,
                                        with_evaluation=True)
    assert "baseline" not in result
    assert result["clip"]["eer"] > 0.0  # the two-epoch model is not perfect on these clips
    assert not result["blessing"]["blessed"]
    assert os.listdir(blessing.uri) == [keys.NOT_BLESSED_FILE]
    assert blessing.get_int_custom_property(keys.BLESSED_PROPERTY) == 0
    assert "EER" in blessing.get_string_custom_property(keys.REASON_PROPERTY)
    assert blessing.get_string_custom_property(keys.CURRENT_MODEL_PROPERTY) == model.uri
    assert blessing.get_int_custom_property(keys.CURRENT_MODEL_ID_PROPERTY) == 2
    assert not blessing.has_custom_property(keys.BASELINE_MODEL_ID_PROPERTY)
    assert evaluation.get_float_custom_property(keys.EER_PROPERTY) == result["clip"]["eer"]
    assert evaluation.get_int_custom_property(keys.BLESSED_PROPERTY) == 0
    for name in (*EVALUATION_SHOWN, keys.SEGMENT_EER_PROPERTY, keys.NUM_SEGMENTS_PROPERTY):
        assert evaluation.has_custom_property(name), name
    assert os.path.exists(evaluation.get_string_custom_property(keys.REPORT_URI_PROPERTY))
    for artifact in (evaluation, blessing):
        assert (artifact.get_string_custom_property(keys.CODE_VERSION_PROPERTY)
                == code_version.current())
