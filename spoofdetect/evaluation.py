"""Evaluation of an exported SavedModel on a split of the feature Examples, and the blessing
decision that gates the Pusher. Plain TensorFlow, numpy and matplotlib; no TFX.

The model is scored through its `from_features` signature, i.e. exactly as exported. A clip
with several 4 s segments gets one score per segment and one per clip: the mean of its
segments' log-odds. The clip scores are the headline (ASVspoof scores one per utterance).
"""

from __future__ import annotations

import dataclasses
import html
import json
import os
from typing import Any

import numpy as np
import tensorflow as tf

from spoofdetect import examples, metrics, plots
from spoofdetect.config import EvaluationConfig, FeatureConfig
from spoofdetect.data import example_dataset

METRICS_FILE = "metrics.json"
CLIP_SCORES_FILE = "scores_clip.txt"
SEGMENT_SCORES_FILE = "scores_segment.txt"
REPORT_FILE = "report.html"


class WrongShapeError(ValueError):
    """The model takes feature maps of another shape than these examples' (it was trained
    with other feature settings), so it cannot judge any of them."""


@dataclasses.dataclass
class ScoredSet:
    """Scores of segments or of clips: parallel arrays, one entry each."""

    ids: list[str]  # clip id, or clip id#segment index
    clip_ids: list[str]
    paths: list[str]
    attacks: list[str]
    is_spoof: np.ndarray
    scores: np.ndarray  # log-odds of bona fide (ASVspoof direction)
    num_segments: np.ndarray


def score_examples(model_dir: str, files: list[str], features: FeatureConfig,
                   batch_size: int) -> ScoredSet:
    """Every example of `files` scored by the SavedModel's from_features signature."""
    score = tf.saved_model.load(model_dir).signatures["from_features"]
    # A fused model takes the other systems' maps too.
    maps = [examples.LOG_MEL, *features.fused_maps]
    takes = sorted(score.structured_input_signature[1])
    if takes != sorted(maps):
        raise WrongShapeError(f"the model in {model_dir} takes the maps {', '.join(takes)}; "
                              f"these examples have {', '.join(maps)} (features.fusion "
                              "or features.lfcc_gmm changed since it was trained)")
    ids, paths, attacks, labels, scores, segment_index = [], [], [], [], [], []
    for batch in example_dataset(files, features, batch_size):
        outputs = score(**{name: batch[name] for name in maps})
        batch_ids = [value.decode() for value in batch[examples.CLIP_ID].numpy()]
        # Models exported before the status output have none; they judge every example.
        if "status" in outputs:
            refused = [f"{clip} ({status.decode()})" for clip, status in
                       zip(batch_ids, outputs["status"].numpy(), strict=True) if status != b"ok"]
            if refused and all(status == b"wrong_shape" for status in outputs["status"].numpy()):
                raise WrongShapeError(
                    f"the model in {model_dir} does not take {features.num_rows} x "
                    f"{features.num_frames} feature maps (the feature settings changed since "
                    "it was trained)")
            if refused:
                raise ValueError(f"The model in {model_dir} did not judge the examples "
                                 f"{', '.join(refused[:5])}: the Examples are not the feature "
                                 "stage's (shape or values), or the model is not for them.")
        scores.append(outputs["score"].numpy())
        ids += batch_ids
        paths += [value.decode() for value in batch[examples.PATH].numpy()]
        attacks += [value.decode() for value in batch[examples.ATTACK].numpy()]
        labels.append(batch[examples.LABEL].numpy())
        segment_index.append(batch[examples.SEGMENT_INDEX].numpy())
    if not ids:
        raise ValueError(f"No examples in {files}")
    segments = np.concatenate(segment_index)
    return ScoredSet([f"{clip}#{index}" for clip, index in zip(ids, segments, strict=True)],
                     ids, paths, attacks, np.concatenate(labels) == 1,
                     np.concatenate(scores).astype(np.float64), np.ones(len(ids), int))


