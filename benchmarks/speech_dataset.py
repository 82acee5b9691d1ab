"""Builds a real-speech spoofing dataset offline, from Debian packages, in the project's layout
(ROOT/{train,dev,eval}/{real,fake}/) with a protocol file (ROOT/protocol.csv: split, label,
attack, speaker, file).

Bona fide speech: the Asterisk core prompts, recorded by voice actors (Allison Smith: US
English and Mexican Spanish; June Wallack: Canadian French), 8 kHz 16-bit, with their
transcripts; CC-BY-SA 3.0 (packages asterisk-core-sounds-{en,es,fr}-wav).

Spoofed speech, made here (attack ids as in the protocol):
  A01 formant TTS: espeak-ng, the prompt's transcript in its language
  A02 diphone TTS: festival with the kal diphone voice (English prompts)
  A03 cluster unit selection TTS: flite's slt voice (English prompts)
  A04 Griffin-Lim: the real clip's STFT magnitude with its phase rebuilt (32 iterations)
  A05 LPC resynthesis: the real clip's order-16 LPC envelope driven by a pulse train at its
      pitch, or noise where unvoiced. Only in eval: the unseen attack.

Like ASVspoof, splits are disjoint by prompt (a stable hash of its name: 60/20/20 %). Speakers
cannot be disjoint: the packages hold two voice actors, both in every split. Both classes go
through the same channel, so that no trivial cue gives the label away: every clip is brought
to 8 kHz (the recordings' band), its leading and trailing silence trimmed by the same rule, its
level set to -26 dBFS RMS, light white noise added (SNR 30-40 dB), and it is written at 16 kHz
as 16-bit PCM. The script then audits trivial cues: how well duration, level, peak and
remaining edge silence alone predict the label (cross-validated logistic regression).

    python benchmarks/speech_dataset.py DIR [--seed 0] [--limit N]

It installs the Debian packages it needs (apt-get, as root) when they are missing, and is
deterministic for a given seed.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import hashlib
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile

import librosa
import numpy as np
import soundfile
import soxr

PACKAGES = {  # what must exist -> the Debian package that provides it
    "/usr/share/asterisk/sounds/en_US_f_Allison": "asterisk-core-sounds-en-wav",
    "/usr/share/asterisk/sounds/es_MX_f_Allison": "asterisk-core-sounds-es-wav",
    "/usr/share/asterisk/sounds/fr_CA_f_June": "asterisk-core-sounds-fr-wav",
    "/usr/bin/espeak-ng": "espeak-ng",
    "/usr/bin/flite": "flite",
    "/usr/bin/text2wave": "festival",
    "/usr/share/festival/voices/english/kal_diphone": "festvox-kallpc16k",
}
LANGUAGES = {  # language -> (recordings, transcript, speaker, espeak-ng voice)
    "en": ("/usr/share/asterisk/sounds/en_US_f_Allison",
           "/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz", "allison", "en-us"),
    "es": ("/usr/share/asterisk/sounds/es_MX_f_Allison",
           "/usr/share/doc/asterisk-core-sounds-es/core-sounds-es.txt.gz", "allison", "es"),
    "fr": ("/usr/share/asterisk/sounds/fr_CA_f_June",
           "/usr/share/doc/asterisk-core-sounds-fr/core-sounds-fr.txt.gz", "june", "fr"),
}
SEEN_ATTACKS = ("A01", "A02", "A03", "A04")
UNSEEN_ATTACK = "A05"
CHANNEL_RATE, OUTPUT_RATE = 8000, 16000
MIN_SECONDS, MAX_SECONDS = 0.8, 8.0


def ensure_packages() -> None:
    missing = sorted({package for path, package in PACKAGES.items() if not os.path.exists(path)})
    if not missing:
        return
    print(f"Installing Debian packages: {' '.join(missing)}", flush=True)
    if os.geteuid() != 0:
        sys.exit(f"error: run as root, or install them first: apt-get install {' '.join(missing)}")
    subprocess.run(["apt-get", "update", "-qq"], check=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=True,
                   env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})


def stable_fraction(text: str) -> float:
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF


def split_of(prompt: str) -> str:
    fraction = stable_fraction("split:" + prompt)
    return "train" if fraction < 0.6 else "dev" if fraction < 0.8 else "eval"


def read_prompts(language: str) -> list[tuple[str, str, str]]:
    """(prompt name, transcript, recording path) of the usable prompts of one language."""
    folder, transcript, _, _ = LANGUAGES[language]
    prompts = []
    seen: set[str] = set()
    with gzip.open(transcript, "rt", encoding="utf-8", errors="replace") as handle:
        for line in handle:
            name, separator, text = line.partition(":")
            text = " ".join(text.replace("[", " ").replace("]", " ").split())
            path = os.path.join(folder, name.strip() + ".wav")
            if not separator or line.startswith(";") or len(text) < 4 or not os.path.exists(
                    path):
                continue
            duration = soundfile.info(path).duration
            # A name listed twice (the Spanish list has two 'digits/0') keeps its first text.
            if MIN_SECONDS <= duration <= MAX_SECONDS and name.strip() not in seen:
                seen.add(name.strip())
                prompts.append((name.strip(), text, path))
    return sorted(prompts)


def run_tts(command: list[str], text: str | None = None) -> tuple[np.ndarray, int]:
    with tempfile.TemporaryDirectory() as scratch:
        output = os.path.join(scratch, "out.wav")
        command = [output if part == "{out}" else part for part in command]
        if text is not None:
            text_file = os.path.join(scratch, "in.txt")
            with open(text_file, "w", encoding="utf-8") as handle:
                handle.write(text)
            command = [text_file if part == "{text}" else part for part in command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)
        samples, rate = soundfile.read(output, dtype="float32", always_2d=True)
    return samples.mean(axis=1), rate


def griffin_lim(samples: np.ndarray, rate: int) -> tuple[np.ndarray, int]:
    magnitude = np.abs(librosa.stft(samples, n_fft=512, hop_length=128))
    rebuilt = librosa.griffinlim(magnitude, n_iter=32, hop_length=128, n_fft=512,
                                 random_state=0, length=len(samples))
    return rebuilt.astype(np.float32), rate


def lpc_resynthesis(samples: np.ndarray, rate: int, seed: int) -> tuple[np.ndarray, int]:
    """Order-16 LPC envelope per 25 ms frame (hop 10 ms), excited by a pulse train at the
    frame's pitch (YIN) where it is periodic and by noise elsewhere, overlap-added."""
    rng = np.random.default_rng(seed)
    frame, hop, order = int(0.025 * rate), int(0.010 * rate), 16
    f0 = librosa.yin(samples, fmin=70, fmax=400, sr=rate, frame_length=4 * frame,
                     hop_length=hop)
    window = np.hanning(frame)
    output = np.zeros(len(samples) + frame)
    phase = 0.0
    for index, start in enumerate(range(0, len(samples) - frame, hop)):
        segment = samples[start:start + frame] * window
        energy = float(np.sqrt(np.mean(segment ** 2)))
        if energy < 1e-5:
            continue
        coefficients = librosa.lpc(segment.astype(np.float64) + 1e-9 * rng.standard_normal(
            frame), order=order)
        pitch = f0[min(index, len(f0) - 1)]
        voiced = 70 < pitch < 400 and _periodicity(segment, rate, pitch) > 0.4
        if voiced:
            excitation = np.zeros(frame)
            period = rate / pitch
            position = phase
            while position < frame:
                excitation[int(position)] = 1.0
                position += period
            phase = position - frame + hop if position - frame + hop >= 0 else 0.0
        else:
            excitation = rng.standard_normal(frame)
        synthesized = _all_pole(coefficients, excitation)
        gain = energy / (np.sqrt(np.mean((synthesized * window) ** 2)) + 1e-9)
        output[start:start + frame] += synthesized * window * gain
    return output[:len(samples)].astype(np.float32), rate


