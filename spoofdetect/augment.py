"""Waveform augmentation of training clips: RawBoost's three noise families, channel and
codec simulation, gain, additive noise and a room's reverberation. Plain NumPy, SciPy and
libsndfile; no TFX.

The feature job (spoofdetect/extraction.py) makes `features.augment` extra copies of each
training clip, each through one family drawn from `features.augment_families`, seeded by
the clip's path, the copy's number and `features.augment_seed`: the same clip always gets
the same copies, on any worker, in any order, after any retry. Dev and eval are never
augmented.

The codecs are libsndfile's own (the decoder every clip already goes through): G.711 mu-law
and A-law, GSM 06.10 full rate, MP3 (LAME) and Opus at their lowest bit rates. RawBoost (Tak
et al., ICASSP 2022) is written here after the paper's description, as no maintained package
provides it: (1) linear and non-linear convolutive noise, a sum of the signal's first powers
each through a random multi-band FIR filter; (2) impulsive signal-dependent noise on a random
tenth of the samples; (3) stationary coloured noise, white noise through a random multi-band
filter, at a random SNR.

Every output is finite, at the input's length, and within full scale (peak <= 1): a
transform that would clip is scaled down instead, and one that loses the signal (a filter on
a clip with nothing in its band) falls back to the clip itself, named "none", so no copy is a
silent or broken example.

Vocoded copies (`features.vocoded`) are the other kind: a bona fide training clip
resynthesised through a vocoder, labelled fake. The copy keeps the clip's words, speaker,
duration and level, so the one thing that tells it from the clip is what the vocoder did to
the signal, the cue that unseen attacks share (copy synthesis as spoofed training data: Wang
and Yamagishi, ICASSP 2023). The vocoder is WORLD (pyworld: DIO and StoneMask F0,
CheapTrick envelope, D4C aperiodicity), the vocoder of statistical parametric TTS and voice
conversion: `world` resynthesises the clip's own analysis (copy synthesis), `world_coded`
codes its envelope to a few mel-cepstral coefficients first, as such systems generate it.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable

import numpy as np
import pyworld
import scipy.signal
import soundfile
import soxr

Transform = Callable[[np.ndarray, int, np.random.Generator], np.ndarray]

# The peak any output may reach (full scale is 1.0; a little headroom for codecs' overshoot).
_FULL_SCALE = 0.999
# An output this far below its input (-60 dB) has lost the signal (a band filter on a clip
# with nothing in its band): the clip is kept as it was instead.
_LOST_SIGNAL = 1e-3


def _peak_limited(samples: np.ndarray) -> np.ndarray:
    peak = float(np.max(np.abs(samples))) if samples.size else 0.0
    if peak > _FULL_SCALE:
        samples = samples * (_FULL_SCALE / peak)
    return samples.astype(np.float32, copy=False)


def _at_length(samples: np.ndarray, length: int) -> np.ndarray:
    if samples.size >= length:
        return samples[:length]
    return np.pad(samples, (0, length - samples.size))


def _multiband_fir(rng: np.random.Generator, sample_rate: int, bands: int = 5,
                   min_hz: float = 20.0, max_hz: float = 8000.0, min_bw: float = 100.0,
                   max_bw: float = 1000.0, min_taps: int = 10, max_taps: int = 100
                   ) -> np.ndarray:
    """A random FIR filter passing `bands` bands of random centre and width (RawBoost's
    notch-filter bank, as a sum of band-pass filters)."""
    nyquist = sample_rate / 2.0
    taps = int(rng.integers(min_taps, max_taps + 1)) | 1  # odd: a band-pass FIR needs it
    response = np.zeros(taps)
    for _ in range(bands):
        centre = rng.uniform(min_hz, min(max_hz, nyquist - 1.0))
        width = rng.uniform(min_bw, max_bw)
        low = max(centre - width / 2.0, 1.0)
        high = min(centre + width / 2.0, nyquist - 1.0)
        if high - low < 1.0:
            continue
        response += scipy.signal.firwin(taps, [low, high], pass_zero=False, fs=sample_rate)
    return response


def rawboost_convolutive(samples: np.ndarray, sample_rate: int,
                         rng: np.random.Generator) -> np.ndarray:
    """RawBoost 1: sum over j = 1..5 of g_j (h_j * x^j), h_j random multi-band filters; the
    higher powers' gains shrink (a random 5-20 dB bias), as non-linear distortion does."""
    out = np.zeros_like(samples, dtype=np.float64)
    for order in range(1, 6):
        gain = 1.0 if order == 1 else 10.0 ** (-rng.uniform(5.0, 20.0) * (order - 1) / 20.0)
        filtered = scipy.signal.lfilter(_multiband_fir(rng, sample_rate), 1.0,
                                        samples.astype(np.float64) ** order)
        out += gain * filtered
    peak = float(np.max(np.abs(out)))
    return out / peak * float(np.max(np.abs(samples))) if peak > 0 else out


