"""`spoofdetect`: the command line.

Every command reads the one PipelineConfig (`--config FILE`, `--set KEY=VALUE`). A UserError
is printed as one message and exits with status 2; no traceback for problems a user can fix.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
import warnings

# Before TensorFlow is imported anywhere; Beam's worker processes inherit these too. TensorFlow's
# C++ start-up chatter (CUDA plugins on a CPU host) and the Google client libraries' Python
# version warnings say nothing about the user's run.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("PYTHONWARNINGS", "ignore::FutureWarning,ignore::DeprecationWarning")

from spoofdetect.config import (
    COMPILED_SPEC,
    SPLITS,
    EvaluationConfig,
    PipelineConfig,
    absolute_path,
    load_config,
)
from spoofdetect.errors import UserError

EXIT_SOME_FAILED = 1
EXIT_USER_ERROR = 2


def _quiet_libraries() -> None:
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=UserWarning, module="google")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("absl").setLevel(logging.ERROR)
    # Beam relays every worker log line as a WARNING of this logger; worker failures still
    # surface as exceptions.
    logging.getLogger("apache_beam.runners.portability.local_job_service").setLevel(
        logging.ERROR)
    # BeamDagRunner's node DoFns return nothing by design; Beam warns about it for each node.
    logging.getLogger("apache_beam.transforms.core").setLevel(logging.ERROR)
    # TFX's input resolution warns for every Resolver channel that it ignores a property
    # filter it added itself; TFX also resets the absl logger's level, so filter the message.
    logging.getLogger("absl").addFilter(
        lambda record: "property_predicate is not supported" not in record.getMessage())


def _config_from_args(args: argparse.Namespace, **values: object) -> PipelineConfig:
    return load_config(args.config, args.set, **values)


def _add_config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="pipeline config file (YAML or JSON)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override one config value, e.g. features.segment_mode=all")


def cmd_make_demo_data(args: argparse.Namespace) -> int:
    from spoofdetect.demo_data import DEFAULT_CLIPS_PER_CLASS, make_demo_dataset

    clips = {split: max(1, round(count * args.scale))
             for split, count in DEFAULT_CLIPS_PER_CLASS.items()}
    count = make_demo_dataset(args.dir, clips, seed=args.seed)
    print(f"Wrote {count} synthetic clips to {args.dir} "
          f"({', '.join(f'{s}: {clips[s]} per class' for s in SPLITS)}) "
          f"and broken files to {os.path.join(args.dir, 'broken')}.")
    return 0


def cmd_features(args: argparse.Namespace) -> int:
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    from spoofdetect.extraction import REPORT_FILE, run_extraction
    from spoofdetect.outputs import output_folder, replace_folder

    overrides = [*args.set, *_protocol_overrides(args)]
    if args.segments:
        overrides.append(f"features.segment_mode={args.segments}")
    config = load_config(args.config, overrides, data_root=args.data_root)
    folder = output_folder(args.output, args.overwrite)
    beam_args = list(args.beam_arg) if args.beam_arg else list(config.beam_pipeline_args)
    pipeline = beam.Pipeline(options=PipelineOptions(beam_args))
    summary = run_extraction(pipeline, config.data_root, folder, config.features,
                             owns_process=True)
    replace_folder(folder, args.output)
    print(summary.format())
    print(f"TFRecords under {args.output}/Split-*/; report: {args.output}/{REPORT_FILE}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from spoofdetect.pipeline.local_runner import run_local

    config = load_config(args.config, [*args.set, *_protocol_overrides(args)],
                         data_root=args.data_root, workdir=args.workdir)
    return run_local(config, runner=args.runner)


def _protocol_overrides(args: argparse.Namespace) -> list[str]:
    if not args.protocol:
        return []
    return ["features.protocol=" + json.dumps([absolute_path(path) for path in args.protocol])]


def _add_protocol_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--protocol", action="append", metavar="FILE",
                        help="a protocol file listing the clips instead of the folder layout "
                             "(CSV with split,label,file[,attack,speaker], or ASVspoof's "
                             "*.trn.txt/*.trl.txt); repeat for several")


def asv_config(args: argparse.Namespace) -> EvaluationConfig:
    """The evaluation settings the ASV flags give: an ASV score file, or all three rates."""
    rates = {"pfa_asv": args.pfa_asv, "pmiss_asv": args.pmiss_asv,
             "pmiss_spoof_asv": args.pmiss_spoof_asv}
    given = {name: value for name, value in rates.items() if value is not None}
    if args.asv_scores and given:
        raise UserError("Give either --asv-scores or the three --p*-asv rates, not both.")
    if given and len(given) < len(rates):
        raise UserError("Give all three of --pfa-asv, --pmiss-asv and --pmiss-spoof-asv.")
    config = dataclasses.replace(EvaluationConfig(), asv_scores=args.asv_scores or "", **given)
    config.validate()
    return config


def cmd_metrics(args: argparse.Namespace) -> int:
    from spoofdetect import metrics

    scores = metrics.read_score_file(args.score_file)
    result = metrics.evaluate_scores(scores.scores, scores.is_spoof, scores.attacks,
                                     metrics.asv_rates(asv_config(args)))
    if args.format == "json":
        print(json.dumps(result, indent=2))
    else:
        print(metrics.format_summary(result))
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    from spoofdetect import scoring
    from spoofdetect.outputs import check_writable_file

    config = _config_from_args(args)
    if args.output:
        if not args.output.lower().endswith((".csv", ".json")):
            raise UserError(f"--output {args.output}: name a .csv or a .json file (the "
                            "format follows the name).")
        check_writable_file(args.output, "the scores")
    if args.asvspoof_scores:
        check_writable_file(args.asvspoof_scores, "the ASVspoof score file")
    files = scoring.expand_inputs(args.paths)
    scorer = scoring.Scorer(args.model, config.features, config.evaluation.max_score_seconds,
                            args.segments)
    print(f"Scoring {len(files)} files with {scorer.model_dir}", file=sys.stderr)
    results = list(scoring.score_paths(scorer, files))
    print(scoring.format_table(results))
    if args.output:
        scoring.write_results(results, args.output)
        print(f"Wrote {args.output}")
    scored = [r for r in results if not r.error]
    if args.asvspoof_scores and scored:
        scoring.write_asvspoof_scores(results, args.asvspoof_scores)
        print(f"Wrote {args.asvspoof_scores}")
    failed = len(results) - len(scored)
    if failed:
        print(f"error: {failed} of {len(results)} files could not be scored (reasons above).",
              file=sys.stderr)
    return EXIT_SOME_FAILED if failed else 0


def cmd_compile(args: argparse.Namespace) -> int:
    from spoofdetect.outputs import check_writable_file
    from spoofdetect.pipeline import kubeflow_runner

    config = kubeflow_runner.kubeflow_config(_config_from_args(args), args.image,
                                             args.pipeline_root, args.data_root, args.gpus)
    check_writable_file(args.output, "the pipeline spec")
    documents = kubeflow_runner.compile_spec(config)
    kubeflow_runner.write_spec(documents, args.output)
    print(kubeflow_runner.describe_spec(documents))
    print(f"Wrote {args.output}; submit it with: spoofdetect submit --host URL "
          f"--spec {args.output}")
    return 0


def cmd_kfp_local(args: argparse.Namespace) -> int:
    from spoofdetect.pipeline.kfp_local import run_kfp_local

    result = run_kfp_local(_config_from_args(args), args.image, args.workdir, args.kfp_python,
                           args.data_root)
    print(f"Every task succeeded under KFP's local runner; run folder {result['run_dir']}, "
          f"pushed models in {result['serving_dir']}")
    return 0


def cmd_submit(args: argparse.Namespace) -> int:
    from spoofdetect.pipeline import kubeflow_runner

    documents = kubeflow_runner.read_spec(args.spec)
    print(kubeflow_runner.describe_spec(documents))
    if args.dry_run:
        print(f"Dry run: would submit {args.spec} to {args.host} (experiment "
              f"{args.experiment}, namespace {args.namespace or 'kubeflow'}); nothing sent.")
        return 0
    run_id = kubeflow_runner.submit(args.spec, args.host, args.namespace, args.experiment,
                                    args.run_name)
    print(f"Started run {run_id} in experiment {args.experiment} on {args.host}")
    return 0


def _metadata_location(args: argparse.Namespace) -> str:
    from spoofdetect.pipeline.metadata import store_location

    if args.metadata:
        return args.metadata
    return store_location(_config_from_args(args, workdir=args.workdir))


def cmd_lineage(args: argparse.Namespace) -> int:
    from spoofdetect.pipeline import lineage
    from spoofdetect.pipeline.metadata import open_store

    reader = lineage.LineageReader(open_store(_metadata_location(args), read_only=True))
    walked = reader.walk(reader.find_start(args.model))
    if args.format == "json":
        print(json.dumps(walked.as_json(), indent=1))
    elif args.format == "dot":
        print(lineage.format_dot(walked))
    else:
        print(lineage.format_text(walked))
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    from spoofdetect.pipeline import run_summary
    from spoofdetect.pipeline.metadata import open_store

    runs = run_summary.list_runs(open_store(_metadata_location(args), read_only=True))
    print(json.dumps(runs, indent=1) if args.format == "json" else run_summary.format_runs(runs))
    return 0


def _add_metadata_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--metadata", metavar="PATH_OR_URL",
                        help="SQLite file or mysql://USER:PASSWORD@HOST:PORT/DATABASE "
                             "(default: the config's metadata_store, else "
                             "WORKDIR/metadata.sqlite)")
    parser.add_argument("--workdir", help="work directory of a local run (default: workdir)")
    _add_config_arguments(parser)


def _add_asv_arguments(parser: argparse.ArgumentParser) -> None:
    asv = parser.add_argument_group(
        "ASV error rates for t-DCF (default: the official ASVspoof 2019 LA eval ASV system)")
    asv.add_argument("--asv-scores", metavar="FILE",
                     help="ASV score file, lines '[source] target|nontarget|spoof score'; the "
                          "rates are taken at the ASV's EER threshold")
    asv.add_argument("--pfa-asv", type=float, metavar="X")
    asv.add_argument("--pmiss-asv", type=float, metavar="Y")
    asv.add_argument("--pmiss-spoof-asv", type=float, metavar="Z")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spoofdetect", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("make-demo-data", help="write the synthetic demo dataset")
    demo.add_argument("dir")
    demo.add_argument("--scale", type=float, default=1.0,
                      help="multiply the default clip counts (train 80, dev 20, eval 20 per "
                           "class)")
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(handler=cmd_make_demo_data)

    features = commands.add_parser(
        "features", help="run the Beam feature extraction alone: audio -> TFRecords")
    features.add_argument("--data-root", required=True)
    features.add_argument("--output", required=True,
                          help="a new or empty folder for Split-*/ and the report")
    features.add_argument("--overwrite", action="store_true",
                          help="replace an existing output folder, once the new output is "
                               "complete")
    features.add_argument("--segments", choices=("first", "all"))
    features.add_argument("--beam-arg", action="append", metavar="ARG",
                          help="a Beam pipeline option (repeat); replaces the config's "
                               "beam_pipeline_args, e.g. --beam-arg=--runner=DataflowRunner")
    _add_protocol_argument(features)
    _add_config_arguments(features)
    features.set_defaults(handler=cmd_features)

    run = commands.add_parser("run", help="run the TFX pipeline locally")
    run.add_argument("--data-root", required=True)
    run.add_argument("--workdir", help="pipeline root, metadata and caches (default: workdir)")
    run.add_argument("--runner", choices=("beam", "local"), default="beam",
                     help="TFX BeamDagRunner (default) or LocalDagRunner")
    _add_protocol_argument(run)
    _add_config_arguments(run)
    run.set_defaults(handler=cmd_run)

    metrics = commands.add_parser(
        "metrics", help="EER, min t-DCF and more from an ASVspoof CM score file")
    metrics.add_argument("score_file", help="lines 'utt_id attack key score', key "
                                            "bonafide|spoof, higher score = more bona fide")
    metrics.add_argument("--format", choices=("json", "text"), default="json")
    _add_asv_arguments(metrics)
    metrics.set_defaults(handler=cmd_metrics)

    score = commands.add_parser(
        "score", help="score audio files and folders with an exported or pushed SavedModel")
    score.add_argument("paths", nargs="+", metavar="PATH", help="audio files or folders")
    score.add_argument("--model", required=True,
                       help="a SavedModel folder, or the Pusher's serving folder (its newest "
                            "version is used)")
    score.add_argument("--segments", choices=("all", "first"), default="all",
                       help="score every 4 s window of a file and average their log-odds "
                            "(default), or only the first window, as the evaluator does with "
                            "features.segment_mode=first")
    score.add_argument("--output", help="write the scores to FILE.csv or FILE.json")
    score.add_argument("--asvspoof-scores", metavar="FILE",
                       help="also write an ASVspoof score file 'utt_id - key score'; the key "
                            "comes from a real/fake folder in each path, '-' if none")
    _add_config_arguments(score)
    score.set_defaults(handler=cmd_score)

    compile_ = commands.add_parser("compile", help="write the Kubeflow Pipelines (KFP v2) spec")
    compile_.add_argument("--image", required=True, help="container image built from "
                                                         "docker/Dockerfile")
    compile_.add_argument("--pipeline-root", required=True, metavar="URI",
                          help="where runs write artifacts (gs://, s3://, minio://...); "
                               "pushed models go to URI/serving unless serving_dir is set")
    compile_.add_argument("--data-root", required=True, metavar="URI",
                          help="the dataset, as the cluster reads it")
    compile_.add_argument("--gpus", type=int, help="GPUs per training step (default: "
                                                   "kubeflow.gpus, 1); 0 for CPU nodes")
    compile_.add_argument("--output", default=COMPILED_SPEC)
    _add_config_arguments(compile_)
    compile_.set_defaults(handler=cmd_compile)

    kfp_local = commands.add_parser(
        "kfp-local", help="run the compiled spec with KFP's own local runner, every task in "
                          "the container image (Docker)")
    kfp_local.add_argument("--image", default="spoof-detection:cpu",
                           help="a local image built by `make image-cpu` (default: %(default)s)")
    kfp_local.add_argument("--workdir", default=os.path.join("workdir", "kfp_local"),
                           help="spec, log and pipeline root (WORKDIR/root) go here")
    kfp_local.add_argument("--kfp-python", default=os.path.join(".venv-kfp", "bin", "python"),
                           help="the Python of the KFP venv (kubeflow/requirements-local.txt)")
    kfp_local.add_argument("--data-root", help="a dataset under WORKDIR/root (default: the "
                                               "demo data, made there)")
    _add_config_arguments(kfp_local)
    kfp_local.set_defaults(handler=cmd_kfp_local)

    submit = commands.add_parser("submit", help="upload the compiled spec and start a run")
    submit.add_argument("--host", required=True, help="Kubeflow Pipelines endpoint URL")
    submit.add_argument("--spec", default=COMPILED_SPEC)
    submit.add_argument("--namespace", help="Kubeflow profile namespace (multi-user)")
    submit.add_argument("--experiment", default="spoof-detection")
    submit.add_argument("--run-name")
    submit.add_argument("--dry-run", action="store_true",
                        help="check and describe the spec; send nothing")
    submit.set_defaults(handler=cmd_submit)

    lineage = commands.add_parser(
        "lineage", help="a pushed model's lineage from ML Metadata, back to the dataset")
    lineage.add_argument("--model", default="latest",
                         help="'latest' (the newest pushed model), or the URI of a pushed "
                              "model, its serving version folder, or a Trainer model")
    lineage.add_argument("--format", choices=("text", "json", "dot"), default="text")
    _add_metadata_arguments(lineage)
    lineage.set_defaults(handler=cmd_lineage)

    runs = commands.add_parser("runs", help="pipeline runs with outcome and headline metrics")
    runs.add_argument("--format", choices=("text", "json"), default="text")
    _add_metadata_arguments(runs)
    runs.set_defaults(handler=cmd_runs)
    return parser


def main(argv: list[str] | None = None) -> int:
    _quiet_libraries()
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    except BrokenPipeError:
        # The reader went away (`spoofdetect lineage | head`): not an error of ours.
        # Python flushes stdout at exit; point it somewhere that accepts the rest.
        sys.stdout = open(os.devnull, "w")
        return 0


if __name__ == "__main__":
    sys.exit(main())
