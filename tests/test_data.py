"""The training input: SpecAugment-style masking, seeded, bounded, and only where asked."""

import numpy as np
import pytest
import tensorflow as tf

from spoofdetect import examples
from spoofdetect.config import FeatureConfig, MaskingConfig, load_config
from spoofdetect.data import example_dataset, mask_spectrograms, record_dataset, split_files
from spoofdetect.errors import UserError
from tests.conftest import ONE_SYSTEM

MASKING = MaskingConfig(freq_masks=2, max_freq_bins=8, time_masks=2, max_time_frames=10)


def test_masks_are_bands_and_spans_of_bounded_width_set_to_zero():
    log_mel = tf.ones([64, 80, 126])
    masked = mask_spectrograms(log_mel, MASKING, tf.constant([3, 0], tf.int64)).numpy()
    for example in masked:
        zero = example == 0
        rows = zero.all(axis=1)  # frequency masks: whole rows
        columns = zero.all(axis=0)  # time masks: whole columns
        # Every zero lies in a masked row or column, and no more than 2 x 8 rows, 2 x 10
        # columns are masked.
        assert np.array_equal(zero, rows[:, None] | columns[None, :])
        assert rows.sum() <= 16 and columns.sum() <= 20
    masked_rows = (masked == 0).all(axis=2).sum(axis=1)
    assert masked_rows.mean() > 2  # masks are drawn, not all of width 0
    assert (masked[masked != 0] == 1).all()


def test_a_frequency_mask_hides_its_bands_in_every_row_block():
    """Multi-resolution and phase maps stack the same 80 bands once per block."""
    log_mel = tf.ones([32, 240, 126])
    freq_only = MaskingConfig(freq_masks=2, max_freq_bins=8)
    masked = mask_spectrograms(log_mel, freq_only, tf.constant([3, 0], tf.int64),
                               blocks=3).numpy()
    rows = (masked == 0).all(axis=2)
    assert rows.any()
    for block in (1, 2):
        np.testing.assert_array_equal(rows[:, block * 80:(block + 1) * 80], rows[:, :80])
    # One block is the seed's masking, draw for draw.
    single = mask_spectrograms(tf.ones([32, 80, 126]), freq_only,
                               tf.constant([3, 0], tf.int64)).numpy()
    np.testing.assert_array_equal((single == 0).all(axis=2), rows[:, :80])


def test_masks_are_the_same_for_the_same_seed_and_differ_otherwise():
    log_mel = tf.random.stateless_normal([8, 80, 126], [1, 2])
    first = mask_spectrograms(log_mel, MASKING, tf.constant([0, 5], tf.int64)).numpy()
    again = mask_spectrograms(log_mel, MASKING, tf.constant([0, 5], tf.int64)).numpy()
    other = mask_spectrograms(log_mel, MASKING, tf.constant([0, 6], tf.int64)).numpy()
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_the_dataset_masks_only_when_asked_and_reproducibly(demo_examples):
    files = split_files(demo_examples, "train")
    features = ONE_SYSTEM

    def first_batch(masking):
        dataset = example_dataset(files, features, 4, shuffle_buffer=16, seed=3,
                                  masking=masking)
        return next(iter(dataset))[examples.LOG_MEL].numpy()

    plain = first_batch(None)
    np.testing.assert_array_equal(plain, first_batch(MaskingConfig()))  # off: unchanged
    masked = first_batch(MASKING)
    np.testing.assert_array_equal(masked, first_batch(MASKING))
    assert ((masked == 0) & (plain != 0)).any()
    np.testing.assert_array_equal(masked[masked != 0], plain[masked != 0])


def test_masking_is_set_per_stage_from_the_command_line():
    config = load_config(None, ["classifier.masking.freq_masks=2", "classifier.head_solver=adam",
                                "gan.masking.time_masks=1"])
    assert config.classifier.masking.freq_masks == 2 and config.gan.masking.time_masks == 1
    assert not config.classifier.masking.time_masks


def test_examples_of_an_earlier_release_are_refused_with_what_to_do(tmp_path):
    """Gzipped float-list records (before the packed format) cannot be parsed: a clear error
    naming the file and the fix, not a parse error in the middle of training."""
    record = examples.make_example(np.ones((80, 126), np.float32), 1, "a.wav", "a", 0, 16000,
                                   4.0)
    for name, options in (("data_tfrecord-0000000.gz", "GZIP"), ("data_tfrecord-0000001", None)):
        folder = tmp_path / ("old" if options else "new") / "Split-train"
        folder.mkdir(parents=True)
        with tf.io.TFRecordWriter(str(folder / name), options=options) as writer:
            writer.write(record)
    assert [r.numpy() for r in record_dataset(split_files(str(tmp_path / "new"), "train"))
            ] == [record]
    with pytest.raises(UserError, match=r"data_tfrecord-0000000\.gz was written by an earlier "
                                        r"release .* extract the features again"):
        example_dataset(split_files(str(tmp_path / "old"), "train"), FeatureConfig(), 4)


def test_filters_keep_one_class_or_the_clips_own_examples(tmp_path):
    features = ONE_SYSTEM
    folder = tmp_path / "Split-train"
    folder.mkdir()
    kept = [(label, augmentation) for label in (0, 1) for augmentation in ("", "gsm", "noise")]
    with tf.io.TFRecordWriter(str(folder / "data_tfrecord-0000000")) as writer:
        for index, (label, augmentation) in enumerate(kept):
            writer.write(examples.make_example(
                np.full((features.num_rows, features.num_frames), index, np.float32), label,
                "a.wav", f"a~{index}", 0, 16000, 4.0, augmentation=augmentation))
    files = split_files(str(tmp_path), "train")

    def read(**filters) -> list[tuple[int, bytes]]:
        batch = next(iter(example_dataset(files, features, 16, **filters)))
        return list(zip(batch[examples.LABEL].numpy().tolist(),
                        batch[examples.AUGMENTATION].numpy().tolist(), strict=True))

    assert read(originals_only=True) == [(0, b""), (1, b"")]
    assert read(label=1) == [(1, b""), (1, b"gsm"), (1, b"noise")]
    assert read(label=0, originals_only=True) == [(0, b"")]
