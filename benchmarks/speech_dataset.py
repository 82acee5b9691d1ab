"""Builds the real-speech spoofing benchmark offline, from Debian packages: a dataset in the
project's layout (ROOT/{train,dev,eval}/{real,fake}/, ROOT/protocol.csv: split, label,
attack, speaker, file) and, with --cross, a second test set of other speakers, other attack
families and another channel (CROSS/eval/{real,fake}/, CROSS/protocol.csv), never used for
training or model selection: the cross-dataset evaluation of benchmarks/quality.py. With
--room, a third test set in the same layout: the cross set's speakers again, three more attack
families absent from both, and a channel that no training clip and no augmentation has, a
reverberant room; it is for checking, after the fact, what the cross set alone decided.

Bona fide speech: Asterisk voice prompts recorded by eight speakers in five languages, with
their transcripts (CC-BY-SA 3.0 and GPL prompt packages; see each package's copyright file):

  split  speaker                      package
  train  Allison Smith, US English    asterisk-core-sounds-en-wav
  train  Allison Smith, Mexican Sp.   asterisk-core-sounds-es-wav
  train  Carlo, Italian (male)        asterisk-core-sounds-it-wav
  dev    June Wallack, Canadian Fr.   asterisk-core-sounds-fr-wav
  eval   IVR voice, Russian           asterisk-core-sounds-ru-wav
  cross  Menardi, Italian             asterisk-prompt-it-menardi-wav
  cross  Armelle Desjardins, French   asterisk-prompt-fr-armelle (GSM)
  cross  Colombian Spanish voice      asterisk-prompt-es-co (GSM)

Speakers are disjoint across splits and between the dataset and the cross set.

Spoofed speech, made here (attack ids as in the protocol; one spoof per bona fide prompt):
  A01 formant TTS: espeak-ng, the prompt's transcript in its language
  A02 diphone TTS: festival diphone voices (kal, English; lp, Italian)
  A03 corpus-based TTS: flite's slt (English), festival's msu_ru_nsh clunits (Russian)
  A04 Griffin-Lim: the real clip's STFT magnitude with its phase rebuilt (32 iterations)
  A05 LPC resynthesis: the real clip's order-16 LPC envelope driven by a pulse train at its
      pitch, or noise where unvoiced. Only in eval: the unseen attack.
  Cross set only, families that appear nowhere in the dataset:
  B01 phase-vocoder conversion: the real clip pitch-shifted 3-5 semitones up or down
  B02 random-phase vocoder: the real clip's STFT magnitude with random phase, no iteration
  B03 Klatt formant TTS: espeak-ng's Klatt synthesiser, the transcript in its language
  Room set only, families that appear in neither:
  C01 HMM-based statistical parametric TTS: festival's HTS voice cmu_us_slt_arctic_hts
      (MLSA vocoder), the prompt's English transcript
  C02 harmonic-plus-noise vocoder conversion: the real clip resynthesised as a sum of
      harmonics of its pitch, moved 3-6 semitones, over its cepstral envelope warped 8-15 %
      the same way (noise through the envelope where unvoiced)
  C03 frequency-warping conversion: the real clip's STFT magnitude warped 8-15 % along
      frequency, up or down, over its own phase

Both classes of a set go through the same channel, so that no trivial cue gives the label
away: the dataset's is the 8 kHz band, edge silence trimmed, -26 dBFS RMS, light white noise
(SNR 30-40 dB); the cross set's is a GSM 06.10 round trip (the mobile codec, as two of its
speakers were recorded), edge silence trimmed, -26 dBFS; the room set's is a room's
reverberation (an exponentially decaying noise response, RT60 0.25-0.7 s, 0-6 dB
direct-to-reverberant), the 8 kHz band, edge silence trimmed, -26 dBFS and pink noise at
20-30 dB SNR. All are written at 16 kHz, 16-bit.
The script audits trivial cues: how well duration, level, peak and remaining edge silence
alone predict the label (cross-validated logistic regression).

    python benchmarks/speech_dataset.py [DIR] [--cross CROSS_DIR] [--room ROOM_DIR] [--seed 0]
        [--limit N] [--channel dataset|cross|room]

It installs the Debian packages it needs (apt-get, as root) when they are missing, and is
deterministic for a given seed.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import csv
import dataclasses
import functools
import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile

import librosa
import numpy as np
import soundfile
import soxr

from spoofdetect.augment import add_at_snr

HERE = os.path.dirname(os.path.abspath(__file__))
# The prompt packages are unpacked here, each into its own folder, not installed: two of
# them conflict with the core packages that hold the transcripts.
UNPACKED = os.path.join(HERE, "_data", "debian")
SOUNDS = "usr/share/asterisk/sounds"
TOOLS = {  # what must exist -> the Debian package that provides it (installed)
    "/usr/bin/espeak-ng": "espeak-ng",
    "/usr/bin/flite": "flite",
    "/usr/bin/text2wave": "festival",
    "/usr/share/festival/voices/english/kal_diphone": "festvox-kallpc16k",
    "/usr/share/festival/voices/italian/lp_diphone": "festvox-italp16k",
    "/usr/share/festival/voices/russian/msu_ru_nsh_clunits": "festvox-ru",
    "/usr/share/festival/voices/us/cmu_us_slt_arctic_hts": "festvox-us-slt-hts",
}
LANGUAGE_CODES = ("en", "es", "fr", "it", "ru")


def unpacked(package: str, path: str) -> str:
    return os.path.join(UNPACKED, package, path)


# The core prompts' transcripts, by language; prompts of other packages share their names.
TRANSCRIPTS = {language: unpacked(f"asterisk-core-sounds-{language}",
                                  f"usr/share/doc/asterisk-core-sounds-{language}/"
                                  f"core-sounds-{language}.txt.gz")
               for language in LANGUAGE_CODES}
ESPEAK_VOICES = {"en": "en-us", "es": "es", "fr": "fr", "it": "it", "ru": "ru"}


@dataclasses.dataclass(frozen=True)
class Speaker:
    name: str
    language: str
    package: str  # the Debian package of the recordings
    folder: str  # inside the package
    split: str  # train, dev, eval; 'cross' for the cross set (its eval)
    gsm: bool = False  # raw GSM 06.10 files (.gsm) instead of WAV

    @property
    def path(self) -> str:
        return unpacked(self.package, self.folder)


SPEAKERS = (
    Speaker("allison_en", "en", "asterisk-core-sounds-en-wav", f"{SOUNDS}/en_US_f_Allison",
            "train"),
    Speaker("allison_es", "es", "asterisk-core-sounds-es-wav", f"{SOUNDS}/es_MX_f_Allison",
            "train"),
    Speaker("carlo_it", "it", "asterisk-core-sounds-it-wav", f"{SOUNDS}/it_IT_m_Carlo",
            "train"),
    Speaker("june_fr", "fr", "asterisk-core-sounds-fr-wav", f"{SOUNDS}/fr_CA_f_June", "dev"),
    Speaker("ivr_ru", "ru", "asterisk-core-sounds-ru-wav", f"{SOUNDS}/ru_RU_f_IvrvoiceRU",
            "eval"),
    Speaker("menardi_it", "it", "asterisk-prompt-it-menardi-wav", f"{SOUNDS}/it_IT_f_Menardi",
            "cross"),
    Speaker("armelle_fr", "fr", "asterisk-prompt-fr-armelle", f"{SOUNDS}/fr", "cross",
            gsm=True),
    Speaker("colombia_es", "es", "asterisk-prompt-es-co", f"{SOUNDS}/es", "cross", gsm=True),
)
DATA_PACKAGES = sorted({speaker.package for speaker in SPEAKERS}
                       | {f"asterisk-core-sounds-{language}" for language in LANGUAGE_CODES})
# TTS attacks by language (what the Debian packages can say), signal attacks for all.
TTS_ATTACKS = {"en": ("A01", "A02", "A03"), "es": ("A01",), "fr": ("A01",),
               "it": ("A01", "A02"), "ru": ("A01", "A03")}
SIGNAL_ATTACKS = ("A04",)
UNSEEN_ATTACK = "A05"
CROSS_ATTACKS = ("B01", "B02", "B03")
ROOM_ATTACKS = ("C01", "C02", "C03")
# The test sets this script builds, by name: the dataset, the cross set, the room set.
DATASET, CROSS, ROOM = "dataset", "cross", "room"
CHANNEL_RATE, OUTPUT_RATE = 8000, 16000
MIN_SECONDS, MAX_SECONDS = 0.8, 8.0


def ensure_packages() -> None:
    """Installs the synthesisers and voices; downloads and unpacks the prompt packages."""
    missing = sorted({package for path, package in TOOLS.items() if not os.path.exists(path)})
    to_unpack = [package for package in DATA_PACKAGES
                 if not os.path.isdir(os.path.join(UNPACKED, package))]
    if not missing and not to_unpack:
        return
    if os.geteuid() != 0 and missing:
        sys.exit(f"error: run as root, or install them first: apt-get install {' '.join(missing)}")
    subprocess.run(["apt-get", "update", "-qq"], check=True)
    if missing:
        print(f"Installing Debian packages: {' '.join(missing)}", flush=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=True,
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    for package in to_unpack:
        print(f"Unpacking {package}", flush=True)
        with tempfile.TemporaryDirectory() as scratch:
            # As root, apt's sandbox user cannot write the scratch folder; it warns and goes on.
            subprocess.run(["apt-get", "download", "-qq", package], check=True, cwd=scratch,
                           stderr=subprocess.DEVNULL)
            [deb] = [name for name in os.listdir(scratch) if name.endswith(".deb")]
            target = os.path.join(UNPACKED, package)
            shutil.rmtree(target + ".partial", ignore_errors=True)
            os.makedirs(target + ".partial")
            subprocess.run(["dpkg-deb", "-x", os.path.join(scratch, deb), target + ".partial"],
                           check=True)
            os.replace(target + ".partial", target)


def stable_fraction(text: str) -> float:
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF


@functools.cache
def read_transcript(language: str) -> dict[str, str]:
    """Prompt name -> text, from the language's core-sounds transcript (read once per
    process: every HTS spoof looks up its English text here)."""
    texts: dict[str, str] = {}
    with gzip.open(TRANSCRIPTS[language], "rt", encoding="utf-8-sig", errors="replace") as f:
        for line in f:
            name, separator, text = line.partition(":")
            text = " ".join(text.replace("[", " ").replace("]", " ").split())
            # A name listed twice (the Spanish list has two 'digits/0') keeps its first text.
            if separator and not line.startswith(";") and len(text) >= 4:
                texts.setdefault(name.strip(), text)
    return texts


def read_recording(path: str, gsm: bool) -> tuple[np.ndarray, int]:
    if gsm:
        return soundfile.read(path, format="RAW", subtype="GSM610", samplerate=8000,
                              channels=1, dtype="float32")
    samples, rate = soundfile.read(path, dtype="float32", always_2d=True)
    return samples.mean(axis=1), rate


def read_prompts(speaker: Speaker) -> list[tuple[str, str, str]]:
    """(prompt name, transcript, recording path) of the speaker's usable prompts: those with a
    transcript and a length between MIN_SECONDS and MAX_SECONDS."""
    texts = read_transcript(speaker.language)
    extension = ".gsm" if speaker.gsm else ".wav"
    prompts = []
    for name, text in texts.items():
        path = os.path.join(speaker.path, name + extension)
        if not os.path.isfile(path):
            continue
        samples, rate = read_recording(path, speaker.gsm)
        if MIN_SECONDS <= len(samples) / rate <= MAX_SECONDS:
            prompts.append((name, text, path))
    return sorted(prompts)


def run_tts(command: list[str], text: str | None = None,
            encoding: str = "utf-8") -> tuple[np.ndarray, int]:
    """Runs a synthesiser on `text`; one that exits 0 without audio (festival does, on text
    it cannot read) is a SubprocessError like one that fails."""
    with tempfile.TemporaryDirectory() as scratch:
        output = os.path.join(scratch, "out.wav")
        command = [output if part == "{out}" else part for part in command]
        if text is not None:
            text_file = os.path.join(scratch, "in.txt")
            with open(text_file, "w", encoding=encoding, errors="replace") as handle:
                handle.write(text)
            command = [text_file if part == "{text}" else part for part in command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)
        try:
            samples, rate = soundfile.read(output, dtype="float32", always_2d=True)
        except soundfile.LibsndfileError as error:
            raise subprocess.SubprocessError(f"{command[0]} wrote no audio") from error
    if samples.shape[0] < rate * 0.2:
        raise subprocess.SubprocessError(f"{command[0]} wrote under 0.2 s of audio")
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


def random_phase(samples: np.ndarray, rate: int, seed: int) -> tuple[np.ndarray, int]:
    """The STFT magnitude with uniformly random phase, inverted once (no iteration)."""
    rng = np.random.default_rng(seed)
    magnitude = np.abs(librosa.stft(samples, n_fft=512, hop_length=128))
    phase = np.exp(2j * np.pi * rng.random(magnitude.shape))
    rebuilt = librosa.istft(magnitude * phase, hop_length=128, n_fft=512, length=len(samples))
    return rebuilt.astype(np.float32), rate


def pitch_converted(samples: np.ndarray, rate: int, seed: int) -> tuple[np.ndarray, int]:
    """Pitch-shifted by 3-5 semitones, up or down, with librosa's phase vocoder."""
    rng = np.random.default_rng(seed)
    steps = rng.uniform(3.0, 5.0) * rng.choice([-1.0, 1.0])
    return librosa.effects.pitch_shift(samples, sr=rate, n_steps=steps).astype(np.float32), rate


