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
Each block is standardised on its own.
"""

from __future__ import annotations

import functools

import tensorflow as tf

from spoofdetect.config import FeatureConfig
from spoofdetect.filterbanks import filterbank

# power_to_db's amin: the smallest power represented, so log10 never sees zero.
_AMIN = 1e-10
# Below this standard deviation a clip is constant (silence): standardising must not divide by 0.
_MIN_STD = 1e-6


def spectral_features(waveforms: tf.Tensor, config: FeatureConfig) -> tf.Tensor:
    """[batch, samples] float32 waveforms -> [batch, config.num_rows, frames] standardised
    features of the configured front end.

    Safe on silence: an all-zero segment gives all-zero features, never NaN.
    """
    waveforms = tf.convert_to_tensor(waveforms, dtype=tf.float32)
    if config.peak_normalise:
        peak = tf.reduce_max(tf.abs(waveforms), axis=-1, keepdims=True)
        waveforms = tf.math.divide_no_nan(waveforms, peak)
    half_window = config.n_fft // 2
    padded = tf.pad(waveforms, [[0, 0], [half_window, half_window]])
    stft = tf.signal.stft(
        padded,
        frame_length=config.n_fft,
        frame_step=config.hop_length,
        fft_length=config.n_fft,
        window_fn=tf.signal.hann_window,  # periodic Hann, as scipy's get_window('hann')
        pad_end=False,
    )
    power = tf.square(tf.math.real(stft)) + tf.square(tf.math.imag(stft))
    filters = tf.constant(filterbank(config.sample_rate, config.n_fft, config.num_bands,
                                     config.filter_scale).T)
    bands = tf.transpose(tf.matmul(power, filters), [0, 2, 1])  # [batch, bands, frames]
    features = bands
    if config.top_db is not None:
        log_bands = 10.0 * _log10(tf.maximum(bands, _AMIN))
        reference = tf.reduce_max(bands, axis=[1, 2], keepdims=True)
        log_bands -= 10.0 * _log10(tf.maximum(reference, _AMIN))
        features = tf.maximum(
            log_bands, tf.reduce_max(log_bands, axis=[1, 2], keepdims=True) - config.top_db)
    if config.standardise:
        features = standardise_per_example(features)
    if not config.phase:
        return features
    phase = group_delay(waveforms, stft, power, filters, config)
    if config.standardise:
        phase = standardise_per_example(phase)
    return tf.concat([features, phase], axis=1)


def group_delay(waveforms: tf.Tensor, stft: tf.Tensor, power: tf.Tensor, filters: tf.Tensor,
                config: FeatureConfig) -> tf.Tensor:
    """[batch, bands, frames] group delay, energy-weighted over each band: where in the
    window (in window lengths from its centre, -0.5 to 0.5) each band's energy arrives.

    tau_k = Re(X_k conj(Y_k)) / |X_k|^2 with Y the STFT of n x[n] (n the sample's position
    in its frame): the negative derivative of the phase over frequency, without unwrapping.
    A click at position p of a frame gives p in every bin; a stationary tone gives the
    window's centre. Weighting by energy keeps the bins with no energy, where tau is
    undefined, out of the bands."""
    half_window = config.n_fft // 2
    padded = tf.pad(waveforms, [[0, 0], [half_window, half_window]])
    ramped = tf.signal.stft(
        padded, frame_length=config.n_fft, frame_step=config.hop_length,
        fft_length=config.n_fft, pad_end=False,
        window_fn=lambda length, dtype: (tf.signal.hann_window(length, dtype=dtype)
                                         * tf.range(length, dtype=dtype)))
    delay = (tf.math.real(stft) * tf.math.real(ramped)
             + tf.math.imag(stft) * tf.math.imag(ramped))  # |X|^2 tau, [batch, frames, bins]
    centred = delay - power * (config.n_fft / 2.0)
    weighted = tf.matmul(centred, filters) / config.n_fft
    energy = tf.matmul(power, filters)
    return tf.transpose(tf.math.divide_no_nan(weighted, energy), [0, 2, 1])


def standardise_per_example(values: tf.Tensor) -> tf.Tensor:
    """Mean 0, standard deviation 1 over all but the batch axis; constant examples give 0."""
    axes = list(range(1, len(values.shape)))
    mean, variance = tf.nn.moments(values, axes=axes, keepdims=True)
    return (values - mean) / tf.maximum(tf.sqrt(variance), _MIN_STD)


def _log10(values: tf.Tensor) -> tf.Tensor:
    return tf.math.log(values) / tf.math.log(tf.constant(10.0, dtype=values.dtype))


def feature_function(config: FeatureConfig) -> tf.types.experimental.GenericFunction:
    """`spectral_features` compiled for any batch size of `config`'s segment length."""
    return tf.function(
        functools.partial(spectral_features, config=config),
        input_signature=[tf.TensorSpec([None, config.segment_samples], tf.float32)],
    )
