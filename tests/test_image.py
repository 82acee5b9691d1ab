"""The built CPU image, run: a non-root user by default, an arbitrary UID (as clusters force
one) that can still write everything the pipeline writes outside its artifacts, the
packaged schema where the compiled spec says, and the entrypoint the spec runs."""

import subprocess

import pytest

from spoofdetect.components import code_version
from spoofdetect.config import KubeflowConfig
from spoofdetect.pipeline.kubeflow_runner import ENTRYPOINT
from tests.containers import IMAGE, needs_image

pytestmark = [pytest.mark.slow, needs_image()]


def run_in_image(*command: str, user: str | None = None) -> subprocess.CompletedProcess[str]:
    options = ["--user", user] if user else []
    return subprocess.run(["docker", "run", "--rm", *options, "--entrypoint", command[0], IMAGE,
                           *command[1:]], capture_output=True, text=True, timeout=300)


def test_the_image_runs_as_a_non_root_user():
    result = run_in_image("id", "-u")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "1000"


@pytest.mark.parametrize("user", [None, "54321", "54321:0"])
def test_every_cache_and_config_folder_is_writable_by_the_user_it_runs_as(user):
    """Matplotlib, Keras and numba (librosa) write under HOME on first use; an unwritable one
    fails a step, or warns and recompiles every run."""
    script = (
        "import os, tempfile\n"
        "for variable in ('HOME', 'XDG_CACHE_HOME', 'MPLCONFIGDIR', 'KERAS_HOME', "
        "'NUMBA_CACHE_DIR'):\n"
        "    tempfile.NamedTemporaryFile(dir=os.environ[variable]).close()\n"
        "import matplotlib; matplotlib.use('Agg')\n"
        "import matplotlib.pyplot as plt, keras, librosa\n"
        "plt.figure(); plt.savefig(os.path.join(tempfile.mkdtemp(), 'x.png'))\n"
        "assert matplotlib.get_configdir() == os.environ['MPLCONFIGDIR']\n"
        "print('ok')\n")
    result = run_in_image("python", "-c", script, user=user)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("ok")


def test_the_packaged_schema_is_where_the_compiled_spec_looks():
    result = run_in_image("test", "-s", KubeflowConfig().schema_file)
    assert result.returncode == 0, f"{KubeflowConfig().schema_file} is not in the image"


def test_the_image_runs_the_code_version_this_checkout_compiles():
    """KFP's cache is keyed by the code version of the installation that compiles the
    pipeline, and each step records the image's: built from the same sources, the installed
    wheel (its packages nested) must give the same version as this editable checkout."""
    result = run_in_image("python", "-c", "from spoofdetect.components import code_version; "
                          "print(code_version.current())")
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == code_version.current()


def test_the_entrypoint_the_spec_runs_starts_in_the_image():
    result = run_in_image(*ENTRYPOINT, "--help", user="54321")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "--executor_class_path" in result.stdout


def test_building_the_image_leaves_no_untagged_images_behind():
    # Each rebuild used to leave its build stage and the tag's previous image untagged (about
    # 8 GB a build); docker/build-image.sh keeps the build stage tagged as the next build's
    # cache and removes what the rebuild left.
    untagged = subprocess.run(
        ["docker", "images", "-q", "--filter", "dangling=true",
         "--filter", "label=org.spoof-detection.image"],
        capture_output=True, text=True, check=True).stdout.split()
    assert untagged == []
    label = '{{index .Config.Labels "org.spoof-detection.image"}}'
    labels = subprocess.run(["docker", "image", "inspect", "-f", label, IMAGE, f"{IMAGE}-build"],
                            capture_output=True, text=True, check=True).stdout.split()
    assert labels == ["runtime", "build-stage"]
