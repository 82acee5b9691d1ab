"""The Beam job that turns a dataset of audio files into TFRecords of log-Mel examples.

Used as is by the TFX FeatureExtractor component and by `spoofdetect features`. Per file:
read (size-checked first) -> decode to 16 kHz mono -> reject unusable audio with a reason ->
cut into segments; then batches of segments go through the TensorFlow feature function and
become tf.Examples, written per split as uncompressed TFRecords under `Split-{split}/`, the
layout TFX's Examples artifact uses. Each chunk of files writes its counts and rejected files to a
small JSON file, which `read_summary` folds into the report. Only file paths are ever held in
one place: the audio streams through the workers.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import StandardOptions

from spoofdetect.audio import (
    AudioRejected,
    audio_segments,
    check_file,
    check_read_size,
    read_local_file,
    segment_waveform,
)
from spoofdetect.config import LABELS, SPLITS, FeatureConfig, is_uri
from spoofdetect.dataset import ClipSource, join, scan_dataset
from spoofdetect.errors import UserError

REPORT_FILE = "feature_report.json"
_SUMMARY_DIR = "_summary"
_TMP_DIR = "_tmp"


@dataclasses.dataclass(frozen=True)
class Segment:
    source: ClipSource
    index: int
    samples: np.ndarray
    original_sample_rate: int
    duration_seconds: float
    augmentation: str = ""  # the transform of an augmented copy; '' for the clip itself
    # 0: the clip itself; 1..features.augment: its augmented copies; the next
    # features.vocoded: its vocoded copies (bona fide clips only)
    copy: int = 0

    @property
    def clip_id(self) -> str:
        """The source's clip id; a copy's is the clip's with '~copy' (unique per example)."""
        return f"{self.source.clip_id}~{self.copy}" if self.copy else self.source.clip_id


def split_folder(output_dir: str, split: str) -> str:
    return FileSystems.join(output_dir, f"Split-{split}")


def training_copies(source: ClipSource, config: FeatureConfig) -> tuple[int, int]:
    """(augmented, vocoded) copies the feature job makes of `source`: training clips only,
    vocoded copies of bona fide ones only."""
    if source.split != "train":
        return 0, 0
    return config.augment, config.vocoded if source.label == "real" else 0


def chunked(sources: list[ClipSource], size: int) -> list[list[ClipSource]]:
    return [sources[start:start + size] for start in range(0, len(sources), size)]


def single_threaded_tensorflow(tf: Any) -> None:
    """One thread for TensorFlow's ops in this process, if its runtime has not started yet
    (once started, its pools stay as they are)."""
    try:
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        pass


