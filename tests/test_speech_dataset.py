"""The real-speech benchmark's own signal attacks and channels (benchmarks/speech_dataset.py):
each does what its name says, checked on signals whose answer is known."""

import numpy as np
import pytest
import scipy.signal

from tests.conftest import decay_time

RATE = 8000  # the prompts' rate


def vowel(seconds: float = 2.0, pitch: float = 120.0) -> np.ndarray:
    """A pulse train at `pitch` through two formants (700 and 1200 Hz), peak 0.5."""
    pulses = np.zeros(int(seconds * RATE))
    pulses[::round(RATE / pitch)] = 1.0
    for frequency, bandwidth in ((700, 80), (1200, 100)):
        radius = np.exp(-np.pi * bandwidth / RATE)
        pulses = scipy.signal.lfilter(
            [1.0], [1.0, -2 * radius * np.cos(2 * np.pi * frequency / RATE), radius ** 2], pulses)
    return (0.5 * pulses / np.abs(pulses).max()).astype(np.float32)


@pytest.mark.parametrize("seed", range(4))
def test_the_harmonic_vocoder_moves_the_pitch_and_keeps_the_level(speech_dataset, seed):
    import librosa

    clip = vowel()
    out, rate = speech_dataset.harmonic_conversion(clip, RATE, seed)
    ratio, _ = speech_dataset._conversion_direction(np.random.default_rng(seed))
    assert rate == RATE and out.shape == clip.shape and np.isfinite(out).all()
    pitch = np.median(librosa.yin(out[RATE // 4:-RATE // 4], fmin=50, fmax=500, sr=RATE,
                                  frame_length=1024))
    assert pitch == pytest.approx(120.0 * ratio, rel=0.03)
    assert abs(ratio - 1) > 0.15  # 3-6 semitones: the pitch really moved
    assert np.sqrt(np.mean(out ** 2)) == pytest.approx(np.sqrt(np.mean(clip ** 2)), rel=0.1)


@pytest.mark.parametrize("seed", range(4))
def test_frequency_warping_moves_a_tone_by_the_warp(speech_dataset, seed):
    tone = (0.3 * np.sin(2 * np.pi * 1000 * np.arange(2 * RATE) / RATE)).astype(np.float32)
    out, _ = speech_dataset.frequency_warped(tone, RATE, seed)
    _, warp = speech_dataset._conversion_direction(np.random.default_rng(seed))
    middle = out[RATE // 4:-RATE // 4]
    peak = np.argmax(np.abs(np.fft.rfft(middle))) * RATE / middle.size
    assert abs(peak - 1000 * warp) < 2 * RATE / 512  # two of the STFT's bins
    assert abs(peak - 1000) > 50


@pytest.mark.parametrize("seed", range(4))
def test_the_room_decays_as_drawn(speech_dataset, seed):
    response = speech_dataset.room_response(np.random.default_rng(seed))
    assert 0.2 < decay_time(response[1:], speech_dataset.CHANNEL_RATE) < 0.75
    direct_to_tail = 10 * np.log10(response[0] ** 2 / np.sum(response[1:] ** 2))
    assert -0.01 < direct_to_tail < 6.01


def test_the_room_channel_reverberates_band_limits_and_levels_a_clip(speech_dataset):
    rng = np.random.default_rng(0)
    clip = np.concatenate([vowel(0.5), np.zeros(RATE // 2, np.float32)])
    out = speech_dataset.room_channel(clip, RATE, rng)
    assert np.isfinite(out).all() and np.abs(out).max() <= 1.0
    # Written at 16 kHz, nothing above the 8 kHz band's 4 kHz but the noise added after it.
    power = np.abs(np.fft.rfft(out)) ** 2
    frequencies = np.fft.rfftfreq(out.size, 1 / speech_dataset.OUTPUT_RATE)
    assert power[frequencies > 4100].sum() < 0.01 * power.sum()
    # The vowel's level after trimming, and a tail that goes on after the vowel stops.
    assert 20 * np.log10(np.sqrt(np.mean(out ** 2))) == pytest.approx(-26.0, abs=1.0)
    dry = speech_dataset.channel(clip, RATE, np.random.default_rng(0))
    assert out.size > dry.size + 0.1 * speech_dataset.OUTPUT_RATE
