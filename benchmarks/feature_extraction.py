"""Feature extraction throughput: the seed's per-file librosa loop vs this project's Beam job.

Generates one set of WAV files (16, 22.05 and 44.1 kHz, 3 to 6 s, laid out as a dataset), then
in the same run times, end to end as separate processes:
  (a) the seed loop: librosa.load (resampling to 16 kHz), first 4 s, peak normalisation,
      melspectrogram, power_to_db, standardisation, one file after another;
  (b) `spoofdetect features` (the Beam job, DirectRunner on every core) writing TFRecords.
Prints clips/s of each, the ratio (b)/(a), and the peak memory of each process tree; (b) runs
with the default Beam options (multi-processing, every core) and again multi-threaded. A
quarter of the files again gives the rate beyond fixed start-up costs, which is set against the
log-Mel's FLOP limit (its operations per clip at the speed of a large float32 matmul on every
core). Then, in one process on the same files, the CPU cost per clip of each step, to show
where time goes.

    python benchmarks/feature_extraction.py [--files 2400] [--keep DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator

import numpy as np
import psutil
import soundfile
from seed_features import seed_log_mel

SAMPLE_RATES = (16000, 22050, 44100)
SPLIT_SHARES = (("train", 0.8), ("dev", 0.1), ("eval", 0.1))
# Step names of the CPU cost table.
FIRST_MAP = "log-Mel (TF, batched)"
# The default's fused systems' maps, costed apart (FeatureConfig.fused_maps' keys).
FUSED_MAP = "fused map: {}"


def make_files(root: str, count: int) -> None:
    rng = np.random.default_rng(0)
    index = 0
    for split, share in SPLIT_SHARES:
        for label in ("real", "fake"):
            folder = os.path.join(root, split, label)
            os.makedirs(folder, exist_ok=True)
            for _ in range(max(1, int(count * share / 2))):
                sample_rate = int(rng.choice(SAMPLE_RATES))
                n = int(rng.uniform(3.0, 6.0) * sample_rate)
                t = np.arange(n) / sample_rate
                signal = np.sin(2 * np.pi * rng.uniform(80, 300) * t * (1 + 0.01 * np.sin(t)))
                signal += 0.05 * rng.standard_normal(n)
                soundfile.write(os.path.join(folder, f"{index:05d}.wav"),
                                (0.3 * signal).astype(np.float32), sample_rate,
                                subtype="PCM_16")
                index += 1


def seed_loop(root: str) -> int:
    """The seed's feature loop, as it was: one file at a time through librosa."""
    import librosa

    count = 0
    for folder, _, names in sorted(os.walk(root)):
        for name in sorted(names):
            y, _ = librosa.load(os.path.join(folder, name), sr=16000)
            seed_log_mel(y)
            count += 1
    return count


def stage_costs(root: str, limit: int = 300) -> dict[str, float]:
    """CPU milliseconds per clip of each step of the job (every thread of one process), on
    `limit` files, with TensorFlow on one thread as in the job's workers."""
    import tensorflow as tf

    from spoofdetect.audio import decode_audio, segment_waveform
    from spoofdetect.config import FeatureConfig
    from spoofdetect.examples import make_example
    from spoofdetect.extraction import single_threaded_tensorflow
    from spoofdetect.features import feature_function

    single_threaded_tensorflow(tf)

    config = FeatureConfig()
    paths = sorted(os.path.join(folder, name) for folder, _, names in os.walk(root)
                   for name in names)[:limit]
    blobs = []
    for path in paths:
        with open(path, "rb") as handle:
            blobs.append(handle.read())
    function = feature_function(config)
    function(np.zeros((config.batch_size, config.segment_samples), np.float32))
    decode_audio(blobs[0], config.sample_rate)  # loads libsndfile and soxr before timing
    costs: dict[str, float] = {}

    @contextlib.contextmanager
    def cpu_time(step: str) -> Iterator[None]:
        start = time.process_time()
        yield
        costs[step] = time.process_time() - start

    with cpu_time("decode + resample"):
        decoded = [decode_audio(blob, config.sample_rate, config.segment_seconds)
                   for blob in blobs]
    segments = np.stack([segment_waveform(d.samples, config)[0] for d in decoded])
    with cpu_time(FIRST_MAP):
        features = np.concatenate([function(segments[i:i + config.batch_size]).numpy()
                                   for i in range(0, len(segments), config.batch_size)])
    with cpu_time("tf.Example serialisation"):
        serialized = [make_example(f, 0, "a/b.wav", "a_b", 0, 16000, 4.0) for f in features]
    with cpu_time("TFRecord writing (uncompressed)"), tempfile.TemporaryDirectory() as folder:
        with tf.io.TFRecordWriter(os.path.join(folder, "data_tfrecord-0000000")) as writer:
            for record in serialized:
                writer.write(record)
    # The default's fused systems' maps, which the benchmarked job, set to one system like the
    # seed loop, does not compute: their costs, apart.
    for map_key, fused in FeatureConfig().fused_maps.items():
        fused_function = feature_function(fused)
        fused_function(segments[:config.batch_size])
        with cpu_time(FUSED_MAP.format(map_key)):
            for i in range(0, len(segments), config.batch_size):
                fused_function(segments[i:i + config.batch_size]).numpy()
    return {name: seconds / len(paths) * 1000 for name, seconds in costs.items()}