class ExtractChunk(beam.DoFn):
    """A numbered chunk of files -> `Split-<split>/data_tfrecord-<chunk>` for each split it
    holds, and its counts and rejected files -> `_summary/chunk-<chunk>.json`.

    Files travel in chunks so that the feature function sees whole batches and Beam's
    per-element cost is paid once per chunk, not once per step per file. Each chunk writes its
    own files, named by its number, through a temporary name and a rename: whatever order the
    runner schedules chunks in, and however often it retries one, the output holds the same
    records in the same files, so training reads the same data order on every run.
    """

    def __init__(self, data_root: str, config: FeatureConfig, output_dir: str,
                 progress_path: str | None, owns_process: bool = False):
        self._data_root = data_root
        # The runner's parallelism is a worker per core (processes, or threads that release the
        # GIL inside TensorFlow); a pool of a thread per core in each worker over-subscribed
        # the cores (docs/performance.md). So a worker process the runner started runs
        # TensorFlow on one thread, and so does the caller's own process when nothing else
        # runs in it (`owns_process`: the features command); not a pipeline's process, whose
        # training steps come later.
        self._caller_pid = None if owns_process else os.getpid()
        self._config = config
        self._progress_path = progress_path
        self._output_dir = output_dir
        self._function = None
        self._fused_functions: dict = {}
        self._make_example = None
        self._tf = None

    def setup(self) -> None:
        # TensorFlow is imported here, in the workers, not when the driver builds the job.
        import tensorflow as tf

        if os.getpid() != self._caller_pid:
            single_threaded_tensorflow(tf)

        from spoofdetect.examples import make_example
        from spoofdetect.features import feature_function

        self._function = feature_function(self._config)
        self._fused_functions = {map_key: feature_function(features)
                                 for map_key, features in self._config.fused_maps.items()}
        self._make_example = make_example
        self._tf = tf

    def process(self, numbered_chunk: tuple[int, list[ClipSource]]) -> Iterator[int]:
        number, chunk = numbered_chunk
        segments: list[Segment] = []
        rejected = []
        for source in chunk:
            try:
                segments.extend(self._segments(source))
            except AudioRejected as rejection:
                rejected.append({"path": source.relative_path, "split": source.split,
                                 "label": source.label, "reason": str(rejection)})
        counts: dict[str, dict[str, int]] = {}
        records: dict[str, list[bytes]] = {}
        for batch in chunked(segments, self._config.batch_size):
            waveforms = np.stack([segment.samples for segment in batch])
            features = self._function(waveforms).numpy()
            fused_maps = {map_key: function(waveforms).numpy()
                          for map_key, function in self._fused_functions.items()}
            for index, (segment, log_mel) in enumerate(zip(batch, features, strict=True)):
                source = segment.source
                key = counts.setdefault(f"{source.split}/{source.label}",
                                        {"clips": 0, "examples": 0})
                key["examples"] += 1
                key["clips"] += int(segment.index == 0 and not segment.copy)
                records.setdefault(source.split, []).append(self._make_example(
                    log_mel, source.label_id, source.relative_path, segment.clip_id,
                    segment.index, segment.original_sample_rate, segment.duration_seconds,
                    source.attack, source.speaker, segment.augmentation,
                    {map_key: maps[index] for map_key, maps in fused_maps.items()}))
        for split, serialized in records.items():
            self._write_records(split, number, serialized)
        self._write(FileSystems.join(self._output_dir, _SUMMARY_DIR,
                                     f"chunk-{number:07d}.json"),
                    json.dumps({"counts": counts, "rejected": rejected}).encode())
        if self._progress_path:
            # One byte per file: the driver polls the file's size to show progress.
            with open(self._progress_path, "ab") as progress:
                progress.write(b"." * len(chunk))
        yield len(chunk)

    def _write_records(self, split: str, number: int, serialized: list[bytes]) -> None:
        tf = self._tf
        final = FileSystems.join(split_folder(self._output_dir, split),
                                 f"data_tfrecord-{number:07d}")
        # Written under _tmp/ (not matched by Split-*/ readers), then renamed into place.
        temporary = FileSystems.join(self._output_dir, _TMP_DIR,
                                     f"{split}-{number:07d}-{uuid.uuid4().hex}")
        tf.io.gfile.makedirs(FileSystems.join(self._output_dir, _TMP_DIR))
        tf.io.gfile.makedirs(split_folder(self._output_dir, split))
        # Uncompressed: gzip cost more time per example than the features themselves. It does
        # save disk (2.9x on speech features, docs/features.md); TFX's readers go by the name.
        with tf.io.TFRecordWriter(temporary) as writer:
            for record in serialized:
                writer.write(record)
        tf.io.gfile.rename(temporary, final, overwrite=True)

    @staticmethod
    def _write(path: str, data: bytes) -> None:
        with FileSystems.create(path) as handle:
            handle.write(data)

    def _segments(self, source: ClipSource) -> list[Segment]:
        config = self._config
        check_file(source.relative_path, source.size_bytes, config)
        path = join(self._data_root, source.relative_path)
        max_bytes = int(config.max_file_megabytes * 1e6)
        if not is_uri(self._data_root):
            data = read_local_file(path, max_bytes, root=self._data_root)
        else:
            try:
                with FileSystems.open(path, compression_type="uncompressed") as handle:
                    data = handle.read(max_bytes + 1)
            except OSError as error:
                raise AudioRejected(f"cannot read the file ({error})") from error
            check_read_size(data, max_bytes)
        decoded, windows = audio_segments(data, config)
        segments = [Segment(source, index, samples, decoded.original_sample_rate,
                            decoded.duration_seconds) for index, samples in enumerate(windows)]
        augmented, vocoded = training_copies(source, config)
        if not augmented + vocoded:
            return segments
        # SciPy (0.5 s to import) and WORLD only where training copies are made.
        from spoofdetect.augment import augment, copy_rng, vocoded_copy

        def copy_segments(copy_source: ClipSource, samples: np.ndarray, augmentation: str,
                          copy: int) -> list[Segment]:
            return [Segment(copy_source, index, window, decoded.original_sample_rate,
                            decoded.duration_seconds, augmentation, copy)
                    for index, window in enumerate(segment_waveform(samples, config))]

        for copy in range(1, augmented + 1):
            name, samples = augment(decoded.samples, config.sample_rate,
                                    config.augment_families,
                                    copy_rng(source.relative_path, copy, config.augment_seed))
            segments += copy_segments(source, samples, name, copy)
        for copy in range(augmented + 1, augmented + vocoded + 1):
            vocoder, name, samples = vocoded_copy(
                decoded.samples, config.sample_rate, config.vocoders, config.augment_families,
                config.augment, copy_rng(source.relative_path, copy, config.augment_seed))
            if samples is None:
                raise AudioRejected(f"the vocoder {vocoder} left no signal of the clip")
            fake = dataclasses.replace(source, label="fake", attack=f"vocoded-{vocoder}")
            segments += copy_segments(fake, samples, name, copy)
        return segments


