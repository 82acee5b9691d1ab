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

from spoofdetect import evaluation, scoring
from spoofdetect.components import keys
from spoofdetect.components.code_version import running_code_version
from spoofdetect.components.properties import record_properties
from spoofdetect.config import EvaluationConfig, FeatureConfig, section_from_json
from spoofdetect.data import split_files


def headline_properties(result: dict[str, Any]) -> dict[str, object]:
    """The ModelEvaluation's MLMD properties: the eval split's clip metrics, and counts."""
    clip = result["clip"]
    return {
        keys.EER_PROPERTY: clip["eer"], keys.EER_THRESHOLD_PROPERTY: clip["eer_threshold"],
        keys.MIN_TDCF_PROPERTY: clip["min_tdcf"],
        keys.MIN_TDCF_2021_PROPERTY: clip["min_tdcf_2021"],
        keys.MIN_DCF_PROPERTY: clip["min_dcf"], keys.ACT_DCF_PROPERTY: clip["act_dcf"],
        keys.CLLR_PROPERTY: clip["cllr"], keys.AUC_PROPERTY: clip["auc"],
        keys.AVERAGE_PRECISION_PROPERTY: clip["average_precision"],
        keys.BRIER_PROPERTY: clip["brier"],
        keys.ACCURACY_PROPERTY: clip["at_probability_0_5"]["accuracy"],
        keys.F1_PROPERTY: clip["at_probability_0_5"]["f1"],
        keys.NUM_CLIPS_PROPERTY: result["num_clips"],
        keys.NUM_SEGMENTS_PROPERTY: result["num_segments"],
        keys.SEGMENT_EER_PROPERTY: result["segment"]["eer"],
    }


class Executor(base_executor.BaseExecutor):
    def Do(self, input_dict: dict[str, list[types.Artifact]],
           output_dict: dict[str, list[types.Artifact]],
           exec_properties: dict[str, Any]) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        examples = artifact_utils.get_single_instance(input_dict[keys.EXAMPLES_KEY])
        model = artifact_utils.get_single_instance(input_dict[keys.MODEL_KEY])
        baselines = input_dict.get(keys.BASELINE_MODEL_KEY) or []
        evaluation_artifact = artifact_utils.get_single_instance(
            output_dict[keys.EVALUATION_KEY])
        blessing_artifact = artifact_utils.get_single_instance(output_dict[keys.BLESSING_KEY])
        features = section_from_json(FeatureConfig, exec_properties[keys.FEATURE_CONFIG_KEY])
        config = section_from_json(EvaluationConfig,
                                   exec_properties[keys.EVALUATION_CONFIG_KEY])

        files = split_files(examples.uri, config.split)
        result = evaluation.evaluate_model(path_utils.serving_model_path(model.uri), files,
                                           features, config, evaluation_artifact.uri)
        baseline, incomparable = None, None
        baseline_dir = (path_utils.serving_model_path(baselines[0].uri) if baselines else
                        scoring.newest_version(
                            exec_properties.get(keys.BASELINE_SERVING_DIR_KEY) or ""))
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

        code_version = running_code_version(exec_properties.get(keys.CODE_VERSION_KEY))
        record_properties(evaluation_artifact, {
            **headline_properties(result), keys.BLESSED_PROPERTY: blessing.blessed,
            keys.REPORT_URI_PROPERTY: report, keys.CODE_VERSION_PROPERTY: code_version})
        io_utils.write_string_file(os.path.join(
            blessing_artifact.uri,
            keys.BLESSED_FILE if blessing.blessed else keys.NOT_BLESSED_FILE), "")
        record_properties(blessing_artifact, {
            keys.BLESSED_PROPERTY: blessing.blessed, keys.REASON_PROPERTY: blessing.reason,
            keys.CURRENT_MODEL_PROPERTY: model.uri, keys.CURRENT_MODEL_ID_PROPERTY: model.id,
            keys.EER_PROPERTY: result["clip"]["eer"],
            keys.MIN_TDCF_PROPERTY: result["clip"]["min_tdcf"],
            keys.CODE_VERSION_PROPERTY: code_version})
        if baselines:
            record_properties(blessing_artifact, {
                keys.BASELINE_MODEL_PROPERTY: baselines[0].uri,
                keys.BASELINE_MODEL_ID_PROPERTY: baselines[0].id})
