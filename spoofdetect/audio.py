"""Decoding audio files to 16 kHz mono float32, and cutting them into fixed-length segments.

Which decoder reads which format is decided here, once, for the Beam job and the scoring CLI:

* tensorflow-io's in-graph decoders read 8/16-bit PCM and 32-bit float WAV, 16-bit FLAC and
  Ogg Vorbis exactly as libsndfile does (tests/test_audio.py checks sample equality), so those
  formats take the tensorflow-io path: the exported model can decode them in its graph the
  same way.
* tensorflow-io fails on 24-bit WAV whose data size is odd ("EOF reached"), misreads 32-bit
  integer PCM WAV (it treats it as float) and rejects 64-bit float WAV; these and every other
  format go through soundfile (libsndfile).
* Resampling always uses soxr's HQ resampler (librosa's default too): tensorflow-io's
  resampler leaves errors of -34 dB on a 1 kHz tone and -17 dB at 7 kHz (soxr: below -130 dB
  and -65 dB), and is about 100 times slower.
"""

from __future__ import annotations

import dataclasses
import io
import os
import re

import numpy as np
import soundfile
import soxr

from spoofdetect.config import FeatureConfig

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg")
TFIO = "tensorflow-io"
SOUNDFILE = "soundfile"

# (container, subtype) -> scale that maps tensorflow-io's integer samples to [-1, 1).
_TFIO_FORMATS: dict[tuple[str, str], float] = {
    ("WAV", "PCM_U8"): 128.0,
    ("WAV", "PCM_16"): 32768.0,
    ("WAV", "FLOAT"): 1.0,
    ("FLAC", "PCM_16"): 32768.0,
    ("OGG", "VORBIS"): 1.0,
}


class AudioRejected(Exception):
    """The file cannot be used as an example; the message is the reason shown to the user."""


@dataclasses.dataclass(frozen=True)
class DecodedAudio:
    samples: np.ndarray  # float32, mono, at the target sample rate
    original_sample_rate: int
    channels: int
    duration_seconds: float
    audio_format: str  # e.g. "WAV/PCM_16"
    decoder: str  # TFIO or SOUNDFILE


def decoder_for(container: str, subtype: str) -> str:
    """Which decoder reads a file of this container and subtype (as libsndfile names them)."""
    return TFIO if (container, subtype) in _TFIO_FORMATS else SOUNDFILE


def _decode_with_tfio(data: bytes, container: str, subtype: str) -> np.ndarray:
    import tensorflow as tf
    import tensorflow_io as tfio

    if container == "WAV":
        dtype = {"PCM_U8": tf.uint8, "PCM_16": tf.int16, "FLOAT": tf.float32}[subtype]
        decoded = tfio.audio.decode_wav(data, dtype=dtype).numpy()
    elif container == "FLAC":
        decoded = tfio.audio.decode_flac(data, dtype=tf.int16).numpy()
    else:
        decoded = tfio.audio.decode_vorbis(data).numpy()
    samples = decoded.astype(np.float32)
    if subtype == "PCM_U8":
        samples -= 128.0
    return samples / _TFIO_FORMATS[(container, subtype)]


# Input kept past `max_seconds` so that the resampler's filter sees the same neighbourhood as
# when resampling the whole file: with 0.1 s the output is bit-identical (tests/test_audio.py).
_RESAMPLER_MARGIN_SECONDS = 0.1


