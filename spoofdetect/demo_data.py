"""A small synthetic dataset in the seed's layout, made with no download.

It is NOT speech: "real" clips are voice-like harmonic signals (a glottal pulse train with
natural jitter and shimmer, shaped by vowel formants, in syllables), and "fake" clips are the
same kind of signal passed through a vocoder-like process: a channel vocoder whose band
envelope is quantised in 3 dB steps and held for about 25 ms, resynthesised with smooth
phase-vocoder phase below 4 kHz and noise excitation above. Levels,
pitch ranges, durations and file formats are drawn from the same distributions for both
classes, so no loudness or pitch statistic gives the label away, but the spectrogram does.

Files: ROOT/{train,dev,eval}/{real,fake}/*.{wav,flac} at 16, 22.05, 32, 44.1 and 48 kHz, 1.5 to
6 s, mono and stereo, 16/24/32-bit PCM and float. ROOT/broken/ holds deliberately unusable
files laid out the same way, for the bad-input demo.
"""

from __future__ import annotations

import itertools
import os
import struct
from collections.abc import Iterator

import numpy as np
import scipy.signal
import soundfile

from spoofdetect.config import LABELS, SPLITS

DEFAULT_CLIPS_PER_CLASS = {"train": 80, "dev": 20, "eval": 20}
_SAMPLE_RATES = (16000, 22050, 32000, 44100, 48000)
# (format, subtype, weight): most datasets are 16-bit WAV; the rest exercise the decoders.
_FORMATS = (("WAV", "PCM_16", 0.55), ("WAV", "PCM_24", 0.15), ("WAV", "FLOAT", 0.1),
            ("WAV", "PCM_32", 0.1), ("FLAC", "PCM_16", 0.1))
# First three formants (Hz) of a few vowels.
_VOWELS = ((730, 1090, 2440), (270, 2290, 3010), (300, 870, 2240), (530, 1840, 2480),
           (570, 840, 2410), (660, 1720, 2410), (440, 1020, 2240))


def _glottal_source(rng: np.random.Generator, sample_rate: int, num_samples: int,
                    base_f0: float) -> np.ndarray:
    """Pulse train whose periods wander (intonation) and jitter; pulse heights shimmer."""
    t = np.arange(num_samples) / sample_rate
    contour = base_f0 * (1.0 + 0.08 * np.sin(2 * np.pi * rng.uniform(0.3, 1.0) * t
                                             + rng.uniform(0, 2 * np.pi))
                         + 0.03 * np.sin(2 * np.pi * rng.uniform(2.0, 4.0) * t))
    jitter, shimmer = rng.uniform(0.005, 0.02), rng.uniform(0.03, 0.1)
    source = np.zeros(num_samples)
    position = 0.0
    while position < num_samples:
        index = int(position)
        source[index] = 1.0 + shimmer * rng.standard_normal()
        position += sample_rate / contour[index] * (1.0 + jitter * rng.standard_normal())
    # A glottal flow derivative: a short asymmetric pulse, low-pass in character.
    pulse_length = max(int(0.004 * sample_rate), 4)
    shape = np.sin(np.linspace(0, np.pi, pulse_length)) ** 2 * np.linspace(1, -0.6, pulse_length)
    return np.convolve(source, shape)[:num_samples]


def _formant_filter(signal: np.ndarray, sample_rate: int,
                    formants: tuple[int, ...]) -> np.ndarray:
    for frequency, bandwidth in zip(formants, (80, 100, 140), strict=True):
        if frequency >= sample_rate / 2:
            continue
        radius = np.exp(-np.pi * bandwidth / sample_rate)
        theta = 2 * np.pi * frequency / sample_rate
        signal = scipy.signal.lfilter([1 - radius], [1, -2 * radius * np.cos(theta), radius**2],
                                      signal)
    return signal


