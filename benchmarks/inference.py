"""Inference speed on CPU: the exported SavedModel from raw audio, against the seed's path
(librosa features in Python, then Keras `predict`; librosa's log-Mel of each of the default
map's windows) and against the bare network on precomputed spectrograms, for the same clips
and the same network: the default's first system, whose head reads block 1 of the critic.

Prints latency p50/p99 for one 4 s clip and throughput at batch 64 for each path, and the
ratios. Then the default's whole model, the first system fused with the second
(features.fusion: a head on a random critic over the 10 ms group-delay map), from raw audio,
as a ratio to the first system's SavedModel. Targets (the first system's): SavedModel p50
<= 10 ms at batch 1; at batch 64, >= 1.5x the seed path's throughput and >= 80 % of the bare
network's.

Then the memory one `from_audio_bytes` request adds to the serving process (peak resident
memory, reset before each request), for WAV files of several rates, lengths and channel
counts, as a ratio to the request's own size: the signature reads only the scored window,
so the figure must not grow with the file's length or the rate its header declares.

    python benchmarks/inference.py [--batches 6] [--repeats 100]
"""

from __future__ import annotations

import argparse
import io
import os
import tempfile
import time
from collections.abc import Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import soundfile
import tensorflow as tf
from seed_features import seed_log_mel

from spoofdetect import examples
from spoofdetect.config import ClassifierConfig, FeatureConfig, GanConfig
from spoofdetect.export import ScoredSystem, export_fused_model, export_serving_model
from spoofdetect.features import spectral_features
from spoofdetect.finetune import classifier_with_read_out
from spoofdetect.models import build_critic

BATCH = 64


def speech_like_clips(count: int, samples: int = 64000) -> np.ndarray:
    rng = np.random.default_rng(0)
    t = np.arange(samples) / 16000
    clips = [0.3 * np.sin(2 * np.pi * rng.uniform(90, 250) * t
                          * (1 + 0.02 * np.sin(2 * np.pi * 3 * t)))
             * (1 + 0.5 * np.sin(2 * np.pi * rng.uniform(2, 6) * t))
             + 0.02 * rng.standard_normal(samples) for _ in range(count)]
    return np.asarray(clips, np.float32)


# A path scores clips [start, stop) of the shared clip set.
Path = Callable[[int, int], object]


def latencies_ms(run: Path, count: int, repeats: int) -> np.ndarray:
    run(0, 1)
    times = []
    for index in range(repeats):
        start = time.perf_counter()
        run(index % count, index % count + 1)
        times.append((time.perf_counter() - start) * 1000)
    return np.asarray(times)


def throughput(run: Path, count: int) -> float:
    run(0, BATCH)
    start = time.perf_counter()
    for offset in range(0, count, BATCH):
        run(offset, offset + BATCH)
    return count / (time.perf_counter() - start)


