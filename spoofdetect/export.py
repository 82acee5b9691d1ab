"""The exported SavedModel (TF Serving layout) and its three signatures.

    serving_default   waveforms: float32 [batch, samples], 16 kHz mono, any length
    from_features     log_mel:   float32 [batch, n_mels, frames]
    from_audio_bytes  audio:     string  [batch], encoded 16-bit PCM WAV files, any rate

Each returns p_fake (probability of spoof), score (log-odds, higher = more bona fide, the
ASVspoof direction) and label (1 fake, 0 real, at p_fake >= 0.5). The waveform and byte
signatures cut the first segment and run `log_mel_spectrogram`, the function the Beam job
used, so serving computes the training features. The model needs no project code to load.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from spoofdetect.config import FeatureConfig
from spoofdetect.features import log_mel_spectrogram
from spoofdetect.models import CLASSIFIER_LOGIT
from spoofdetect.resample import resample

SIGNATURES = ("serving_default", "from_features", "from_audio_bytes")


def first_segment(waveforms: tf.Tensor, config: FeatureConfig) -> tf.Tensor:
    """[batch, any length] -> [batch, segment_samples]: cut, or zero-pad at the end."""
    length = config.segment_samples
    waveforms = waveforms[:, :length]
    padding = length - tf.shape(waveforms)[1]
    return tf.pad(waveforms, [[0, 0], [0, padding]])


class ServingModule(tf.Module):
    def __init__(self, classifier: keras.Model, config: FeatureConfig):
        super().__init__()
        self.config = config
        self.logit_model = keras.Model(classifier.input,
                                       classifier.get_layer(CLASSIFIER_LOGIT).output)

    def _outputs(self, log_mel: tf.Tensor) -> dict[str, tf.Tensor]:
        logit = tf.reshape(tf.cast(self.logit_model(log_mel, training=False), tf.float32), [-1])
        p_fake = tf.sigmoid(logit)
        return {"p_fake": p_fake, "score": -logit,
                "label": tf.cast(p_fake >= 0.5, tf.int64)}

    @tf.function(input_signature=[tf.TensorSpec([None, None, None], tf.float32, "log_mel")])
    def from_features(self, log_mel: tf.Tensor) -> dict[str, tf.Tensor]:
        return self._outputs(log_mel)

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32, "waveforms")])
    def from_waveforms(self, waveforms: tf.Tensor) -> dict[str, tf.Tensor]:
        return self._outputs(log_mel_spectrogram(first_segment(waveforms, self.config),
                                                 self.config))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, "audio")])
    def from_audio_bytes(self, audio: tf.Tensor) -> dict[str, tf.Tensor]:
        config = self.config

        def decode(encoded: tf.Tensor) -> tf.Tensor:
            samples, sample_rate = tf.audio.decode_wav(encoded)
            mono = tf.reduce_mean(samples, axis=1)
            keep = tf.cast(tf.math.ceil((config.segment_seconds + 0.1)
                                        * tf.cast(sample_rate, tf.float32)), tf.int32)
            mono = resample(mono[:keep], sample_rate, config.sample_rate)
            return first_segment(mono[tf.newaxis], config)[0]

        waveforms = tf.map_fn(decode, audio, fn_output_signature=tf.TensorSpec(
            [config.segment_samples], tf.float32))
        return self._outputs(log_mel_spectrogram(waveforms, config))


def export_serving_model(classifier: keras.Model, config: FeatureConfig, path: str) -> None:
    module = ServingModule(classifier, config)
    tf.saved_model.save(module, path, signatures={
        "serving_default": module.from_waveforms,
        "from_features": module.from_features,
        "from_audio_bytes": module.from_audio_bytes,
    })