def _voice_like(rng: np.random.Generator, sample_rate: int, seconds: float) -> np.ndarray:
    num_samples = int(seconds * sample_rate)
    out = np.zeros(num_samples)
    base_f0 = rng.uniform(90, 260)
    position = int(rng.uniform(0.02, 0.15) * sample_rate)
    while position < num_samples:
        length = int(rng.uniform(0.12, 0.35) * sample_rate)
        syllable = _glottal_source(rng, sample_rate, length, base_f0 * rng.uniform(0.9, 1.1))
        syllable += 0.02 * rng.standard_normal(length)  # aspiration
        syllable = _formant_filter(syllable, sample_rate, _VOWELS[rng.integers(len(_VOWELS))])
        envelope = np.sin(np.linspace(0, np.pi, length)) ** 0.7
        end = min(position + length, num_samples)
        out[position:end] += (syllable * envelope)[: end - position]
        position = end + int(rng.uniform(0.02, 0.12) * sample_rate)
    out /= np.max(np.abs(out)) + 1e-12
    out += 10 ** (rng.uniform(-60, -45) / 20) * rng.standard_normal(num_samples)
    return out


def _vocode(signal: np.ndarray, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Channel-vocoder resynthesis, with the artefacts of low-rate parametric vocoders.

    The band envelope is quantised in 3 dB steps and updated only every few frames (about
    25 ms), phases advance smoothly (phase vocoder) below 4 kHz and are random above it
    (noise excitation, as WORLD-style vocoders model aperiodicity).
    """
    n_fft = 1024 if sample_rate > 24000 else 512
    hop = n_fft // 4
    _, _, spectrum = scipy.signal.stft(signal, nperseg=n_fft, noverlap=n_fft - hop)
    magnitude = np.abs(spectrum) + 1e-9
    num_bins, num_frames = magnitude.shape
    hold = max(1, round(0.025 * sample_rate / hop))
    held_frames = (np.arange(num_frames) // hold) * hold
    edges = np.unique(np.geomspace(2, num_bins, 33).astype(int))
    shaped = magnitude.copy()
    for low, high in itertools.pairwise(edges):
        band = magnitude[low:high].mean(axis=0)
        step_db = 3.0
        target = 10 ** (np.round(20 * np.log10(band[held_frames]) / step_db) * step_db / 20)
        shaped[low:high] *= target / band
    advance = 2 * np.pi * hop * np.arange(num_bins) / n_fft
    phase = np.cumsum(np.repeat(advance[:, None], num_frames, axis=1), axis=1)
    noisy = np.arange(num_bins) * sample_rate / n_fft > 4000
    phase[noisy] = rng.uniform(0, 2 * np.pi, (int(noisy.sum()), num_frames))
    _, out = scipy.signal.istft(shaped * np.exp(1j * phase), nperseg=n_fft,
                                noverlap=n_fft - hop)
    out = out[: len(signal)]
    return np.pad(out, (0, len(signal) - len(out)))


def synthesise_clip(rng: np.random.Generator, fake: bool) -> tuple[np.ndarray, int]:
    sample_rate = int(rng.choice(_SAMPLE_RATES))
    clip = _voice_like(rng, sample_rate, rng.uniform(1.5, 6.0))
    if fake:
        clip = _vocode(clip, sample_rate, rng)
    clip = clip / (np.max(np.abs(clip)) + 1e-12) * 10 ** (rng.uniform(-24, -1) / 20)
    return clip.astype(np.float32), sample_rate


def write_float_wav(path: str, samples: np.ndarray, sample_rate: int) -> None:
    """32-bit float WAV without libsndfile's PEAK chunk, whose timestamp would make the demo
    data differ from run to run."""
    frames = np.asarray(samples, dtype="<f4")
    channels = 1 if frames.ndim == 1 else frames.shape[1]
    data = frames.tobytes()
    block_align = 4 * channels
    fmt = struct.pack("<HHIIHH", 3, channels, sample_rate, sample_rate * block_align,
                      block_align, 32)  # 3: WAVE_FORMAT_IEEE_FLOAT
    with open(path, "wb") as handle:
        handle.write(b"RIFF" + struct.pack("<I", 4 + 8 + len(fmt) + 8 + len(data)) + b"WAVE")
        handle.write(b"fmt " + struct.pack("<I", len(fmt)) + fmt)
        handle.write(b"data" + struct.pack("<I", len(data)) + data)


def _write_clip(path: str, clip: np.ndarray, sample_rate: int, container: str,
                subtype: str) -> None:
    if (container, subtype) == ("WAV", "FLOAT"):
        write_float_wav(path, clip, sample_rate)
    else:
        soundfile.write(path, clip, sample_rate, subtype=subtype, format=container)


def _choose_format(rng: np.random.Generator) -> tuple[str, str]:
    weights = np.array([weight for *_, weight in _FORMATS])
    container, subtype, _ = _FORMATS[rng.choice(len(_FORMATS), p=weights / weights.sum())]
    return container, subtype


def _clips(clips_per_class: dict[str, int]) -> Iterator[tuple[str, str, int]]:
    for split in SPLITS:
        for label in LABELS:
            for index in range(clips_per_class[split]):
                yield split, label, index


def make_demo_dataset(root: str, clips_per_class: dict[str, int] | None = None,
                      seed: int = 0) -> int:
    """Writes the dataset (deterministic for a seed) and the broken-file folder; returns clips."""
    clips_per_class = clips_per_class or DEFAULT_CLIPS_PER_CLASS
    count = 0
    for split, label, index in _clips(clips_per_class):
        rng = np.random.default_rng([seed, SPLITS.index(split), LABELS[label], index])
        clip, sample_rate = synthesise_clip(rng, fake=label == "fake")
        if rng.uniform() < 0.2:  # some stereo files, channels differing slightly
            clip = np.stack([clip, clip * rng.uniform(0.6, 1.0)], axis=1)
        container, subtype = _choose_format(rng)
        folder = os.path.join(root, split, label)
        os.makedirs(folder, exist_ok=True)
        extension = ".flac" if container == "FLAC" else ".wav"
        path = os.path.join(folder, f"{split}_{label}_{index:04d}{extension}")
        _write_clip(path, clip, sample_rate, container, subtype)
        count += 1
    write_broken_files(os.path.join(root, "broken"))
    return count


def write_broken_files(root: str) -> list[str]:
    """Unusable files in the dataset layout, one per kind of bad input the pipeline reports."""
    folder = os.path.join(root, "train", "real")
    os.makedirs(folder, exist_ok=True)
    for split in SPLITS:
        for label in LABELS:
            os.makedirs(os.path.join(root, split, label), exist_ok=True)
    t = np.arange(16000) / 16000
    tone = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    written = []

    def path(name: str) -> str:
        written.append(os.path.join(folder, name))
        return written[-1]

    open(path("empty.wav"), "wb").close()
    with open(path("text_named_as.wav"), "w", encoding="utf-8") as handle:
        handle.write("This is a text file, not audio.\n")
    with open(path("corrupt_header.wav"), "wb") as handle:
        handle.write(b"RIFF\xff\xff\xff\xffWAVEfmt " + bytes(range(256)) * 4)
    soundfile.write(path("zero_samples.wav"), np.zeros(0, np.float32), 16000, subtype="PCM_16")
    soundfile.write(path("all_silent.wav"), np.zeros(32000, np.float32), 16000, subtype="PCM_16")
    with_nan = tone.copy()
    with_nan[100:200] = np.nan
    write_float_wav(path("nan_samples.wav"), with_nan, 16000)
    with_inf = tone.copy()
    with_inf[50] = np.inf
    write_float_wav(path("inf_samples.wav"), with_inf, 16000)
    with open(path("notes.txt"), "w", encoding="utf-8") as handle:
        handle.write("Not an audio file extension.\n")
    return written