def rawboost_impulsive(samples: np.ndarray, sample_rate: int,
                       rng: np.random.Generator) -> np.ndarray:
    """RawBoost 2: a random 10 % of the samples get x + x * g * u, u uniform in [-1, 1],
    g = 2: clicks whose size follows the signal."""
    out = samples.astype(np.float64).copy()
    chosen = rng.choice(samples.size, size=max(1, samples.size // 10), replace=False)
    out[chosen] += out[chosen] * 2.0 * rng.uniform(-1.0, 1.0, chosen.size)
    return out


def add_at_snr(samples: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """`samples` plus `noise` scaled to `snr_db` below the signal's power."""
    signal_power = float(np.mean(samples.astype(np.float64) ** 2))
    noise_power = float(np.mean(noise.astype(np.float64) ** 2))
    if noise_power == 0.0:
        return samples
    scale = np.sqrt(signal_power / (noise_power * 10.0 ** (snr_db / 10.0)))
    return samples + scale * noise


def rawboost_coloured(samples: np.ndarray, sample_rate: int,
                      rng: np.random.Generator) -> np.ndarray:
    """RawBoost 3: white noise through a random multi-band filter, at 10-40 dB SNR."""
    noise = scipy.signal.lfilter(_multiband_fir(rng, sample_rate), 1.0,
                                 rng.standard_normal(samples.size))
    return add_at_snr(samples, noise, rng.uniform(10.0, 40.0))


def white_noise(samples: np.ndarray, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Gaussian white noise at a random 5-30 dB SNR."""
    return add_at_snr(samples, rng.standard_normal(samples.size), rng.uniform(5.0, 30.0))


def gain(samples: np.ndarray, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """A random -20 to +6 dB level change (limited to full scale)."""
    return samples * 10.0 ** (rng.uniform(-20.0, 6.0) / 20.0)


def telephone_band(samples: np.ndarray, sample_rate: int,
                   rng: np.random.Generator) -> np.ndarray:
    """The 300-3400 Hz telephone band: a 4th-order Butterworth band-pass, edges jittered by
    up to 10 %."""
    low, high = 300.0 * rng.uniform(0.9, 1.1), 3400.0 * rng.uniform(0.9, 1.1)
    sos = scipy.signal.butter(4, [low, min(high, sample_rate / 2.0 - 1.0)], btype="bandpass",
                              fs=sample_rate, output="sos")
    return scipy.signal.sosfilt(sos, samples)


def narrowband(samples: np.ndarray, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """A round trip through 8 kHz: everything above 4 kHz is gone."""
    down = soxr.resample(samples, sample_rate, 8000, quality="HQ")
    return soxr.resample(down, 8000, sample_rate, quality="HQ")


def _codec_round_trip(samples: np.ndarray, sample_rate: int, codec_rate: int, container: str,
                      subtype: str, **options: object) -> np.ndarray:
    """Encodes with libsndfile at `codec_rate` and decodes back to `sample_rate`."""
    audio = samples if codec_rate == sample_rate else soxr.resample(
        samples, sample_rate, codec_rate, quality="HQ")
    buffer = io.BytesIO()
    soundfile.write(buffer, np.clip(audio, -1.0, 1.0), codec_rate, format=container,
                    subtype=subtype, **options)
    decoded, _ = soundfile.read(io.BytesIO(buffer.getvalue()), dtype="float32")
    if codec_rate != sample_rate:
        decoded = soxr.resample(decoded, codec_rate, sample_rate, quality="HQ")
    return decoded


def mu_law(samples: np.ndarray, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """G.711 mu-law at 8 kHz (North American and Japanese telephony)."""
    return _codec_round_trip(samples, sample_rate, 8000, "WAV", "ULAW")


def a_law(samples: np.ndarray, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """G.711 A-law at 8 kHz (European telephony)."""
    return _codec_round_trip(samples, sample_rate, 8000, "WAV", "ALAW")


def gsm(samples: np.ndarray, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """GSM 06.10 full rate (13 kbit/s) at 8 kHz, the 2G mobile codec."""
    return _codec_round_trip(samples, sample_rate, 8000, "WAV", "GSM610")


# libsndfile's compression levels of the low-bit-rate codecs: 0.7 up to the highest its MP3
# encoder accepts (above 0.9999 it refuses, so the range stops short of 1).
LOW_BIT_RATE_LEVELS = (0.7, 0.999)


def mp3(samples: np.ndarray, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """MP3 (LAME) at a low constant bit rate (LOW_BIT_RATE_LEVELS)."""
    return _codec_round_trip(samples, sample_rate, sample_rate, "MP3", "MPEG_LAYER_III",
                             compression_level=rng.uniform(*LOW_BIT_RATE_LEVELS),
                             bitrate_mode="CONSTANT")


def opus(samples: np.ndarray, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Opus at a low bit rate (LOW_BIT_RATE_LEVELS): VoIP and messengers."""
    return _codec_round_trip(samples, sample_rate, sample_rate, "OGG", "OPUS",
                             compression_level=rng.uniform(*LOW_BIT_RATE_LEVELS))


# Octave-ish bands of the reverberation tail (Hz): each decays at its own rate.
REVERB_BANDS = (0.0, 500.0, 1500.0, 4000.0)


def reverb(samples: np.ndarray, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """A room: the clip convolved with a simulated impulse response, the direct sound, then
    after a 1-20 ms pre-delay a noise tail decaying exponentially in each of four bands, the
    lowest with an RT60 (60 dB of decay) of 0.2-1.0 s and the highest 50-90 % of it, as air
    and walls absorb high frequencies faster; the tail's energy is 3 dB above to 12 dB below
    the direct sound's. The output keeps the clip's RMS level."""
    low_rt60 = rng.uniform(0.2, 1.0)
    rt60s = low_rt60 * np.linspace(1.0, rng.uniform(0.5, 0.9), len(REVERB_BANDS))
    time = np.arange(int(low_rt60 * sample_rate)) / sample_rate
    nyquist = sample_rate / 2.0
    tail = np.zeros(time.size)
    for low, high, rt60 in zip(REVERB_BANDS, [*REVERB_BANDS[1:], nyquist], rt60s, strict=True):
        if low >= nyquist:  # a band above a low sample rate's range
            continue
        noise = rng.standard_normal(time.size)
        # The lowest band is a low-pass, the highest a high-pass, the others band-passes.
        edges, kind = ((high, "lowpass") if low == 0.0 else (low, "highpass")
                       if high >= nyquist else ([low, high], "bandpass"))
        band = scipy.signal.butter(4, edges, kind, fs=sample_rate, output="sos")
        tail += scipy.signal.sosfilt(band, noise) * np.exp(-3.0 * np.log(10.0) * time / rt60)
    tail *= 10.0 ** (-rng.uniform(-3.0, 12.0) / 20.0) / np.sqrt(np.sum(tail ** 2))
    response = np.concatenate([[1.0], np.zeros(int(rng.uniform(0.001, 0.02) * sample_rate)),
                               tail])
    out = scipy.signal.fftconvolve(samples, response)[:samples.size]
    level = np.sqrt(np.mean(out ** 2))
    return out * (np.sqrt(np.mean(samples ** 2)) / level) if level > 0 else out


AUGMENTATIONS: dict[str, Transform] = {
    "rawboost_convolutive": rawboost_convolutive,
    "rawboost_impulsive": rawboost_impulsive,
    "rawboost_coloured": rawboost_coloured,
    "telephone": telephone_band,
    "narrowband": narrowband,
    "mu_law": mu_law,
    "a_law": a_law,
    "gsm": gsm,
    "mp3": mp3,
    "opus": opus,
    "gain": gain,
    "noise": white_noise,
    "reverb": reverb,
}


def copy_rng(relative_path: str, copy: int, seed: int) -> np.random.Generator:
    """The generator of one copy of one clip: the same wherever and whenever it runs."""
    digest = int.from_bytes(hashlib.sha256(relative_path.encode()).digest()[:8], "little")
    return np.random.default_rng([seed, copy, digest])


def _finite_at_length(out: np.ndarray, length: int) -> np.ndarray:
    """A transform's output as float64, at the clip's length, with no NaN or infinity."""
    return np.nan_to_num(_at_length(np.asarray(out, np.float64), length), nan=0.0,
                         posinf=0.0, neginf=0.0)


def augment(samples: np.ndarray, sample_rate: int, families: tuple[str, ...],
            rng: np.random.Generator) -> tuple[str, np.ndarray]:
    """One copy of `samples`: (the family drawn, its output), finite, same length, peak <= 1."""
    name = families[int(rng.integers(len(families)))]
    out = _finite_at_length(AUGMENTATIONS[name](samples, sample_rate, rng), samples.size)
    if np.sqrt(np.mean(out ** 2)) < _LOST_SIGNAL * np.sqrt(np.mean(samples ** 2)):
        return "none", _peak_limited(samples)
    return name, _peak_limited(out)


# WORLD's analysis step (ms), and the mel-cepstral orders `world_coded` draws from: what
# parametric TTS and voice conversion generate in place of CheapTrick's full envelope.
WORLD_FRAME_MS = 5.0
WORLD_CODED_ORDERS = (60, 40, 24)


def _world_analysis(samples: np.ndarray, sample_rate: int
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(F0 by DIO refined by StoneMask, CheapTrick's envelope, D4C's aperiodicity)."""
    signal = samples.astype(np.float64)
    f0, times = pyworld.dio(signal, sample_rate, frame_period=WORLD_FRAME_MS)
    f0 = pyworld.stonemask(signal, f0, times, sample_rate)
    return (f0, pyworld.cheaptrick(signal, f0, times, sample_rate),
            pyworld.d4c(signal, f0, times, sample_rate))


def world(samples: np.ndarray, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """WORLD copy synthesis: the clip analysed and resynthesised, nothing changed."""
    f0, envelope, aperiodicity = _world_analysis(samples, sample_rate)
    return pyworld.synthesize(f0, envelope, aperiodicity, sample_rate, WORLD_FRAME_MS)


def world_coded(samples: np.ndarray, sample_rate: int, rng: np.random.Generator
                ) -> np.ndarray:
    """WORLD with its envelope coded to a mel-cepstrum of an order drawn from
    WORLD_CODED_ORDERS and decoded, as a parametric TTS or voice conversion system's is."""
    f0, envelope, aperiodicity = _world_analysis(samples, sample_rate)
    order = WORLD_CODED_ORDERS[int(rng.integers(len(WORLD_CODED_ORDERS)))]
    fft_size = (envelope.shape[1] - 1) * 2
    envelope = pyworld.decode_spectral_envelope(
        pyworld.code_spectral_envelope(envelope, sample_rate, order), sample_rate, fft_size)
    return pyworld.synthesize(f0, envelope, aperiodicity, sample_rate, WORLD_FRAME_MS)


VOCODERS: dict[str, Transform] = {"world": world, "world_coded": world_coded}


def vocoded_copy(samples: np.ndarray, sample_rate: int, vocoders: tuple[str, ...],
                 families: tuple[str, ...], augment_copies: int, rng: np.random.Generator
                 ) -> tuple[str, str, np.ndarray | None]:
    """One vocoded copy of `samples`: (the vocoder drawn, the augmentation it then went
    through or '', the copy at the clip's length and RMS level, peak <= 1), or None for the
    copy when the vocoder's output has no signal to scale. The copy is augmented as often as
    a clip's own examples are with `augment_copies` augmented copies (augment_copies times in
    augment_copies + 1), so that being augmented says nothing of the label."""
    vocoder = vocoders[int(rng.integers(len(vocoders)))]
    out = _finite_at_length(VOCODERS[vocoder](samples, sample_rate, rng), samples.size)
    level = np.sqrt(np.mean(out ** 2))
    if level == 0.0:
        return vocoder, "", None
    # The clip's own level: a vocoder's gain would otherwise be a cue no attack shares.
    out = _peak_limited(out * (np.sqrt(np.mean(samples.astype(np.float64) ** 2)) / level))
    if rng.random() < augment_copies / (augment_copies + 1):
        return vocoder, *augment(out, sample_rate, families, rng)
    return vocoder, "", out
