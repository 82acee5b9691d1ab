"""Runs the pipeline on this machine: TFX BeamDagRunner (default) or LocalDagRunner, with a
SQLite ML Metadata store and caching under the config's work directory."""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import time
from collections.abc import Iterator

from tfx import v1 as tfx
from tfx.orchestration.beam.beam_dag_runner import BeamDagRunner

from spoofdetect.config import PipelineConfig
from spoofdetect.errors import UserError
from spoofdetect.pipeline.metadata import connection_config, open_store, store_location
from spoofdetect.pipeline.pipeline import create_pipeline
from spoofdetect.pipeline.run_summary import format_run_summary, latest_run_summary

RUNNERS = ("beam", "local")


def _user_error_in(error: BaseException) -> UserError | None:
    """The UserError that caused `error`, if any (runners wrap executor exceptions)."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, UserError):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


LOCK_FILE = ".run.lock"


@contextlib.contextmanager
def workdir_lock(workdir: str) -> Iterator[None]:
    """One run at a time per work directory: its cache, checkpoints and SQLite store are
    shared state. The lock is the kernel's (flock), so a killed run leaves none behind."""
    handle = open(os.path.join(workdir, LOCK_FILE), "a+", encoding="utf-8")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise UserError(
                f"Another pipeline run is using the work directory {workdir} ({holder}). "
                "Wait for it to finish, or give this run its own --workdir.") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}, started "
                     f"{time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        handle.flush()
        yield
    finally:
        handle.close()  # closing releases the lock


def run_local(config: PipelineConfig, runner: str = "beam") -> int:
    """Runs the whole pipeline; prints a summary. Returns 0, or 1 if validation found anomalies."""
    if runner not in RUNNERS:
        raise UserError(f"Unknown runner {runner!r}; use one of {', '.join(RUNNERS)}.")
    os.makedirs(config.workdir, exist_ok=True)
    location = store_location(config)
    open_store(location)  # a connection problem is reported before TFX starts
    pipeline = create_pipeline(config, connection_config(location))
    start = time.monotonic()
    dag_runner = BeamDagRunner() if runner == "beam" else tfx.orchestration.LocalDagRunner()
    with workdir_lock(config.workdir):
        try:
            dag_runner.run(pipeline)
        except Exception as error:
            user_error = _user_error_in(error)
            if user_error is not None:
                raise user_error from None
            raise
    print(f"Pipeline {config.pipeline_name} finished in {time.monotonic() - start:.0f} s "
          f"({runner} runner); work directory {config.workdir}")
    summary = latest_run_summary(config)
    print(format_run_summary(summary))
    return 1 if summary["anomalies"] else 0
