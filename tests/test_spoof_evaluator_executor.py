"""SpoofEvaluator's executor called directly (Executor().Do on small artifacts), as TFX's own
executor tests do: the blessing, its file and properties, and the baselines it compares."""

import json
import os

import pytest
from tfx.types import standard_artifacts

from components.spoof_evaluator.executor import Executor
from spoofdetect.config import EvaluationConfig, FeatureConfig, GanConfig, section_to_json
from spoofdetect.export import export_serving_model
from spoofdetect.models import build_critic, classifier_from_critic

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


def _run(demo_examples, model, baselines, tmp_path):
    examples = standard_artifacts.Examples()
    examples.uri = demo_examples
    evaluation, blessing = standard_artifacts.ModelEvaluation(), standard_artifacts.ModelBlessing()
    evaluation.uri, blessing.uri = str(tmp_path / "evaluation"), str(tmp_path / "blessing")
    os.makedirs(evaluation.uri)
    os.makedirs(blessing.uri)
    Executor().Do({"examples": [examples], "model": [model], "baseline_model": baselines},
                  {"evaluation": [evaluation], "blessing": [blessing]},
                  {"feature_config": section_to_json(FeatureConfig()),
                   "evaluation_config": section_to_json(LENIENT)})
    with open(os.path.join(evaluation.uri, "metrics.json")) as handle:
        return json.load(handle), blessing


@pytest.fixture(scope="module")
def other_front_end_model(tmp_path_factory):
    """A model for another front end (two row blocks: 160 x 126 maps)."""
    features = FeatureConfig(extra_windows=(512,))
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
    assert "does not take 80 x 126 feature maps" in result["baseline"]["skipped"]
    assert result["blessing"]["blessed"]
    assert "the feature settings changed" in result["blessing"]["reason"]
    assert os.listdir(blessing.uri) == ["BLESSED"]
    assert blessing.get_int_custom_property("blessed") == 1
    assert blessing.get_int_custom_property("baseline_model_id") == 1


def test_a_comparable_baseline_is_scored_and_named(demo_examples, exported, tmp_path):
    model = _model_artifact(exported[0], tmp_path, "model", 2)
    baseline = _model_artifact(exported[0], tmp_path, "baseline", 1)
    result, blessing = _run(demo_examples, model, [baseline], tmp_path)
    assert "skipped" not in result["baseline"]
    # The same network on the same examples: the baseline's numbers are the candidate's.
    assert result["baseline"]["clip"]["eer"] == result["clip"]["eer"]
    assert "no regression against the last blessed model" in result["blessing"]["reason"]
    assert os.listdir(blessing.uri) == ["BLESSED"]