def decode_audio(data: bytes, target_sample_rate: int,
                 max_seconds: float | None = None) -> DecodedAudio:
    """Decodes an encoded audio file to mono float32 at `target_sample_rate`.

    With `max_seconds`, only that much audio is resampled and returned (the rest is still
    decoded and checked): segment_mode 'first' needs no more, and resampling is the costliest
    step of decoding.

    Raises AudioRejected, with a reason a user can read, for anything that is not usable audio.
    """
    if not data:
        raise AudioRejected("empty file (0 bytes)")
    try:
        info = soundfile.info(io.BytesIO(data))
    except Exception as error:  # libsndfile's errors carry no stable type
        raise AudioRejected(f"not a readable audio file ({_describe(error)})") from error
    if info.frames <= 0:
        raise AudioRejected("the file holds no audio samples")
    if info.samplerate <= 0 or info.channels <= 0:
        raise AudioRejected(
            f"invalid header: {info.samplerate} Hz, {info.channels} channel(s)")
    decoder = decoder_for(info.format, info.subtype)
    try:
        if decoder == TFIO:
            samples = _decode_with_tfio(data, info.format, info.subtype)
        else:
            samples, _ = soundfile.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except Exception as error:
        raise AudioRejected(f"decoding failed in {decoder} ({_describe(error)})") from error
    if samples.ndim == 1:
        samples = samples[:, None]
    if samples.shape[0] == 0:
        raise AudioRejected("the file holds no audio samples")
    if not np.isfinite(samples).all():
        raise AudioRejected("the audio contains NaN or infinite sample values")
    mono = samples.mean(axis=1, dtype=np.float32)
    if max_seconds is not None:
        mono = mono[: int((max_seconds + _RESAMPLER_MARGIN_SECONDS) * info.samplerate)]
    if info.samplerate != target_sample_rate:
        mono = soxr.resample(mono, info.samplerate, target_sample_rate, quality="HQ")
    if max_seconds is not None:
        mono = mono[: round(max_seconds * target_sample_rate)]
    return DecodedAudio(
        samples=np.ascontiguousarray(mono, dtype=np.float32),
        original_sample_rate=int(info.samplerate),
        channels=int(info.channels),
        duration_seconds=samples.shape[0] / info.samplerate,
        audio_format=f"{info.format}/{info.subtype}",
        decoder=decoder,
    )


def _describe(error: Exception) -> str:
    text = " ".join(str(error).split())
    # TensorFlow prefixes its messages with the op's wrapped function name; libsndfile names
    # the in-memory buffer it was given, which says nothing to the user.
    text = text.split("}} ")[-1]
    text = re.sub(r"Error opening <[^>]*>: ", "", text)
    return f"{type(error).__name__}: {text[:200]}"


def check_not_silent(samples: np.ndarray, silence_peak: float) -> None:
    peak = float(np.max(np.abs(samples))) if samples.size else 0.0
    if peak < silence_peak:
        raise AudioRejected(
            f"all-silent audio (peak {peak:.2e} is below features.silence_peak "
            f"{silence_peak:.0e})")


def segment_waveform(samples: np.ndarray, config: FeatureConfig) -> list[np.ndarray]:
    """Cuts a clip into `segment_seconds` windows; short clips and the last window are zero-padded.

    'first' keeps the first window only (the seed's behaviour); 'all' keeps consecutive windows,
    dropping a final partial window shorter than `min_last_segment_seconds` unless it is the
    only one.
    """
    length = config.segment_samples
    if config.segment_mode == "first":
        starts = [0]
    else:
        min_last = int(config.min_last_segment_seconds * config.sample_rate)
        starts = [start for start in range(0, max(len(samples), 1), length)
                  if start == 0 or len(samples) - start >= min_last]
    segments = []
    for start in starts:
        window = samples[start:start + length]
        if len(window) < length:
            window = np.pad(window, (0, length - len(window)))
        segments.append(window.astype(np.float32, copy=False))
    return segments


def check_file(name: str, size_bytes: int, config: FeatureConfig) -> None:
    """Rejects, before anything is read, a file whose type or size rules it out."""
    extension = os.path.splitext(name)[1].lower()
    if extension not in AUDIO_EXTENSIONS:
        raise AudioRejected(f"unsupported file type '{extension or '(none)'}': audio files "
                            f"must end in {', '.join(AUDIO_EXTENSIONS)}")
    if size_bytes > config.max_file_megabytes * 1e6:
        raise AudioRejected(
            f"file is {size_bytes / 1e6:.0f} MB, above features.max_file_megabytes "
            f"= {config.max_file_megabytes:g}; raise the limit to use it")


def audio_segments(data: bytes, config: FeatureConfig) -> tuple[DecodedAudio, list[np.ndarray]]:
    """Encoded file -> its decoded audio and its segments, as the Beam job and the scoring
    CLI both cut them (only the first segment is resampled in segment_mode 'first')."""
    first_only = config.segment_mode == "first"
    decoded = decode_audio(data, config.sample_rate,
                           config.segment_seconds if first_only else None)
    check_not_silent(decoded.samples, config.silence_peak)
    return decoded, segment_waveform(decoded.samples, config)