def log_mel_flop_limit() -> tuple[float, float, float]:
    """(clips/s, floating-point operations per clip, measured FLOP/s): the most clips per
    second the default log-Mel (every window of the map) could reach on this machine if it ran
    at the speed of a large float32 matmul on every core (which runs near the CPU's peak)."""
    import tensorflow as tf

    from spoofdetect.config import FeatureConfig

    config = FeatureConfig()
    per_frame = 0.0
    for window in config.windows:  # each window's STFT and bands, at one hop
        bins = window // 2 + 1
        per_frame += (2.5 * window * np.log2(window)  # real FFT
                      + window  # window
                      + 3 * bins  # power
                      + 2 * bins * config.num_bands)  # filterbank (dense, as computed)
    per_clip = config.num_frames * per_frame
    size = 2048
    matrix = tf.random.normal([size, size])
    multiply = tf.function(lambda: tf.reduce_sum(tf.matmul(matrix, matrix)))
    multiply()
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(4):
            multiply().numpy()
        best = min(best, (time.perf_counter() - start) / 4)
    flops = 2 * size**3 / best
    return flops / per_clip, per_clip, flops


def timed(command: list[str]) -> tuple[float, float]:
    """Wall seconds and peak resident memory (MB) of a command's whole process tree."""
    seconds, samples = sampled(command)
    return seconds, max((rss for _, rss in samples), default=0.0)