def _periodicity(segment: np.ndarray, rate: int, pitch: float) -> float:
    lag = round(rate / pitch)
    if lag >= len(segment) - 1:
        return 0.0
    a, b = segment[:-lag], segment[lag:]
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-9))


def _all_pole(coefficients: np.ndarray, excitation: np.ndarray) -> np.ndarray:
    from scipy.signal import lfilter

    return lfilter([1.0], coefficients, excitation)


def synthesize(attack: str, language: str, text: str, recording: str,
               seed: int) -> tuple[np.ndarray, int]:
    if attack == "A01":
        return run_tts(["espeak-ng", "-v", LANGUAGES[language][3], "-w", "{out}", "-f",
                        "{text}"], text)
    if attack == "A02":
        return run_tts(["text2wave", "-eval", "(voice_kal_diphone)", "{text}", "-o", "{out}"],
                       text)
    if attack == "A03":
        return run_tts(["flite", "-voice", "slt", "-f", "{text}", "-o", "{out}"], text)
    samples, rate = soundfile.read(recording, dtype="float32")
    if attack == "A04":
        return griffin_lim(samples, rate)
    return lpc_resynthesis(samples, rate, seed)


def channel(samples: np.ndarray, rate: int, rng: np.random.Generator) -> np.ndarray:
    """The same for both classes: 8 kHz band, edge silence trimmed, -26 dBFS RMS, light
    noise, 16 kHz 16-bit."""
    narrow = soxr.resample(samples.astype(np.float32), rate, CHANNEL_RATE, quality="HQ")
    trimmed, _ = librosa.effects.trim(narrow, top_db=35, frame_length=256, hop_length=64)
    level = np.sqrt(np.mean(trimmed ** 2)) + 1e-9
    scaled = trimmed * (10 ** (-26 / 20) / level)
    snr = rng.uniform(30, 40)
    noise = rng.standard_normal(len(scaled)) * 10 ** (-26 / 20) / 10 ** (snr / 20)
    wide = soxr.resample((scaled + noise).astype(np.float32), CHANNEL_RATE, OUTPUT_RATE,
                         quality="HQ")
    return np.clip(wide, -1.0, 1.0)


