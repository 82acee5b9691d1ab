"""The feature function: the seed's log-Mel against librosa, and the other front ends (linear
bands, phase) against the physics they measure."""

import dataclasses

import librosa
import numpy as np
import pytest

from spoofdetect.config import FeatureConfig
from spoofdetect.features import feature_function, spectral_features
from spoofdetect.filterbanks import mel_filterbank
from tests.conftest import SEED_FEATURES

CONFIG = SEED_FEATURES
# Reached: about 2e-6 on standardised values (float32 throughout); the issue asks for 1e-3.
TOLERANCE = 1e-4


def seed_features(y: np.ndarray, top_db: float | None = 80.0, standardise: bool = True,
                  peak_normalise: bool = True) -> np.ndarray:
    """The seed's per-clip librosa chain."""
    if peak_normalise:
        y = y / np.max(np.abs(y))
    spectrogram = librosa.feature.melspectrogram(y=y, sr=16000, n_fft=2048, hop_length=512,
                                                 n_mels=80)
    if top_db is not None:
        spectrogram = librosa.power_to_db(spectrogram, ref=np.max, top_db=top_db)
    if standardise:
        spectrogram = (spectrogram - spectrogram.mean()) / spectrogram.std()
    return spectrogram


def test_filterbank_matches_librosa_slaney():
    ours = mel_filterbank(16000, 2048, 80)
    theirs = librosa.filters.mel(sr=16000, n_fft=2048, n_mels=80)
    assert ours.shape == (80, 1025)
    np.testing.assert_allclose(ours, theirs, atol=1e-7)
    np.testing.assert_allclose(mel_filterbank(22050, 1024, 64),
                               librosa.filters.mel(sr=22050, n_fft=1024, n_mels=64), atol=1e-7)


def _signals() -> np.ndarray:
    rng = np.random.default_rng(0)
    t = np.arange(64000) / 16000
    chirp = np.sin(2 * np.pi * (100 + 900 * t) * t)
    noise_burst = rng.standard_normal(64000) * (t > 2.5)
    quiet = 1e-3 * rng.standard_normal(64000)
    harmonic = sum(np.sin(2 * np.pi * 150 * k * t) / k for k in range(1, 20))
    return np.stack([chirp, noise_burst, quiet, harmonic]).astype(np.float32)


def test_shape_is_80_by_126():
    assert spectral_features(_signals(), CONFIG).shape == (4, 80, 126)
    assert CONFIG.num_frames == 126


def test_matches_seed_librosa_chain():
    signals = _signals()
    ours = feature_function(CONFIG)(signals).numpy()
    theirs = np.stack([seed_features(y) for y in signals])
    np.testing.assert_allclose(ours, theirs, atol=TOLERANCE)


@pytest.mark.parametrize("option", ["top_db", "standardise", "peak_normalise"])
def test_each_normalisation_step_is_an_option(option):
    value = None if option == "top_db" else False
    config = dataclasses.replace(CONFIG, **{option: value})
    signals = _signals()[:2] * 0.25
    ours = spectral_features(signals, config).numpy()
    theirs = np.stack([seed_features(y, **{option: value}) for y in signals])
    scale = np.abs(theirs).max()
    np.testing.assert_allclose(ours / scale, theirs / scale, atol=TOLERANCE)


def test_batch_members_do_not_influence_each_other():
    signals = _signals()
    together = spectral_features(signals, CONFIG).numpy()
    alone = spectral_features(signals[1:2], CONFIG).numpy()
    np.testing.assert_allclose(together[1:2], alone, atol=1e-5)


def test_silence_gives_zeros_not_nan():
    out = spectral_features(np.zeros((2, 64000), np.float32), CONFIG).numpy()
    assert np.isfinite(out).all()
    assert np.abs(out).max() == 0.0


def test_standardised_per_clip():
    out = spectral_features(_signals(), CONFIG).numpy()
    np.testing.assert_allclose(out.mean(axis=(1, 2)), 0.0, atol=1e-4)
    np.testing.assert_allclose(out.std(axis=(1, 2)), 1.0, atol=1e-3)