def _conversion_direction(rng: np.random.Generator) -> tuple[float, float]:
    """A conversion's pitch ratio (3-6 semitones) and formant warp (8-15 %), both up or both
    down, as a voice moves between speakers of different vocal-tract lengths."""
    direction = rng.choice([-1.0, 1.0])
    return (2 ** (direction * rng.uniform(3.0, 6.0) / 12),
            (1 + rng.uniform(0.08, 0.15)) ** direction)


def _warped_bins(envelope: np.ndarray, warp: float) -> np.ndarray:
    """Each frame's spectrum (bins x frames) moved `warp` times up in frequency: bin f takes
    the value at f / warp."""
    bins = np.arange(envelope.shape[0])
    return np.stack([np.interp(bins / warp, bins, frame, right=0.0) for frame in envelope.T],
                    axis=1)


def harmonic_conversion(samples: np.ndarray, rate: int, seed: int) -> tuple[np.ndarray, int]:
    """A harmonic-plus-noise vocoder: per 5 ms frame, the pitch (YIN), the power and the
    cepstrally smoothed spectral envelope; resynthesised as harmonics of the pitch times the
    ratio, with phases that follow the pitch track and amplitudes read off the warped
    envelope, and, where unvoiced, white noise through the warped envelope; each frame at
    the clip's power there."""
    rng = np.random.default_rng(seed)
    pitch_ratio, warp = _conversion_direction(rng)
    samples = samples.astype(np.float64)
    hop, n_fft = rate // 200, 2 ** int(np.ceil(np.log2(0.04 * rate)))
    window = np.hanning(n_fft + 1)[:-1]
    spectrum = np.abs(librosa.stft(samples, n_fft=n_fft, hop_length=hop, window=window))
    # Cepstral smoothing below 2.5 ms quefrency: the vocal tract, not the harmonics.
    cepstrum = np.fft.irfft(np.log(spectrum + 1e-7), axis=0)
    cepstrum[int(0.0025 * rate):-int(0.0025 * rate)] = 0.0
    envelope = _warped_bins(np.exp(np.fft.rfft(cepstrum, axis=0).real), warp)
    frames = envelope.shape[1]
    windowed = librosa.util.frame(np.pad(samples, n_fft // 2), frame_length=n_fft,
                                  hop_length=hop)[:, :frames] * window[:, None]
    power = np.mean(windowed ** 2, axis=0) / np.mean(window ** 2)
    f0 = librosa.yin(samples, fmin=70, fmax=400, sr=rate, frame_length=n_fft,
                     hop_length=hop)[:frames]
    voiced = np.array([70 < pitch < 400 and _periodicity(windowed[:, i], rate, pitch) > 0.5
                       for i, pitch in enumerate(f0)])
    new_f0 = np.where(voiced, f0, 0.0) * pitch_ratio
    # Harmonic amplitudes (harmonics x frames) off the envelope, scaled to the frame's power.
    numbers = np.arange(1, int(rate / 2 / (70 * pitch_ratio)) + 1)[:, None]
    frequency = numbers * new_f0
    bins = np.clip(np.round(frequency * n_fft / rate), 0, envelope.shape[0] - 1).astype(int)
    amplitude = np.where(voiced & (frequency < 0.475 * rate),
                         envelope[bins, np.arange(frames)], 0.0)
    amplitude *= np.sqrt(power / np.maximum(np.sum(amplitude ** 2, axis=0) / 2, 1e-12))
    positions = np.arange(len(samples)) / hop
    phase = 2 * np.pi * np.cumsum(np.interp(positions, np.arange(frames), new_f0)) / rate
    harmonics = sum(np.interp(positions, np.arange(frames), row) * np.cos(k * phase)
                    for k, row in enumerate(amplitude, start=1))
    # Unvoiced: white noise's STFT through the envelope, each frame's energy the clip's
    # (white noise of power P has an expected one-sided STFT energy of P sum(w^2) n_fft / 2).
    noise = librosa.stft(rng.standard_normal(len(samples)), n_fft=n_fft, hop_length=hop,
                         window=window)[:, :frames] * envelope * ~voiced
    noise *= np.sqrt(power * np.sum(window ** 2) * n_fft / 2
                     / np.maximum(np.sum(np.abs(noise) ** 2, axis=0), 1e-12))
    unvoiced = librosa.istft(noise, hop_length=hop, window=window, length=len(samples))
    return (harmonics + unvoiced).astype(np.float32), rate


def frequency_warped(samples: np.ndarray, rate: int, seed: int) -> tuple[np.ndarray, int]:
    """The STFT magnitude warped along frequency (formants and harmonics together) over the
    clip's own phase, inverted once."""
    _, warp = _conversion_direction(np.random.default_rng(seed))
    stft = librosa.stft(samples, n_fft=512, hop_length=128)
    warped = _warped_bins(np.abs(stft), warp) * np.exp(1j * np.angle(stft))
    rebuilt = librosa.istft(warped, hop_length=128, n_fft=512, length=len(samples))
    return rebuilt.astype(np.float32), rate


def festival(voice: str, text: str, encoding: str = "utf-8") -> tuple[np.ndarray, int]:
    return run_tts(["text2wave", "-eval", f"(voice_{voice})", "{text}", "-o", "{out}"], text,
                   encoding)


def synthesize(attack: str, speaker: Speaker, text: str, recording: str,
               seed: int) -> tuple[np.ndarray, int]:
    language = speaker.language
    if attack == "A01":
        return run_tts(["espeak-ng", "-v", ESPEAK_VOICES[language], "-w", "{out}", "-f",
                        "{text}"], text)
    if attack == "A02":
        # Festival's Italian letter-to-sound rules read ISO 8859-1, not UTF-8.
        return festival({"en": "kal_diphone", "it": "lp_diphone"}[language], text,
                        "latin-1" if language == "it" else "utf-8")
    if attack == "A03":
        if language == "ru":
            return festival("msu_ru_nsh_clunits", text)
        return run_tts(["flite", "-voice", "slt", "-f", "{text}", "-o", "{out}"], text)
    if attack == "B03":
        return run_tts(["espeak-ng", "-v", ESPEAK_VOICES[language] + "+klatt", "-w", "{out}",
                        "-f", "{text}"], text)
    if attack == "C01":
        return festival("cmu_us_slt_arctic_hts", english_text(speaker, recording, text))
    samples, rate = read_recording(recording, speaker.gsm)
    if attack == "A04":
        return griffin_lim(samples, rate)
    if attack == "B01":
        return pitch_converted(samples, rate, seed)
    if attack == "B02":
        return random_phase(samples, rate, seed)
    if attack == "C02":
        return harmonic_conversion(samples, rate, seed)
    if attack == "C03":
        return frequency_warped(samples, rate, seed)
    return lpc_resynthesis(samples, rate, seed)


def english_text(speaker: Speaker, recording: str, text: str) -> str:
    """The English transcript of the prompt (prompts share their names across languages),
    for the English-only HTS voice; the prompt's own text where English has none."""
    name = os.path.splitext(os.path.relpath(recording, speaker.path))[0]
    return read_transcript("en").get(name, text)


def _trimmed_at_level(samples: np.ndarray) -> np.ndarray:
    trimmed, _ = librosa.effects.trim(samples, top_db=35, frame_length=256, hop_length=64)
    level = np.sqrt(np.mean(trimmed ** 2)) + 1e-9
    return trimmed * (10 ** (-26 / 20) / level)


def channel(samples: np.ndarray, rate: int, rng: np.random.Generator) -> np.ndarray:
    """The dataset's, the same for both classes: 8 kHz band, edge silence trimmed, -26 dBFS
    RMS, light noise, 16 kHz 16-bit."""
    scaled = _trimmed_at_level(soxr.resample(samples.astype(np.float32), rate, CHANNEL_RATE,
                                             quality="HQ"))
    snr = rng.uniform(30, 40)
    noise = rng.standard_normal(len(scaled)) * 10 ** (-26 / 20) / 10 ** (snr / 20)
    wide = soxr.resample((scaled + noise).astype(np.float32), CHANNEL_RATE, OUTPUT_RATE,
                         quality="HQ")
    return np.clip(wide, -1.0, 1.0)


def gsm_channel(samples: np.ndarray, rate: int, rng: np.random.Generator) -> np.ndarray:
    """The cross set's, the same for both classes: a GSM 06.10 round trip at 8 kHz, edge
    silence trimmed, -26 dBFS RMS, 16 kHz 16-bit."""
    narrow = soxr.resample(samples.astype(np.float32), rate, CHANNEL_RATE, quality="HQ")
    buffer = io.BytesIO()
    soundfile.write(buffer, np.clip(narrow, -1.0, 1.0), CHANNEL_RATE, format="WAV",
                    subtype="GSM610")
    coded, _ = soundfile.read(io.BytesIO(buffer.getvalue()), dtype="float32")
    wide = soxr.resample(_trimmed_at_level(coded).astype(np.float32), CHANNEL_RATE,
                         OUTPUT_RATE, quality="HQ")
    return np.clip(wide, -1.0, 1.0)


def room_response(rng: np.random.Generator, rate: int = CHANNEL_RATE) -> np.ndarray:
    """A room's impulse response: the direct sound, then at once an exponentially decaying
    noise tail, broadband, RT60 (60 dB of decay) 0.25-0.7 s, its energy 0-6 dB below the
    direct sound's."""
    reverberation_time = rng.uniform(0.25, 0.7)
    time = np.arange(1, int(reverberation_time * rate)) / rate
    tail = rng.standard_normal(len(time)) * np.exp(-3 * np.log(10) * time / reverberation_time)
    tail *= 10 ** (-rng.uniform(0.0, 6.0) / 20) / np.sqrt(np.sum(tail ** 2))
    return np.concatenate([[1.0], tail])


def room_channel(samples: np.ndarray, rate: int, rng: np.random.Generator) -> np.ndarray:
    """The room set's, the same for both classes: a room's reverberation (room_response), the
    8 kHz band, edge silence trimmed, -26 dBFS RMS, pink noise at 20-30 dB SNR, 16 kHz
    16-bit."""
    from scipy.signal import fftconvolve

    narrow = soxr.resample(samples.astype(np.float32), rate, CHANNEL_RATE, quality="HQ")
    response = room_response(rng)
    scaled = _trimmed_at_level(fftconvolve(narrow, response)[:len(narrow) + len(response) - 1])
    white = np.fft.rfft(rng.standard_normal(len(scaled)))
    pink = np.fft.irfft(white / np.sqrt(np.maximum(np.arange(len(white)), 1)), len(scaled))
    noisy = add_at_snr(scaled, pink, rng.uniform(20, 30))
    wide = soxr.resample(noisy.astype(np.float32), CHANNEL_RATE, OUTPUT_RATE, quality="HQ")
    return np.clip(wide, -1.0, 1.0)


# Each test set's channel, the same for both classes.
CHANNELS = {DATASET: channel, CROSS: gsm_channel, ROOM: room_channel}


def attacks_for(speaker: Speaker, test_set: str) -> tuple[str, ...]:
    if test_set != DATASET:
        return {CROSS: CROSS_ATTACKS, ROOM: ROOM_ATTACKS}[test_set]
    attacks = (*TTS_ATTACKS[speaker.language], *SIGNAL_ATTACKS)
    return (*attacks, UNSEEN_ATTACK) if speaker.split == "eval" else attacks


# Who speaks in a spoof: the TTS voice, or the bona fide speaker for signal attacks.
TTS_VOICES = {("A01", "*"): "espeak-ng", ("A02", "en"): "kal", ("A02", "it"): "lp",
              ("A03", "en"): "slt", ("A03", "ru"): "msu_ru_nsh", ("B03", "*"): "espeak-klatt",
              ("C01", "*"): "slt-hts"}


def voice_of(attack: str, speaker: Speaker) -> str:
    return TTS_VOICES.get((attack, speaker.language), TTS_VOICES.get((attack, "*"),
                                                                    speaker.name))


def make_pair(job: tuple[str, str, str, Speaker, str, str, str, int]) -> list[dict[str, str]]:
    """One prompt -> its bona fide clip and one spoof of it, through the channel of the test
    set named `channel_of`; rows of the protocol."""
    root, test_set, channel_of, speaker, name, text, recording, seed = job
    split = speaker.split if test_set == DATASET else "eval"
    # The room set reuses the cross set's prompts; its own key draws other attacks and rooms
    # for them (the dataset's and the cross set's keys are as they were built).
    key = stable_fraction(f"{seed}:{speaker.name}:{name}" + (":room" if test_set == ROOM else ""))
    rng = np.random.default_rng(int(key * 2**32))
    candidates = attacks_for(speaker, test_set)
    first = int(rng.integers(len(candidates)))
    rows = []
    safe = name.replace("/", "_")
    real, rate = read_recording(recording, speaker.gsm)
    # A synthesiser that fails on a text (festival segfaults on a few) hands the prompt to the
    # next attack in the list, so every prompt still gets exactly one spoof.
    for offset in range(len(candidates)):
        attack = candidates[(first + offset) % len(candidates)]
        try:
            fake, fake_rate = synthesize(attack, speaker, text, recording, int(key * 2**31))
            break
        except subprocess.SubprocessError as error:
            print(f"  {attack} failed on {speaker.name}/{name} ({error}); trying the next "
                  "attack", flush=True)
    else:
        raise RuntimeError(f"every attack failed on {speaker.name}/{name}")
    through = CHANNELS[channel_of]
    for label, samples, sample_rate, clip_attack, clip_speaker in (
            ("real", real, rate, "-", speaker.name),
            ("fake", fake, fake_rate, attack, voice_of(attack, speaker))):
        relative = f"{split}/{label}/{speaker.name}_{safe}" + (
            f"_{attack}" if label == "fake" else "") + ".wav"
        path = os.path.join(root, relative)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        soundfile.write(path, through(samples, sample_rate, rng), OUTPUT_RATE,
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


def compile_signal_attacks() -> None:
    """Runs every signal attack and the channels once, in this process, before the workers
    fork. librosa's kernels are numba functions cached on disk; workers that compile and
    write that cache at the same time can corrupt it and then segfault reading it. Compiled
    here, the workers inherit the kernels and never touch the cache."""
    rng = np.random.default_rng(0)
    noise = (0.1 * rng.standard_normal(OUTPUT_RATE)).astype(np.float32)
    for attack in (griffin_lim, lambda s, r: lpc_resynthesis(s, r, 0),
                   lambda s, r: random_phase(s, r, 0), lambda s, r: pitch_converted(s, r, 0),
                   lambda s, r: harmonic_conversion(s, r, 0),
                   lambda s, r: frequency_warped(s, r, 0)):
        samples, rate = attack(noise, OUTPUT_RATE)
        for through in CHANNELS.values():
            through(samples, rate, rng)


def build(root: str, test_set: str, seed: int, limit: int,
          channel_of: str | None = None) -> dict[str, object]:
    """Writes the clips and protocol.csv of `test_set` under `root`, through its own channel
    or that of the test set `channel_of`; returns the report."""
    speakers = [speaker for speaker in SPEAKERS
                if (speaker.split == "cross") == (test_set != DATASET)]
    if os.path.exists(root):
        shutil.rmtree(root)
    os.makedirs(root)
    jobs = []
    for speaker in speakers:
        prompts = read_prompts(speaker)
        if limit:
            prompts = sorted(prompts, key=lambda p: stable_fraction(f"pick:{p[0]}"))[:limit]
        jobs += [(root, test_set, channel_of or test_set, speaker, name, text, path, seed)
                 for name, text, path in prompts]
    print(f"Making {2 * len(jobs)} clips from {len(jobs)} prompts in {root}", flush=True)
    rows = []
    # Not multiprocessing.Pool: when a worker dies (a segfault in a native library), Pool
    # replaces it and waits forever for the lost job; this executor raises BrokenProcessPool.
    try:
        with concurrent.futures.ProcessPoolExecutor() as pool:
            for number, pair in enumerate(pool.map(make_pair, jobs, chunksize=4), start=1):
                rows += pair
                if number % 100 == 0 or number == len(jobs):
                    print(f"  {number}/{len(jobs)} prompts", flush=True)
    except concurrent.futures.process.BrokenProcessPool:
        sys.exit(f"a worker building {root} died (the kernel log names the crash). If it is in "
                 "a numba kernel, delete librosa's numba cache (the *.nbi and *.nbc files under "
                 "the installed librosa) and rerun; the build starts over cleanly.")
    with open(os.path.join(root, "protocol.csv"), "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["split", "label", "attack", "speaker", "file"])
        writer.writeheader()
        writer.writerows(rows)
    counts: dict[str, int] = {}
    for row in rows:
        key = f"{row['split']}/{row['label']}/{row['attack']}"
        counts[key] = counts.get(key, 0) + 1
    speakers_per_split = {split: sorted({row["speaker"] for row in rows
                                         if row["split"] == split and row["label"] == "real"})
                          for split in ("train", "dev", "eval")}
    report = {"seed": seed, "channel": channel_of or test_set, "clips": len(rows),
              "counts": dict(sorted(counts.items())),
              "bona_fide_speakers": speakers_per_split,
              "trivial_cue_accuracy": audit(root, rows)}
    with open(os.path.join(root, "dataset.json"), "w", encoding="utf-8") as handle:
        json.dump(report, handle, indent=1)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("dir", nargs="?",
                        help="the dataset (train, dev, eval); omit it to build only --cross or "
                             "--room")
    parser.add_argument("--cross", metavar="CROSS_DIR",
                        help="also build the cross-dataset test set there")
    parser.add_argument("--room", metavar="ROOM_DIR",
                        help="also build the room test set there (the cross set's speakers, "
                             "attacks C01-C03, a reverberant room)")
    parser.add_argument("--channel", choices=list(CHANNELS),
                        help="build --cross and --room through this test set's channel instead "
                             "of their own: how much of a set's difficulty is its channel")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=0,
                        help="at most this many prompts per speaker (0: all)")
    args = parser.parse_args()
    if not (args.dir or args.cross or args.room):
        parser.error("nothing to build: give DIR (the dataset), --cross CROSS_DIR or "
                     "--room ROOM_DIR")
    if args.channel and not (args.cross or args.room):
        parser.error("--channel changes the channel of --cross and --room only; give one")
    ensure_packages()
    compile_signal_attacks()
    for test_set, root in ((DATASET, args.dir), (CROSS, args.cross), (ROOM, args.room)):
        if root:
            print(json.dumps(build(root, test_set, args.seed, args.limit,
                                   None if test_set == DATASET else args.channel), indent=1))


if __name__ == "__main__":
    main()
