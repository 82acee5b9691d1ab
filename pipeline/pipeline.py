"""The pipeline: one `create_pipeline(config)` for every runner.

    FeatureExtractor ──> StatisticsGen ──> ExampleValidator <── ImportSchemaGen
      (Beam: audio → log-Mel Examples)      (checks every run against schemas/)
"""

from __future__ import annotations

import os

from tfx import v1 as tfx
from tfx.orchestration import pipeline as tfx_pipeline

from spoofdetect.components.feature_extractor.component import FeatureExtractor
from spoofdetect.config import PipelineConfig, section_to_json
from spoofdetect.dataset import dataset_fingerprint
from spoofdetect.pipeline.schema import schema_path_for


def create_pipeline(config: PipelineConfig,
                    metadata_connection_config: object | None = None) -> tfx_pipeline.Pipeline:
    feature_extractor = FeatureExtractor(
        data_root=config.data_root,
        feature_config=section_to_json(config.features),
        dataset_fingerprint=dataset_fingerprint(config.data_root),
    )
    statistics_gen = tfx.components.StatisticsGen(
        examples=feature_extractor.outputs["examples"])
    schema_importer = tfx.components.ImportSchemaGen(
        schema_file=schema_path_for(config.features, os.path.join(config.workdir, "schema")))
    example_validator = tfx.components.ExampleValidator(
        statistics=statistics_gen.outputs["statistics"],
        schema=schema_importer.outputs["schema"])

    return tfx.dsl.Pipeline(
        pipeline_name=config.pipeline_name,
        pipeline_root=config.pipeline_root,
        components=[feature_extractor, statistics_gen, schema_importer, example_validator],
        enable_cache=config.enable_cache,
        metadata_connection_config=metadata_connection_config,
        beam_pipeline_args=list(config.beam_pipeline_args),
    )
