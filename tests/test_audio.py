"""Decoding: every format read with libsndfile's samples, resampling, bad input."""

import dataclasses
import io

import librosa
import numpy as np
import pytest
import soundfile

from spoofdetect.audio import (
    MAX_DECODED_BYTES,
    AudioRejected,
    check_not_silent,
    decode_audio,
    segment_waveform,
)
from spoofdetect.config import FeatureConfig
from tests.conftest import tone


def encode(samples: np.ndarray, sample_rate: int, subtype: str, container: str = "WAV") -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, sample_rate, subtype=subtype, format=container)
    return buffer.getvalue()


FORMATS = [("WAV", "PCM_U8"), ("WAV", "PCM_16"), ("WAV", "FLOAT"), ("FLAC", "PCM_16"),
           ("OGG", "VORBIS"), ("WAV", "PCM_24"), ("WAV", "PCM_32"), ("WAV", "DOUBLE"),
           ("FLAC", "PCM_24")]


@pytest.mark.parametrize(("container", "subtype"), FORMATS)
def test_every_format_decodes_to_the_mean_of_its_channels(container, subtype):
    # An odd number of frames, stereo with different channels: the cases decoders get wrong.
    left = tone(0.5001, frequency=440.0, amplitude=0.6)
    right = tone(0.5001, frequency=660.0, amplitude=0.3)
    data = encode(np.stack([left, right], axis=1), 16000, subtype, container)
    decoded = decode_audio(data, 16000)
    assert decoded.audio_format == f"{container}/{subtype}"
    assert decoded.channels == 2
    reference, _ = soundfile.read(io.BytesIO(data), dtype="float32", always_2d=True)
    np.testing.assert_allclose(decoded.samples, reference.mean(axis=1), atol=1e-6)
    tolerance = 0.05 if subtype in ("PCM_U8", "VORBIS") else 1e-3
    np.testing.assert_allclose(decoded.samples[:8000], ((left + right) / 2)[:8000],
                               atol=tolerance)


def test_headers_declaring_absurd_sizes_or_rates_are_rejected_before_decoding():
    data = bytearray(encode(tone(0.2), 16000, "PCM_16"))
    data[24:28] = (2**31 - 1).to_bytes(4, "little")  # sample rate field of the fmt chunk
    with pytest.raises(AudioRejected, match="sample rates from 1000 to 192000 Hz"):
        decode_audio(bytes(data), 16000)
    nine_channels = encode(np.stack([tone(0.2)] * 9, axis=1), 16000, "PCM_16")
    with pytest.raises(AudioRejected, match="1 to 8 channels"):
        decode_audio(nine_channels, 16000)
    frames = MAX_DECODED_BYTES // 4 + 1
    silent_flac = encode(np.zeros((8000, 1), np.float32), 16000, "PCM_16", "FLAC")
    header = bytearray(silent_flac)
    # STREAMINFO's total-samples field: the low 32 bits of a 36-bit number at bytes 22-25.
    header[22:26] = frames.to_bytes(4, "big")
    with pytest.raises(AudioRejected, match="declares"):
        decode_audio(bytes(header), 16000)


@pytest.mark.parametrize("sample_rate", [8000, 22050, 44100, 48000])
def test_resampling_to_16k_keeps_the_tone_and_matches_librosa_load(sample_rate):
    data = encode(tone(1.0, sample_rate, frequency=1000.0), sample_rate, "PCM_16")
    decoded = decode_audio(data, 16000)
    assert decoded.original_sample_rate == sample_rate
    assert len(decoded.samples) == 16000
    spectrum = np.abs(np.fft.rfft(decoded.samples))
    assert np.argmax(spectrum) == 1000  # 1 Hz bins over one second
    reference, _ = librosa.load(io.BytesIO(data), sr=16000, mono=True)
    np.testing.assert_allclose(decoded.samples, reference, atol=1e-5)


@pytest.mark.parametrize("sample_rate", [8000, 16000, 44100])
def test_decoding_only_the_first_seconds_equals_the_prefix_of_the_whole(sample_rate):
    rng = np.random.default_rng(sample_rate)
    noise = (0.3 * rng.standard_normal(6 * sample_rate)).astype(np.float32)
    data = encode(noise, sample_rate, "FLOAT")
    whole = decode_audio(data, 16000).samples
    first = decode_audio(data, 16000, max_seconds=4.0)
    np.testing.assert_array_equal(first.samples, whole[:64000])
    assert first.duration_seconds == pytest.approx(6.0)


def test_duration_is_the_original_length():
    decoded = decode_audio(encode(tone(2.5, 22050), 22050, "PCM_16"), 16000)
    assert decoded.duration_seconds == pytest.approx(2.5, abs=1e-4)


def _nan_wav() -> bytes:
    samples = tone(0.5)
    samples[10] = np.nan
    return encode(samples, 16000, "FLOAT")


def _inf_wav() -> bytes:
    samples = tone(0.5)
    samples[10] = -np.inf
    return encode(samples, 16000, "FLOAT")


@pytest.mark.parametrize(("data", "reason"), [
    (b"", "empty file"),
    (b"this is a text file, not audio\n" * 10, "not a readable audio file"),
    (b"RIFF\xff\xff\xff\xffWAVEfmt " + bytes(range(256)), "not a readable audio file"),
    (encode(np.zeros(0, np.float32), 16000, "PCM_16"), "no audio samples"),
    (_nan_wav(), "NaN or infinite"),
    (_inf_wav(), "NaN or infinite"),
])
def test_bad_input_is_rejected_with_a_reason(data, reason):
    with pytest.raises(AudioRejected, match=reason) as rejection:
        decode_audio(data, 16000)
    assert "BytesIO" not in str(rejection.value)  # no in-memory object names in reasons


def test_truncated_file_is_rejected_or_decoded_never_crashes():
    data = encode(tone(1.0), 16000, "PCM_16")
    for cut in (10, 44, 45, 1000):
        try:
            decoded = decode_audio(data[:cut], 16000)
        except AudioRejected as rejection:
            assert str(rejection)
        else:
            assert np.isfinite(decoded.samples).all()


def test_silence_is_rejected_and_quiet_audio_is_not():
    with pytest.raises(AudioRejected, match="all-silent"):
        check_not_silent(np.zeros(16000, np.float32), 1e-5)
    check_not_silent(tone(1.0, amplitude=1e-3), 1e-5)


CONFIG = FeatureConfig()


def test_first_segment_is_padded_or_cut():
    short = segment_waveform(np.ones(16000, np.float32), CONFIG)
    assert len(short) == 1 and short[0].shape == (64000,)
    assert short[0][:16000].min() == 1.0 and short[0][16000:].max() == 0.0
    long = segment_waveform(np.arange(200000, dtype=np.float32), CONFIG)
    assert len(long) == 1 and long[0][-1] == 63999


def test_all_segments_are_consecutive_windows():
    config = dataclasses.replace(CONFIG, segment_mode="all", min_last_segment_seconds=1.0)
    samples = np.arange(64000 * 2 + 20000, dtype=np.float32)  # 2 windows + 1.25 s
    windows = segment_waveform(samples, config)
    assert len(windows) == 3
    assert windows[1][0] == 64000 and windows[2][0] == 128000
    assert windows[2][20000:].max() == 0.0
    # A tail shorter than min_last_segment_seconds is not a window of its own.
    assert len(segment_waveform(samples[:64000 + 8000], config)) == 1
    # A clip shorter than one window still gives one (padded) window.
    assert len(segment_waveform(samples[:8000], config)) == 1
