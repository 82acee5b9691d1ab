"""Which code a component ran: part of TFX's cache key, and recorded in ML Metadata.

TFX keys its cache by a component's inputs and parameters, not by the code its executor
runs (only a Trainer's `module_file` is fingerprinted). Without this, upgrading the package
and running the same config again would serve the old release's examples, critic and model
from the cache. So every component that runs this package's code (FeatureExtractor,
WganPretrainer, SpoofEvaluator, and the Trainer through its custom_config) takes the
package's code version as a parameter, and records on its outputs the version that really
ran: on Kubeflow the pipeline is compiled by one installation and run by the image's.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import os
from collections.abc import Iterable, Mapping
from importlib import metadata

from absl import logging

DISTRIBUTION = "spoof-detection"
# The installed packages (setup.py's package_dir): in an editable install they are separate
# folders, in a wheel they nest; either way each file is named by its module.
TOP_PACKAGES = ("spoofdetect", "spoofdetect.components", "spoofdetect.pipeline",
                "spoofdetect.schemas")


def source_fingerprint(package_dirs: Mapping[str, Iterable[str]]) -> str:
    """A hash of every Python file under each package's folders, each named by its dotted
    module name, so that the nested (wheel) and separate (editable) layouts agree."""
    sources: dict[str, bytes] = {}
    for package, dirs in package_dirs.items():
        for top in dirs:
            for folder, subfolders, files in os.walk(top):
                subfolders[:] = sorted(name for name in subfolders if name != "__pycache__")
                relative = os.path.relpath(folder, top)
                prefix = package if relative == "." else ".".join(
                    [package, *relative.split(os.sep)])
                for name in files:
                    if name.endswith(".py"):
                        with open(os.path.join(folder, name), "rb") as handle:
                            sources[f"{prefix}.{name[:-3]}"] = handle.read()
    digest = hashlib.sha256()
    for module in sorted(sources):
        digest.update(module.encode() + b"\0" + sources[module] + b"\0")
    return digest.hexdigest()[:12]


@functools.cache
def current() -> str:
    """This installation's code version: the release and a fingerprint of its source, e.g.
    '0.1.0+3f2a9c0d1e4b'. Computed once per process."""
    dirs = {package: list(importlib.import_module(package).__path__)
            for package in TOP_PACKAGES}
    return f"{metadata.version(DISTRIBUTION)}+{source_fingerprint(dirs)}"


def running_code_version(compiled: str | None) -> str:
    """The running code's version, for a step to record on what it writes; warns when it is
    not `compiled` (the step's parameter, which the cache is keyed by; None from a pipeline
    compiled by a release without it)."""
    running = current()
    if compiled != running:
        logging.warning(
            "This step runs code version %s but the pipeline was compiled with %s: its cache "
            "is keyed by the compiled one. Compile the pipeline with the installation the "
            "image carries.", running, compiled or "none (a release before code versions)")
    return running