def _memory_kb(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as handle:
        return next(int(line.split()[1]) for line in handle if line.startswith(field))


def peak_added_mb(run: Callable[[], object]) -> float:
    """Peak resident memory that `run()` adds (Linux: VmHWM reset through clear_refs)."""
    with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
        handle.write("5")
    before = _memory_kb("VmRSS:")
    run()
    return (_memory_kb("VmHWM:") - before) / 1024


def wav_bytes(seconds: float, rate: int, channels: int) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    mono = (0.3 * np.sin(2 * np.pi * 200 * t)).astype(np.float32)
    buffer = io.BytesIO()
    soundfile.write(buffer, np.stack([mono] * channels, axis=1), rate, format="WAV",
                    subtype="PCM_16")
    return buffer.getvalue()


# (seconds, rate, channels, items per request): from a phone clip to long studio files.
MEMORY_REQUESTS = ((4, 16000, 1, 1), (10, 44100, 2, 1), (10, 96000, 1, 1), (10, 96000, 1, 3),
                   (60, 48000, 2, 1), (30, 192000, 8, 1))


def memory_per_request(from_bytes: Callable[..., dict]) -> None:
    from_bytes(audio=tf.constant([wav_bytes(1, 44100, 1)]))  # the first call's set-up
    print("from_audio_bytes: peak memory added per request")
    for seconds, rate, channels, items in MEMORY_REQUESTS:
        request = [wav_bytes(seconds, rate, channels)] * items
        size_mb = sum(len(item) for item in request) / 1e6
        batch = tf.constant(request)
        added = max(peak_added_mb(lambda: from_bytes(audio=batch)["score"].numpy())  # noqa: B023
                    for _ in range(2))
        print(f"  {items} x {seconds:>2} s, {rate / 1000:g} kHz, {channels} ch: request "
              f"{size_mb:6.1f} MB, added {added:6.1f} MB ({added / size_mb:.2f}x the request)")


def fused_default(features: FeatureConfig, head: ClassifierConfig, classifier: tf.keras.Model,
                  clips: np.ndarray, folder: str) -> tuple[float, float, float]:
    """(p50 ms, p99 ms, batch throughput) of the default's fused SavedModel from raw audio:
    `classifier` and a second one over the fusion map, fitted to these clips' maps alike."""
    second_features = features.fusion_features
    maps = np.concatenate([spectral_features(tf.constant(clips[i:i + BATCH]), second_features)
                           .numpy() for i in range(0, len(clips), BATCH)])
    second = classifier_with_read_out(
        build_critic(second_features, GanConfig()), head,
        tf.data.Dataset.from_tensor_slices({examples.LOG_MEL: maps}).batch(BATCH))
    path = os.path.join(folder, "fused")
    export_fused_model([ScoredSystem(classifier, features),
                        ScoredSystem(second, second_features, examples.FUSION_FEATURES)],
                       path, max_seconds=600.0)
    score = tf.saved_model.load(path).signatures["serving_default"]

    def fused(start: int, stop: int) -> object:
        return score(waveforms=tf.constant(clips[start:stop]))["score"].numpy()

    latency = latencies_ms(fused, len(clips), 20)
    return np.percentile(latency, 50), np.percentile(latency, 99), throughput(fused, len(clips))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batches", type=int, default=6, help="batches of 64 timed")
    parser.add_argument("--repeats", type=int, default=100, help="single-clip calls timed")
    args = parser.parse_args()
    features, head = FeatureConfig(), ClassifierConfig()
    clips = speech_like_clips(args.batches * BATCH)

    def seed_style_map(clip: np.ndarray) -> np.ndarray:
        # The default map the seed's way: librosa's log-Mel of each window, each standardised.
        return np.concatenate([seed_log_mel(clip, window) for window in features.windows])

    spectrograms = np.stack([seed_style_map(clip) for clip in clips]).astype(np.float32)
    # The default classifier: its head reads what the default's does (block 1's statistics,
    # so the rest of the critic is not in the exported graph), fitted to these clips.
    classifier = classifier_with_read_out(
        build_critic(features, GanConfig()), head,
        tf.data.Dataset.from_tensor_slices({examples.LOG_MEL: spectrograms}).batch(BATCH))
    with tempfile.TemporaryDirectory() as folder:
        export_serving_model(classifier, features, folder, max_seconds=600.0)
        loaded = tf.saved_model.load(folder)
        from_waveforms = loaded.signatures["serving_default"]
        from_features = loaded.signatures["from_features"]
        from_bytes = loaded.signatures["from_audio_bytes"]

        def saved_model(start: int, stop: int) -> object:
            return from_waveforms(waveforms=tf.constant(clips[start:stop]))["score"].numpy()

        def seed_path(start: int, stop: int) -> object:
            inputs = np.stack([seed_style_map(clip) for clip in clips[start:stop]])
            return classifier.predict(inputs, batch_size=BATCH, verbose=0)

        def bare_network(start: int, stop: int) -> object:
            # The same clips' spectrograms, computed beforehand.
            return from_features(log_mel=tf.constant(spectrograms[start:stop]))["score"].numpy()

        print(f"CPU ({os.cpu_count()} cores); default network; 4 s clips at 16 kHz; "
              f"{args.repeats} single-clip calls, {len(clips)} clips in batches of {BATCH}")
        rows = {}
        for name, run in (("SavedModel from raw audio", saved_model),
                          ("seed: librosa + Keras predict", seed_path),
                          ("bare network on spectrograms", bare_network)):
            latency = latencies_ms(run, len(clips), args.repeats)
            rate = throughput(run, len(clips))
            rows[name] = (np.percentile(latency, 50), np.percentile(latency, 99), rate)
            print(f"  {name:<31} p50 {rows[name][0]:7.2f} ms  p99 {rows[name][1]:7.2f} ms  "
                  f"batch {BATCH}: {rate:7.1f} clips/s")
        memory_per_request(from_bytes)
        fused = fused_default(features, head, classifier, clips, folder)
    ours, seed, bare = rows.values()
    print(f"SavedModel p50 at batch 1: {ours[0]:.2f} ms (target <= 10 ms)")
    print(f"batch {BATCH} throughput, SavedModel / seed path: {ours[2] / seed[2]:.2f}x "
          f"(target >= 1.5x)")
    print(f"batch {BATCH} throughput, SavedModel / bare network: {100 * ours[2] / bare[2]:.0f} % "
          f"(target >= 80 %)")
    print(f"the default's fused model from raw audio: p50 {fused[0]:.2f} ms, batch {BATCH}: "
          f"{fused[2]:.1f} clips/s ({fused[2] / ours[2]:.2f}x the first system's)")


if __name__ == "__main__":
    main()
