"""The exported signatures on input they cannot judge: a status per item, never a label for
it, no effect on the other items of the batch, and work bounded by the scored window."""

import io
import struct

import numpy as np
import pytest
import soundfile
import tensorflow as tf

from spoofdetect.config import FeatureConfig, GanConfig
from spoofdetect.export import NOT_JUDGED_LABEL, STATUSES, export_serving_model
from spoofdetect.models import build_critic, classifier_from_critic


@pytest.fixture(scope="module")
def signatures(untrained_export):
    return tf.saved_model.load(untrained_export).signatures


def speech(seconds: float, rate: int, channels: int = 1, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    mono = (0.3 * np.sin(2 * np.pi * 200 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
            + 0.01 * rng.standard_normal(t.size)).astype(np.float32)
    return mono if channels == 1 else np.stack([mono] * channels, axis=1)


def wav(samples: np.ndarray, rate: int, subtype: str = "PCM_16") -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, rate, format="WAV", subtype=subtype)
    return buffer.getvalue()


def with_fmt(data: bytes, rate: int | None = None, channels: int | None = None) -> bytes:
    """`data` (a canonical 44-byte-header WAV) with its header's rate or channels replaced."""
    header = bytearray(data)
    if rate is not None:
        header[24:28] = struct.pack("<I", rate)
    if channels is not None:
        header[22:24] = struct.pack("<H", channels)
    return bytes(header)


def outputs(result: dict) -> dict:
    return {key: value.numpy() for key, value in result.items()}


def assert_not_judged(out: dict, index: int, status: str) -> None:
    assert out["status"][index].decode() == status
    assert out["label"][index] == NOT_JUDGED_LABEL
    assert out["p_fake"][index] == 1.0 and out["score"][index] == -np.inf


def peak_added_mb(call) -> float:
    """Peak resident memory `call()` adds to this process (VmHWM reset before it)."""
    def status(field: str) -> float:
        with open("/proc/self/status", encoding="ascii") as handle:
            return next(int(line.split()[1]) / 1024 for line in handle
                        if line.startswith(field))
    with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
        handle.write("5")
    before = status("VmRSS:")
    call()
    return status("VmHWM:") - before


def test_every_signature_returns_a_status_per_item(signatures):
    for name in ("serving_default", "from_features", "from_audio_bytes"):
        assert "status" in signatures[name].structured_outputs, name


def test_waveforms_silent_nan_inf_or_empty_are_not_judged_nor_change_the_others(signatures):
    good = speech(4.0, 16000)
    batch = np.stack([good, np.zeros_like(good), good, good])
    batch[2, 1000] = np.nan
    batch[3, 63999] = np.inf
    out = outputs(signatures["serving_default"](waveforms=tf.constant(batch)))
    alone = outputs(signatures["serving_default"](waveforms=tf.constant(good[None])))
    assert out["status"][0] == b"ok" and out["label"][0] in (0, 1)
    np.testing.assert_allclose(out["score"][0], alone["score"][0], atol=1e-5)
    assert_not_judged(out, 1, "silent")
    assert_not_judged(out, 2, "non_finite")
    assert_not_judged(out, 3, "non_finite")
    empty = outputs(signatures["serving_default"](waveforms=tf.zeros([2, 0])))
    assert_not_judged(empty, 0, "empty")


def test_features_with_nan_or_the_wrong_shape_are_not_judged(signatures):
    features = np.random.default_rng(0).standard_normal((2, 80, 126)).astype(np.float32)
    alone = outputs(signatures["from_features"](log_mel=tf.constant(features[:1])))
    features[1, 3, 4] = np.nan
    out = outputs(signatures["from_features"](log_mel=tf.constant(features)))
    np.testing.assert_allclose(out["score"][0], alone["score"][0], atol=1e-5)
    assert_not_judged(out, 1, "non_finite")
    wrong = outputs(signatures["from_features"](log_mel=tf.zeros([3, 80, 100])))
    for index in range(3):
        assert_not_judged(wrong, index, "wrong_shape")


def test_audio_bytes_that_cannot_be_judged_get_their_reason(signatures):
    good = wav(speech(4.5, 16000), 16000)
    cases = {
        "not_a_wav_file": b"\x00" * 100,
        "unsupported_format": wav(speech(1.0, 16000), 16000, "PCM_24"),
        "invalid_header": with_fmt(good, rate=2**31 - 1),
        "empty": wav(np.zeros((0, 1), np.float32), 16000),
        "silent": wav(np.zeros(16000, np.float32), 16000),
    }
    cases["invalid_header "] = with_fmt(good, channels=9)
    batch = [good, *cases.values(), good[:44]]  # the last: a header with no samples
    out = outputs(signatures["from_audio_bytes"](audio=tf.constant(batch)))
    alone = outputs(signatures["from_audio_bytes"](audio=tf.constant([good])))
    assert out["status"][0] == b"ok"
    np.testing.assert_allclose(out["score"][0], alone["score"][0], atol=1e-5)
    for index, status in enumerate(cases, start=1):
        assert_not_judged(out, index, status.strip())
    assert_not_judged(out, len(batch) - 1, "empty")
    assert set(out["status"].astype(str)) <= set(STATUSES)


def test_audio_bytes_longer_than_the_limit_are_refused(tmp_path):
    path = str(tmp_path / "model")
    features = FeatureConfig()
    export_serving_model(classifier_from_critic(build_critic(
        features, GanConfig(critic_widths=(8, 16, 32)))), features, path, max_seconds=5.0)
    signature = tf.saved_model.load(path).signatures["from_audio_bytes"]
    out = outputs(signature(audio=tf.constant([wav(speech(6.0, 16000), 16000),
                                               wav(speech(4.0, 16000), 16000)])))
    assert_not_judged(out, 0, "too_long")
    assert out["status"][1] == b"ok"


def test_wav_chunks_before_the_data_and_extensible_headers_are_read(signatures):
    samples = speech(4.5, 22050)
    plain = wav(samples, 22050)
    # A LIST chunk (odd length, padded) between fmt and data, as many editors write.
    listed = plain[:36] + b"LIST" + struct.pack("<I", 5) + b"INFOx\x00" + plain[36:]
    listed = listed[:4] + struct.pack("<I", len(listed) - 8) + listed[8:]
    # WAVE_FORMAT_EXTENSIBLE (tag 0xFFFE, PCM sub-format), stereo: the same mono mix.
    buffer = io.BytesIO()
    soundfile.write(buffer, np.stack([samples, samples], axis=1), 22050, format="WAVEX",
                    subtype="PCM_16")
    extensible = buffer.getvalue()
    assert extensible[20:22] == b"\xfe\xff"
    out = outputs(signatures["from_audio_bytes"](audio=tf.constant([plain, listed,
                                                                    extensible])))
    assert list(out["status"]) == [b"ok"] * 3
    np.testing.assert_allclose(out["score"], np.repeat(out["score"][0], 3), atol=1e-5)


def test_memory_per_request_is_bounded_by_the_scored_window_not_the_header(signatures):
    signature = signatures["from_audio_bytes"]
    signature(audio=tf.constant([wav(speech(1.0, 44100), 44100)]))  # first call's set-up
    # A real 10 s, 96 kHz clip: about 1 GB before the window was bounded.
    clip = wav(speech(10.0, 96000), 96000)
    status = []
    added = peak_added_mb(lambda: status.append(signature(audio=tf.constant([clip]))["status"]))
    assert status[0].numpy()[0] == b"ok"
    assert added < 150
    # 2 MB declaring 1 MHz: 3.2 GB before; now refused from its header.
    lying = with_fmt(wav(speech(60.0, 16000), 16000), rate=1_000_000)
    out = []
    added = peak_added_mb(lambda: out.append(outputs(signature(audio=tf.constant([lying])))))
    assert_not_judged(out[0], 0, "invalid_header")
    assert added < 50