LINEAR = dataclasses.replace(SEED_FEATURES, front_end="log_linear", linear_bands=80, n_fft=512,
                             hop_length=256)
LINEAR_PHASE = dataclasses.replace(LINEAR, phase=True)
MULTI_RESOLUTION = FeatureConfig(extra_windows=(512,))
MULTI_RESOLUTION_PHASE = dataclasses.replace(MULTI_RESOLUTION, phase=True)


def sine(frequency: float, seconds: float = 4.0, rate: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * frequency * t)).astype(np.float32)


def test_linear_filters_are_equally_spaced_with_equal_area():
    from spoofdetect.filterbanks import filterbank

    filters = filterbank(16000, 512, 80, "linear")
    centres = np.argmax(filters, axis=1) * 16000 / 512
    spacing = 8000 / 81
    np.testing.assert_allclose(centres, spacing * np.arange(1, 81), atol=16000 / 512)
    areas = filters.sum(axis=1) * 16000 / 512  # sum over bins x Hz per bin
    np.testing.assert_allclose(areas, 1.0, rtol=0.02)


def test_the_linear_front_end_puts_a_high_tone_in_its_band():
    features = spectral_features(sine(6000.0)[None], dataclasses.replace(
        LINEAR, standardise=False)).numpy()[0]
    assert features.shape == (80, LINEAR.num_frames)
    # Band b is centred on (b + 1) * 8000 / 81 Hz: 6 kHz falls in band 59 or 60.
    assert int(np.argmax(features.mean(axis=1))) in (59, 60)


def test_phase_rows_are_the_group_delay_where_a_click_lands_in_the_window():
    """A click at position p of a frame reaches every frequency at p: each band's group delay
    is (p - n_fft / 2) / n_fft. A stationary tone has the window's centre: 0."""
    config = dataclasses.replace(LINEAR_PHASE, standardise=False, peak_normalise=False)
    click = np.zeros(64000, np.float32)
    click[20000] = 1.0
    features = spectral_features(click[None], config).numpy()[0]
    assert features.shape == (160, config.num_frames)
    phase = features[80:]
    # Centred frames: frame t covers samples t * hop - n_fft / 2 ... + n_fft / 2.
    for frame in (78, 79):
        position = 20000 - (frame * 256 - 256)
        np.testing.assert_allclose(phase[:, frame], (position - 256) / 512, atol=1e-3)
    tone = spectral_features(sine(3000.0)[None], config).numpy()[0]
    band = int(np.argmax(tone[:80].mean(axis=1)))
    np.testing.assert_allclose(tone[80 + band, 5:-5], 0.0, atol=1e-3)


def test_phase_features_are_finite_on_silence_and_each_block_standardised():
    silent = spectral_features(np.zeros((2, 64000), np.float32), LINEAR_PHASE).numpy()
    assert np.isfinite(silent).all() and not silent.any()
    rng = np.random.default_rng(0)
    noisy = spectral_features((0.1 * rng.standard_normal((1, 64000))).astype(np.float32),
                              LINEAR_PHASE).numpy()[0]
    for block in (noisy[:80], noisy[80:]):
        assert abs(block.mean()) < 1e-4 and block.std() == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize(("phase", "phase_windows", "group_delay_of"),
                         [(False, (), ()), (True, (), (2048, 512)), (True, (512,), (512,))])
def test_each_window_of_a_multi_resolution_map_is_that_window_alone(phase, phase_windows,
                                                                    group_delay_of):
    """Rows: every window's bands (n_fft first), then the group delay of every window (or of
    phase_windows'); each block equals the single-window front end's, the long window's
    being the seed's."""
    config = dataclasses.replace(MULTI_RESOLUTION, phase=phase, phase_windows=phase_windows)
    config.validate()
    clips = np.stack([sine(440.0) + 0.1 * sine(3100.0), sine(1200.0)])
    features = spectral_features(clips, config).numpy()
    assert config.group_delay_windows == group_delay_of
    assert features.shape == (2, config.num_rows, 126)
    assert config.num_rows == 80 * (2 + len(group_delay_of))
    alone = {window: spectral_features(clips, dataclasses.replace(
        config, extra_windows=(), n_fft=window, phase_windows=())).numpy()
        for window in (2048, 512)}
    np.testing.assert_allclose(features[:, :80], alone[2048][:, :80], atol=1e-5)
    np.testing.assert_allclose(features[:, 80:160], alone[512][:, :80], atol=1e-5)
    for block, window in enumerate(group_delay_of, start=2):
        np.testing.assert_allclose(features[:, 80 * block:80 * (block + 1)],
                                   alone[window][:, 80:], atol=1e-5)
    np.testing.assert_allclose(features[0, :80], seed_features(clips[0]), atol=TOLERANCE)
    # The two windows see different things, or the extra rows would add nothing.
    assert not np.allclose(features[:, :80], features[:, 80:160], atol=0.1)


