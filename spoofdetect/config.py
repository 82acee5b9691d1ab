"""The one configuration object that every runner, component and CLI command reads.

A `PipelineConfig` is built from defaults, then a JSON/YAML file, then `KEY=VALUE` overrides
(dotted keys reach nested sections: `features.segment_mode=all`). Components receive their
section as a JSON string execution parameter, so Kubeflow and the local runners see the same
values and TFX's cache key changes whenever a value does.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import typing
from typing import Any

import yaml

from spoofdetect.errors import UserError
from spoofdetect.filterbanks import empty_bands

SPLITS = ("train", "dev", "eval")
FRONT_ENDS = ("log_mel", "log_linear")
# The LFCC-GMM system's front end (features.lfcc_gmm; spoofdetect/features.py): not one of
# FRONT_ENDS, since its map is a GMM's input, not a critic's. Its fixed settings are ASVspoof
# 2019's baseline's.
LFCC_FRONT_END = "lfcc"
LFCC_WINDOW_SECONDS, LFCC_HOP_SECONDS = 0.020, 0.010
LFCC_FILTERS = 20
LFCC_COEFFICIENTS = 20
# Where each fused system's map is stored in the Examples, beside the first's (examples.py),
# in FeatureConfig.fused_maps' order.
FUSION_MAP, LFCC_MAP = "fusion_features", "lfcc"
FUSED_MAPS = (FUSION_MAP, LFCC_MAP)
CRITIC_HEADS = ("flatten", "time_statistics")
# classifier.read_out: what the classifier's head reads (spoofdetect/models.py).
READ_OUTS = ("critic", "block1_statistics", "block2_statistics", "block3_statistics")
# classifier.selection: the dev metric that picks the epoch, and whether higher is better.
SELECTION_METRICS = {"auc": "max", "eer": "min", "worst_attack_eer": "min"}
# classifier.head_solver: how the head of a frozen critic is fitted (spoofdetect/finetune.py).
HEAD_SOLVERS = ("adam", "lbfgs")
LABELS = {"real": 0, "fake": 1}


def _positive(section: Any, prefix: str, *names: str) -> None:
    for name in names:
        if not getattr(section, name) > 0:
            raise UserError(f"{prefix}.{name} must be positive, got {getattr(section, name)}.")


def _at_least_zero(section: Any, prefix: str, *names: str) -> None:
    for name in names:
        if not getattr(section, name) >= 0:
            raise UserError(f"{prefix}.{name} must not be negative, got "
                            f"{getattr(section, name)}.")


def _fraction(section: Any, prefix: str, *names: str, upper_open: bool = False) -> None:
    for name in names:
        value = getattr(section, name)
        if not (0.0 <= value < 1.0 if upper_open else 0.0 <= value <= 1.0):
            raise UserError(f"{prefix}.{name} is a fraction in [0, 1{')' if upper_open else ']'}"
                            f", got {value}.")


@dataclasses.dataclass(frozen=True)
class FusionConfig:
    """A second system fused with the first by score (docs/generalisation.md, "Fusing two
    systems"): its own front end, computed by the same feature function from the same
    (augmented) segments and stored beside the first map; the classifier's head on a random
    critic over it (stage 1 pre-trains the first system's critic only); each system's score
    standardised by its dev mean and spread, then summed. The front-end fields mean what the
    features section's do; their defaults are the 10 ms group-delay map, ASVspoof's usual
    framing (a 25 ms window every 10 ms, 160 x 401), the system the fusion probe measured.
    On by default, by measurement: lower cross-dataset EER than the one system in 12 of 15
    pairs of heads on the same three stage-1 critics, lower eval EER in all 15, and
    Griffin-Lim off chance (docs/generalisation.md, "Which options are on by default");
    off in pipeline/seed.yaml."""

    enabled: bool = True
    front_end: str = "log_mel"
    n_mels: int = 80
    linear_bands: int = 80
    phase: bool = True
    n_fft: int = 400
    hop_length: int = 160
    extra_windows: tuple[int, ...] = ()
    phase_windows: tuple[int, ...] = ()


@dataclasses.dataclass(frozen=True)
class FeatureConfig:
    """Audio decoding, segmentation and log-Mel settings (defaults reproduce the seed)."""

    sample_rate: int = 16000
    segment_seconds: float = 4.0
    # 'first': one 4 s segment per clip (the seed); 'all': consecutive 4 s windows.
    segment_mode: str = "first"
    # With 'all', a final partial window shorter than this is not used (it is mostly padding).
    min_last_segment_seconds: float = 1.0
    # The front end (spoofdetect/features.py): 'log_mel' (the seed: n_mels mel bands) or
    # 'log_linear' (linear_bands linearly spaced bands, which keep high-frequency detail);
    # with `phase`, each band's group delay is stacked below the magnitude rows
    # (phase-reconstruction and vocoder artefacts live there).
    front_end: str = "log_mel"
    n_mels: int = 80
    linear_bands: int = 80
    phase: bool = False
    n_fft: int = 2048
    hop_length: int = 512
    # More STFT window lengths (even, at least hop_length), each adding its own band rows
    # (and group-delay rows with `phase`) at the same hop: a multi-resolution front end.
    # () is the seed's (pinned by pipeline/seed.yaml). (512,) by measurement: lower
    # cross-dataset EER than the seed's map at each of three seeds with the default head
    # (docs/generalisation.md, "Which options are on by default").
    extra_windows: tuple[int, ...] = (512,)
    # With `phase`, the windows whose group delay is stacked; () is every window. A subset
    # lets a long window give magnitude only (its group delay blurs over 128 ms) while a short
    # one gives both.
    phase_windows: tuple[int, ...] = ()
    peak_normalise: bool = True
    # Floor of the dB scale below the clip's maximum (librosa's power_to_db default); null: none.
    top_db: float | None = 80.0
    standardise: bool = True
    # Each band's mean over the segment taken from its dB values (the band-energy form of
    # cepstral mean normalisation): a fixed channel filter adds its log response to every
    # frame, so this removes a stationary channel's colouring, and with it any steady
    # spectral tilt of the source. Magnitude rows only (in dB: needs top_db). Off (the seed's):
    # level with the default on the cross set at three seeds (docs/generalisation.md, "The
    # room set").
    band_mean_normalise: bool = False
    # A clip whose peak is below this (about -100 dBFS) carries no signal and is rejected.
    silence_peak: float = 1e-5
    # Files above this size are rejected before they are read into memory.
    max_file_megabytes: float = 512.0
    # Files per batch handed to the TensorFlow feature function.
    batch_size: int = 32
    # Extra copies of each training clip, each through one waveform augmentation drawn from
    # augment_families (spoofdetect/augment.py), seeded by the clip, the copy and
    # augment_seed. Dev and eval are never augmented. 0: none (the seed's, pinned by
    # pipeline/seed.yaml). 2 by measurement: lower cross-dataset EER than none at each of
    # three seeds (docs/generalisation.md, "Which options are on by default").
    augment: int = 2
    # Every family but `reverb`, which screened worse on the cross set (docs/generalisation.md,
    # "The room set").
    augment_families: tuple[str, ...] = (
        "rawboost_convolutive", "rawboost_impulsive", "rawboost_coloured", "telephone",
        "narrowband", "mu_law", "a_law", "gsm", "mp3", "opus", "gain", "noise")
    augment_seed: int = 0
    # Extra fake examples: copies of each bona fide training clip resynthesised through a
    # vocoder drawn from `vocoders` (spoofdetect/augment.py), labelled fake with the attack
    # 'vocoded-<vocoder>', each then through a waveform augmentation as often as the clips'
    # own examples are (augment times in augment + 1), seeded like the augmented copies.
    # 0 (none) by measurement: worse on the cross and room sets at each of three seeds
    # (docs/generalisation.md, "Vocoded copies of the bona fide clips").
    vocoded: int = 0
    vocoders: tuple[str, ...] = ("world",)
    # Protocol files listing the clips (spoofdetect/protocol.py) instead of the folder layout,
    # and where an ASVspoof protocol's utterances are, relative to the dataset root.
    protocol: tuple[str, ...] = ()
    protocol_audio: str = "ASVspoof2019_LA_{split}/flac/{utt}.flac"
    fusion: FusionConfig = dataclasses.field(default_factory=FusionConfig)
    # A third fused system, LFCC-GMM (ASVspoof's classic baseline; spoofdetect/gmm.py): LFCC
    # of the same segments stored beside the other maps, one GMM per class fitted in the
    # Trainer on the training split's unaugmented examples, its log-likelihood ratio
    # standardised on dev and added to the classifiers' standardised sum. On by measurement:
    # lower EER than the default without it at each of three seeds on the cross set, the
    # eval split and the room set alike, by a little (docs/generalisation.md, "LFCC-GMM in
    # the fusion"); off in pipeline/seed.yaml.
    lfcc_gmm: bool = True

    @property
    def fusion_features(self) -> FeatureConfig | None:
        """The fused second system's features: these settings with fusion's front end (and
        no fused systems of their own); None when fusion is off."""
        if not self.fusion.enabled:
            return None
        front_end = {field.name: getattr(self.fusion, field.name)
                     for field in dataclasses.fields(FusionConfig) if field.name != "enabled"}
        return dataclasses.replace(self, **front_end, fusion=FusionConfig(enabled=False),
                                   lfcc_gmm=False)

    @property
    def lfcc_features(self) -> FeatureConfig | None:
        """The LFCC-GMM system's features (front_end 'lfcc'): the same segments, not peak
        normalised, in dB or standardised (the baseline models the coefficients as they
        are), a 10 ms hop and the FFT size that holds a 20 ms window; None when it is off."""
        if not self.lfcc_gmm:
            return None
        window = round(LFCC_WINDOW_SECONDS * self.sample_rate)
        return dataclasses.replace(
            self, front_end=LFCC_FRONT_END, linear_bands=LFCC_FILTERS,
            n_fft=1 << (window - 1).bit_length(),
            hop_length=round(LFCC_HOP_SECONDS * self.sample_rate), extra_windows=(),
            phase=False, phase_windows=(), peak_normalise=False, top_db=None,
            standardise=False, band_mean_normalise=False, fusion=FusionConfig(enabled=False),
            lfcc_gmm=False)

    @property
    def without_training_copies(self) -> FeatureConfig:
        """These settings without those that only make the training split's extra copies
        (augmented and vocoded): what decides a clip's maps, which two configs equal here
        compute alike."""
        return dataclasses.replace(self, augment=0, augment_families=(), augment_seed=0,
                                   vocoded=0, vocoders=())

    @property
    def fused_maps(self) -> dict[str, FeatureConfig]:
        """The fused systems' maps after the first: where each is stored -> its features."""
        maps = dict(zip(FUSED_MAPS, (self.fusion_features, self.lfcc_features), strict=True))
        return {key: features for key, features in maps.items() if features is not None}

    @property
    def segment_samples(self) -> int:
        return round(self.segment_seconds * self.sample_rate)

    @property
    def num_bands(self) -> int:
        return self.n_mels if self.front_end == "log_mel" else self.linear_bands

    @property
    def windows(self) -> tuple[int, ...]:
        """The STFT window lengths, n_fft first."""
        return (self.n_fft, *self.extra_windows)

    @property
    def group_delay_windows(self) -> tuple[int, ...]:
        """The windows whose group-delay rows follow the magnitude rows, in config.windows'
        order."""
        if not self.phase:
            return ()
        return tuple(window for window in self.windows
                     if not self.phase_windows or window in self.phase_windows)

    @property
    def num_blocks(self) -> int:
        """Row blocks of a feature map, each standardised on its own: every window's
        magnitude, then the group delay of each of group_delay_windows."""
        return len(self.windows) + len(self.group_delay_windows)

    @property
    def num_rows(self) -> int:
        if self.front_end == LFCC_FRONT_END:
            # Coefficients, deltas, delta-deltas, and the row marking the frames the GMMs count.
            return 3 * LFCC_COEFFICIENTS + 1
        return self.num_bands * self.num_blocks

    @property
    def filter_scale(self) -> str:
        return {"log_mel": "mel", "log_linear": "linear", LFCC_FRONT_END: "linear"}[
            self.front_end]

    @property
    def num_frames(self) -> int:
        # Centred frames: one frame per hop, plus one.
        return self.segment_samples // self.hop_length + 1

    def validate(self) -> None:
        if self.segment_mode not in ("first", "all"):
            raise UserError(
                f"features.segment_mode is {self.segment_mode!r}; use 'first' or 'all'."
            )
        if self.front_end not in FRONT_ENDS:
            raise UserError(f"features.front_end is {self.front_end!r}; use one of "
                            f"{', '.join(FRONT_ENDS)}.")
        _positive(self, "features", "sample_rate", "n_mels", "linear_bands", "n_fft",
                  "hop_length",
                  "batch_size", "segment_seconds", "max_file_megabytes")
        _at_least_zero(self, "features", "min_last_segment_seconds", "augment", "vocoded")
        if self.augment or self.vocoded:
            from spoofdetect.augment import AUGMENTATIONS, VOCODERS  # SciPy: only if used

            for option, valid, used in (("augment_families", AUGMENTATIONS, self.augment),
                                        ("vocoders", VOCODERS, self.vocoded)):
                names = getattr(self, option)
                unknown = [name for name in names if name not in valid]
                if used and (unknown or not names):
                    given = ", ".join(unknown) if unknown else "none given"
                    raise UserError(f"features.{option}: {given}; the valid ones are "
                                    f"{', '.join(valid)}.")
        if self.top_db is not None:
            _positive(self, "features", "top_db")
        elif self.band_mean_normalise:
            raise UserError("features.band_mean_normalise works on dB values: set "
                            "features.top_db (80 is librosa's), or band_mean_normalise=false.")
        if not 0.0 <= self.silence_peak < 1.0:
            raise UserError(f"features.silence_peak is a peak amplitude in [0, 1) (full scale "
                            f"is 1), got {self.silence_peak}.")
        if self.hop_length > self.n_fft:
            raise UserError(f"features.hop_length ({self.hop_length}) is longer than the "
                            f"window, features.n_fft ({self.n_fft}): samples between windows "
                            "would never be seen.")
        for window in self.extra_windows:
            if window == self.n_fft:
                # Most often a user shortening n_fft onto the default's extra window.
                raise UserError(
                    f"features.extra_windows has {window}, which is features.n_fft itself. "
                    f"For one window only, set features.extra_windows=[].")
            if window < self.hop_length or window % 2:
                raise UserError(
                    f"features.extra_windows has {window}: each extra window must be even "
                    f"(so its frames line up with features.n_fft's) and at least "
                    f"features.hop_length ({self.hop_length}).")
        if self.extra_windows and self.n_fft % 2:
            raise UserError(f"features.n_fft ({self.n_fft}) is odd: with features.extra_windows "
                            "every window must be even, so that their frames line up.")
        if self.phase_windows and not self.phase:
            raise UserError(f"features.phase_windows is {list(self.phase_windows)} but "
                            "features.phase is false: set features.phase=true for group-delay "
                            "rows, or features.phase_windows=[].")
        strays = [window for window in self.phase_windows if window not in self.windows]
        if strays:
            raise UserError(f"features.phase_windows has {strays}, not among the map's windows "
                            f"{list(self.windows)} (features.n_fft and features.extra_windows).")
        if len(set(self.extra_windows)) != len(self.extra_windows):
            raise UserError(f"features.extra_windows lists a window twice: "
                            f"{list(self.extra_windows)}.")
        for window in self.windows:
            setting = "n_fft" if window == self.n_fft else "extra_windows"
            if window > self.segment_samples:
                raise UserError(f"features.{setting} ({window}) is longer than a segment "
                                f"({self.segment_samples} samples).")
            empty = empty_bands(self.sample_rate, window, self.num_bands, self.filter_scale)
            if empty:
                name = "n_mels" if self.front_end == "log_mel" else "linear_bands"
                raise UserError(
                    f"{empty} of features.{name} = {self.num_bands} bands get no FFT bin with "
                    f"a {window}-sample window (features.{setting}): raise the window or "
                    f"lower {name} (their features would be constant).")
        if self.fusion_features is not None:
            try:
                self.fusion_features.validate()
            except UserError as error:
                # The derived settings are checked by the same rules; the user set them under
                # features.fusion, so that is the name the message gives.
                raise UserError(str(error).replace("features.", "features.fusion.")) from error


@dataclasses.dataclass(frozen=True)
class MaskingConfig:
    """SpecAugment-style masking of training spectrograms (Park et al. 2019), in tf.data:
    per example, `freq_masks` bands of up to `max_freq_bins` mel bins and `time_masks` spans
    of up to `max_time_frames` frames are set to 0 (the standardised features' mean). Seeded
    per example, so a run and its resume see the same masks. 0 masks: off (the seed)."""

    freq_masks: int = 0
    max_freq_bins: int = 8
    time_masks: int = 0
    max_time_frames: int = 10

    @property
    def active(self) -> bool:
        return bool(self.freq_masks or self.time_masks)

    def validate(self, prefix: str) -> None:
        _at_least_zero(self, prefix, "freq_masks", "time_masks")
        _positive(self, prefix, "max_freq_bins", "max_time_frames")


@dataclasses.dataclass(frozen=True)
class GanConfig:
    """Stage 1: WGAN-GP pre-training of the self-attention critic (defaults: the seed's)."""

    noise_dim: int = 128
    critic_widths: tuple[int, ...] = (64, 128, 256)
    # What the critic's (and so the classifier's) last Dense sees: 'flatten', the seed's
    # whole last map, or 'time_statistics', its mean and spread over time per row.
    critic_head: str = "flatten"
    generator_widths: tuple[int, ...] = (256, 128, 64, 32)
    gradient_penalty_weight: float = 10.0
    critic_steps_per_generator_step: int = 5
    learning_rate: float = 1e-4
    beta_1: float = 0.5
    beta_2: float = 0.9
    batch_size: int = 32
    epochs: int = 20
    # The critic's data side: 'fake' (the training split's fake clips, as in the seed) or 'all'.
    critic_data: str = "fake"
    checkpoint_every_steps: int = 50
    shuffle_buffer: int = 1024
    jit_compile: bool = False
    # float16 compute with loss scaling on a GPU; bfloat16 on a CPU that has it (AVX512_BF16).
    mixed_precision: bool = False
    # Masking of the critic's data-side spectrograms.
    masking: MaskingConfig = dataclasses.field(default_factory=MaskingConfig)
    seed: int = 0

    def validate(self) -> None:
        if self.critic_data not in ("fake", "all"):
            raise UserError(f"gan.critic_data is {self.critic_data!r}; use 'fake' or 'all'.")
        if self.critic_head not in CRITIC_HEADS:
            raise UserError(f"gan.critic_head is {self.critic_head!r}; use one of "
                            f"{', '.join(CRITIC_HEADS)}.")
        _positive(self, "gan", "noise_dim", "critic_steps_per_generator_step", "batch_size",
                  "epochs", "checkpoint_every_steps", "learning_rate", "shuffle_buffer")
        _at_least_zero(self, "gan", "gradient_penalty_weight")
        _fraction(self, "gan", "beta_1", "beta_2", upper_open=True)
        self.masking.validate("gan.masking")
        if not all(isinstance(width, int) and width > 0
                   for width in (*self.critic_widths, *self.generator_widths)):
            raise UserError("gan.critic_widths and gan.generator_widths are lists of positive "
                            "whole numbers.")
        if len(self.critic_widths) != 3:
            raise UserError("gan.critic_widths takes three widths, e.g. [64, 128, 256].")
        if len(self.generator_widths) != 4:
            raise UserError("gan.generator_widths takes four widths, e.g. [256, 128, 64, 32].")


@dataclasses.dataclass(frozen=True)
class ClassifierConfig:
    """Stage 2: fine-tuning the pre-trained critic as a real/fake classifier."""

    # Train the same classifier without stage 1 (the ablation).
    from_scratch: bool = False
    # The default head and its four settings are chosen together, by measurement: a
    # penalised linear head on block 1's time statistics of the frozen stage-1 critic, lower
    # cross-dataset EER than the seed's fine-tuned head at each of three seeds
    # (docs/generalisation.md, "Which options are on by default"). pipeline/seed.yaml pins
    # the seed's: the whole critic fine-tuned, read_out 'critic', no penalty, 1e-4.
    # Train only the new sigmoid head on the frozen critic (a linear probe of stage 1);
    # with from_scratch, the same probe on random features.
    freeze_critic: bool = True
    # What the sigmoid head reads: 'critic' (the seed's: the critic's last map, flattened) or
    # 'blockN_statistics' (the map of the critic's convolution block N, 1-3, pooled to each
    # row's and channel's mean and standard deviation over time and standardised by the
    # training split: spoofdetect/models.py, docs/generalisation.md).
    read_out: str = "block1_statistics"
    # L2 penalty on the head's weights, added to the mean loss (0: none, the seed's). 0.007
    # is the measured probe's C of 0.01 on the benchmark's 7,188 training examples.
    head_l2: float = 0.007
    # How the head is fitted: 'lbfgs' (the default, by measurement: docs/generalisation.md,
    # "Which options are on by default"), the minimum of the penalised loss (the
    # class-weighted mean log-loss + head_l2 |w|^2) found by L-BFGS on the frozen critic's
    # read-out, one answer for one critic and training set; or 'adam' (the seed's), epochs
    # of Adam with the dev-selected epoch kept, whose head depends on its initial weights
    # and shuffling. lbfgs needs freeze_critic, head_l2 > 0 and no masking (set 'adam' to
    # fine-tune the whole network); the settings below that drive epochs (learning rate to
    # selection) then do not apply.
    head_solver: str = "lbfgs"
    # The lbfgs head ignores this many directions of its read-out (as the head sees it,
    # standardised for a block read-out): those along
    # which the training split's augmented copies differ most from their own clips (the
    # nuisance attribute projection of speaker verification, with augmentation as the
    # nuisance; spoofdetect/finetune.py), so that its score does not move when a clip's
    # channel moves along them. Needs features.augment > 0. 0 (off) until measured better:
    # docs/generalisation.md, "Ignoring what augmentation changes".
    nuisance_directions: int = 0
    learning_rate: float = 1e-3
    batch_size: int = 32
    epochs: int = 30
    early_stopping_patience: int = 5
    reduce_lr_patience: int = 2
    reduce_lr_factor: float = 0.5
    shuffle_buffer: int = 1024
    # Masking of the training split's spectrograms (never of dev).
    masking: MaskingConfig = dataclasses.field(default_factory=MaskingConfig)
    # The dev signal for early stopping, learning-rate cuts and the epoch kept: 'auc' (the
    # seed's, kept as the default by measurement: docs/generalisation.md), 'eer', or
    # 'worst_attack_eer' (the dev EER of the attack it detects worst).
    selection: str = "auc"
    # Components of each of LFCC-GMM's two GMMs (features.lfcc_gmm; 64 as measured).
    gmm_components: int = 64
    # Fit a calibration on dev (spoofdetect/calibration.py) and export it in the model, so
    # `score` is a log-likelihood ratio and `p_fake` a probability. Off: the raw log-odds.
    calibrate: bool = False
    seed: int = 0

    def validate(self) -> None:
        if self.selection not in SELECTION_METRICS:
            raise UserError(f"classifier.selection is {self.selection!r}; use one of "
                            f"{', '.join(SELECTION_METRICS)}.")
        if self.read_out not in READ_OUTS:
            raise UserError(f"classifier.read_out is {self.read_out!r}; use one of "
                            f"{', '.join(READ_OUTS)}.")
        _at_least_zero(self, "classifier", "head_l2", "nuisance_directions")
        self.masking.validate("classifier.masking")
        if self.nuisance_directions and self.head_solver != "lbfgs":
            raise UserError("classifier.nuisance_directions is fitted by the lbfgs head: set "
                            "classifier.head_solver='lbfgs', or nuisance_directions=0.")
        if self.head_solver not in HEAD_SOLVERS:
            raise UserError(f"classifier.head_solver is {self.head_solver!r}; use one of "
                            f"{', '.join(HEAD_SOLVERS)}.")
        if self.head_solver == "lbfgs":
            if not self.freeze_critic:
                raise UserError("classifier.head_solver 'lbfgs' fits a head on a frozen critic: "
                                "set classifier.freeze_critic=true, or use 'adam'.")
            if not self.head_l2 > 0:
                raise UserError("classifier.head_solver 'lbfgs' needs classifier.head_l2 > 0: "
                                "without a penalty a linear head on separable data has no "
                                "minimum.")
            if self.masking.active:
                raise UserError("classifier.head_solver 'lbfgs' reads each training example "
                                "once, unmasked: set classifier.masking's freq_masks and "
                                "time_masks to 0, or use 'adam'.")
        _positive(self, "classifier", "batch_size", "epochs", "learning_rate",
                  "shuffle_buffer", "gmm_components")
        _at_least_zero(self, "classifier", "early_stopping_patience", "reduce_lr_patience")
        if not 0.0 < self.reduce_lr_factor < 1.0:
            raise UserError(f"classifier.reduce_lr_factor multiplies the learning rate: it is in "
                            f"(0, 1), got {self.reduce_lr_factor}.")


@dataclasses.dataclass(frozen=True)
class EvaluationConfig:
    """Evaluation of the trained model, the blessing that gates the Pusher, and scoring."""

    split: str = "eval"
    batch_size: int = 64
    # Blessing needs both limits (fractions: 0.15 is 15 % EER)...
    max_eer: float = 0.15
    max_min_tdcf: float = 0.5
    # ...and no regression against the last blessed model beyond these absolute margins.
    eer_tolerance: float = 0.01
    min_tdcf_tolerance: float = 0.02
    # ASV error rates for t-DCF: the official ASVspoof 2019 LA eval ASV system's by default
    # (metrics.ASVSPOOF2019_LA_EVAL_ASV names them); asv_scores (an ASV score file) replaces
    # them with rates at that ASV's EER threshold.
    pfa_asv: float = 0.024604674888228765
    pmiss_asv: float = 0.024581005586592177
    pmiss_spoof_asv: float = 0.23934754703985472
    asv_scores: str = ""
    # The baseline: 'mlmd', the last blessed model found in ML Metadata by a Resolver (local
    # runners), or 'serving_dir', the newest model the Pusher pushed (Kubeflow: open-source
    # KFP v2 cannot run TFX's MLMD resolver). Either way, the last blessed model.
    baseline: str = "mlmd"
    # `spoofdetect score` refuses files longer than this before decoding them.
    max_score_seconds: float = 600.0

    def validate(self) -> None:
        if self.split not in SPLITS:
            raise UserError(f"evaluation.split is {self.split!r}; use one of "
                            f"{', '.join(SPLITS)}.")
        if self.baseline not in ("mlmd", "serving_dir"):
            raise UserError(f"evaluation.baseline is {self.baseline!r}; use 'mlmd' or "
                            "'serving_dir'.")
        _positive(self, "evaluation", "batch_size", "max_score_seconds", "max_min_tdcf")
        _at_least_zero(self, "evaluation", "eer_tolerance", "min_tdcf_tolerance")
        _fraction(self, "evaluation", "max_eer", "pfa_asv", "pmiss_asv", "pmiss_spoof_asv")


# Where `spoofdetect compile` writes the KFP spec and `submit` reads it, by default.
COMPILED_SPEC = os.path.join("kubeflow", "spoof_detection_pipeline.yaml")


@dataclasses.dataclass(frozen=True)
class KubeflowConfig:
    """Kubeflow Pipelines (KFP v2): the image, GPUs for the two training steps, node choice."""

    image: str = ""
    # GPUs per training step (WganPretrainer and Trainer); 0 runs them on CPU nodes.
    gpus: int = 1
    gpu_resource: str = "nvidia.com/gpu"
    # Optional limits for the training steps (0: none), in vCPUs and GB.
    training_cpu: float = 0.0
    training_memory_gb: float = 0.0
    # Where GPU steps may run: node labels that must match, and taints they tolerate.
    gpu_node_selector: dict[str, str] = dataclasses.field(default_factory=dict)
    gpu_tolerations: tuple[dict[str, str], ...] = (
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},)
    # The packaged schema as the images see it: both install the project into /opt/venv.
    schema_file: str = "/opt/venv/lib/python3.10/site-packages/spoofdetect/schemas/" \
                       "examples_schema.pbtxt"

    def validate(self) -> None:
        _at_least_zero(self, "kubeflow", "gpus", "training_cpu", "training_memory_gb")


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    """Everything a pipeline run needs; one instance feeds every runner."""

    pipeline_name: str = "spoof-detection"
    data_root: str = ""
    workdir: str = "workdir"
    enable_cache: bool = True
    # DirectRunner on every core by default; pass Dataflow/Flink/Spark options here instead.
    beam_pipeline_args: tuple[str, ...] = (
        "--direct_running_mode=multi_processing",
        "--direct_num_workers=0",
    )
    features: FeatureConfig = dataclasses.field(default_factory=FeatureConfig)
    gan: GanConfig = dataclasses.field(default_factory=GanConfig)
    classifier: ClassifierConfig = dataclasses.field(default_factory=ClassifierConfig)
    evaluation: EvaluationConfig = dataclasses.field(default_factory=EvaluationConfig)
    kubeflow: KubeflowConfig = dataclasses.field(default_factory=KubeflowConfig)
    # ML Metadata: a SQLite path or mysql://USER:PASSWORD@HOST:PORT/DATABASE; default:
    # workdir/metadata.sqlite (see pipeline/metadata.py).
    metadata_store: str = ""
    # Where artifacts go; default: workdir/pipeline_root (Kubeflow: the --pipeline-root URI).
    pipeline_root_uri: str = ""
    # Where the Pusher writes blessed models (TF Serving layout); default: workdir/serving.
    serving_dir: str = ""

    def validate(self) -> None:
        self.features.validate()
        self.gan.validate()
        self.classifier.validate()
        if self.classifier.nuisance_directions and not self.features.augment:
            raise UserError("classifier.nuisance_directions learns what augmentation changes "
                            "from the augmented copies: set features.augment > 0, or "
                            "classifier.nuisance_directions=0.")
        self.evaluation.validate()
        self.kubeflow.validate()

    # Local paths are made absolute: ML Metadata records artifact URIs as given, and a relative
    # one would not be found by a later run started from another folder.
    @property
    def pipeline_root(self) -> str:
        return absolute_path(self.pipeline_root_uri or os.path.join(self.workdir, "pipeline_root"))

    @property
    def metadata_path(self) -> str:
        return absolute_path(os.path.join(self.workdir, "metadata.sqlite"))

    @property
    def push_destination(self) -> str:
        return absolute_path(self.serving_dir or os.path.join(self.workdir, "serving"))


def is_uri(location: str) -> bool:
    """Whether `location` is a URI (gs://, s3://, mysql://, ...) rather than a local path: the
    one rule for telling them apart."""
    return "://" in location


def absolute_path(path: str) -> str:
    """A local path made absolute (against the folder the command runs in); a URI (gs://,
    s3://, ...) as it is."""
    return path if is_uri(path) else os.path.abspath(path)


# Nested sections of PipelineConfig, by key.
_SECTIONS: dict[str, type] = {
    "features": FeatureConfig, "gan": GanConfig, "classifier": ClassifierConfig,
    "evaluation": EvaluationConfig, "kubeflow": KubeflowConfig}


def _typed(name: str, hint: Any, value: Any) -> Any:
    """The value as its field's type says, or a UserError naming the key.

    YAML reads `1e-5` (no dot) as a string and `1` as an int; a float field takes both. A
    list field takes a list (a single string is a list of one: `features.protocol=a.csv`),
    each element typed in turn; a mapping field takes a mapping. NaN is no number.
    """
    origin = typing.get_origin(hint)
    if origin is tuple:
        element = typing.get_args(hint)[0]
        if isinstance(value, str) and element is str:
            value = [value]
        if not isinstance(value, list | tuple):
            raise UserError(f"{name} takes a list, e.g. [...], got {value!r}.")
        return tuple(_typed(f"{name}[{index}]", element, item)
                     for index, item in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise UserError(f"{name} takes a mapping of keys to values, got {value!r}.")
        return value
    args = typing.get_args(hint) or (hint,)
    scalar = [arg for arg in args if arg is not type(None)]
    if value is None or len(scalar) != 1 or scalar[0] not in (float, int, bool, str):
        return value
    expected = scalar[0]
    if expected is str:
        if isinstance(value, dict | list):
            raise UserError(f"{name} takes text, got {value!r}.")
        # YAML reads `pipeline_name=2024` as a number; the field wants its text.
        return value if isinstance(value, str) else str(value)
    if expected is float and not isinstance(value, bool):
        number = None
        if isinstance(value, int | float):
            number = float(value)
        elif isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                pass
        if number is not None and not math.isnan(number):
            return number
    elif isinstance(value, expected) and (expected is bool or not isinstance(value, bool)):
        return value
    wanted = {float: "a number", int: "a whole number", bool: "true or false"}[expected]
    raise UserError(f"{name} must be {wanted}, got {value!r}.")


def _from_dict(cls: type, values: dict[str, Any], prefix: str = "") -> Any:
    fields = {field.name: field for field in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        if key not in fields:
            known = ", ".join(sorted(prefix + name for name in fields))
            raise UserError(f"Unknown config key {prefix + key!r}. Known keys: {known}.")
        if dataclasses.is_dataclass(hints[key]):
            if not isinstance(value or {}, dict):
                raise UserError(f"{prefix + key} is a section of settings "
                                f"({prefix + key}.KEY=VALUE), not a value; got {value!r}.")
            kwargs[key] = _from_dict(hints[key], value or {}, f"{prefix + key}.")
        else:
            kwargs[key] = _typed(prefix + key, hints[key], value)
    return cls(**kwargs)


def section_from_json(cls: type, text: str) -> Any:
    """A config section (FeatureConfig, GanConfig, ...) from the JSON a component receives."""
    prefix = {cls_: name for name, cls_ in _SECTIONS.items()}[cls]
    config = _from_dict(cls, json.loads(text) if text else {}, f"{prefix}.")
    config.validate()
    return config


def section_to_json(config: Any) -> str:
    return json.dumps(dataclasses.asdict(config), sort_keys=True)



def _parse_value(text: str) -> Any:
    # YAML's scalar rules: 3 -> int, 2.5 -> float, true -> bool, null -> None, else a string.
    return yaml.safe_load(text)


def load_config(path: str | None = None, overrides: list[str] | None = None,
                **values: Any) -> PipelineConfig:
    """Defaults <- config file (JSON or YAML) <- keyword values <- KEY=VALUE overrides."""
    merged: dict[str, Any] = {}
    if path:
        try:
            with open(path, encoding="utf-8") as handle:
                merged = yaml.safe_load(handle) or {}
        except OSError as error:
            raise UserError(f"Cannot read config file {path}: {error.strerror}.") from error
        except yaml.YAMLError as error:
            raise UserError(f"Config file {path} is not valid YAML/JSON: {error}") from error
        if not isinstance(merged, dict):
            raise UserError(f"Config file {path} must hold a mapping of keys to values.")
    merged.update({key: value for key, value in values.items() if value is not None})
    for override in overrides or []:
        key, sep, raw = override.partition("=")
        if not sep:
            raise UserError(f"--set takes KEY=VALUE, got {override!r}.")
        section = merged
        *parents, leaf = key.strip().split(".")
        if parents and parents[0] not in _SECTIONS:
            raise UserError(f"--set {key}: {parents[0]} is not a section of settings; the "
                            f"sections are {', '.join(_SECTIONS)}.")
        for depth, parent in enumerate(parents):
            section = section.setdefault(parent, {})
            if not isinstance(section, dict):
                raise UserError(f"--set {key}: {'.'.join(parents[:depth + 1])} is a value, "
                                "not a section of settings.")
        section[leaf] = _parse_value(raw)
    config = _from_dict(PipelineConfig, merged)
    config.validate()
    return config
