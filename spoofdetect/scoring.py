"""Scoring audio files with an exported (pushed) SavedModel: `spoofdetect score`.

Files are checked, decoded and cut into segments by the same functions as the Beam job
(spoofdetect.audio), then scored through the model's waveform signature, which runs the
training feature function in its graph. A file gets one score per segment and one file
score, the mean of its segments' log-odds (as the evaluator aggregates clips).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import sys
from collections.abc import Iterator
from typing import TextIO

import numpy as np
import soundfile

from spoofdetect.audio import (
    AUDIO_EXTENSIONS,
    AudioRejected,
    audio_segments,
    check_file,
    read_local_file,
)
from spoofdetect.config import FeatureConfig
from spoofdetect.errors import UserError
from spoofdetect.metrics import sigmoid, write_score_file


@dataclasses.dataclass
class FileScore:
    path: str
    score: float | None = None  # log-odds of bona fide; None when the file failed
    p_fake: float | None = None
    label: str | None = None  # 'fake' or 'real'
    segment_scores: list[float] = dataclasses.field(default_factory=list)
    duration_seconds: float | None = None
    error: str | None = None


def newest_version(serving_dir: str) -> str | None:
    """The newest SavedModel in a TF Serving folder of numbered versions (local or URI)."""
    import tensorflow as tf

    if not tf.io.gfile.isdir(serving_dir):
        return None
    versions = sorted((name.rstrip("/") for name in tf.io.gfile.listdir(serving_dir)
                       if name.rstrip("/").isdigit()), key=int, reverse=True)
    for version in versions:
        path = os.path.join(serving_dir, version)
        if tf.io.gfile.exists(os.path.join(path, "saved_model.pb")):
            return path
    return None


def resolve_model_dir(path: str) -> str:
    """A SavedModel folder, or a serving folder of numbered versions: its newest version."""
    if os.path.exists(os.path.join(path, "saved_model.pb")):
        return path
    newest = newest_version(path)
    if newest:
        return newest
    raise UserError(f"{path} is not a SavedModel folder (no saved_model.pb) nor a serving "
                    "folder of numbered versions; pass the Pusher's destination or a version.")


def expand_inputs(paths: list[str]) -> list[str]:
    """Files as given, and the audio files under each folder (sorted, recursive)."""
    files = []
    for path in paths:
        if os.path.isdir(path):
            found = sorted(os.path.join(folder, name)
                           for folder, _, names in os.walk(path) for name in names
                           if name.lower().endswith(AUDIO_EXTENSIONS))
            if not found:
                raise UserError(f"No audio files ({', '.join(AUDIO_EXTENSIONS)}) under {path}.")
            files += found
        elif os.path.exists(path):
            files.append(path)
        else:
            raise UserError(f"{path} does not exist.")
    return files


class Scorer:
    """Loads the SavedModel once; scores one file at a time."""

    def __init__(self, model_dir: str, features: FeatureConfig, max_seconds: float,
                 segments: str = "all"):
        """`segments`: 'all' scores every 4 s window of a file; 'first' only the first, which
        is what the evaluator scores when the pipeline ran with segment_mode 'first'."""
        import tensorflow as tf

        self.model_dir = resolve_model_dir(model_dir)
        try:
            signatures = tf.saved_model.load(self.model_dir).signatures
        except Exception as error:  # protobuf, TensorFlow and OS errors alike
            raise UserError(f"Cannot load the SavedModel in {self.model_dir}: "
                            f"{type(error).__name__}: {' '.join(str(error).split())[:200]}. "
                            "Is it a complete export (saved_model.pb and variables/)?"
                            ) from error
        if "serving_default" not in signatures:
            raise UserError(f"The SavedModel in {self.model_dir} has no serving_default "
                            "signature: it was not exported by this project's Trainer.")
        self.signature = signatures["serving_default"]
        self.features = dataclasses.replace(features, segment_mode=segments)
        self.max_seconds = max_seconds

    def _read(self, path: str) -> bytes:
        check_file(path, 0, self.features)
        data = read_local_file(path, int(self.features.max_file_megabytes * 1e6))
        try:
            duration = soundfile.info(io.BytesIO(data)).duration
        except Exception:  # an unreadable header: the decoder names the problem
            duration = None
        if duration is not None and duration > self.max_seconds:
            raise AudioRejected(f"{duration:.0f} s long, above evaluation.max_score_seconds = "
                                f"{self.max_seconds:g}; raise the limit or cut the file")
        return data

    def score(self, path: str) -> FileScore:
        import tensorflow as tf

        from spoofdetect.export import STATUS_OK

        try:
            decoded, segments = audio_segments(self._read(path), self.features)
        except AudioRejected as error:
            return FileScore(path, error=str(error))
        outputs = self.signature(waveforms=tf.constant(np.stack(segments)))
        # A window the model cannot judge (a silent stretch of a longer file) has no score;
        # the file's score is the mean over the windows it judged.
        # Models exported before the status output judge every window.
        judged = (outputs["status"].numpy() == STATUS_OK.encode() if "status" in outputs
                  else np.ones(len(segments), bool))
        if not judged.any():
            reasons = sorted({value.decode() for value in outputs["status"].numpy()})
            return FileScore(path, error=f"the model judged none of its windows "
                                         f"({', '.join(reasons)})")
        segment_scores = [float(value) for value in outputs["score"].numpy()[judged]]
        score = float(np.mean(segment_scores))
        p_fake = float(sigmoid(-score))
        return FileScore(path, score, p_fake, "fake" if p_fake >= 0.5 else "real",
                         segment_scores, decoded.duration_seconds)


def score_paths(scorer: Scorer, files: list[str], progress: TextIO | None = None
                ) -> Iterator[FileScore]:
    """Scores each file in turn, writing a progress line per file (to stderr by default)."""
    progress = progress or sys.stderr
    for number, path in enumerate(files, start=1):
        result = scorer.score(path)
        status = f"failed: {result.error}" if result.error else f"{result.label} " \
                 f"(p_fake {result.p_fake:.3f})"
        progress.write(f"[score] {number}/{len(files)} {path}: {status}\n")
        progress.flush()
        yield result


def format_table(results: list[FileScore]) -> str:
    width = max([len(r.path) for r in results] + [4])
    lines = [f"{'file':<{width}}  {'segments':>8}  {'score':>9}  {'p_fake':>7}  label"]
    for r in results:
        if r.error:
            lines.append(f"{r.path:<{width}}  {'-':>8}  {'-':>9}  {'-':>7}  FAILED: {r.error}")
        else:
            lines.append(f"{r.path:<{width}}  {len(r.segment_scores):>8}  {r.score:>9.4f}  "
                         f"{r.p_fake:>7.4f}  {r.label}")
    failed = sum(1 for r in results if r.error)
    lines.append(f"{len(results) - failed} scored, {failed} failed")
    return "\n".join(lines)


def write_results(results: list[FileScore], path: str) -> None:
    """Every file's result as JSON (PATH.json) or CSV (else; segment scores space-separated)."""
    records = [dataclasses.asdict(r) for r in results]
    with open(path, "w", encoding="utf-8", newline="") as handle:
        if path.lower().endswith(".json"):
            json.dump(records, handle, indent=1)
        else:
            writer = csv.DictWriter(handle, fieldnames=list(records[0]))
            writer.writeheader()
            writer.writerows({**r, "segment_scores": " ".join(
                f"{v:.6g}" for v in r["segment_scores"])} for r in records)


def write_asvspoof_scores(results: list[FileScore], path: str) -> None:
    """The scored files as an ASVspoof score file 'utt_id - key score': the id is the path
    without its extension, the key from a real/fake folder in it ('-' if none)."""
    scored = [r for r in results if not r.error]
    write_score_file(path, [os.path.splitext(r.path)[0] for r in scored], ["-"] * len(scored),
                     [key_from_layout(r.path) == "spoof" for r in scored],
                     [r.score for r in scored])


def key_from_layout(path: str) -> str:
    """bonafide/spoof from a real|fake (or bonafide|spoof) folder in the path, else '-'."""
    parts = os.path.normpath(path).split(os.sep)
    for part in reversed(parts[:-1]):
        if part in ("real", "bonafide"):
            return "bonafide"
        if part in ("fake", "spoof"):
            return "spoof"
    return "-"
