"""The pipeline's data stages at scale: FeatureExtractor + StatisticsGen + ExampleValidator
(with ImportSchemaGen, which they wait for) against the seed's librosa loop on the same files.

For each dataset size (default 5,000 and 20,000 files of 16/22.05/44.1 kHz, 3 to 6 s,
benchmarks/feature_extraction.py's generator), in the same run:
  (a) the seed loop (librosa, one file after another), as a process of its own;
  (b) the pipeline's data stages (pipeline.pipeline.data_stages, the same components the full
      DAG runs) under TFX's BeamDagRunner with a SQLite ML Metadata store, as a process of
      its own; each stage's time is its execution's span in ML Metadata, and its peak memory
      the largest resident size of the whole process tree (the runner and Beam's workers)
      sampled during that span.
Prints each stage's seconds and peak memory, the ratio (a)'s seconds / (b)'s data-stage
seconds, and, between the two sizes, the rate beyond fixed costs.

    python benchmarks/data_stages.py [--files 5000 20000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile

from feature_extraction import make_files, sampled

HERE = os.path.dirname(os.path.abspath(__file__))
STAGES = ("FeatureExtractor", "StatisticsGen", "ImportSchemaGen", "ExampleValidator")


def run_stages(data_root: str, workdir: str) -> None:
    """(b): the data stages of the default config (without augmented copies), in this
    process."""
    from tfx import v1 as tfx
    from tfx.orchestration.beam.beam_dag_runner import BeamDagRunner

    from spoofdetect.config import load_config
    from spoofdetect.pipeline.metadata import connection_config, store_location
    from spoofdetect.pipeline.pipeline import data_stages

    # No augmented copies: the seed loop extracts each file once, and so must the stages;
    # and one map: the seed loop computes one system's features.
    config = load_config(None, ["features.augment=0", "features.fusion.enabled=false",
                                "features.lfcc_gmm=false"],
                         data_root=data_root, workdir=workdir)
    BeamDagRunner().run(tfx.dsl.Pipeline(
        pipeline_name=config.pipeline_name, pipeline_root=config.pipeline_root,
        components=list(data_stages(config)), enable_cache=False,
        metadata_connection_config=connection_config(store_location(config)),
        beam_pipeline_args=list(config.beam_pipeline_args)))


def read_run(workdir: str) -> tuple[dict[str, tuple[float, float]], dict[str, list[str]]]:
    """From the run's ML Metadata store: component -> (start, end) epoch seconds of its
    execution, and what ExampleValidator reported (split -> anomalies)."""
    from spoofdetect.components import keys
    from spoofdetect.config import load_config
    from spoofdetect.pipeline.metadata import (
        latest_run,
        open_store,
        run_outputs,
        short_type_name,
        store_location,
    )
    from spoofdetect.pipeline.run_summary import read_anomalies

    store = open_store(store_location(load_config(workdir=workdir)), read_only=True)
    types = {t.id: short_type_name(t.name) for t in store.get_execution_types()}
    spans = {types[e.type_id]: (e.create_time_since_epoch / 1000,
                                e.last_update_time_since_epoch / 1000)
             for e in store.get_executions()}
    outputs = run_outputs(store, latest_run(store))
    return spans, read_anomalies(outputs[(keys.EXAMPLE_VALIDATOR, "ExampleAnomalies")].uri)


def measure(count: int) -> dict[str, float]:
    root = tempfile.mkdtemp(prefix="bench_stages_")
    workdir = root + "_workdir"
    try:
        make_files(root, count)
        files = sum(len(names) for _, _, names in os.walk(root))
        seed_seconds, seed_memory = sampled(
            [sys.executable, os.path.join(HERE, "feature_extraction.py"), "--seed-loop", root])
        wall, memory = sampled([sys.executable, __file__, "--run-stages", root, workdir])
        spans, found = read_run(workdir)
    finally:
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"\n{files} files (16/22.05/44.1 kHz, 3-6 s) on {os.cpu_count()} cores")
    print(f"  (a) seed librosa loop      {seed_seconds:7.1f} s  peak "
          f"{max(rss for _, rss in seed_memory):6.0f} MB")
    for stage in STAGES:
        start, end = spans[stage]
        # A stage shorter than the sampling interval gets the sample nearest to it.
        peak = max((rss for at, rss in memory if start <= at <= end),
                   default=min(memory, key=lambda sample: abs(sample[0] - start))[1])
        print(f"  {stage:<26} {end - start:7.1f} s  peak {peak:6.0f} MB")
    stages_seconds = max(end for _, end in spans.values()) - min(s for s, _ in spans.values())
    print(f"  (b) data stages            {stages_seconds:7.1f} s  (the runner process: "
          f"{wall:.1f} s)")
    print(f"  ratio (a)/(b): {seed_seconds / stages_seconds:.2f}x; target >= 1.2x")
    print(f"  anomalies on clean files: {found or 'none'}")
    return {"files": files, "seed": seed_seconds, "stages": stages_seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, nargs="+", default=[5000, 20000])
    parser.add_argument("--run-stages", nargs=2, help=argparse.SUPPRESS)  # internal: (b)
    args = parser.parse_args()
    if args.run_stages:
        run_stages(*args.run_stages)
        return
    results = [measure(count) for count in sorted(args.files)]
    if len(results) > 1:
        small, large = results[0], results[-1]
        extra = large["files"] - small["files"]
        seed_rate = extra / (large["seed"] - small["seed"])
        stages_rate = extra / (large["stages"] - small["stages"])
        print(f"\nbeyond fixed costs ({small['files']} vs {large['files']} files): seed "
              f"{seed_rate:.1f} clips/s, data stages {stages_rate:.1f} clips/s, ratio "
              f"{stages_rate / seed_rate:.2f}x")


if __name__ == "__main__":
    main()
