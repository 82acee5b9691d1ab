"""The evaluator's science: scoring Examples with the SavedModel, per-clip aggregation, the
written score files, plots and report, and the blessing decision both ways."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from spoofdetect import evaluation, metrics
from spoofdetect.config import EvaluationConfig
from spoofdetect.data import example_dataset, split_files
from tests.conftest import ONE_SYSTEM

FEATURES = ONE_SYSTEM
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_clip_score_is_the_mean_of_its_segment_log_odds():
    segments = evaluation.ScoredSet(
        ids=["a#0", "b#0", "a#1", "a#2", "b#1"], clip_ids=["a", "b", "a", "a", "b"],
        paths=["x/a.wav", "x/b.wav", "x/a.wav", "x/a.wav", "x/b.wav"],
        attacks=["", "A01", "", "", "A01"], is_spoof=np.array([0, 1, 0, 0, 1], bool),
        scores=np.array([1.0, -4.0, 2.0, 6.0, 0.0]), num_segments=np.ones(5, int))
    clips = evaluation.clip_scores(segments)
    assert clips.ids == ["a", "b"]
    np.testing.assert_allclose(clips.scores, [3.0, -2.0])
    assert clips.num_segments.tolist() == [3, 2]
    assert clips.is_spoof.tolist() == [False, True]
    assert clips.attacks == ["", "A01"]


@pytest.fixture(scope="module")
def evaluated(exported, demo_examples, tmp_path_factory):
    output = str(tmp_path_factory.mktemp("evaluation"))
    result = evaluation.evaluate_model(exported[0], split_files(demo_examples, "eval"),
                                       FEATURES, EvaluationConfig(batch_size=3), output)
    return result, output


def test_evaluation_scores_every_clip_through_the_saved_model(evaluated, exported,
                                                              demo_examples):
    result, output = evaluated
    assert result["num_clips"] == result["num_segments"] == 4
    # The score file holds what the spectrogram signature gives for each example.
    written = metrics.read_score_file(os.path.join(output, evaluation.CLIP_SCORES_FILE))
    signature = tf.saved_model.load(exported[0]).signatures["from_features"]
    [batch] = list(example_dataset(split_files(demo_examples, "eval"), FEATURES, 16))
    direct = dict(zip([c.decode() for c in batch["clip_id"].numpy()],
                      signature(log_mel=batch["log_mel"])["score"].numpy(), strict=True))
    assert len(written.utterances) == 4
    for utterance, score in zip(written.utterances, written.scores, strict=True):
        # Batches of 3 and of 16 round differently in oneDNN: equal to 1e-5.
        assert score == pytest.approx(direct[utterance], abs=1e-5)
    assert written.is_spoof.tolist() == [c.startswith("eval_fake")
                                         for c in written.utterances]
    # The metrics are those of the written scores.
    again = metrics.evaluate_scores(written.scores, written.is_spoof)
    assert result["clip"]["eer"] == again["eer"]
    assert result["clip"]["min_tdcf"] == pytest.approx(again["min_tdcf"])


def test_evaluation_writes_every_plot_as_png(evaluated):
    result, output = evaluated
    assert result["plots"] == ["det.png", "roc.png", "precision_recall.png", "calibration.png",
                               "threshold_metrics.png", "confusion.png",
                               "score_histograms.png"]
    for name in result["plots"]:
        with open(os.path.join(output, name), "rb") as handle:
            data = handle.read()
        assert data.startswith(PNG_MAGIC) and len(data) > 5000, name


def test_report_shows_verdict_metrics_and_plots(evaluated):
    result, output = evaluated
    blessing = evaluation.Blessing(False, "EER 50.00 % is above the limit 15.00 %")
    path = evaluation.write_report(output, result, blessing)
    page = open(path, encoding="utf-8").read()
    assert "NOT BLESSED" in page and "above the limit 15.00 %" in page
    assert f"{100 * result['clip']['eer']:.3f} %" in page
    for name in result["plots"]:
        assert f'<img src="{name}"' in page
    metrics_path = evaluation.write_metrics(output, result)
    assert json.load(open(metrics_path))["clip"]["eer"] == result["clip"]["eer"]


def _result(eer: float, tdcf: float) -> dict:
    return {"clip": {"eer": eer, "min_tdcf": tdcf}}


def test_blessing_needs_both_limits():
    config = EvaluationConfig(max_eer=0.10, max_min_tdcf=0.3)
    assert evaluation.decide_blessing(_result(0.05, 0.2), None, config).blessed
    too_high = evaluation.decide_blessing(_result(0.12, 0.2), None, config)
    assert not too_high.blessed and "evaluation.max_eer" in too_high.reason
    tdcf_high = evaluation.decide_blessing(_result(0.05, 0.31), None, config)
    assert not tdcf_high.blessed and "evaluation.max_min_tdcf" in tdcf_high.reason


def test_blessing_refuses_a_regression_beyond_the_tolerance():
    config = EvaluationConfig(max_eer=0.5, max_min_tdcf=1.0, eer_tolerance=0.01,
                              min_tdcf_tolerance=0.02)
    baseline = _result(0.05, 0.20)
    within = evaluation.decide_blessing(_result(0.059, 0.219), baseline, config)
    assert within.blessed and "no regression" in within.reason
    worse = evaluation.decide_blessing(_result(0.07, 0.20), baseline, config)
    assert not worse.blessed and "regresses" in worse.reason and "eer_tolerance" in worse.reason
    worse_tdcf = evaluation.decide_blessing(_result(0.05, 0.25), baseline, config)
    assert not worse_tdcf.blessed and "min_tdcf_tolerance" in worse_tdcf.reason
