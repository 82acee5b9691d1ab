"""The log-Mel feature function: ONE implementation, in TensorFlow ops, batched.

The Beam feature job, the exported model's serving signatures and the scoring CLI all call
`log_mel_spectrogram`, so training and serving compute identical features. It reproduces the
seed's librosa chain for a 4 s, 16 kHz segment:

    y = y / max|y|                                     (peak normalisation)
    S = melspectrogram(y, n_fft=2048, hop=512)         (Hann, centred with zero padding,
                                                        power 2, Slaney mel filterbank)
    S_db = power_to_db(S, ref=max, top_db=80)          (dB below the clip's maximum)
    x = (S_db - mean) / std                            (per-clip standardisation)

tests/test_features.py shows the match with librosa 0.11.
"""

from __future__ import annotations

import functools

import tensorflow as tf

from spoofdetect.config import FeatureConfig
from spoofdetect.mel import mel_filterbank

# power_to_db's amin: the smallest power represented, so log10 never sees zero.
_AMIN = 1e-10
# Below this standard deviation a clip is constant (silence): standardising must not divide by 0.
_MIN_STD = 1e-6


def log_mel_spectrogram(waveforms: tf.Tensor, config: FeatureConfig) -> tf.Tensor:
    """[batch, samples] float32 waveforms -> [batch, n_mels, frames] standardised log-Mel.

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
    filters = tf.constant(mel_filterbank(config.sample_rate, config.n_fft, config.n_mels).T)
    mel = tf.transpose(tf.matmul(power, filters), [0, 2, 1])  # [batch, n_mels, frames]
    features = mel
    if config.top_db is not None:
        log_mel = 10.0 * _log10(tf.maximum(mel, _AMIN))
        reference = tf.reduce_max(mel, axis=[1, 2], keepdims=True)
        log_mel -= 10.0 * _log10(tf.maximum(reference, _AMIN))
        features = tf.maximum(
            log_mel, tf.reduce_max(log_mel, axis=[1, 2], keepdims=True) - config.top_db)
    if config.standardise:
        features = standardise_per_example(features)
    return features


def standardise_per_example(values: tf.Tensor) -> tf.Tensor:
    """Mean 0, standard deviation 1 over all but the batch axis; constant examples give 0."""
    axes = list(range(1, len(values.shape)))
    mean, variance = tf.nn.moments(values, axes=axes, keepdims=True)
    return (values - mean) / tf.maximum(tf.sqrt(variance), _MIN_STD)


def _log10(values: tf.Tensor) -> tf.Tensor:
    return tf.math.log(values) / tf.math.log(tf.constant(10.0, dtype=values.dtype))


def feature_function(config: FeatureConfig) -> tf.types.experimental.GenericFunction:
    """`log_mel_spectrogram` compiled for any batch size of `config`'s segment length."""
    return tf.function(
        functools.partial(log_mel_spectrogram, config=config),
        input_signature=[tf.TensorSpec([None, config.segment_samples], tf.float32)],
    )