def sampled(command: list[str]) -> tuple[float, list[tuple[float, float]]]:
    """Wall seconds of a command, and (epoch seconds, MB) samples of its whole process tree's
    resident memory every 0.1 s."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    samples: list[tuple[float, float]] = []
    done = threading.Event()

    def sample() -> None:
        parent = psutil.Process(process.pid)
        while not done.is_set():
            try:
                tree = [parent, *parent.children(recursive=True)]
                samples.append((time.time(), sum(p.memory_info().rss for p in tree) / 1e6))
            except psutil.Error:
                pass
            done.wait(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, stderr = process.communicate()
    done.set()
    sampler.join()
    if process.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{stderr.decode()[-2000:]}")
    return time.perf_counter() - start, samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=2400)
    parser.add_argument("--keep", help="write the files here and keep them")
    parser.add_argument("--seed-loop", help=argparse.SUPPRESS)  # internal: run (a) on DIR
    args = parser.parse_args()
    if args.seed_loop:
        seed_loop(args.seed_loop)
        return
    root = args.keep or tempfile.mkdtemp(prefix="bench_features_")
    try:
        make_files(root, args.files)
        count = sum(len(names) for _, _, names in os.walk(root))
        print(f"{count} files (16/22.05/44.1 kHz, 3-6 s) on {os.cpu_count()} cores")
        seed_seconds, seed_peak = timed([sys.executable, __file__, "--seed-loop", root])
        cli = os.path.join(os.path.dirname(sys.executable), "spoofdetect")

        def features_command(data_root: str) -> list[str]:
            # No augmented copies: the seed loop extracts each file once, and so must (b);
            # and one map: the seed loop computes one system's features.
            return [cli, "features", "--data-root", data_root, "--output", data_root + "_out",
                    "--set", "features.augment=0", "--set", "features.fusion.enabled=false",
                    "--set", "features.lfcc_gmm=false"]

        command = features_command(root)
        beam_seconds, beam_peak = timed(command)
        shutil.rmtree(root + "_out", ignore_errors=True)
        threads_seconds, threads_peak = timed([
            *command, "--beam-arg=--direct_running_mode=multi_threading",
            f"--beam-arg=--direct_num_workers={os.cpu_count()}"])
        seed_rate, beam_rate = count / seed_seconds, count / beam_seconds
        threads_rate = count / threads_seconds
        print(f"(a) seed librosa loop:          {seed_rate:7.1f} clips/s  ({seed_seconds:.1f} s,"
              f" peak {seed_peak:.0f} MB)")
        print(f"(b) Beam job, multi-processing: {beam_rate:7.1f} clips/s  ({beam_seconds:.1f} s,"
              f" peak {beam_peak:.0f} MB)")
        print(f"    Beam job, multi-threading:  {threads_rate:7.1f} clips/s  "
              f"({threads_seconds:.1f} s, peak {threads_peak:.0f} MB)")
        print(f"ratio (b)/(a): {beam_rate / seed_rate:.2f}x (multi-threading: "
              f"{threads_rate / seed_rate:.2f}x); target >= 3x")
        # The job's fixed cost (imports, worker start, sink finalisation) does not grow with
        # the dataset: a quarter of the files again gives the rate beyond it.
        quarter = root + "_quarter"
        make_files(quarter, args.files // 4)
        quarter_count = sum(len(names) for _, _, names in os.walk(quarter))
        seed_quarter, _ = timed([sys.executable, __file__, "--seed-loop", quarter])
        beam_quarter, _ = timed(features_command(quarter))
        shutil.rmtree(quarter, ignore_errors=True)
        shutil.rmtree(quarter + "_out", ignore_errors=True)
        extra = count - quarter_count
        if min(seed_seconds - seed_quarter, beam_seconds - beam_quarter) <= 0:
            sys.exit(f"a quarter of the files took as long as all of them (seed loop "
                     f"{seed_quarter:.1f} s against {seed_seconds:.1f} s, Beam "
                     f"{beam_quarter:.1f} s against {beam_seconds:.1f} s): the machine was "
                     "busy with something else; rerun on a quiet machine")
        seed_marginal = extra / (seed_seconds - seed_quarter)
        beam_marginal = extra / (beam_seconds - beam_quarter)
        print(f"beyond fixed start-up costs ({quarter_count} vs {count} files): seed "
              f"{seed_marginal:.1f} clips/s, Beam {beam_marginal:.1f} clips/s, ratio "
              f"{beam_marginal / seed_marginal:.2f}x; Beam's fixed cost "
              f"{beam_seconds - count / beam_marginal:.1f} s, the seed loop's "
              f"{seed_seconds - count / seed_marginal:.1f} s")
        limit, per_clip, flops = log_mel_flop_limit()
        print(f"steady state (Beam, beyond fixed costs) is {beam_marginal / limit:.1%} of the "
              f"log-Mel's FLOP limit: {limit:.0f} clips/s ({per_clip / 1e6:.1f} MFLOP per clip"
              f" at {flops / 1e9:.0f} GFLOP/s, a float32 matmul's speed on every core); "
              "target >= 1,000 clips/s")
        print("CPU cost per clip of each step (one process, ms of CPU time):")
        costs = stage_costs(root)
        fused_maps = {name: costs.pop(name) for name in list(costs)
                      if name.startswith(FUSED_MAP.format(""))}
        for name, milliseconds in costs.items():
            print(f"    {name:<26} {milliseconds:6.2f}")
        # With every core busy on these steps and nothing else, no job could go faster.
        cores = os.cpu_count() or 1
        cpu_bound = cores * 1000 / sum(costs.values())
        print(f"CPU bound of these steps on {cores} cores: {cpu_bound:.0f} clips/s; "
              f"Beam's steady state is {beam_marginal / cpu_bound:.0%} of it")
        for name, milliseconds in fused_maps.items():
            print(f"the default's {name} (not in the job above): "
                  f"{milliseconds:.2f} ms of CPU per clip, "
                  f"{milliseconds / costs[FIRST_MAP]:.2f}x the first map's")
        print(f"with the fused maps the bound is "
              f"{cores * 1000 / (sum(costs.values()) + sum(fused_maps.values())):.0f} clips/s")
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(root + "_out", ignore_errors=True)


if __name__ == "__main__":
    main()
