"""Decoding audio files to 16 kHz mono float32, and cutting them into fixed-length segments.

One decoder for the Beam job and the scoring CLI: libsndfile (soundfile), for every format.
A bad file is an exception here, which becomes a named rejection; resampling is soxr's HQ
resampler (librosa's default too). Why not tensorflow-io's decoders and resampler:
docs/features.md, "Decoding, and why not tensorflow-io".
"""

from __future__ import annotations

import dataclasses
import errno
import io
import os
import re
import stat

import numpy as np
import soundfile
import soxr

from spoofdetect.config import FeatureConfig

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg")
# Sample rates and channel counts outside these bounds are header damage or not a speech
# clip. The exported model's byte signature applies the same bounds, and its in-graph
# resampler's filter grows with the input rate (800 taps at 192 kHz), so they bound its work.
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 1000, 192000
MAX_CHANNELS = 8
# A header declaring more decoded audio than this (float32) is refused before anything is
# allocated: about 4.6 hours of 16 kHz mono, far beyond a speech clip.
MAX_DECODED_BYTES = 2**30


class AudioRejected(Exception):
    """The file cannot be used as an example; the message is the reason shown to the user."""


@dataclasses.dataclass(frozen=True)
class DecodedAudio:
    samples: np.ndarray  # float32, mono, at the target sample rate
    original_sample_rate: int
    channels: int
    duration_seconds: float
    audio_format: str  # e.g. "WAV/PCM_16"


