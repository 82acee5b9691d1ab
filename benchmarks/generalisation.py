"""Generalisation to attacks, speakers and channels never seen in training: each option of
docs/generalisation.md measured on the real-speech benchmark's eval split AND on its
cross-dataset test set (benchmarks/speech_dataset.py --cross: other speakers, three attack
families absent from training, another channel; never used for training or selection).

    python benchmarks/generalisation.py DATASET CROSS [--config benchmarks/quality.yaml]
        [--seeds 0 1 2] [--only NAME ...] [--output benchmarks] [--table-only]

Each variant is the local pipeline (benchmarks/quality.py's runner) with a few settings
changed; its SavedModel then scores the cross set through `spoofdetect score`'s scorer (the
first 4 s, as the evaluator scores with segment_mode 'first'). LFCC-GMM, trained on the same
train split, is scored on both. Every run's numbers are kept in
OUTPUT/generalisation_runs/NAME-seedK.json, so the study resumes where it stopped, and
OUTPUT/GENERALISATION.md is rewritten after each run from every kept run of --seeds (--only
picks what runs, not what the table shows; --table-only runs nothing).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from typing import Any, NamedTuple

import numpy as np
from quality import (
    dataset_arguments,
    load_split,
    protocol_entries,
    run_pipeline,
    run_settings,
    run_study,
    study_arguments,
    study_command,
    study_numbers,
    study_settings,
    summarise,
    test_set_tables,
)

from spoofdetect import metrics
from spoofdetect.calibration import Calibration
from spoofdetect.config import FeatureConfig, PipelineConfig, load_config
from spoofdetect.gmm import LfccGmm
from spoofdetect.scoring import Scorer

RAWBOOST = "rawboost_convolutive,rawboost_impulsive,rawboost_coloured"
CHANNELS = "telephone,narrowband,mu_law,a_law,gsm,mp3,opus"
MASKING = ("classifier.masking.freq_masks=2", "classifier.masking.time_masks=2",
           "gan.masking.freq_masks=2", "gan.masking.time_masks=2")
LINEAR = ("features.front_end=log_linear", "features.n_fft=512", "features.hop_length=256")
MULTI_RESOLUTION = ("features.extra_windows=[512]",)
POOLED = ("gan.critic_head=time_statistics",)
# The seed's bands of a 32 ms window at the seed's hop, with group-delay rows: 160 x 126, the
# multi-resolution map's size (so stage 1 costs the same), and the phase that Griffin-Lim
# rebuilds (the probe's "log-mel 512/512 + phase", benchmarks/FRONT_END_PROBE.md).
PHASE = ("features.n_fft=512", "features.phase=true")
# The same at ASVspoof's usual framing, a 25 ms window every 10 ms (160 x 401): a finer hop
# that sees the phase between the seed's frames, chosen without regard to how the
# benchmark's Griffin-Lim attack was framed.
# Group-delay rows of the default's short window only, beside both windows' bands (240 x 126).
SHORT_WINDOW_PHASE = ("features.phase=true", "features.phase_windows=[512]")
PHASE_10MS = ("features.n_fft=400", "features.hop_length=160", "features.phase=true")
# The read-out the critic probe ranked first (benchmarks/CRITIC_PROBE.md): block 1's time
# statistics of the frozen stage-1 critic, a linear head with the probe's penalty (its C of
# 0.01 on 7,188 training examples is an L2 of 1 / (2 C n) = 0.007) and a learning rate for a
# linear model.
BLOCK1_STATISTICS = ("classifier.freeze_critic=true", "classifier.read_out=block1_statistics",
                     "classifier.head_l2=0.007", "classifier.learning_rate=1e-3")
# Augmentation and the block-1 read-out; the default's first system adds MULTI_RESOLUTION.
AUGMENT_BLOCK1 = ("features.augment=2", *BLOCK1_STATISTICS)
# The default's first system over the seed's recipe: the one system the per-seed rule
# measured, and what the screens below change one thing of.
FIRST_SYSTEM = (*AUGMENT_BLOCK1, *MULTI_RESOLUTION)
# The first system fused with the 10 ms group-delay system (features.fusion), both heads
# trained by Adam.
FUSION = ("features.fusion.enabled=true",)
FUSED = (*FIRST_SYSTEM, *FUSION)
# The fusion with both heads at their loss's minimum (classifier.head_solver): the default
# before LFCC-GMM joined it, and what the screens below change one thing of.
LBFGS = ("classifier.head_solver=lbfgs",)
FUSED_LBFGS = (*FUSED, *LBFGS)
# The default's settings (spoofdetect/config.py) over the seed's recipe: that fusion with
# LFCC-GMM as a third system (features.lfcc_gmm).
DEFAULT = (*FUSED_LBFGS, "features.lfcc_gmm=true")
# A quarter of the seed's widths in both networks: 46 thousand classifier weights instead of
# 776 thousand, against fitting the training speakers (docs/generalisation.md).
SMALL = ("gan.critic_widths=[16,32,64]", "gan.generator_widths=[64,32,16,8]")
# The front end is the one the linear probe ranked best (benchmarks/FRONT_END_PROBE.md).
COMBINED = ("features.augment=2", *MASKING, *MULTI_RESOLUTION,
            "classifier.selection=worst_attack_eer", "classifier.calibrate=true")


class Variant(NamedTuple):
    name: str
    overrides: tuple[str, ...]
    question: str
    from_scratch: bool = False


def and_without_stage1(variant: Variant, question: str) -> tuple[Variant, Variant]:
    """`variant` and its twin on a random critic (no stage 1), NAME-scratch: the same
    settings, so the pair measures what pre-training adds and nothing else."""
    return variant, variant._replace(name=f"{variant.name}-scratch", question=question,
                                     from_scratch=True)


VARIANTS = (
    Variant("seed", (), "the seed's recipe (pipeline/seed.yaml, where every variant starts)"),
    Variant("augment-rawboost", ("features.augment=2", f"features.augment_families=[{RAWBOOST}]"),
            "RawBoost's three noise families, two copies per training clip"),
    Variant("augment-channel", ("features.augment=2", f"features.augment_families=[{CHANNELS}]"),
            "telephone band, 8 kHz, G.711, GSM, MP3 and Opus, two copies per clip"),
    Variant("augment-all", ("features.augment=2",), "every augmentation family, two copies"),
    Variant("augment-pooled", ("features.augment=2", *POOLED),
            "every augmentation family, two copies, with the critic's map pooled over time "
            "before its Dense"),
    Variant("augment-frozen", ("features.augment=2", "classifier.freeze_critic=true"),
            "every augmentation family, two copies, and only the new head trained on the "
            "frozen stage-1 critic: does a linear read-out of stage 1 carry further than "
            "fine-tuning the whole network?"),
    *and_without_stage1(
        Variant("augment-block1-statistics", AUGMENT_BLOCK1,
                "every augmentation family, two copies, and a penalised linear head on the "
                "time statistics of the frozen stage-1 critic's first block"),
        "the default's head on block 1 of a random critic, without stage 1: what does "
        "pre-training add to the default?"),
    *and_without_stage1(
        Variant("augment-multi-resolution-block1-statistics",
                FIRST_SYSTEM,
                "`augment-block1-statistics` on the multi-resolution map, the front end the "
                "linear probe ranked first"),
        "the same on a random critic, without stage 1"),
    # The default's first system on a random critic with one thing changed (a few minutes a
    # run): which of its augmentation families carry its cross-set gain, and what masking and
    # calibration add to its head.
    Variant("multi-resolution-block1-statistics-scratch", (*BLOCK1_STATISTICS, *MULTI_RESOLUTION),
            "the default's map and head on a random critic, without augmentation",
            from_scratch=True),
    Variant("augment-rawboost-multi-resolution-block1-statistics-scratch",
            (*FIRST_SYSTEM, f"features.augment_families=[{RAWBOOST}]"),
            "the same with RawBoost's three families only", from_scratch=True),
    Variant("augment-channel-multi-resolution-block1-statistics-scratch",
            (*FIRST_SYSTEM, f"features.augment_families=[{CHANNELS}]"),
            "the same with the channel and codec families only", from_scratch=True),
    Variant("masking-augment-multi-resolution-block1-statistics-scratch",
            (*FIRST_SYSTEM, *MASKING),
            "the default on a random critic with the classifier's SpecAugment masks (the GAN's "
            "act only in stage 1)", from_scratch=True),
    *and_without_stage1(
        Variant("calibrated-augment-multi-resolution-block1-statistics",
                (*FIRST_SYSTEM, "classifier.calibrate=true"),
                "the default with its scores calibrated on dev"),
        "the default on a random critic with its scores calibrated on dev"),
    *and_without_stage1(
        Variant("augment-phase-block1-statistics", (*AUGMENT_BLOCK1, *PHASE),
                "`augment-block1-statistics` on a 512-sample window's bands and their group "
                "delay"),
        "the default's head on block 1 of a random critic over a 512-sample window's bands "
        "and their group delay: can phase reach Griffin-Lim?"),
    Variant("augment-phase-10ms-block1-statistics-scratch", (*AUGMENT_BLOCK1, *PHASE_10MS),
            "the same head on a random critic over a 25 ms window's bands and group delay "
            "every 10 ms (160 x 401): does a finer hop let phase reach Griffin-Lim?",
            from_scratch=True),
    Variant("augment-multi-resolution-phase-block1-statistics-scratch",
            (*AUGMENT_BLOCK1, *MULTI_RESOLUTION, "features.phase=true"),
            "the same head on a random critic over the multi-resolution map and both windows' "
            "group delay (320 x 126): the long window's Klatt cue and the short window's phase "
            "in one map?", from_scratch=True),
    # Group delay of the short window only (features.phase_windows): does the long window's
    # group delay, blurred over 128 ms, cost the Klatt TTS that its magnitude catches?
    Variant("augment-multi-resolution-short-phase-block1-statistics-scratch",
            (*FIRST_SYSTEM, *SHORT_WINDOW_PHASE),
            "the default on a random critic with the 512-sample window's group delay added "
            "(240 x 126)", from_scratch=True),
    Variant("augment-multi-resolution-short-phase-l2-0.07-block1-statistics-scratch",
            (*FIRST_SYSTEM, *SHORT_WINDOW_PHASE, "classifier.head_l2=0.07"),
            "the same with ten times the head's penalty: does a head that fits its training "
            "split less closely keep the Klatt TTS?", from_scratch=True),
    Variant("augment-multi-resolution-10ms-phase-block1-statistics-scratch",
            (*FIRST_SYSTEM, "features.hop_length=160", "features.extra_windows=[400]",
             "features.phase=true", "features.phase_windows=[400]"),
            "the same head on a random critic over the 2048-sample window's bands, a 25 ms "
            "window's bands and its group delay, every 10 ms (240 x 401): the phase that "
            "reached Griffin-Lim with the long window that catches the Klatt TTS?",
            from_scratch=True),
    # The fusion probe's lead built into the pipeline (features.fusion), now the default: the
    # first system fused with the 10 ms group-delay system, both scores standardised on dev
    # and summed.
    *and_without_stage1(
        Variant("fused-augment-multi-resolution-block1-statistics",
                FUSED,
                "the first system fused with a head on a random critic over the 10 ms group-delay "
                "map (features.fusion): the fusion probe's sum, trained and exported by the "
                "pipeline"),
        "the same fusion with the default's system on a random critic too (no stage 1)"),
    # The head-noise probe's lead built into the Trainer (classifier.head_solver), now the
    # default: both heads of the fusion fitted to their loss's minimum instead of by Adam's
    # epochs.
    *and_without_stage1(
        Variant("lbfgs-fused-augment-multi-resolution-block1-statistics",
                FUSED_LBFGS,
                "the fusion with both heads at the minimum of their loss (L-BFGS), one "
                "answer per critic where Adam's depends on its initialisation"),
        "the same on random critics (no stage 1), paired with the fusion's own scratch "
        "twin: same critics, same data, only the solver differs"),
    # A room's reverberation (augment's `reverb`) as a thirteenth family of the default's
    # copies: the room set (room_check.py) found the default near chance in a reverberant
    # room, a channel no training clip had.
    *and_without_stage1(
        Variant("reverb-lbfgs-fused-augment-multi-resolution-block1-statistics",
                (*FUSED_LBFGS, f"features.augment_families=[{RAWBOOST},{CHANNELS},gain,"
                               "noise,reverb]"),
                "the L-BFGS fusion (the default then) with a room's reverberation among its "
                "augmentation families"),
        "the same on random critics (no stage 1), paired with the default's scratch twin"),
    # Each magnitude band's mean over the segment taken away (features.band_mean_normalise):
    # a stationary channel's colouring removed from both systems' maps.
    *and_without_stage1(
        Variant("band-mean-lbfgs-fused-augment-multi-resolution-block1-statistics",
                (*FUSED_LBFGS, "features.band_mean_normalise=true"),
                "the L-BFGS fusion (the default then) with each band's mean over the segment "
                "removed, the band-energy "
                "form of cepstral mean normalisation: does taking a stationary channel's "
                "colouring away carry to other channels?"),
        "the same on random critics (no stage 1), paired with the default's scratch twin"),
    # LFCC-GMM (features.lfcc_gmm) as a third system of the default's fusion: the fusion
    # probe's lead (the default's score and LFCC-GMM's, each standardised on dev, summed),
    # trained and exported by the pipeline.
    *and_without_stage1(
        Variant("lfcc-gmm-lbfgs-fused-augment-multi-resolution-block1-statistics",
                DEFAULT,
                "the L-BFGS fusion with LFCC-GMM as a third system (the default): the classic "
                "baseline's GMMs on the same segments, standardised on dev and weighed as "
                "much as both classifiers"),
        "the same on random critics (no stage 1), paired with the L-BFGS fusion's scratch "
        "twin"),
    # Vocoded copies of the bona fide training clips (features.vocoded), labelled fake: the
    # same words, speaker and level as the clip, so only the vocoder's mark tells them apart.
    # WORLD copy synthesis, and WORLD with its envelope coded as parametric TTS codes it.
    *and_without_stage1(
        Variant("vocoded-world-lfcc-gmm-lbfgs-fused-augment-multi-resolution-block1-statistics",
                (*DEFAULT, "features.vocoded=1", "features.vocoders=[world]"),
                "the default with a WORLD copy synthesis of each bona fide training clip, "
                "labelled fake: does learning a vocoder's mark carry to attacks never seen?"),
        "the same on random critics (no stage 1), paired with the default's scratch twin"),
    *and_without_stage1(
        Variant("vocoded-world-coded-lfcc-gmm-lbfgs-fused-augment-multi-resolution-block1-"
                "statistics", (*DEFAULT, "features.vocoded=1", "features.vocoders=[world_coded]"),
                "the default with a WORLD copy of each bona fide training clip, its envelope "
                "coded to a 24-60 order mel-cepstrum, labelled fake"),
        "the same on random critics (no stage 1), paired with the default's scratch twin"),
    # The heads ignore the read-out's directions that augmentation moves most
    # (classifier.nuisance_directions): the linear probe on random critics' block 1 lowered
    # both unseen sets at three seeds with 8 of them.
    *and_without_stage1(
        Variant("nuisance-8-lfcc-gmm-lbfgs-fused-augment-multi-resolution-block1-statistics",
                (*DEFAULT, "classifier.nuisance_directions=8"),
                "the default with both heads blind to the 8 directions of their read-out "
                "along which augmented copies differ most from their clips"),
        "the same on random critics (no stage 1), paired with the default's scratch twin"),
    Variant("augment-no-gsm", ("features.augment=2", f"features.augment_families=[{RAWBOOST},"
                               f"{CHANNELS.replace(',gsm', '')},gain,noise]"),
            "every family but GSM, the cross set's own channel: how much of a gain needs the "
            "exact codec?"),
    Variant("masking", MASKING, "SpecAugment masks in both stages"),
    Variant("log-linear", LINEAR, "linearly spaced bands, 32 ms window"),
    Variant("log-linear-phase", (*LINEAR, "features.phase=true"),
            "linear bands plus group-delay rows"),
    Variant("multi-resolution", MULTI_RESOLUTION,
            "mel bands of a 512-sample (32 ms) window below the seed's 2048-sample ones"),
    Variant("augment-multi-resolution", ("features.augment=2", *MULTI_RESOLUTION),
            "every augmentation family, two copies, with the multi-resolution front end"),
    Variant("augment-multi-resolution-pooled",
            ("features.augment=2", *MULTI_RESOLUTION, *POOLED),
            "the same with the critic's map pooled over time before its Dense"),
    Variant("select-worst-attack", ("classifier.selection=worst_attack_eer",),
            "the epoch kept by the worst attack's dev EER"),
    Variant("select-eer", ("classifier.selection=eer",),
            "the epoch kept by the pooled dev EER (the worst attack's stays at chance on this "
            "dev split, docs/generalisation.md)"),
    Variant("calibrated", ("classifier.calibrate=true",), "scores calibrated on dev"),
    *and_without_stage1(
        Variant("combined", COMBINED, "every option at once: augmentation, masking, the "
                "multi-resolution front end, the epoch by the worst attack, calibration"),
        "every option at once, as `combined`, but without stage 1 (does pre-training still "
        "help?)"),
    Variant("combined-small-scratch", (*COMBINED, *SMALL), "`combined-scratch` with a quarter "
            "of the widths: does less capacity generalise better?", from_scratch=True),
)
LFCC_GMM = "lfcc-gmm"


def study_scorer(model_dir: str) -> Scorer:
    """A study's scorer of a SavedModel: each clip by its first 4 s, as the evaluator scores
    with segment_mode 'first'."""
    return Scorer(model_dir, FeatureConfig(), max_seconds=600, segments="first")


def protocol_scores(scorer: Scorer, root: str, split: str | None = None) -> metrics.ScoreFile:
    """The clips of a protocol dataset (those of `split`, or all) scored by `scorer`
    (study_scorer's)."""
    entries = protocol_entries(root, split)
    scores = []
    for entry in entries:
        result = scorer.score(os.path.join(root, entry.path))
        if result.error:
            sys.exit(f"{os.path.join(root, entry.path)} could not be scored: {result.error}")
        scores.append(result.score)
    return metrics.ScoreFile([entry.path for entry in entries],
                             [entry.attack for entry in entries],
                             np.asarray([entry.label == "fake" for entry in entries]),
                             np.asarray(scores))


def variant_settings(variant: Variant, seed: int, config: str | None) -> list[str]:
    """The pipeline settings of the study's run of `variant` at `seed`."""
    overrides = list(variant.overrides)
    features = load_config(None, study_settings(config, overrides)).features
    if features.augment or features.vocoded:
        # The seed draws the training copies too, so the spread over seeds includes theirs.
        # Only then: without copies it changes no feature, yet it would change the
        # FeatureExtractor's cache key and so retrain a stage 1 the other variants share.
        overrides.append(f"features.augment_seed={seed}")
    return run_settings(seed, variant.from_scratch, config, overrides)


def variant_named(name: str) -> Variant:
    return next(variant for variant in VARIANTS if variant.name == name)


def variant_config(name: str, seed: int, config: str | None) -> PipelineConfig:
    """The pipeline config of the study's run of the variant `name` at `seed`."""
    return load_config(None, variant_settings(variant_named(name), seed, config))


def run_variant(dataset: str, cross: str, workdir: str, settings: list[str]) -> dict[str, Any]:
    """One run of a variant with its `settings` (variant_settings'), scored on every test set."""
    run = run_pipeline(dataset, workdir, settings)
    scorer = study_scorer(run["model_dir"])
    test_sets = {"eval": run["scores"], "cross": protocol_scores(scorer, cross),
                 # The training split as recorded (no augmented copy): set against eval and
                 # cross, the gap says whether a variant fails to learn an attack or learns it
                 # only on its own speakers.
                 "train": protocol_scores(scorer, dataset, "train")}
    result = {name: study_numbers(scores) for name, scores in test_sets.items()}
    calibration = run["classifier"].get("calibration")
    if calibration:
        # The same network's raw log-odds (the fitted map undone): calibration's effect at
        # each seed on one trained model, free of the spread between training runs.
        raw = Calibration(calibration["scale"], calibration["offset"]).inverse()
        result["uncalibrated"] = {
            name: study_numbers(dataclasses.replace(scores, scores=raw.apply(scores.scores)))
            for name, scores in test_sets.items()}
        result["calibration"] = calibration
    return {**result, "best_epoch": run["classifier"].get("best_epoch"),
            "seconds": run["seconds"]}


def lfcc_gmm_scores(dataset: str, seed: int, test_sets: dict[str, tuple[str, str | None]]
                    ) -> dict[str, metrics.ScoreFile]:
    """LFCC-GMM trained on `dataset`'s train split (the first 4 s of each clip, as the
    pipeline sees them), scoring each test set (name -> (a speech_dataset.py folder, its split
    or None for all)); utterances named as protocol_scores names them."""
    train, train_spoof, _ = load_split(dataset, "train", 4.0)
    model = LfccGmm(components=64, seed=seed).fit(train, train_spoof)
    scored = {}
    for name, (root, split) in test_sets.items():
        clips, is_spoof, attacks = load_split(root, split, 4.0)
        scored[name] = metrics.ScoreFile([entry.path for entry in protocol_entries(root, split)],
                                         attacks, is_spoof, model.score(clips))
    return scored


def run_lfcc_gmm(dataset: str, seed: int, test_sets: dict[str, str]) -> dict[str, Any]:
    """LFCC-GMM's numbers on `dataset`'s eval split and on each test set of `test_sets`
    (name -> a speech_dataset.py folder, whose clips are all 'eval')."""
    started = time.monotonic()
    scored = lfcc_gmm_scores(dataset, seed, {"eval": (dataset, "eval"),
                                             **{name: (root, None)
                                                for name, root in test_sets.items()}})
    return {**{name: study_numbers(scores) for name, scores in scored.items()},
            "best_epoch": None, "seconds": time.monotonic() - started}


def write_table(results: dict[str, list[dict[str, Any]]], command: str, path: str) -> None:
    lines = ["# Generalisation: each option on the eval split and on the cross-dataset test set",
             "", f"Measured with `{command}` on {time.strftime('%Y-%m-%d')}, CPU only. EER in %; "
             "mean ± standard deviation over seeds (min-max). The cross set shares no speaker, "
             "no attack family and no channel with training.", ""]
    lines += test_set_tables(
        results, ["variant", "seeds", "EER %", "min t-DCF", "minDCF", "actDCF", "Cllr"],
        lambda name, runs, test_set: [
            name, str(len(runs)), summarise([100 * run[test_set]["eer"] for run in runs]),
            *[summarise([run[test_set][key] for run in runs])
              for key in ("min_tdcf", "min_dcf", "act_dcf", "cllr")]])
    lines += ["What each variant changes:", ""]
    lines += [f"- `{variant.name}` ({' '.join(variant.overrides) or 'no changes'}): "
              f"{variant.question}" for variant in VARIANTS if variant.name in results]
    if LFCC_GMM in results:
        lines.append(f"- `{LFCC_GMM}`: LFCC with deltas, two 64-component GMMs (the classic "
                     "baseline)")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    dataset_arguments(parser, "dataset", "cross")
    study_arguments(parser, [variant.name for variant in VARIANTS] + [LFCC_GMM],
                    "generalisation_workdir", "GENERALISATION.md")
    args = parser.parse_args()
    names = [variant.name for variant in VARIANTS] + [LFCC_GMM]

    def compute(name: str, seed: int, settings: list[str]) -> dict[str, Any]:
        if name == LFCC_GMM:
            result = run_lfcc_gmm(args.dataset, seed, {"cross": args.cross})
        else:
            result = run_variant(args.dataset, args.cross, args.workdir, settings)
        return {"variant": name, "seed": seed, **result}

    def settings(name: str, seed: int) -> list[str]:
        if name == LFCC_GMM:
            return []
        return variant_settings(variant_named(name), seed, args.config)

    def describe(result: dict[str, Any]) -> str:
        return (f"eval EER {100 * result['eval']['eer']:.2f} %, cross EER "
                f"{100 * result['cross']['eer']:.2f} % ({result['seconds']:.0f} s)")

    run_study(args, os.path.join(args.output, "generalisation_runs"),
              [(name, seed) for name in names for seed in args.seeds], compute, describe,
              lambda results: write_table(
                  results, study_command("generalisation.py", results),
                  os.path.join(args.output, "GENERALISATION.md")),
              settings)
    print(f"Wrote {os.path.join(args.output, 'GENERALISATION.md')}")


if __name__ == "__main__":
    main()
