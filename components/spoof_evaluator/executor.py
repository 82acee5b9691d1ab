"""SpoofEvaluator executor: scores the candidate (and the baseline), decides the blessing,
writes the evaluation and the blessing artifacts."""

from __future__ import annotations

import os
from typing import Any

from absl import logging
from tfx import types
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils
from tfx.utils import io_utils, path_utils

from spoofdetect import evaluation
from spoofdetect.components.properties import record_properties
from spoofdetect.config import EvaluationConfig, FeatureConfig, section_from_json
from spoofdetect.data import split_files


def headline_properties(result: dict[str, Any]) -> dict[str, object]:
    clip = result["clip"]
    return {
        "eer": clip["eer"], "eer_threshold": clip["eer_threshold"],
        "min_tdcf": clip["min_tdcf"], "min_tdcf_2021": clip["min_tdcf_2021"],
        "min_dcf": clip["min_dcf"], "act_dcf": clip["act_dcf"], "cllr": clip["cllr"],
        "auc": clip["auc"], "average_precision": clip["average_precision"],
        "brier": clip["brier"], "accuracy": clip["at_probability_0_5"]["accuracy"],
        "f1": clip["at_probability_0_5"]["f1"], "num_clips": result["num_clips"],
        "num_segments": result["num_segments"], "segment_eer": result["segment"]["eer"],
    }


class Executor(base_executor.BaseExecutor):
    def Do(self, input_dict: dict[str, list[types.Artifact]],
           output_dict: dict[str, list[types.Artifact]],
           exec_properties: dict[str, Any]) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        examples = artifact_utils.get_single_instance(input_dict["examples"])
        model = artifact_utils.get_single_instance(input_dict["model"])
        baselines = input_dict.get("baseline_model") or []
        evaluation_artifact = artifact_utils.get_single_instance(output_dict["evaluation"])
        blessing_artifact = artifact_utils.get_single_instance(output_dict["blessing"])
        features = section_from_json(FeatureConfig, exec_properties["feature_config"])
        config = section_from_json(EvaluationConfig, exec_properties["evaluation_config"])

        files = split_files(examples.uri, config.split)
        result = evaluation.evaluate_model(path_utils.serving_model_path(model.uri), files,
                                           features, config, evaluation_artifact.uri)
        baseline, incomparable = None, None
        baseline_dir = (path_utils.serving_model_path(baselines[0].uri) if baselines else
                        evaluation.newest_version(exec_properties.get("baseline_serving_dir")
                                                  or ""))
        if baseline_dir:
            # When the Trainer's output came from the cache, the baseline is this very model.
            same = bool(baselines) and baselines[0].id == model.id
            try:
                baseline = result if same else evaluation.evaluate_model(baseline_dir, files,
                                                                         features, config)
                result["baseline"] = {"model": baseline_dir, "clip": baseline["clip"]}
            except evaluation.WrongShapeError as error:
                # The last blessed model is for other feature settings: nothing to compare.
                incomparable = f"{error}, so the last blessed model was not compared"
                logging.warning("Baseline skipped: %s.", incomparable)
                result["baseline"] = {"model": baseline_dir, "skipped": incomparable}
        blessing = evaluation.decide_blessing(result, baseline, config, incomparable)
        result["blessing"] = {"blessed": blessing.blessed, "reason": blessing.reason}
        evaluation.write_metrics(evaluation_artifact.uri, result)
        report = evaluation.write_report(evaluation_artifact.uri, result, blessing)
        logging.info("%s: %s", "BLESSED" if blessing.blessed else "NOT BLESSED",
                     blessing.reason)

        record_properties(evaluation_artifact, {
            **headline_properties(result), "blessed": blessing.blessed,
            "report_uri": report})
        io_utils.write_string_file(os.path.join(
            blessing_artifact.uri, "BLESSED" if blessing.blessed else "NOT_BLESSED"), "")
        record_properties(blessing_artifact, {
            "blessed": blessing.blessed, "reason": blessing.reason,
            "current_model": model.uri, "current_model_id": model.id,
            "eer": result["clip"]["eer"], "min_tdcf": result["clip"]["min_tdcf"]})
        if baselines:
            record_properties(blessing_artifact, {"baseline_model": baselines[0].uri,
                                                  "baseline_model_id": baselines[0].id})
