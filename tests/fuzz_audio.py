"""Fuzz cases for the audio decoding paths, run by tests/test_audio_fuzz.py in a child process
(a decoder that aborts would take the test runner with it).

    python tests/fuzz_audio.py SEED COUNT [MODEL]   -> one JSON line per case, then a summary

With MODEL (an exported SavedModel), each case also goes through the model's
`from_audio_bytes` signature beside a valid clip, and the summary reports the peak memory
those calls added (VmHWM reset after loading the model and a first call).
"""

from __future__ import annotations

import io
import json
import struct
import sys

import numpy as np
import soundfile

from spoofdetect.audio import AudioRejected, decode_audio

FORMATS = (("WAV", "PCM_16"), ("WAV", "PCM_U8"), ("WAV", "FLOAT"), ("WAV", "PCM_24"),
           ("WAV", "PCM_32"), ("FLAC", "PCM_16"), ("OGG", "VORBIS"))


def encoded(rng: np.random.Generator) -> bytes:
    container, subtype = FORMATS[rng.integers(len(FORMATS))]
    rate = int(rng.choice([8000, 16000, 22050, 44100]))
    channels = int(rng.integers(1, 3))
    seconds = float(rng.uniform(0.05, 1.0))
    t = np.arange(int(seconds * rate)) / rate
    signal = 0.4 * np.sin(2 * np.pi * rng.uniform(100, 1000) * t)
    samples = np.stack([signal] * channels, axis=1).astype(np.float32)
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, rate, format=container, subtype=subtype)
    return buffer.getvalue()


def wav_with_header(rng: np.random.Generator) -> bytes:
    """A 16-bit PCM WAV whose header lies: data size, channel count, rate or block align."""
    samples = (rng.uniform(-0.5, 0.5, int(rng.integers(10, 20000))) * 32767).astype("<i2")
    data = samples.tobytes()
    channels, rate, bits = 1, 16000, 16
    data_size, riff_size = len(data), 36 + len(data)
    block_align, byte_rate = 2, 32000
    lie = rng.integers(6)
    if lie == 0:
        data_size = int(rng.choice([len(data) + 1, 2**31 - 1, 2**32 - 16, 10 * len(data)]))
    elif lie == 1:
        channels = int(rng.choice([0, 2, 3, 7, 255, 65535]))
    elif lie == 2:
        rate = int(rng.choice([0, 1, 7, 2**31 - 1, 2**32 - 1]))
    elif lie == 3:
        block_align, byte_rate = int(rng.choice([0, 1, 3, 65535])), 0
    elif lie == 4:
        riff_size = int(rng.choice([0, 4, 2**32 - 1]))
    else:
        bits = int(rng.choice([0, 1, 12, 64, 65535]))
    header = (b"RIFF" + struct.pack("<I", riff_size & 0xFFFFFFFF) + b"WAVEfmt "
              + struct.pack("<IHHIIHH", 16, 1, channels, rate & 0xFFFFFFFF,
                            byte_rate & 0xFFFFFFFF, block_align, bits)
              + b"data" + struct.pack("<I", data_size & 0xFFFFFFFF))
    return header + data


def extreme_rate_or_channels(rng: np.random.Generator) -> bytes:
    """A well-formed 16-bit WAV at a rate or channel count at or past the accepted bounds."""
    rate = int(rng.choice([1000, 999, 7999, 96001, 191999, 192000, 192001, 384000, 768000]))
    channels = int(rng.choice([1, 2, 8, 9, 12]))
    frames = int(rng.integers(1, rate // 2))
    samples = rng.uniform(-0.5, 0.5, (frames, channels)).astype(np.float32)
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def case(rng: np.random.Generator, index: int) -> tuple[str, bytes]:
    kind = index % 6
    if kind == 0:
        return "random bytes", rng.bytes(int(rng.integers(0, 4096)))
    if kind == 1:
        data = encoded(rng)
        return "truncated", data[:int(rng.integers(0, len(data)))]
    if kind == 2:
        return "lying WAV header", wav_with_header(rng)
    if kind == 3:
        data = bytearray(encoded(rng))
        for _ in range(int(rng.integers(1, 20))):
            data[int(rng.integers(len(data)))] = int(rng.integers(256))
        return "bytes flipped", bytes(data)
    if kind == 5:
        return "extreme rate or channels", extreme_rate_or_channels(rng)
    data = bytearray(encoded(rng))
    # Huge sizes written into the first length fields of the container's header.
    for offset in (4, 18, 22, 24, 40):
        if offset + 4 <= len(data) and rng.random() < 0.5:
            data[offset:offset + 4] = struct.pack("<I", int(rng.integers(2**31, 2**32)))
    return "huge declared sizes", bytes(data)


class SignatureCheck:
    """Runs each case through the model's byte signature, second in a batch after a valid
    clip, and checks what a server must guarantee: the valid clip's result is unchanged, and
    an item not judged is never labelled (-1, p_fake 1)."""

    def __init__(self, model_dir: str):
        import tensorflow as tf

        self.tf = tf
        self.signature = tf.saved_model.load(model_dir).signatures["from_audio_bytes"]
        t = np.arange(32000) / 16000
        buffer = io.BytesIO()
        soundfile.write(buffer, (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 16000,
                        format="WAV", subtype="PCM_16")
        self.valid = buffer.getvalue()
        self.valid_score = float(self.signature(audio=tf.constant([self.valid]))["score"][0])
        # Peak memory from here on is what the calls add, not the model's own.
        with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
            handle.write("5")
        self.baseline_mb = rss_mb()

    def __call__(self, data: bytes) -> dict[str, object]:
        out = self.signature(audio=self.tf.constant([self.valid, data]))
        status = [value.decode() for value in out["status"].numpy()]
        label, p_fake = out["label"].numpy(), out["p_fake"].numpy()
        assert status[0] == "ok", status
        assert abs(float(out["score"][0]) - self.valid_score) < 1e-4, "neighbour changed"
        if status[1] != "ok":
            assert label[1] == -1 and p_fake[1] == 1.0, (status, label, p_fake)
        else:
            assert label[1] in (0, 1) and np.isfinite(float(out["score"][1]))
        return {"status": status[1]}


def main() -> None:
    seed, count = int(sys.argv[1]), int(sys.argv[2])
    check = SignatureCheck(sys.argv[3]) if len(sys.argv) > 3 else None
    rng = np.random.default_rng(seed)
    for index in range(count):
        kind, data = case(rng, index)
        # Printed before decoding: if the process dies, the last line names the case.
        print(json.dumps({"case": index, "kind": kind, "bytes": len(data)}), flush=True)
        try:
            decoded = decode_audio(data, 16000)
        except AudioRejected as rejection:
            outcome = {"rejected": str(rejection)}
        else:
            assert decoded.samples.dtype == np.float32
            assert np.isfinite(decoded.samples).all()
            outcome = {"decoded_seconds": round(decoded.samples.size / 16000, 3)}
        if check:
            outcome["signature"] = check(data)
        print(json.dumps({"case": index, **outcome}), flush=True)
    summary = {"done": count, "peak_rss_mb": round(peak_rss_mb())}
    if check:
        summary["signature_peak_added_mb"] = round(peak_rss_mb() - check.baseline_mb)
    print(json.dumps(summary), flush=True)


def rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def peak_rss_mb() -> float:
    """This process's own peak resident memory (VmHWM starts afresh at exec, unlike
    getrusage's figure, which can carry the forking parent's)."""
    with open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


if __name__ == "__main__":
    main()