def clip_scores(segments: ScoredSet) -> ScoredSet:
    """One score per clip: the mean of its segments' log-odds."""
    groups: dict[str, list[int]] = {}
    for position, clip_id in enumerate(segments.clip_ids):
        groups.setdefault(clip_id, []).append(position)
    members = list(groups.values())
    firsts = [member[0] for member in members]
    return ScoredSet(list(groups), list(groups), [segments.paths[i] for i in firsts],
                     [segments.attacks[i] for i in firsts], segments.is_spoof[firsts],
                     np.array([segments.scores[member].mean() for member in members]),
                     np.array([len(member) for member in members]))


def _metrics_of(scored: ScoredSet, asv: metrics.AsvErrorRates) -> dict[str, Any]:
    attacks = scored.attacks if any(scored.attacks) else None
    return metrics.evaluate_scores(scored.scores, scored.is_spoof, attacks, asv)


def write_scores(path: str, scored: ScoredSet) -> None:
    metrics.write_score_file(path, scored.ids, scored.attacks, scored.is_spoof, scored.scores)


def evaluate_model(model_dir: str, files: list[str], features: FeatureConfig,
                   config: EvaluationConfig, output_dir: str | None = None) -> dict[str, Any]:
    """Scores a split and computes the metrics per clip (the headline) and per segment.

    With `output_dir`, also writes the ASVspoof-format score files and the PNG plots there.
    """
    segments = score_examples(model_dir, files, features, config.batch_size)
    clips = clip_scores(segments)
    asv = metrics.asv_rates(config)
    result = {"model": model_dir, "num_clips": len(clips.ids),
              "num_segments": len(segments.ids), "clip": _metrics_of(clips, asv),
              "segment": _metrics_of(segments, asv)}
    if output_dir:
        os.makedirs(output_dir, exist_ok=True)
        write_scores(os.path.join(output_dir, CLIP_SCORES_FILE), clips)
        write_scores(os.path.join(output_dir, SEGMENT_SCORES_FILE), segments)
        result["plots"] = plots.save_evaluation_plots(clips.scores, clips.is_spoof,
                                                      result["clip"], output_dir)
    return result


@dataclasses.dataclass(frozen=True)
class Blessing:
    blessed: bool
    reason: str


def decide_blessing(candidate: dict[str, Any], baseline: dict[str, Any] | None,
                    config: EvaluationConfig, no_baseline_reason: str | None = None
                    ) -> Blessing:
    """Blessed when the clip-level EER and min t-DCF are within the configured limits and
    do not regress against the baseline (the last blessed model) beyond the tolerances.
    `no_baseline_reason` says why there is a blessed model but no comparison."""
    eer, tdcf = candidate["clip"]["eer"], candidate["clip"]["min_tdcf"]
    failures = []
    if eer > config.max_eer:
        failures.append(f"EER {100 * eer:.2f} % is above the limit "
                        f"{100 * config.max_eer:.2f} % (evaluation.max_eer)")
    if tdcf > config.max_min_tdcf:
        failures.append(f"min t-DCF {tdcf:.4f} is above the limit {config.max_min_tdcf:.4f} "
                        "(evaluation.max_min_tdcf)")
    if baseline is not None:
        base_eer, base_tdcf = baseline["clip"]["eer"], baseline["clip"]["min_tdcf"]
        if eer > base_eer + config.eer_tolerance:
            failures.append(f"EER {100 * eer:.2f} % regresses from the last blessed model's "
                            f"{100 * base_eer:.2f} % by more than "
                            f"{100 * config.eer_tolerance:.2f} points (evaluation.eer_tolerance)")
        if tdcf > base_tdcf + config.min_tdcf_tolerance:
            failures.append(f"min t-DCF {tdcf:.4f} regresses from the last blessed model's "
                            f"{base_tdcf:.4f} by more than {config.min_tdcf_tolerance:.4f} "
                            "(evaluation.min_tdcf_tolerance)")
    if failures:
        return Blessing(False, "; ".join(failures))
    against = (no_baseline_reason or "no blessed model to compare with yet"
               if baseline is None else
               f"no regression against the last blessed model (EER "
               f"{100 * baseline['clip']['eer']:.2f} %, min t-DCF "
               f"{baseline['clip']['min_tdcf']:.4f})")
    return Blessing(True, f"EER {100 * eer:.2f} % <= {100 * config.max_eer:.2f} %, min t-DCF "
                          f"{tdcf:.4f} <= {config.max_min_tdcf:.4f}, {against}")


