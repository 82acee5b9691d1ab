"""Resampling in TensorFlow ops, for the exported model's `from_audio_bytes` signature.

The Beam job resamples with soxr, which a SavedModel cannot carry, and tensorflow-io's
in-graph resampler is too inaccurate (docs: Decoding, and why not tensorflow-io). This is a
windowed-sinc resampler (Kaiser window): each output sample is a weighted sum of the input
samples within `zero_crossings` lobes of the low-pass sinc around its position. Tones up to
0.875 of the lower Nyquist frequency (7 kHz for 16 kHz output) come out within -85 dB of the
ideal result (tests/test_resample.py); above that the two filters' transition bands differ.

The output is computed in blocks of at most `BLOCK_ELEMENTS` output-sample x tap products,
one block at a time, so memory stays a small constant whatever the input rate: the filter
gets longer as the input rate rises (800 taps at 192 kHz), and computing every output's
taps at once took gigabytes on one request (a 1 MHz header: 3.2 GB).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import tensorflow as tf

# Output samples x taps per block: 2^18 float64 products, a few MB per temporary.
BLOCK_ELEMENTS = 2**18
# The largest table of exact per-phase filter weights kept (float32): 16 MB.
TABLE_ELEMENTS = 2**22
# Phases computed for an odd rate's table, between which the others are interpolated.
INTERPOLATED_PHASES = 1024


def _gcd(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    return tf.while_loop(lambda x, y: y > 0, lambda x, y: (y, x % y), (a, b))[0]


def in_blocks(count: tf.Tensor, block: tf.Tensor,
              compute: Callable[[tf.Tensor, tf.Tensor], tf.Tensor],
              shape: tf.TensorShape) -> tf.Tensor:
    """compute(start, stop) over [0, count) in blocks, one at a time, concatenated on axis 0.

    parallel_iterations=1: only one block's temporaries are alive at a time (the ops inside
    still use every core)."""
    num_blocks = (count + block - 1) // block
    _, parts = tf.while_loop(
        lambda index, _: index < num_blocks,
        lambda index, out: (index + 1, out.write(tf.cast(index, tf.int32), compute(
            index * block, tf.minimum((index + 1) * block, count)))),
        (tf.constant(0, tf.int64),
         tf.TensorArray(tf.float32, size=tf.cast(num_blocks, tf.int32), infer_shape=False,
                        element_shape=shape)),
        parallel_iterations=1)
    return parts.concat()


def resample(samples: tf.Tensor, rate_in: tf.Tensor | int, rate_out: int,
             zero_crossings: int = 32, rolloff: float = 0.96,
             kaiser_beta: float = 8.6) -> tf.Tensor:
    """1-D float32 `samples` at `rate_in` Hz (a tensor is fine) -> the same at `rate_out`."""
    samples = tf.convert_to_tensor(samples, tf.float32)
    rate_in = tf.cast(rate_in, tf.int64)
    rate_out_t = tf.constant(rate_out, tf.int64)

    def convert() -> tf.Tensor:
        common = _gcd(rate_in, rate_out_t)
        up, down = rate_out_t // common, rate_in // common
        # Low-pass cutoff in cycles per input sample, below the lower Nyquist frequency.
        ratio_out_in = tf.cast(up, tf.float64) / tf.cast(down, tf.float64)
        cutoff = 0.5 * rolloff * tf.minimum(tf.constant(1.0, tf.float64), ratio_out_in)
        half_width = tf.cast(tf.math.ceil(zero_crossings / (2.0 * cutoff)), tf.int64)
        taps = 2 * half_width
        num_in = tf.size(samples, out_type=tf.int64)
        num_out = (num_in * up + down - 1) // down
        offsets = tf.range(-half_width + 1, half_width + 1, dtype=tf.int64)
        block = tf.maximum(tf.constant(1, tf.int64), BLOCK_ELEMENTS // taps)
        padded = tf.pad(samples, [[half_width, half_width]])
        norm = tf.math.bessel_i0(tf.constant(kaiser_beta, tf.float64))

        def weights_for(fraction: tf.Tensor) -> tf.Tensor:
            """[n] output positions' fractional offsets (in input samples, in [0, 1]) ->
            [n, taps] filter weights."""
            # Distance, in input samples, from each output position to each tap.
            distance = tf.cast(offsets[tf.newaxis, :], tf.float64) - fraction[:, tf.newaxis]
            argument = 2.0 * cutoff * distance
            sinc = tf.where(tf.abs(argument) < 1e-12, tf.ones_like(argument),
                            tf.sin(math.pi * argument) / (math.pi * argument))
            ratio = tf.clip_by_value(distance / tf.cast(half_width, tf.float64), -1.0, 1.0)
            window = tf.math.bessel_i0(kaiser_beta * tf.sqrt(1.0 - tf.square(ratio))) / norm
            return tf.cast(2.0 * cutoff * sinc * window, tf.float32)

        def table_of(count: tf.Tensor, step: tf.Tensor) -> tf.Tensor:
            """Weights at the fractions 0, 1/step, ..., (count - 1)/step: [count, taps]."""
            return in_blocks(count, block, lambda start, stop: weights_for(
                tf.cast(tf.range(start, stop), tf.float64) / tf.cast(step, tf.float64)),
                tf.TensorShape([None, None]))

        # Output n only depends on its phase, n * down mod up. With few phases (every common
        # rate: 1 at 48 kHz, 160 at 44.1 kHz) each phase's weights are computed once. An odd
        # rate has up to 16000 phases: their weights are interpolated linearly between
        # INTERPOLATED_PHASES + 1 computed ones (errors below -100 dB), as polyphase
        # resamplers do, so the cost stays that of a common rate.
        exact = up * taps <= TABLE_ELEMENTS
        table = tf.cond(exact, lambda: table_of(up, up),
                        lambda: table_of(INTERPOLATED_PHASES + 1, INTERPOLATED_PHASES))

        def output_block(start: tf.Tensor, stop: tf.Tensor) -> tf.Tensor:
            positions = tf.range(start, stop, dtype=tf.int64) * down
            base, phase = positions // up, positions % up

            def interpolated() -> tf.Tensor:
                where = tf.cast(phase * INTERPOLATED_PHASES, tf.float64) / tf.cast(up, tf.float64)
                below = tf.cast(tf.floor(where), tf.int64)
                weight = tf.cast(where - tf.floor(where), tf.float32)[:, tf.newaxis]
                return ((1.0 - weight) * tf.gather(table, below)
                        + weight * tf.gather(table, below + 1))

            weights = tf.cond(exact, lambda: tf.gather(table, phase), interpolated)
            indices = base[:, tf.newaxis] + offsets[tf.newaxis, :] + half_width
            return tf.reduce_sum(tf.gather(padded, indices) * weights, axis=1)

        return in_blocks(num_out, block, output_block, tf.TensorShape([None]))

    unchanged = tf.logical_or(tf.equal(rate_in, rate_out_t), tf.equal(tf.size(samples), 0))
    return tf.cond(unchanged, lambda: samples, convert)
