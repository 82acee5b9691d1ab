"""`spoofdetect score`: files and folders through the exported model's waveform signature,
per-segment and per-file scores, bad files reported while scoring goes on, limits."""

import csv
import json
import os
import shutil

import numpy as np
import pytest
import soundfile
import tensorflow as tf

from spoofdetect import metrics, scoring
from spoofdetect.audio import decode_audio
from spoofdetect.cli import main
from spoofdetect.config import FeatureConfig
from spoofdetect.errors import UserError
from tests.conftest import tone


def _speechy(seconds: float, sample_rate: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    return (0.3 * np.sin(2 * np.pi * 180 * t) * (1 + 0.5 * np.sin(2 * np.pi * 4 * t))
            + 0.02 * rng.standard_normal(t.size)).astype(np.float32)


@pytest.fixture
def audio_dir(tmp_path):
    root = tmp_path / "audio"
    (root / "real").mkdir(parents=True)
    (root / "fake").mkdir()
    soundfile.write(root / "real" / "long.wav", _speechy(9.0, 16000, 1), 16000,
                    subtype="PCM_16")
    stereo = np.stack([_speechy(3.0, 44100, 2), tone(3.0, 44100)], axis=1)
    soundfile.write(root / "fake" / "stereo_44k.flac", stereo, 44100, subtype="PCM_16")
    (root / "fake" / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    return root


def test_long_file_gets_a_score_per_window_and_their_mean(exported, audio_dir):
    scorer = scoring.Scorer(exported[0], FeatureConfig(), max_seconds=600)
    result = scorer.score(str(audio_dir / "real" / "long.wav"))
    # 9 s: windows at 0, 4 and 8 s (the last is 1 s long, the minimum kept).
    assert len(result.segment_scores) == 3
    assert result.score == pytest.approx(np.mean(result.segment_scores))
    assert result.p_fake == pytest.approx(1 / (1 + np.exp(result.score)))
    signature = tf.saved_model.load(exported[0]).signatures["serving_default"]
    samples = decode_audio((audio_dir / "real" / "long.wav").read_bytes(), 16000).samples
    second_window = signature(waveforms=tf.constant(samples[None, 64000:128000]))["score"]
    assert result.segment_scores[1] == pytest.approx(float(second_window[0]), abs=1e-5)
    first_only = scoring.Scorer(exported[0], FeatureConfig(), 600, segments="first")
    assert first_only.score(str(audio_dir / "real" / "long.wav")).segment_scores == \
        pytest.approx(result.segment_scores[:1], abs=1e-5)


def test_any_rate_and_channels_are_decoded_like_the_beam_job(exported, audio_dir):
    path = audio_dir / "fake" / "stereo_44k.flac"
    result = scoring.Scorer(exported[0], FeatureConfig(), 600).score(str(path))
    samples = decode_audio(path.read_bytes(), 16000).samples
    signature = tf.saved_model.load(exported[0]).signatures["serving_default"]
    expected = float(signature(waveforms=tf.constant(samples[None]))["score"][0])
    assert result.segment_scores == pytest.approx([expected], abs=1e-5)


def test_cli_reports_bad_files_goes_on_and_exits_1(exported, audio_dir, tmp_path, capsys):
    output = tmp_path / "scores.csv"
    asvspoof = tmp_path / "scores.txt"
    code = main(["score", "--model", exported[0], str(audio_dir), "--output", str(output),
                 "--asvspoof-scores", str(asvspoof)])
    assert code == 1
    captured = capsys.readouterr()
    assert "broken.wav" in captured.out and "FAILED: not a readable audio file" in captured.out
    assert "2 scored, 1 failed" in captured.out
    assert "[score] 3/3" in captured.err and "1 of 3 files could not be scored" in captured.err
    rows = {os.path.basename(r["path"]): r for r in csv.DictReader(open(output))}
    assert rows["broken.wav"]["error"] and not rows["broken.wav"]["score"]
    assert len(rows["long.wav"]["segment_scores"].split()) == 3
    written = metrics.read_score_file(str(asvspoof))
    pairs = zip(written.is_spoof.tolist(), written.scores.round(4).tolist(), strict=True)
    assert sorted(pairs) == sorted([(False, round(float(rows["long.wav"]["score"]), 4)),
                                    (True, round(float(rows["stereo_44k.flac"]["score"]), 4))])


def test_cli_json_output_and_exit_0_when_all_scored(exported, audio_dir, tmp_path, capsys):
    output = tmp_path / "scores.json"
    assert main(["score", "--model", exported[0], str(audio_dir / "real"),
                 "--output", str(output)]) == 0
    [record] = json.load(open(output))
    assert record["label"] in ("real", "fake") and record["error"] is None
    assert record["duration_seconds"] == pytest.approx(9.0)


def test_files_over_the_limits_are_refused_with_the_setting_to_change(exported, audio_dir,
                                                                       capsys):
    path = str(audio_dir / "real" / "long.wav")
    assert main(["score", "--model", exported[0], path,
                 "--set", "evaluation.max_score_seconds=5"]) == 1
    assert "above evaluation.max_score_seconds = 5" in capsys.readouterr().out
    assert main(["score", "--model", exported[0], path,
                 "--set", "features.max_file_megabytes=0.1"]) == 1
    assert "above features.max_file_megabytes" in capsys.readouterr().out


def test_model_folder_of_versions_uses_the_newest(exported, tmp_path):
    serving = tmp_path / "serving"
    shutil.copytree(exported[0], serving / "7")
    shutil.copytree(exported[0], serving / "12")
    assert scoring.resolve_model_dir(str(serving)) == str(serving / "12")
    with pytest.raises(UserError, match="not a SavedModel"):
        scoring.resolve_model_dir(str(tmp_path))
    with pytest.raises(UserError, match="does not exist"):
        scoring.expand_inputs([str(tmp_path / "missing.wav")])


def test_a_model_exported_before_the_status_output_still_scores(audio_dir, tmp_path):
    class OldExport(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32, "waveforms")])
        def serve(self, waveforms):
            score = tf.reduce_mean(waveforms, axis=1)
            return {"score": score, "p_fake": tf.sigmoid(-score),
                    "label": tf.zeros_like(score, tf.int64)}

    module = OldExport()
    tf.saved_model.save(module, str(tmp_path / "old"), signatures={"serving_default":
                                                                   module.serve})
    result = scoring.Scorer(str(tmp_path / "old"), FeatureConfig(), 600).score(
        str(audio_dir / "real" / "long.wav"))
    assert result.error is None and len(result.segment_scores) == 3
