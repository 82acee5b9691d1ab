"""The exported SavedModel (TF Serving layout) and its three signatures.

    serving_default   waveforms: float32 [batch, samples], 16 kHz mono, any length
    from_features     log_mel:   float32 [batch, rows, frames] (the front end's features)
                      (+ each fused system's map: fusion_features, lfcc)
    from_audio_bytes  audio:     string  [batch], encoded 16-bit PCM WAV files, any rate

Each returns, per item, `status` ("ok", or why the item was not judged), `p_fake`
(probability of spoof), `score` (log-odds, higher = more bona fide, the ASVspoof direction)
and `label` (1 fake, 0 real at p_fake >= 0.5). A countermeasure must fail closed: an item it
cannot judge (see STATUSES) gets label -1, p_fake 1.0 and score -inf, so no threshold on
either number accepts it as bona fide, and the other items of its batch are scored as if it
were not there.

The waveform and byte signatures cut the first segment and run `spectral_features`, the
function the Beam job used, so serving computes the training features. The byte signature
reads the WAV header in the graph and decodes and resamples only the scored window, so the
work per request is bounded by the window, not by what a header declares. The model needs no
project code to load.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import keras
import tensorflow as tf

from spoofdetect.audio import (
    MAX_CHANNELS,
    MAX_SAMPLE_RATE,
    MIN_SAMPLE_RATE,
    RESAMPLER_MARGIN_SECONDS,
)
from spoofdetect.calibration import Calibration
from spoofdetect.config import FeatureConfig
from spoofdetect.examples import LOG_MEL
from spoofdetect.features import spectral_features
from spoofdetect.models import logit_model
from spoofdetect.resample import resample

SIGNATURES = ("serving_default", "from_features", "from_audio_bytes")

# The `status` output: "ok", or why the item was not judged. Index = the code used in-graph.
STATUS_OK = "ok"
STATUSES = (
    STATUS_OK,
    "not_a_wav_file",       # no RIFF/WAVE header with a fmt and a data chunk
    "unsupported_format",   # not 16-bit integer PCM (decode on the client: serving_default)
    "invalid_header",       # channels or sample rate outside the accepted range
    "empty",                # no samples
    "too_long",             # longer than the limit `spoofdetect score` applies
    "non_finite",           # a NaN or infinite sample or feature value
    "silent",               # the scored window's peak is below features.silence_peak
    "wrong_shape",          # features not [rows, frames] of the trained model
)
_CODE = {name: code for code, name in enumerate(STATUSES)}
# Outputs for an item that was not judged: no threshold accepts these as bona fide.
NOT_JUDGED_LABEL, NOT_JUDGED_P_FAKE = -1, 1.0
# Chunks read before the data chunk (LIST, fact, bext...): more is not a WAV file we accept.
_MAX_WAV_CHUNKS = 32
_WAVE_FORMAT_PCM, _WAVE_FORMAT_EXTENSIBLE = 1, 0xFFFE


def first_segment(waveforms: tf.Tensor, config: FeatureConfig) -> tf.Tensor:
    """[batch, any length] -> [batch, segment_samples]: cut, or zero-pad at the end."""
    length = config.segment_samples
    waveforms = waveforms[:, :length]
    padding = length - tf.shape(waveforms)[1]
    return tf.pad(waveforms, [[0, 0], [0, padding]])


def _code(name: str) -> tf.Tensor:
    return tf.constant(_CODE[name], tf.int32)


def _first_failure(checks: list[tuple[tf.Tensor, str]]) -> tf.Tensor:
    """The code of the first check that failed (per item), or STATUS_OK's."""
    status = tf.zeros_like(checks[0][0], tf.int32)
    for failed, name in reversed(checks):
        status = tf.where(failed, _code(name), status)
    return status


def _window_status(segments: tf.Tensor, silence_peak: float) -> tf.Tensor:
    """[batch, samples] -> per-item status of the samples themselves: non-finite, silent."""
    finite = tf.reduce_all(tf.math.is_finite(segments), axis=1)
    peak = tf.reduce_max(tf.abs(tf.where(tf.math.is_finite(segments), segments, 0.0)), axis=1)
    return _first_failure([(~finite, "non_finite"), (peak < silence_peak, "silent")])