def build_extraction(pipeline: beam.Pipeline, sources: list[ClipSource], data_root: str,
                     output_dir: str, config: FeatureConfig,
                     progress_path: str | None = None, owns_process: bool = False) -> None:
    """Adds the extraction transforms to `pipeline`; running the pipeline writes the output.
    `owns_process`: nothing runs in this process after the job (ExtractChunk)."""
    _ = (
        pipeline
        | "ListFiles" >> beam.Create(list(enumerate(chunked(sources, config.batch_size))))
        # Spread chunks over workers: Create alone can leave them all on one.
        | "Spread" >> beam.Reshuffle()
        | "Extract" >> beam.ParDo(ExtractChunk(data_root, config, output_dir, progress_path,
                                                    owns_process)))


@dataclasses.dataclass
class ExtractionSummary:
    data_root: str
    num_files: int
    counts: dict[str, dict[str, dict[str, int]]]  # split -> label -> {clips, examples}
    rejected: list[dict[str, str]]
    seconds: float = 0.0

    @property
    def num_rejected(self) -> int:
        return len(self.rejected)

    @property
    def num_clips(self) -> int:
        return sum(c["clips"] for split in self.counts.values() for c in split.values())

    @property
    def num_examples(self) -> int:
        return sum(c["examples"] for split in self.counts.values() for c in split.values())

    def to_json(self) -> dict[str, Any]:
        return {"data_root": self.data_root, "num_files": self.num_files,
                "num_clips": self.num_clips, "num_examples": self.num_examples,
                "num_rejected": self.num_rejected, "seconds": round(self.seconds, 3),
                "counts": self.counts, "rejected": self.rejected}

    def format(self) -> str:
        """A people-readable table: clips and examples per split and label, then the
        rejected files with their reasons."""
        lines = [f"{'split':<6} {'label':<5} {'clips':>7} {'examples':>9}"]
        for split, labels in self.counts.items():
            for label, counts in labels.items():
                lines.append(f"{split:<6} {label:<5} {counts['clips']:>7} "
                             f"{counts['examples']:>9}")
        rate = self.num_files / self.seconds if self.seconds else 0.0
        lines.append(f"{self.num_files} files -> {self.num_clips} clips, "
                     f"{self.num_examples} examples; {self.num_rejected} rejected; "
                     f"{self.seconds:.1f} s ({rate:.1f} files/s)")
        lines += [f"  rejected {rejected['path']}: {rejected['reason']}"
                  for rejected in self.rejected]
        return "\n".join(lines)

    def missing_classes(self) -> list[str]:
        return [f"{split}/{label}" for split in SPLITS for label in LABELS
                if self.counts[split][label]["clips"] == 0]


def read_summary(output_dir: str, data_root: str, num_files: int,
                 seconds: float) -> ExtractionSummary:
    """Folds the per-chunk summaries into one, writes the JSON report, removes the pieces."""
    summary_dir = FileSystems.join(output_dir, _SUMMARY_DIR)
    counts = {split: {label: {"clips": 0, "examples": 0} for label in LABELS}
              for split in SPLITS}
    rejected = []
    pieces = FileSystems.match([FileSystems.join(summary_dir, "chunk-*.json")])[0]
    for metadata in pieces.metadata_list:
        with FileSystems.open(metadata.path, compression_type="uncompressed") as handle:
            piece = json.loads(handle.read())
        for key, piece_counts in piece["counts"].items():
            split, label = key.split("/")
            for name, value in piece_counts.items():
                counts[split][label][name] += value
        rejected.extend(piece["rejected"])
    rejected.sort(key=lambda entry: entry["path"])
    summary = ExtractionSummary(data_root, num_files, counts, rejected, seconds)
    with FileSystems.create(FileSystems.join(output_dir, REPORT_FILE)) as handle:
        handle.write(json.dumps(summary.to_json(), indent=2).encode())
    FileSystems.delete([summary_dir])
    tmp_dir = FileSystems.join(output_dir, _TMP_DIR)
    if FileSystems.exists(tmp_dir):
        FileSystems.delete([tmp_dir])
    return summary


