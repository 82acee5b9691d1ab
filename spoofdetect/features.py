"""The feature function: ONE implementation, in TensorFlow ops, batched.

The Beam feature job, the exported model's serving signatures and the scoring CLI all call
`spectral_features`, so training and serving compute identical features. With the default
config (front_end 'log_mel') it reproduces the seed's librosa chain for a 4 s, 16 kHz
segment:

    y = y / max|y|                                     (peak normalisation)
    S = melspectrogram(y, n_fft=2048, hop=512)         (Hann, centred with zero padding,
                                                        power 2, Slaney mel filterbank)
    S_db = power_to_db(S, ref=max, top_db=80)          (dB below the clip's maximum)
    x = (S_db - mean) / std                            (per-clip standardisation)

tests/test_features.py shows the match with librosa 0.11. `front_end: log_linear` takes the
same chain through linearly spaced bands instead (set a short window, e.g. n_fft 512), and
`phase: true` stacks below the magnitude rows each band's group delay (the negative
derivative of the STFT phase over frequency, energy-weighted over the band): magnitude
spectra discard phase, where phase-reconstruction (Griffin-Lim) and vocoder artefacts live.
`extra_windows` adds the same rows for other window lengths at the same hop (a
multi-resolution front end: a long window resolves harmonics, a short one the pitch pulses
and transients); `phase_windows` limits the group-delay rows to some of them. Each block is
standardised on its own; `band_mean_normalise` first takes each magnitude band's mean over the
segment away (a stationary channel's colouring).

The LFCC-GMM system's map (front_end 'lfcc', FeatureConfig.lfcc_features) is ASVspoof 2019's
baseline front end: pre-emphasis 0.97, 20 ms Hamming windows every hop (10 ms), a 512-point
power spectrum, linearly spaced triangular filters, log energies, DCT-II to 20 coefficients,
with deltas and delta-deltas; and a last row that marks the frames the GMMs count: those whose
window and delta context lie in the clip (1), not in the zeros that pad a short clip to the
segment or in digital silence (0): padding is a clip's length, not its sound.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
import tensorflow as tf

from spoofdetect.config import (
    LFCC_COEFFICIENTS,
    LFCC_FRONT_END,
    LFCC_WINDOW_SECONDS,
    FeatureConfig,
)
from spoofdetect.filterbanks import filterbank

# power_to_db's amin: the smallest power represented, so log10 never sees zero.
_AMIN = 1e-10
# Below this standard deviation a clip is constant (silence): standardising must not divide by 0.
_MIN_STD = 1e-6
# The LFCC front end's settings beyond config.py's (ASVspoof 2019's baseline's).
LFCC_PRE_EMPHASIS = 0.97
# Frames either side in the delta regression.
LFCC_DELTA_WIDTH = 2


def spectral_features(waveforms: tf.Tensor, config: FeatureConfig) -> tf.Tensor:
    """[batch, samples] float32 waveforms -> [batch, config.num_rows, frames] standardised
    features of the configured front end: each window's band magnitudes (config.windows,
    all at one hop, so their frames line up), then the group delay of each of
    config.group_delay_windows (with `phase`: every window, or those of `phase_windows`).

    Safe on silence: an all-zero segment gives all-zero features, never NaN.
    """
    waveforms = tf.convert_to_tensor(waveforms, dtype=tf.float32)
    if config.front_end == LFCC_FRONT_END:
        return lfcc(waveforms, config)
    if config.peak_normalise:
        peak = tf.reduce_max(tf.abs(waveforms), axis=-1, keepdims=True)
        waveforms = tf.math.divide_no_nan(waveforms, peak)
    magnitudes, phases = [], []
    for window in config.windows:
        magnitude, phase = _window_features(waveforms, window, config,
                                            window in config.group_delay_windows)
        magnitudes.append(magnitude)
        phases += [phase] if phase is not None else []
    blocks = magnitudes + phases
    return blocks[0] if len(blocks) == 1 else tf.concat(blocks, axis=1)


def _window_features(waveforms: tf.Tensor, window: int, config: FeatureConfig,
                     with_group_delay: bool) -> tuple[tf.Tensor, tf.Tensor | None]:
    """One window length's [batch, bands, frames] magnitude block and, if asked, its
    group-delay block; each standardised on its own."""
    stft = _centred_stft(waveforms, window, config.hop_length, tf.signal.hann_window)
    power = tf.square(tf.math.real(stft)) + tf.square(tf.math.imag(stft))
    filters = tf.constant(filterbank(config.sample_rate, window, config.num_bands,
                                     config.filter_scale).T)
    features = tf.transpose(tf.matmul(power, filters), [0, 2, 1])  # [batch, bands, frames]
    if config.top_db is not None:
        log_bands = 10.0 * _log10(tf.maximum(features, _AMIN))
        reference = tf.reduce_max(features, axis=[1, 2], keepdims=True)
        log_bands -= 10.0 * _log10(tf.maximum(reference, _AMIN))
        features = tf.maximum(
            log_bands, tf.reduce_max(log_bands, axis=[1, 2], keepdims=True) - config.top_db)
        if config.band_mean_normalise:
            features -= tf.reduce_mean(features, axis=2, keepdims=True)
    if config.standardise:
        features = standardise_per_example(features)
    if not with_group_delay:
        return features, None
    phase = group_delay(waveforms, stft, power, filters, window, config.hop_length)
    if config.standardise:
        phase = standardise_per_example(phase)
    return features, phase


def lfcc(waveforms: tf.Tensor, config: FeatureConfig) -> tf.Tensor:
    """[batch, samples] -> [batch, 3 * LFCC_COEFFICIENTS + 1, frames]: LFCC, their deltas
    and delta-deltas, then whether the GMMs count the frame (_frames_in_the_clip). Centred
    frames, as every front end's, so the map has config.num_frames frames. Not normalised:
    the GMMs model the coefficients as they are."""
    emphasised = tf.concat(
        [waveforms[:, :1], waveforms[:, 1:] - LFCC_PRE_EMPHASIS * waveforms[:, :-1]], axis=1)
    window = round(LFCC_WINDOW_SECONDS * config.sample_rate)
    stft = _centred_stft(emphasised, window, config.hop_length,
                         functools.partial(tf.signal.hamming_window, periodic=False),
                         fft_length=config.n_fft)
    power = tf.square(tf.math.real(stft)) + tf.square(tf.math.imag(stft))
    filters = tf.constant(filterbank(config.sample_rate, config.n_fft, config.num_bands,
                                     config.filter_scale).T)
    energies = tf.math.log(tf.matmul(power, filters) + _AMIN)  # [batch, frames, bands]
    static = tf.signal.dct(energies, type=2, norm="ortho")[..., :LFCC_COEFFICIENTS]
    first = _deltas(static)
    return tf.transpose(tf.concat([static, first, _deltas(first),
                                   _frames_in_the_clip(waveforms, window, config.hop_length)],
                                  axis=-1), [0, 2, 1])


def _frames_in_the_clip(waveforms: tf.Tensor, window: int, hop: int) -> tf.Tensor:
    """[batch, frames, 1]: 1 where the frame's window and every frame its delta-deltas reach
    (2 LFCC_DELTA_WIDTH either side) hold some non-zero sample, else 0. So a frame that
    sees the zeros padding a short clip, the segment's ends or digital silence is left out,
    with its deltas: they would describe the edge, not the sound."""
    half_window = window // 2
    framed = tf.signal.frame(tf.pad(tf.abs(waveforms), [[0, 0], [half_window, half_window]]),
                             window, hop)
    has_signal = tf.cast(tf.reduce_max(framed, axis=-1) > 0.0, tf.float32)  # [batch, frames]
    reach = 2 * LFCC_DELTA_WIDTH
    padded = tf.pad(has_signal, [[0, 0], [reach, reach]])  # beyond the segment: no signal
    frames = tf.shape(has_signal)[1]
    inside = tf.reduce_min(tf.stack([padded[:, offset:offset + frames]
                                     for offset in range(2 * reach + 1)]), axis=0)
    return inside[..., tf.newaxis]


def _deltas(values: tf.Tensor) -> tf.Tensor:
    """Regression deltas of [batch, frames, coefficients] over LFCC_DELTA_WIDTH frames
    either side, the end frames repeated beyond the ends."""
    width = LFCC_DELTA_WIDTH
    padded = tf.concat([tf.repeat(values[:, :1], width, axis=1), values,
                        tf.repeat(values[:, -1:], width, axis=1)], axis=1)
    frames = tf.shape(values)[1]
    numerator = sum(offset * (padded[:, width + offset:width + offset + frames]
                              - padded[:, width - offset:width - offset + frames])
                    for offset in range(1, width + 1))
    return numerator / (2.0 * sum(offset ** 2 for offset in range(1, width + 1)))


def _centred_stft(waveforms: tf.Tensor, window: int, hop: int,
                  window_fn: Callable[..., tf.Tensor], fft_length: int | None = None
                  ) -> tf.Tensor:
    """librosa's centred STFT: half a window of zeros each side, one frame per hop; each
    frame zero-padded to fft_length (default: the window)."""
    half_window = window // 2
    padded = tf.pad(waveforms, [[0, 0], [half_window, half_window]])
    # tf.signal.hann_window is periodic, as scipy's get_window('hann') that librosa uses.
    return tf.signal.stft(padded, frame_length=window, frame_step=hop,
                          fft_length=fft_length or window, window_fn=window_fn, pad_end=False)


def group_delay(waveforms: tf.Tensor, stft: tf.Tensor, power: tf.Tensor, filters: tf.Tensor,
                window: int, hop: int) -> tf.Tensor:
    """[batch, bands, frames] group delay, energy-weighted over each band: where in the
    window (in window lengths from its centre, -0.5 to 0.5) each band's energy arrives.

    tau_k = Re(X_k conj(Y_k)) / |X_k|^2 with Y the STFT of n x[n] (n the sample's position
    in its frame): the negative derivative of the phase over frequency, without unwrapping.
    A click at position p of a frame gives p in every bin; a stationary tone gives the
    window's centre. Weighting by energy keeps the bins with no energy, where tau is
    undefined, out of the bands."""
    ramped = _centred_stft(
        waveforms, window, hop,
        lambda length, dtype: (tf.signal.hann_window(length, dtype=dtype)
                               * tf.range(length, dtype=dtype)))
    delay = (tf.math.real(stft) * tf.math.real(ramped)
             + tf.math.imag(stft) * tf.math.imag(ramped))  # |X|^2 tau, [batch, frames, bins]
    centred = delay - power * (window / 2.0)
    weighted = tf.matmul(centred, filters) / window
    energy = tf.matmul(power, filters)
    return tf.transpose(tf.math.divide_no_nan(weighted, energy), [0, 2, 1])


def standardise_per_example(values: tf.Tensor) -> tf.Tensor:
    """Mean 0, standard deviation 1 over all but the batch axis; constant examples give 0."""
    axes = list(range(1, len(values.shape)))
    mean, variance = tf.nn.moments(values, axes=axes, keepdims=True)
    return (values - mean) / tf.maximum(tf.sqrt(variance), _MIN_STD)


def _log10(values: tf.Tensor) -> tf.Tensor:
    return tf.math.log(values) / tf.math.log(tf.constant(10.0, dtype=values.dtype))


def feature_maps(config: FeatureConfig, segments: np.ndarray, batch_size: int = 64
                 ) -> np.ndarray:
    """[segments, rows, frames]: `config`'s maps of [segments, segment_samples] float32
    segments held in memory, by feature_function in batches."""
    function = feature_function(config)
    return np.concatenate([function(segments[start:start + batch_size]).numpy()
                           for start in range(0, len(segments), batch_size)])


def feature_function(config: FeatureConfig) -> tf.types.experimental.GenericFunction:
    """`spectral_features` compiled for any batch size of `config`'s segment length.

    Without AutoGraph: the function has no tensor-dependent Python control flow to convert
    (its loops run over the config), and converting it took 0.4 s of every feature worker's
    start-up (docs/performance.md)."""
    return tf.function(
        functools.partial(spectral_features, config=config),
        input_signature=[tf.TensorSpec([None, config.segment_samples], tf.float32)],
        autograph=False,
    )