def write_metrics(output_dir: str, result: dict[str, Any]) -> str:
    path = os.path.join(output_dir, METRICS_FILE)
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(result, handle, indent=1)
    return path


def _rows(pairs: list[tuple[str, str]]) -> str:
    return "\n".join(f"<tr><th>{html.escape(name)}</th><td>{html.escape(value)}</td></tr>"
                     for name, value in pairs)


def write_report(output_dir: str, result: dict[str, Any], blessing: Blessing) -> str:
    """A one-page HTML report: verdict, headline metrics, per-attack table and every plot."""
    clip = result["clip"]
    verdict = "BLESSED" if blessing.blessed else "NOT BLESSED"
    headline = [
        ("clips / segments", f"{result['num_clips']} / {result['num_segments']}"),
        ("bona fide / spoof clips", f"{clip['num_bonafide']} / {clip['num_spoof']}"),
        ("EER", f"{100 * clip['eer']:.3f} % (threshold {clip['eer_threshold']:.4g})"),
        ("min t-DCF (ASVspoof 2019)", f"{clip['min_tdcf']:.4f}"),
        ("min t-DCF (ASVspoof 2021, ASV-constrained)", f"{clip['min_tdcf_2021']:.4f}"),
        ("minDCF / actDCF (ASVspoof 5: Pspoof 0.05, Cmiss 1, Cfa 10)",
         f"{clip['min_dcf']:.4f} / {clip['act_dcf']:.4f}"),
        ("Cllr (scores as log-likelihood ratios)", f"{clip['cllr']:.4f} bits"),
        ("ROC AUC (positive class: spoof)", f"{clip['auc']:.4f}"),
        ("average precision", f"{clip['average_precision']:.4f}"),
        ("Brier score", f"{clip['brier']:.4f}"),
        ("segment-level EER", f"{100 * result['segment']['eer']:.3f} %"),
    ]
    for name, key in (("p(spoof) = 0.5", "at_probability_0_5"),
                      ("the EER threshold", "at_eer_threshold")):
        at = clip[key]
        headline.append((f"at {name}", f"accuracy {at['accuracy']:.4f}, precision "
                                       f"{at['precision']:.4f}, recall {at['recall']:.4f}, "
                                       f"F1 {at['f1']:.4f}"))
    attack_rows = _rows([(attack, f"EER {100 * v['eer']:.3f} %, min t-DCF {v['min_tdcf']:.4f}"
                                  f" ({v['num_spoof']} spoof clips)")
                         for attack, v in clip.get("per_attack", {}).items()])
    images = "\n".join(f'<figure><img src="{html.escape(name)}" alt="{html.escape(name)}">'
                       f"</figure>" for name in result.get("plots", []))
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Spoof detection evaluation</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}}
th{{text-align:left;padding-right:2em}} img{{max-width:520px}} figure{{display:inline-block}}
.ok{{color:#176117}} .no{{color:#a11}}</style></head><body>
<h1>Spoof detection evaluation</h1>
<p class="{'ok' if blessing.blessed else 'no'}"><b>{verdict}</b>: {html.escape(blessing.reason)}</p>
<p>Model: <code>{html.escape(result['model'])}</code>. Scores are log-odds of bona fide (higher =
more bona fide); a clip scores the mean of its segments' log-odds.</p>
<h2>Headline (per clip)</h2><table>{_rows(headline)}</table>
{'<h2>Per attack</h2><table>' + attack_rows + '</table>' if attack_rows else ''}
<h2>Plots</h2>{images}
<p>Score files (ASVspoof format): <a href="{CLIP_SCORES_FILE}">{CLIP_SCORES_FILE}</a>,
<a href="{SEGMENT_SCORES_FILE}">{SEGMENT_SCORES_FILE}</a>; all metrics:
<a href="{METRICS_FILE}">{METRICS_FILE}</a>.</p>
</body></html>
"""
    path = os.path.join(output_dir, REPORT_FILE)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(page)
    return path