class _WavReader:
    """Reads one encoded WAV file's header and first window with string ops only: every
    position is clamped to the bytes present, so no input can make an op fail, and nothing
    is allocated from what the header declares."""

    def __init__(self, encoded: tf.Tensor):
        self.encoded = encoded
        self.length = tf.cast(tf.strings.length(encoded), tf.int64)

    def bytes_at(self, position: tf.Tensor, count: tf.Tensor | int) -> tf.Tensor:
        position = tf.clip_by_value(tf.cast(position, tf.int64), 0, self.length)
        count = tf.clip_by_value(tf.cast(count, tf.int64), 0, self.length - position)
        return tf.strings.substr(self.encoded, tf.cast(position, tf.int32),
                                 tf.cast(count, tf.int32))

    def uint(self, position: tf.Tensor | int, size: int) -> tf.Tensor:
        """A little-endian unsigned integer of `size` bytes (missing bytes read as 0)."""
        raw = tf.io.decode_raw(self.bytes_at(position, size), tf.uint8)
        raw = tf.pad(tf.cast(raw, tf.int64), [[0, size - tf.shape(raw)[0]]])
        return tf.reduce_sum(raw * tf.constant([256**i for i in range(size)], tf.int64))

    def chunks(self) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
        """(fmt offset, fmt size, data offset, data size) of the first such chunks; -1 where
        a chunk is missing."""
        def step(index, position, fmt, fmt_size, data, data_size):
            chunk_id = self.bytes_at(position, 4)
            size = self.uint(position + 4, 4)
            is_fmt = tf.logical_and(tf.equal(chunk_id, "fmt "), fmt < 0)
            is_data = tf.logical_and(tf.equal(chunk_id, "data"), data < 0)
            return (index + 1, position + 8 + size + size % 2,
                    tf.where(is_fmt, position + 8, fmt), tf.where(is_fmt, size, fmt_size),
                    tf.where(is_data, position + 8, data), tf.where(is_data, size, data_size))

        def more(index, position, fmt, fmt_size, data, data_size):
            found = tf.logical_and(fmt >= 0, data >= 0)
            return tf.logical_and(tf.logical_and(index < _MAX_WAV_CHUNKS, ~found),
                                  position + 8 <= self.length)

        missing = tf.constant(-1, tf.int64)
        _, _, fmt, fmt_size, data, data_size = tf.while_loop(
            more, step, (tf.constant(0), tf.constant(12, tf.int64), missing, missing,
                         missing, missing))
        return fmt, fmt_size, data, data_size