@pytest.mark.parametrize("config", [
    LINEAR, LINEAR_PHASE, MULTI_RESOLUTION,
    dataclasses.replace(MULTI_RESOLUTION_PHASE, phase_windows=(512,))],
    ids=["log_linear", "phase", "multi_resolution", "short_window_phase"])
def test_every_front_end_serves_the_features_the_beam_job_writes(config, tmp_path):
    """The exported model's waveform signature runs the same function as the Beam job: its
    score equals the spectrogram signature's on the Beam function's features."""
    import tensorflow as tf

    from spoofdetect.config import GanConfig
    from spoofdetect.export import export_serving_model
    from spoofdetect.models import build_critic, build_generator, classifier_from_critic

    gan = GanConfig(critic_widths=(8, 16, 32), generator_widths=(16, 8, 8, 8))
    generated = build_generator(config, gan)(tf.zeros([2, gan.noise_dim]))
    assert generated.shape == (2, config.num_rows, config.num_frames)
    classifier = classifier_from_critic(build_critic(config, gan))
    export_serving_model(classifier, config, str(tmp_path), 600.0)
    loaded = tf.saved_model.load(str(tmp_path)).signatures
    clips = np.stack([sine(440.0), sine(2500.0) + 0.05 * sine(300.0)])
    beam = feature_function(config)(clips)
    by_waveform = loaded["serving_default"](waveforms=tf.constant(clips))
    by_features = loaded["from_features"](log_mel=beam)
    np.testing.assert_allclose(by_waveform["score"], by_features["score"], atol=1e-5)
    assert list(by_waveform["status"].numpy()) == [b"ok", b"ok"]


def test_band_mean_normalisation_takes_a_fixed_channel_away():
    """A fixed filter adds its log response to every frame of a band; with
    band_mean_normalise the map no longer sees it (the long window resolves the filter)."""
    import scipy.signal

    rng = np.random.default_rng(1)
    t = np.arange(64000) / 16000
    # Noise and harmonics whose levels move, so each band varies over time, never silent.
    source = (rng.standard_normal(64000) * (1 + 0.8 * np.sin(2 * np.pi * 2 * t))
              + sum(np.sin(2 * np.pi * 180 * k * t) / k for k in range(1, 30))
              * (1 + 0.5 * np.sin(2 * np.pi * 3 * t)))
    tilt = scipy.signal.lfilter([1.0, -0.9], [1.0], source)  # +-20 dB across the band
    clips = np.stack([source, tilt]).astype(np.float32)
    normalised = dataclasses.replace(CONFIG, band_mean_normalise=True)
    plain = spectral_features(clips, CONFIG).numpy()
    flat = spectral_features(clips, normalised).numpy()
    np.testing.assert_allclose(flat.mean(axis=2), 0.0, atol=1e-4)  # every band's mean
    # Bands above the floor, where the filter is a fixed offset in dB.
    loud = (plain[0] > -1.0).mean(axis=1) > 0.9
    assert loud.sum() > 20
    changed_plain = np.abs(plain[0] - plain[1])[loud].mean()
    changed_flat = np.abs(flat[0] - flat[1])[loud].mean()
    assert changed_flat < 0.25 * changed_plain


def test_band_mean_normalisation_needs_db_values():
    from spoofdetect.config import UserError

    with pytest.raises(UserError, match="band_mean_normalise"):
        dataclasses.replace(CONFIG, band_mean_normalise=True, top_db=None).validate()