# Input kept past `max_seconds` so that the resampler's filter sees the same neighbourhood as
# when resampling the whole file: with 0.1 s the output is bit-identical (tests/test_audio.py).
RESAMPLER_MARGIN_SECONDS = 0.1


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
        # One open for the header and the samples: libsndfile's per-open cost was about a
        # fifth of a 16 kHz file's decoding.
        audio_file = soundfile.SoundFile(io.BytesIO(data))
    except Exception as error:  # libsndfile's errors carry no stable type
        raise AudioRejected(f"not a readable audio file ({_describe(error)})") from error
    with audio_file:
        if audio_file.frames <= 0:
            raise AudioRejected("the file holds no audio samples")
        if (not 1 <= audio_file.channels <= MAX_CHANNELS
                or not MIN_SAMPLE_RATE <= audio_file.samplerate <= MAX_SAMPLE_RATE):
            raise AudioRejected(
                f"invalid header: {audio_file.samplerate} Hz, {audio_file.channels} "
                f"channel(s) (sample rates from {MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE} Hz "
                f"and 1 to {MAX_CHANNELS} channels are accepted)")
        decoded_bytes = audio_file.frames * audio_file.channels * 4
        if decoded_bytes > MAX_DECODED_BYTES:
            raise AudioRejected(
                f"the header declares {audio_file.frames} frames of {audio_file.channels} "
                f"channel(s) ({decoded_bytes / 2**30:.1f} GiB decoded), more than "
                f"{MAX_DECODED_BYTES / 2**30:.0f} GiB: a corrupt header or not a speech clip")
        try:
            samples = audio_file.read(dtype="float32", always_2d=True)
        except Exception as error:  # libsndfile's errors carry no stable type
            raise AudioRejected(f"decoding failed ({_describe(error)})") from error
    if samples.ndim == 1:
        samples = samples[:, None]
    if samples.shape[0] == 0:
        raise AudioRejected("the file holds no audio samples")
    if not np.isfinite(samples).all():
        raise AudioRejected("the audio contains NaN or infinite sample values")
    # A mono file's one channel as it is: averaging a single column cost 3 % of a clip's
    # extraction.
    mono = samples[:, 0] if samples.shape[1] == 1 else samples.mean(axis=1, dtype=np.float32)
    if max_seconds is not None:
        mono = mono[: int((max_seconds + RESAMPLER_MARGIN_SECONDS) * audio_file.samplerate)]
    if audio_file.samplerate != target_sample_rate:
        mono = soxr.resample(mono, audio_file.samplerate, target_sample_rate, quality="HQ")
    if max_seconds is not None:
        mono = mono[: round(max_seconds * target_sample_rate)]
    return DecodedAudio(
        samples=np.ascontiguousarray(mono, dtype=np.float32),
        original_sample_rate=int(audio_file.samplerate),
        channels=int(audio_file.channels),
        duration_seconds=samples.shape[0] / audio_file.samplerate,
        audio_format=f"{audio_file.format}/{audio_file.subtype}",
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


def first_segments(waveforms: list[np.ndarray], config: FeatureConfig) -> np.ndarray:
    """[clips, segment_samples]: each clip's first segment, as segment_mode 'first' cuts it
    (for scoring or fitting on clips already decoded)."""
    return np.stack([segment_waveform(waveform, config)[0] for waveform in waveforms])


def check_file(name: str, size_bytes: int, config: FeatureConfig) -> None:
    """Rejects, before anything is read, a file whose type or size rules it out (a negative
    size: listed in a protocol file but not there)."""
    if size_bytes < 0:
        raise AudioRejected("listed in the protocol but not found under the dataset root")
    extension = os.path.splitext(name)[1].lower()
    if extension not in AUDIO_EXTENSIONS:
        raise AudioRejected(f"unsupported file type '{extension or '(none)'}': audio files "
                            f"must end in {', '.join(AUDIO_EXTENSIONS)}")
    if size_bytes > config.max_file_megabytes * 1e6:
        raise AudioRejected(
            f"file is {size_bytes / 1e6:.0f} MB, above features.max_file_megabytes "
            f"= {config.max_file_megabytes:g}; raise the limit to use it")


def read_local_file(path: str, max_bytes: int, root: str | None = None) -> bytes:
    """The bytes of a regular local file, at most `max_bytes`, or AudioRejected saying why not.

    Opened without blocking and checked on the open descriptor, so a FIFO (which would block
    the reader forever) or a device such as /dev/zero (which never ends) is a named rejection,
    and the size limit applies to what is read, not to what the listing reported (0 bytes for
    both). With `root`, a file that resolves outside it (a symbolic link leaving the dataset)
    is refused, as protocol paths that leave the root are.
    """
    if root is not None:
        real_root = os.path.realpath(root)
        if os.path.commonpath([real_root, os.path.realpath(path)]) != real_root:
            raise AudioRejected(f"a symbolic link to {os.path.realpath(path)}, outside the "
                                "dataset root; copy the file into the dataset instead")
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    except OSError as error:
        raise AudioRejected(f"cannot open the file ({error.strerror})") from error
    try:
        mode = os.fstat(descriptor).st_mode
        if not stat.S_ISREG(mode):
            raise AudioRejected(f"not a regular file (a {_file_kind(mode)}); only audio files "
                                "are read")
        chunks, remaining = [], max_bytes + 1
        while remaining > 0:
            chunk = os.read(descriptor, min(remaining, 2**24))
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
    except OSError as error:
        if error.errno == errno.EISDIR:
            raise AudioRejected("a folder, not a file") from error
        raise AudioRejected(f"cannot read the file ({error.strerror})") from error
    finally:
        os.close(descriptor)
    return check_read_size(b"".join(chunks), max_bytes)


def check_read_size(data: bytes, max_bytes: int) -> bytes:
    """`data`, read with a limit of max_bytes + 1, or AudioRejected if it reached the limit."""
    if len(data) > max_bytes:
        raise AudioRejected(f"more than {max_bytes / 1e6:g} MB read, above "
                            "features.max_file_megabytes; raise the limit to use it")
    return data


def _file_kind(mode: int) -> str:
    kinds = ((stat.S_ISFIFO, "FIFO"), (stat.S_ISCHR, "character device"),
             (stat.S_ISBLK, "block device"), (stat.S_ISSOCK, "socket"), (stat.S_ISDIR, "folder"))
    return next((name for test, name in kinds if test(mode)), "special file")


def audio_segments(data: bytes, config: FeatureConfig) -> tuple[DecodedAudio, list[np.ndarray]]:
    """Encoded file -> its decoded audio and its segments, as the Beam job and the scoring
    CLI both cut them (only the first segment is resampled in segment_mode 'first')."""
    first_only = config.segment_mode == "first"
    decoded = decode_audio(data, config.sample_rate,
                           config.segment_seconds if first_only else None)
    check_not_silent(decoded.samples, config.silence_peak)
    return decoded, segment_waveform(decoded.samples, config)