def decode_wav_window(encoded: tf.Tensor, config: FeatureConfig, max_seconds: float
                      ) -> tuple[tf.Tensor, tf.Tensor]:
    """One encoded 16-bit PCM WAV file -> (its first segment at config.sample_rate, zero-
    padded; status code). Only the segment plus the resampler's margin is decoded."""
    reader = _WavReader(encoded)
    is_riff = tf.logical_and(tf.equal(reader.bytes_at(0, 4), "RIFF"),
                             tf.equal(reader.bytes_at(8, 4), "WAVE"))
    fmt, fmt_size, data, data_size = reader.chunks()
    format_tag = reader.uint(fmt, 2)
    format_tag = tf.where(tf.equal(format_tag, _WAVE_FORMAT_EXTENSIBLE),
                          reader.uint(fmt + 24, 2), format_tag)  # the sub-format GUID's tag
    channels = reader.uint(fmt + 2, 2)
    sample_rate = reader.uint(fmt + 4, 4)
    bits = reader.uint(fmt + 14, 2)
    # What is really there counts, whatever the header says: a lying data size reads no more.
    data_bytes = tf.maximum(tf.minimum(data_size, reader.length - data), 0)
    frames = data_bytes // tf.maximum(2 * channels, 1)
    valid_rate = tf.logical_and(sample_rate >= MIN_SAMPLE_RATE, sample_rate <= MAX_SAMPLE_RATE)
    status = _first_failure([
        (~is_riff | (fmt < 0) | (data < 0) | (fmt_size < 16), "not_a_wav_file"),
        ((format_tag != _WAVE_FORMAT_PCM) | (bits != 16), "unsupported_format"),
        ((channels < 1) | (channels > MAX_CHANNELS) | ~valid_rate, "invalid_header"),
        (frames <= 0, "empty"),
        (tf.cast(frames, tf.float64) > max_seconds * tf.cast(sample_rate, tf.float64),
         "too_long"),
    ])

    def decode() -> tf.Tensor:
        keep = tf.cast(tf.math.ceil((config.segment_seconds + RESAMPLER_MARGIN_SECONDS)
                                    * tf.cast(sample_rate, tf.float64)), tf.int64)
        keep = tf.minimum(keep, frames)
        raw = tf.io.decode_raw(reader.bytes_at(data, keep * 2 * channels), tf.int16)
        samples = tf.reshape(tf.cast(raw, tf.float32) / 32768.0, [-1, channels])
        mono = resample(tf.reduce_mean(samples, axis=1), sample_rate, config.sample_rate)
        return first_segment(mono[tf.newaxis], config)[0]

    segment = tf.cond(tf.equal(status, _CODE[STATUS_OK]), decode,
                      lambda: tf.zeros([config.segment_samples], tf.float32))
    return tf.ensure_shape(segment, [config.segment_samples]), status


@dataclasses.dataclass(frozen=True)
class ScoredSystem:
    """One classifier the SavedModel scores with: the features it reads (computed by
    `spectral_features` from the same segment; stored in the Examples under `map_key`, which
    is also its from_features input) and the affine map of its log-odds into the exported
    score: the identity for a model of one system, each system's dev standardisation when
    several are fused (their mapped scores are summed)."""

    classifier: keras.Model
    features: FeatureConfig
    map_key: str = LOG_MEL
    standardisation: Calibration = dataclasses.field(default_factory=Calibration)


