"""Waveform augmentation: each transform does what its name says (SNR reached, band limits,
the codec really applied), never a broken clip, and the same copy for the same clip."""

import numpy as np
import pytest

from spoofdetect import augment
from tests.conftest import decay_time

RATE = 16000


def speech_like(seconds: float = 2.0, seed: int = 0) -> np.ndarray:
    """Voiced harmonics from 150 Hz to 7.5 kHz with a syllable rhythm, peak about 0.6."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    voiced = sum(np.sin(2 * np.pi * 150 * k * t + rng.uniform(0, 6)) / k for k in range(1, 51))
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t) ** 2
    clip = voiced * envelope
    return (0.6 * clip / np.max(np.abs(clip))).astype(np.float32)


def band_fraction(samples: np.ndarray, low: float, high: float) -> float:
    """The fraction of the signal's energy between `low` and `high` Hz."""
    power = np.abs(np.fft.rfft(samples)) ** 2
    frequencies = np.fft.rfftfreq(samples.size, 1 / RATE)
    return float(power[(frequencies >= low) & (frequencies < high)].sum() / power.sum())


def run(name: str, samples: np.ndarray, seed: int = 0) -> np.ndarray:
    drawn, out = augment.augment(samples, RATE, (name,), augment.copy_rng("a.wav", 1, seed))
    assert drawn == name
    return out


@pytest.mark.parametrize("name", list(augment.AUGMENTATIONS))
def test_every_transform_gives_a_usable_clip_of_the_same_length(name):
    clip = speech_like()
    for seed in range(3):
        out = run(name, clip, seed)
        assert out.dtype == np.float32 and out.shape == clip.shape
        assert np.isfinite(out).all()
        assert np.max(np.abs(out)) <= 1.0  # never beyond full scale
        assert np.sqrt(np.mean(out ** 2)) > 1e-3  # never silence
        assert not np.array_equal(out, clip)  # something was done


def test_a_loud_clip_is_limited_to_full_scale_not_clipped():
    loud = speech_like() / 0.6 * 0.99
    for seed in range(5):
        out = run("gain", loud, seed)
        assert np.max(np.abs(out)) <= 0.999 + 1e-6
        # Scaled, not clipped: the waveform's shape is kept.
        assert np.corrcoef(out, loud)[0, 1] > 0.9999


def test_additive_noise_reaches_the_snr_asked_for():
    clip = speech_like()
    noise = np.random.default_rng(1).standard_normal(clip.size)
    for snr in (5.0, 20.0, 35.0):
        mixed = augment.add_at_snr(clip, noise, snr)
        measured = 10 * np.log10(np.mean(clip ** 2) / np.mean((mixed - clip) ** 2))
        assert measured == pytest.approx(snr, abs=1e-6)


@pytest.mark.parametrize("name", ["rawboost_coloured", "noise"])
def test_noise_families_stay_within_their_snr_range(name):
    clip = speech_like()
    low = {"rawboost_coloured": 10.0, "noise": 5.0}[name]
    for seed in range(5):
        out = run(name, clip, seed)
        snr = 10 * np.log10(np.mean(clip ** 2) / np.mean((out - clip) ** 2))
        assert low - 0.01 <= snr <= 40.01


@pytest.mark.parametrize("name", ["narrowband", "mu_law", "a_law", "gsm"])
def test_8_khz_channels_remove_everything_above_4_khz(name):
    clip = speech_like()
    assert band_fraction(clip, 4200, 8000) > 0.005
    assert band_fraction(run(name, clip), 4200, 8000) < 1e-4


def test_telephone_band_keeps_300_to_3400_hz():
    clip = speech_like()
    out = run("telephone", clip)
    assert band_fraction(out, 0, 150) < 0.01 * band_fraction(clip, 0, 150)
    assert band_fraction(out, 5000, 8000) < 1e-3
    assert band_fraction(out, 250, 4000) > 0.95


