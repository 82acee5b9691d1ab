"""What the container tests need: a Docker engine, the CPU image (`make image-cpu`) and, for
KFP's local runner, the KFP venv (`make kfp-local` makes it; SPOOFDETECT_KFP_PYTHON points
elsewhere). CI sets SPOOFDETECT_REQUIRE_DOCKER so that a missing one fails, not skips."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IMAGE = os.environ.get("SPOOFDETECT_TEST_IMAGE", "spoof-detection:cpu")
KFP_PYTHON = os.environ.get("SPOOFDETECT_KFP_PYTHON",
                            os.path.join(REPO, ".venv-kfp", "bin", "python"))


def missing(kfp: bool = False) -> str | None:
    """What is missing, or None."""
    if shutil.which("docker") is None or subprocess.run(
            ["docker", "info"], capture_output=True).returncode != 0:
        return "no Docker engine"
    if subprocess.run(["docker", "image", "inspect", IMAGE], capture_output=True).returncode:
        return f"no image {IMAGE} (make image-cpu)"
    if kfp and not os.access(KFP_PYTHON, os.X_OK):
        return f"no KFP venv at {KFP_PYTHON} (make kfp-local)"
    return None


def needs_image(kfp: bool = False) -> pytest.MarkDecorator:
    reason = missing(kfp)
    return pytest.mark.skipif(reason is not None
                              and not os.environ.get("SPOOFDETECT_REQUIRE_DOCKER"),
                              reason=f"container tests need what is missing: {reason}")