class ServingModule(tf.Module):
    def __init__(self, systems: Sequence[ScoredSystem], max_seconds: float,
                 calibration: Calibration):
        super().__init__()
        # Segment length and silence are the first system's; fused systems share them
        # (FeatureConfig.fusion_features differs in the front end only).
        self.config = systems[0].features
        self.systems = list(systems)
        self.max_seconds = max_seconds
        self.calibration = calibration
        self.logit_models = [logit_model(system.classifier) for system in systems]
        inputs = [tf.TensorSpec([None, None, None], tf.float32, system.map_key)
                  for system in systems]
        self.from_features = tf.function(self._from_maps, input_signature=inputs)

    def _outputs(self, maps: list[tf.Tensor], status: tf.Tensor) -> dict[str, tf.Tensor]:
        """Scores the items whose status is ok; the others get the not-judged outputs and
        zeros in place of their input, so they cannot change their neighbours' results."""
        judged = tf.equal(status, _CODE[STATUS_OK])
        # The sum of each system's log-odds of bona fide, mapped (identity for one system,
        # the dev standardisation when fused), calibrated to an LLR when the Trainer fitted
        # one.
        fused = 0.0
        for system, logits, features in zip(self.systems, self.logit_models, maps,
                                            strict=True):
            safe = tf.where(judged[:, tf.newaxis, tf.newaxis], features,
                            tf.zeros_like(features))
            logit = tf.reshape(tf.cast(logits(safe, training=False), tf.float32), [-1])
            fused += system.standardisation.scale * -logit + system.standardisation.offset
        score = self.calibration.scale * fused + self.calibration.offset
        p_fake = tf.sigmoid(-score)
        return {
            "status": tf.gather(tf.constant(STATUSES), status),
            "p_fake": tf.where(judged, p_fake, NOT_JUDGED_P_FAKE),
            "score": tf.where(judged, score, float("-inf")),
            "label": tf.where(judged, tf.cast(p_fake >= 0.5, tf.int64), NOT_JUDGED_LABEL),
        }

    def _score_segments(self, segments: tf.Tensor, status: tf.Tensor) -> dict[str, tf.Tensor]:
        status = tf.where(tf.equal(status, _CODE[STATUS_OK]),
                          _window_status(segments, self.config.silence_peak), status)
        safe = tf.where(tf.equal(status, _CODE[STATUS_OK])[:, tf.newaxis], segments, 0.0)
        return self._outputs([spectral_features(safe, system.features)
                              for system in self.systems], status)

    def _from_maps(self, *maps: tf.Tensor) -> dict[str, tf.Tensor]:
        """The from_features signature: one map per system, named by its map_key."""
        batch = tf.shape(maps[0])[0]
        checked, shape_ok = [], tf.constant(True)
        for system, features in zip(self.systems, maps, strict=True):
            expected = tf.constant([system.features.num_rows, system.features.num_frames])
            shape_ok &= tf.reduce_all(tf.equal(tf.shape(features), tf.concat([[batch], expected],
                                                                             0)))
            checked.append((features, expected, system.features))
        # A wrong shape is the whole request's: score zeros of the right shape, judge nothing.
        maps = [tf.ensure_shape(
            tf.cond(shape_ok, lambda features=features: features,
                    lambda expected=expected: tf.zeros(tf.concat([[batch], expected], 0),
                                                       tf.float32)),
            [None, config.num_rows, config.num_frames]) for features, expected, config in checked]
        finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(features), axis=[1, 2])
                                for features in maps], axis=0)
        status = _first_failure([(tf.fill([batch], ~shape_ok), "wrong_shape"),
                                 (~finite, "non_finite")])
        return self._outputs(maps, status)

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32, "waveforms")])
    def from_waveforms(self, waveforms: tf.Tensor) -> dict[str, tf.Tensor]:
        batch = tf.shape(waveforms)[0]
        # The whole waveform must be finite, not only the scored window: NaN anywhere means
        # the client's decoding went wrong.
        finite = tf.reduce_all(tf.math.is_finite(waveforms), axis=1)
        status = _first_failure([(tf.fill([batch], tf.equal(tf.shape(waveforms)[1], 0)), "empty"),
                                 (~finite, "non_finite")])
        return self._score_segments(first_segment(waveforms, self.config), status)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, "audio")])
    def from_audio_bytes(self, audio: tf.Tensor) -> dict[str, tf.Tensor]:
        # One item at a time (parallel_iterations=1): a request's memory is one window's.
        segments, status = tf.map_fn(
            lambda encoded: decode_wav_window(encoded, self.config, self.max_seconds), audio,
            fn_output_signature=(tf.TensorSpec([self.config.segment_samples], tf.float32),
                                 tf.TensorSpec([], tf.int32)),
            parallel_iterations=1)
        return self._score_segments(segments, status)


UNCALIBRATED = Calibration()


def export_fused_model(systems: Sequence[ScoredSystem], path: str, max_seconds: float,
                       calibration: Calibration = UNCALIBRATED) -> None:
    """The SavedModel of `systems` (one, or several fused by their summed mapped scores).
    `max_seconds`: the longest audio `from_audio_bytes` accepts (evaluation.
    max_score_seconds, the limit `spoofdetect score` applies). `calibration`: the affine map
    from the (fused) log-odds to the exported score."""
    module = ServingModule(systems, max_seconds, calibration)
    tf.saved_model.save(module, path, signatures={
        "serving_default": module.from_waveforms,
        "from_features": module.from_features,
        "from_audio_bytes": module.from_audio_bytes,
    })


def export_serving_model(classifier: keras.Model, config: FeatureConfig, path: str,
                         max_seconds: float, calibration: Calibration = UNCALIBRATED) -> None:
    """The SavedModel of one classifier over `config`'s features (export_fused_model)."""
    export_fused_model([ScoredSystem(classifier, config)], path, max_seconds, calibration)
