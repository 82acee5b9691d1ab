"""Where the commands write: checked before any work is done, so that a run never computes
everything and then loses it to an unwritable path, and never mixes its output with an
earlier run's.

Local paths only: an object-store URI (gs://, s3://) is checked by the store when written.
"""

from __future__ import annotations

import os
import shutil
import uuid

from spoofdetect.config import is_uri
from spoofdetect.errors import UserError


def check_writable_file(path: str, what: str) -> None:
    """Fails, naming `what` and the reason, unless `path` can be written as a file (its
    folder is created if missing). A file that did not exist is not left behind."""
    if is_uri(path):
        return
    if os.path.isdir(path):
        raise UserError(f"Cannot write {what} to {path}: it is a folder; give a file name.")
    folder = os.path.dirname(os.path.abspath(path))
    existed = os.path.exists(path)
    try:
        os.makedirs(folder, exist_ok=True)
        with open(path, "a", encoding="utf-8"):
            pass
    except OSError as error:
        raise UserError(f"Cannot write {what} to {path}: {error.strerror}. Choose a writable "
                        "location.") from error
    if not existed:
        os.remove(path)


def _holds_files(folder: str) -> bool:
    return os.path.isdir(folder) and any(os.scandir(folder))


def output_folder(path: str, overwrite: bool) -> str:
    """The folder to write a new output into, in place of `path`.

    `path` must be new or empty: files of an earlier run would be read as this run's. With
    `overwrite`, an existing output is kept until the new one is complete: the work goes to a
    staging folder beside it, which `replace_folder` then moves into place.
    """
    if is_uri(path):
        return path
    if os.path.exists(path) and not os.path.isdir(path):
        raise UserError(f"The output {path} is a file; give a folder.")
    staging = path
    if _holds_files(path):
        if not overwrite:
            raise UserError(
                f"The output folder {path} already holds files (an earlier run's?); they "
                "would be mixed with this run's. Give a new or empty folder, or pass "
                "--overwrite to replace it once the new output is complete.")
        staging = os.path.join(os.path.dirname(os.path.abspath(path)),
                               f".{os.path.basename(os.path.abspath(path))}.staging")
        # A staging folder left by a run that crashed is never part of an output.
        shutil.rmtree(staging, ignore_errors=True)
    probe = os.path.join(staging, f".write-test-{uuid.uuid4().hex}")
    try:
        os.makedirs(staging, exist_ok=True)
        with open(probe, "wb"):
            pass
        os.remove(probe)
    except OSError as error:
        raise UserError(f"Cannot write to the output folder {path}: {error.strerror}. Choose "
                        "a writable location.") from error
    return staging


def replace_folder(staging: str, path: str) -> None:
    """Moves a complete `staging` folder to `path`, replacing what was there (rename, then
    delete the old one: an interrupted replace leaves one whole output, never a mix)."""
    if staging == path:
        return
    retired = f"{staging}.old"
    shutil.rmtree(retired, ignore_errors=True)
    os.rename(path, retired)
    os.rename(staging, path)
    shutil.rmtree(retired)
