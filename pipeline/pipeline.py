"""The pipeline: one `create_pipeline(config)` for every runner.

    FeatureExtractor ──> StatisticsGen ──> ExampleValidator <── ImportSchemaGen
      (Beam: audio → log-Mel Examples)      (checks every run against schemas/)
            │                                    │ (runs after)
            ├──────────> WganPretrainer <────────┘   stage 1: WGAN-GP critic
            │                  │ base_model
            ├──────────> Trainer (pipeline/trainer_module.py)   stage 2: fine-tune, export
            │                  │ model
            └──────────> SpoofEvaluator <── latest_blessed_model_resolver (baseline)
                               │ blessing            (EER, t-DCF, plots, report)
                               ▼
                             Pusher ──> serving_dir/<version>/ (only when blessed)

With classifier.from_scratch the WganPretrainer is left out and the Trainer starts from a
fresh critic: the ablation.
"""

from __future__ import annotations

import os

import tensorflow_data_validation as tfdv
from tfx import v1 as tfx
from tfx.orchestration import pipeline as tfx_pipeline

from spoofdetect.components import code_version
from spoofdetect.components.feature_extractor.component import FeatureExtractor
from spoofdetect.components.spoof_evaluator.component import SpoofEvaluator
from spoofdetect.components.wgan_pretrainer.component import WganPretrainer
from spoofdetect.config import PipelineConfig, section_to_json
from spoofdetect.dataset import dataset_fingerprint
from spoofdetect.pipeline import trainer_module
from spoofdetect.pipeline.kubeflow_resources import request_gpus
from spoofdetect.pipeline.schema import (
    packaged_schema_fits,
    schema_path_for,
    statistics_features,
)

# StatisticsGen runs in the DirectRunner's own process (other runners ignore the option): with
# the spectrogram left out its per-example work is small, and starting a worker process per
# core cost more than it saved (2,000 examples: 30.5 s multi-processing, 23.5 s in one
# process, benchmarks/data_stages.py).
STATISTICS_BEAM_ARGS = ("--direct_running_mode=in_memory",)


def create_pipeline(config: PipelineConfig, metadata_connection_config: object | None = None,
                    on_kubeflow: bool = False) -> tfx_pipeline.Pipeline:
    """The whole DAG. `on_kubeflow`: the dataset is not listed here (it lives where the
    cluster reads it), the schema is the image's copy, and the training steps ask for GPUs."""
    feature_extractor, statistics_gen, schema_importer, example_validator = data_stages(
        config, on_kubeflow)
    components = [feature_extractor, statistics_gen, schema_importer, example_validator]

    pretrainer = None
    if not config.classifier.from_scratch:
        pretrainer = WganPretrainer(
            examples=feature_extractor.outputs["examples"],
            gan_config=section_to_json(config.gan),
            feature_config=section_to_json(config.features))
        pretrainer.add_upstream_node(example_validator)
        components.append(pretrainer)

    trainer = tfx.components.Trainer(
        run_fn=trainer_module.__name__ + ".run_fn",
        examples=feature_extractor.outputs["examples"],
        schema=schema_importer.outputs["schema"],
        base_model=pretrainer.outputs["model"] if pretrainer else None,
        train_args=tfx.proto.TrainArgs(splits=["train"]),
        eval_args=tfx.proto.EvalArgs(splits=["dev"]),
        custom_config={
            trainer_module.FEATURES: section_to_json(config.features),
            trainer_module.GAN: section_to_json(config.gan),
            trainer_module.CLASSIFIER: section_to_json(config.classifier),
            trainer_module.MAX_AUDIO_SECONDS: config.evaluation.max_score_seconds,
            trainer_module.CODE_VERSION: code_version.current(),
        })
    trainer.add_upstream_node(example_validator)
    components.append(trainer)

    # The baseline is the last blessed model: found in ML Metadata by a Resolver, or (on
    # Kubeflow, whose open-source backend cannot run TFX's resolver) the newest pushed model.
    baseline_resolver = None
    if config.evaluation.baseline == "mlmd":
        baseline_resolver = tfx.dsl.Resolver(
            strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
            model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
            model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing),
        ).with_id("latest_blessed_model_resolver")
        components.append(baseline_resolver)
    evaluator = SpoofEvaluator(
        examples=feature_extractor.outputs["examples"],
        model=trainer.outputs["model"],
        baseline_model=baseline_resolver.outputs["model"] if baseline_resolver else None,
        baseline_serving_dir=(config.push_destination
                              if config.evaluation.baseline == "serving_dir" else None),
        feature_config=section_to_json(config.features),
        evaluation_config=section_to_json(config.evaluation))
    pusher = tfx.components.Pusher(
        model=trainer.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        push_destination=tfx.proto.PushDestination(
            filesystem=tfx.proto.PushDestination.Filesystem(
                base_directory=config.push_destination)))
    components += [evaluator, pusher]
    if on_kubeflow:
        request_gpus([component for component in (pretrainer, trainer) if component],
                     config.kubeflow)

    return tfx.dsl.Pipeline(
        pipeline_name=config.pipeline_name,
        pipeline_root=config.pipeline_root,
        components=components,
        enable_cache=config.enable_cache,
        metadata_connection_config=metadata_connection_config,
        beam_pipeline_args=list(config.beam_pipeline_args),
    )


def data_stages(config: PipelineConfig, on_kubeflow: bool = False
                ) -> tuple[FeatureExtractor, tfx.components.StatisticsGen,
                           tfx.components.ImportSchemaGen, tfx.components.ExampleValidator]:
    """The DAG's data stages, which every training step waits for: features, their
    statistics, the schema and the validation of one against the other."""
    feature_extractor = FeatureExtractor(
        data_root=config.data_root,
        feature_config=section_to_json(config.features),
        # Lists the dataset once, here: an unusable layout fails before TFX starts.
        dataset_fingerprint=("" if on_kubeflow else
                             dataset_fingerprint(config.data_root, config.features)),
    )
    statistics_gen = tfx.components.StatisticsGen(
        examples=feature_extractor.outputs["examples"],
        stats_options=tfdv.StatsOptions(feature_allowlist=statistics_features(config.features))
    ).with_beam_pipeline_args(list(STATISTICS_BEAM_ARGS))
    # On Kubeflow the image's copy, unless the config's shape needs a fitted one.
    schema_file = (config.kubeflow.schema_file
                   if on_kubeflow and packaged_schema_fits(config.features) else
                   schema_path_for(config.features, os.path.join(config.pipeline_root, "schema")))
    schema_importer = tfx.components.ImportSchemaGen(schema_file=schema_file)
    example_validator = tfx.components.ExampleValidator(
        statistics=statistics_gen.outputs["statistics"],
        schema=schema_importer.outputs["schema"])
    return feature_extractor, statistics_gen, schema_importer, example_validator