@pytest.mark.parametrize("seed", range(5))
def test_reverb_is_a_room_that_decays_faster_at_high_frequencies(seed):
    import scipy.signal

    click = np.zeros(2 * RATE, np.float32)
    click[RATE // 10] = 0.5
    response = run("reverb", click, seed)[RATE // 10:]
    # The direct sound first and loudest; the tail's energy within its -3 to +12 dB below it.
    assert np.argmax(np.abs(response)) == 0
    direct_to_tail = 10 * np.log10(response[0] ** 2 / np.sum(response[1:] ** 2))
    assert -3.5 < direct_to_tail < 12.5
    # The tail's RT60 (without the direct sound) within the drawn range: 0.2-1.0 s at low
    # frequencies, 50-90 % of it at the top.
    low = scipy.signal.sosfilt(scipy.signal.butter(4, 400, "lowpass", fs=RATE, output="sos"),
                               response[1:])
    high = scipy.signal.sosfilt(scipy.signal.butter(4, 5000, "highpass", fs=RATE, output="sos"),
                                response[1:])
    assert 0.15 < decay_time(low, RATE) < 1.1
    assert decay_time(high, RATE) < 0.95 * decay_time(low, RATE)


@pytest.mark.parametrize("name", ["mu_law", "a_law", "gsm", "mp3", "opus"])
def test_each_lossy_codec_is_really_applied(name):
    """The codec's error is there (not a plain resample) and the speech survives it."""
    clip = speech_like()
    out = run(name, clip)
    reference = augment.narrowband(clip, RATE, None) if name in ("mu_law", "a_law", "gsm") \
        else clip
    lag = int(np.argmax(np.correlate(out[4000:8000], reference[4000:6000], mode="valid")))
    aligned = out[4000 + lag:4000 + lag + 2000]
    error = np.mean((aligned - reference[4000:6000]) ** 2) / np.mean(reference[4000:6000] ** 2)
    # G.711 quantises to 8-bit logarithmic steps (about -38 dB); GSM, MP3 and Opus at their
    # lowest rates lose far more. A codec not applied would leave an error near 0.
    assert error > 1e-5, name
    assert np.corrcoef(aligned, reference[4000:6000])[0, 1] > 0.5, name


class _AtLevel:
    """A generator whose uniform draws all return one end of the range."""

    def __init__(self, end: int):
        self.end = end

    def uniform(self, low: float, high: float) -> float:
        return (low, high)[self.end]


@pytest.mark.parametrize("name", ["mp3", "opus"])
@pytest.mark.parametrize("end", [0, 1])
def test_low_bit_rate_codecs_encode_at_both_ends_of_their_range(name, end):
    # libsndfile's MP3 encoder refuses compression levels above 0.9999: a range up to 1.0
    # failed one draw in a few thousand, and with it the whole feature job.
    out = augment.AUGMENTATIONS[name](speech_like(), RATE, _AtLevel(end))
    assert np.all(np.isfinite(out)) and np.std(out) > 0


def test_copies_are_the_same_for_the_same_clip_and_differ_between_copies():
    clip = speech_like()
    families = tuple(augment.AUGMENTATIONS)
    first = augment.augment(clip, RATE, families, augment.copy_rng("spk1/a.wav", 1, 7))
    again = augment.augment(clip, RATE, families, augment.copy_rng("spk1/a.wav", 1, 7))
    assert first[0] == again[0] and np.array_equal(first[1], again[1])
    others = [augment.augment(clip, RATE, families, augment.copy_rng(path, copy, seed))
              for path, copy, seed in (("spk1/a.wav", 2, 7), ("spk1/b.wav", 1, 7),
                                       ("spk1/a.wav", 1, 8))]
    assert all(not np.array_equal(first[1], other[1]) for other in others)


def test_a_transform_that_removes_the_signal_keeps_the_clip():
    # A 7 kHz tone has nothing in the telephone band.
    t = np.arange(RATE) / RATE
    tone = (0.5 * np.sin(2 * np.pi * 7000 * t)).astype(np.float32)
    name, out = augment.augment(tone, RATE, ("narrowband",), augment.copy_rng("t.wav", 1, 0))
    assert name == "none" and np.array_equal(out, tone)


def pitch_hz(samples: np.ndarray) -> float:
    """The strongest autocorrelation lag between 80 and 400 Hz, as a frequency."""
    correlation = np.correlate(samples[:8000], samples[:8000], "full")[7999:]
    lags = np.arange(RATE // 400, RATE // 80)
    return RATE / lags[np.argmax(correlation[lags])]


@pytest.mark.parametrize("name", list(augment.VOCODERS))
def test_a_vocoded_copy_keeps_the_clips_pitch_length_and_level_but_not_its_waveform(name):
    clip = speech_like()
    for seed in range(3):
        drawn, augmentation, out = augment.vocoded_copy(
            clip, RATE, (name,), (), 0, augment.copy_rng("a.wav", 3, seed))
        assert drawn == name and augmentation == ""
        assert out.dtype == np.float32 and out.shape == clip.shape
        assert np.isfinite(out).all() and np.max(np.abs(out)) <= 1.0
        np.testing.assert_allclose(np.sqrt(np.mean(out.astype(np.float64) ** 2)),
                                   np.sqrt(np.mean(clip.astype(np.float64) ** 2)), rtol=1e-3)
        assert abs(pitch_hz(out) - 150.0) < 5.0
        # Resynthesised, not passed through: WORLD makes its own phase.
        assert abs(np.corrcoef(out, clip)[0, 1]) < 0.9
        # Most energy stays where the clip's is (its harmonics fall off as 1/k).
        assert band_fraction(out, 0, 1000) > 0.5


def test_world_is_copy_synthesis_and_world_coded_draws_an_envelope_order():
    clip = speech_like(1.0)

    def copies(name: str) -> list[np.ndarray]:
        return [augment.vocoded_copy(clip, RATE, (name,), (), 0,
                                     augment.copy_rng("a.wav", 3, seed))[2]
                for seed in range(8)]

    plain, coded = copies("world"), copies("world_coded")
    # WORLD's analysis and synthesis are deterministic: copy synthesis draws nothing, and the
    # coded copies differ only by the order drawn, each unlike the uncoded one.
    assert len({out.tobytes() for out in plain}) == 1
    distinct = {out.tobytes() for out in coded}
    assert 2 <= len(distinct) <= len(augment.WORLD_CODED_ORDERS)
    assert plain[0].tobytes() not in distinct
    # A 24th-order cepstrum smooths the envelope more than a 60th: its copy moves further.
    def drawing(order: int) -> np.random.Generator:
        """A generator whose first draw picks `order` from WORLD_CODED_ORDERS."""
        index = augment.WORLD_CODED_ORDERS.index(order)
        seed = next(seed for seed in range(100)
                    if np.random.default_rng(seed).integers(len(augment.WORLD_CODED_ORDERS))
                    == index)
        return np.random.default_rng(seed)

    lowest = augment.world_coded(clip, RATE, drawing(24))
    highest = augment.world_coded(clip, RATE, drawing(60))
    full = augment.world(clip, RATE, np.random.default_rng(0))
    assert np.mean((lowest - full) ** 2) > np.mean((highest - full) ** 2)


def test_vocoded_copies_are_augmented_as_often_as_the_clips_own_examples():
    clip = speech_like(0.5)
    for augment_copies, expected in ((2, 2 / 3), (0, 0.0)):
        names = [augment.vocoded_copy(clip, RATE, ("world",), ("gain", "noise"), augment_copies,
                                      augment.copy_rng(f"{index}.wav", 3, 0))[1]
                 for index in range(150)]
        assert set(names) <= {"", "gain", "noise"}
        assert abs(np.mean([name != "" for name in names]) - expected) < 0.1


def test_a_vocoder_that_returns_no_signal_gives_no_copy(monkeypatch):
    monkeypatch.setitem(augment.VOCODERS, "mute", lambda samples, rate, rng: 0 * samples)
    name, _, out = augment.vocoded_copy(speech_like(), RATE, ("mute",), ("gain",), 2,
                                        augment.copy_rng("a.wav", 1, 0))
    assert name == "mute" and out is None