class ProgressPrinter:
    """Prints files done / total while the job runs, from the byte count of the progress file.

    Works where the workers share the driver's disk (the DirectRunner); elsewhere the runner's
    own monitoring (Dataflow's console, Flink's UI) shows progress.
    """

    def __init__(self, path: str, total: int, stream: Any = sys.stderr, interval: float = 1.0):
        self._path, self._total, self._stream, self._interval = path, total, stream, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._start = time.monotonic()

    def __enter__(self) -> ProgressPrinter:
        open(self._path, "wb").close()
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
        self._print()
        self._stream.write("\n")
        os.remove(self._path)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._print()

    def _print(self) -> None:
        done = os.path.getsize(self._path) if os.path.exists(self._path) else 0
        elapsed = time.monotonic() - self._start
        rate = done / elapsed if elapsed > 0 else 0.0
        self._stream.write(f"\r[features] {done}/{self._total} files "
                           f"({rate:.0f} files/s, {elapsed:.0f} s)")
        self._stream.flush()


def map_bytes(config: FeatureConfig) -> int:
    """The bytes of one example's feature maps as stored (float32, raw): the bulk of it (the
    rest, ids and the path, is a few hundred bytes)."""
    maps = [config, *config.fused_maps.values()]
    return sum(4 * features.num_rows * features.num_frames for features in maps)


def check_free_space(output_dir: str, sources: list[ClipSource], config: FeatureConfig) -> None:
    """Refuses to start a job whose Examples cannot fit on a local output's file system, so a
    full disk does not end an hour-long job in its last chunks. Counts one segment a clip,
    each training clip's augmented and vocoded copies included: with segment_mode 'all' the
    real need is larger, so this is a lower bound. Object stores (gs://, s3://) are not checked."""
    if is_uri(output_dir):
        return
    existing = os.path.abspath(output_dir)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    examples = sum(1 + sum(training_copies(source, config)) for source in sources)
    example_bytes = map_bytes(config)
    needed = examples * example_bytes
    free = shutil.disk_usage(existing).free
    if needed > free:
        raise UserError(
            f"The Examples need at least {needed / 1e9:.1f} GB ({examples} examples of "
            f"{example_bytes / 1e3:.0f} KB) under {output_dir}, and its file system has "
            f"{free / 1e9:.1f} GB free. Free some space, move the pipeline root to a larger "
            "disk, or make the examples fewer or smaller (features.augment, "
            "features.fusion.enabled, features.lfcc_gmm, the front end's size).")


def _runs_locally(pipeline: beam.Pipeline) -> bool:
    runner = pipeline.options.view_as(StandardOptions).runner
    return runner in (None, "DirectRunner", "direct")


def run_extraction(pipeline: beam.Pipeline, data_root: str, output_dir: str,
                   config: FeatureConfig, show_progress: bool = True,
                   owns_process: bool = False) -> ExtractionSummary:
    """Scans the dataset, runs the Beam job on `pipeline`, returns (and reports) the summary.
    `owns_process`: nothing runs in this process after the job (ExtractChunk).

    Raises UserError for a dataset that cannot be used; unusable files are only reported.
    """
    sources = scan_dataset(data_root, config)
    check_free_space(output_dir, sources, config)
    start = time.monotonic()
    with tempfile.TemporaryDirectory() as scratch:
        progress_path = (os.path.join(scratch, "progress")
                         if show_progress and _runs_locally(pipeline) else None)
        with ProgressPrinter(progress_path, len(sources)) if progress_path else (
                contextlib.nullcontext()):
            with pipeline:
                build_extraction(pipeline, sources, data_root, output_dir, config,
                                 progress_path, owns_process)
    summary = read_summary(output_dir, data_root, len(sources), time.monotonic() - start)
    missing = summary.missing_classes()
    if missing:
        raise UserError(
            f"After rejecting unusable files, no usable clips are left in {', '.join(missing)} "
            f"of {data_root}; see {FileSystems.join(output_dir, REPORT_FILE)} for the reasons. "
            "Every split needs usable clips of both classes.")
    return summary