def attacks_for(language: str, split: str) -> tuple[str, ...]:
    english_only = {"A02", "A03"}
    attacks = [a for a in SEEN_ATTACKS if language == "en" or a not in english_only]
    return (*attacks, UNSEEN_ATTACK) if split == "eval" else tuple(attacks)


def make_pair(job: tuple[str, str, str, str, str, int]) -> list[dict[str, str]]:
    """One prompt -> its bona fide clip and one spoof of it; rows of the protocol."""
    root, language, name, text, recording, seed = job
    split = split_of(name)
    key = stable_fraction(f"{seed}:{language}:{name}")
    rng = np.random.default_rng(int(key * 2**32))
    candidates = attacks_for(language, split)
    first = int(rng.integers(len(candidates)))
    speaker = LANGUAGES[language][2]
    rows = []
    safe = name.replace("/", "_")
    real, rate = soundfile.read(recording, dtype="float32")
    # A synthesiser that fails on a text (festival segfaults on a few) hands the prompt to the
    # next attack in the list, so every prompt still gets exactly one spoof.
    for offset in range(len(candidates)):
        attack = candidates[(first + offset) % len(candidates)]
        try:
            fake, fake_rate = synthesize(attack, language, text, recording, int(key * 2**31))
            break
        except subprocess.SubprocessError as error:
            print(f"  {attack} failed on {language}/{name} ({error}); trying the next attack",
                  flush=True)
    else:
        raise RuntimeError(f"every attack failed on {language}/{name}")
    for label, samples, sample_rate, clip_attack, clip_speaker in (
            ("real", real, rate, "-", speaker),
            ("fake", fake, fake_rate, attack,
             speaker if attack in ("A04", "A05") else {"A01": "espeak-ng", "A02": "kal",
                                                        "A03": "slt"}[attack])):
        relative = f"{split}/{label}/{language}_{safe}" + (
            f"_{attack}" if label == "fake" else "") + ".wav"
        path = os.path.join(root, relative)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        soundfile.write(path, channel(samples, sample_rate, rng), OUTPUT_RATE,
                        subtype="PCM_16")
        rows.append({"split": split, "label": label, "attack": clip_attack,
                     "speaker": clip_speaker, "file": relative})
    return rows


def audit(root: str, rows: list[dict[str, str]]) -> dict[str, float]:
    """How well trivial cues alone predict the label (chance: 0.5)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score

    features, labels = [], []
    for row in rows:
        samples, rate = soundfile.read(os.path.join(root, row["file"]), dtype="float32")
        envelope = np.abs(samples)
        active = np.flatnonzero(envelope > 0.05 * envelope.max())
        edge_silence = (active[0] + len(samples) - 1 - active[-1]) / rate if active.size else 0
        features.append([len(samples) / rate, float(np.sqrt(np.mean(samples ** 2))),
                         float(envelope.max()), edge_silence])
        labels.append(row["label"] == "fake")
    features, labels = np.asarray(features), np.asarray(labels)
    scores = {}
    for index, name in enumerate(("duration", "rms_level", "peak", "edge_silence")):
        scores[name] = float(cross_val_score(LogisticRegression(), features[:, [index]],
                                             labels, cv=5).mean())
    scores["all_four"] = float(cross_val_score(LogisticRegression(max_iter=1000), features,
                                               labels, cv=5).mean())
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("dir")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=0,
                        help="at most this many prompts per language (0: all)")
    args = parser.parse_args()
    ensure_packages()
    if os.path.exists(args.dir):
        shutil.rmtree(args.dir)
    os.makedirs(args.dir)
    jobs = []
    for language in LANGUAGES:
        prompts = read_prompts(language)
        if args.limit:
            prompts = sorted(prompts, key=lambda p: stable_fraction(f"pick:{p[0]}"))[
                :args.limit]
        jobs += [(args.dir, language, name, text, path, args.seed)
                 for name, text, path in prompts]
    print(f"Making {2 * len(jobs)} clips from {len(jobs)} prompts in {args.dir}", flush=True)
    rows = []
    with multiprocessing.Pool() as pool:
        for number, pair in enumerate(pool.imap(make_pair, jobs, chunksize=4), start=1):
            rows += pair
            if number % 100 == 0 or number == len(jobs):
                print(f"  {number}/{len(jobs)} prompts", flush=True)
    with open(os.path.join(args.dir, "protocol.csv"), "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["split", "label", "attack", "speaker", "file"])
        writer.writeheader()
        writer.writerows(rows)
    counts: dict[str, int] = {}
    for row in rows:
        key = f"{row['split']}/{row['label']}/{row['attack']}"
        counts[key] = counts.get(key, 0) + 1
    cues = audit(args.dir, rows)
    report = {"seed": args.seed, "clips": len(rows), "counts": dict(sorted(counts.items())),
              "trivial_cue_accuracy": cues}
    with open(os.path.join(args.dir, "dataset.json"), "w", encoding="utf-8") as handle:
        json.dump(report, handle, indent=1)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
