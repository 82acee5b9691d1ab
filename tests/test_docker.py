"""The container images, checked without a Docker engine: pinned bases, every pin from the
lock file, the CUDA base matching TensorFlow's CUDA, and an entrypoint that imports."""

import importlib.metadata
import os
import re
import subprocess
import sys

import pytest

from spoofdetect.pipeline.kubeflow_runner import ENTRYPOINT

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCKERFILES = ("docker/Dockerfile", "docker/Dockerfile.cpu")


def read(path: str) -> str:
    with open(os.path.join(REPO, path), encoding="utf-8") as handle:
        return handle.read()


def instructions(path: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", read(path))
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1])
            for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def lock() -> dict[str, str]:
    pins = {}
    for line in read("constraints.txt").splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.strip().split("==")
            pins[name.lower().replace("_", "-")] = version
    return pins


@pytest.mark.parametrize("path", DOCKERFILES)
def test_every_pin_comes_from_the_lock_file(path):
    pins = lock()
    makefile_pip = re.search(r'"pip==([\d.]+)"', read("Makefile")).group(1)
    runs = [args for kind, args in instructions(path) if kind == "RUN"]
    found = re.findall(r"([A-Za-z0-9_.-]+)(?:\[[\w-]+\])?==([\w.]+)", " ".join(runs))
    assert found
    for name, version in found:
        expected = makefile_pip if name == "pip" else pins[name.lower()]
        assert version == expected, f"{path} pins {name}=={version}, the lock has {expected}"
    for run in runs:
        for command in run.split("&&"):
            if "pip install" in command and '"pip==' not in command:
                assert "-r constraints.txt" in command or "-c constraints.txt" in command, (
                    f"{path}: a pip install outside the lock file: {command.strip()}")


def default_base(path: str) -> str:
    [base] = [args.split("=", 1)[1] for kind, args in instructions(path)
              if kind == "ARG" and args.startswith("BASE=")]
    return base


def stages(path: str) -> list[list[tuple[str, str]]]:
    """The instructions of each build stage, FROM first."""
    found: list[list[tuple[str, str]]] = []
    for kind, args in instructions(path):
        if kind == "FROM":
            found.append([])
        if found:
            found[-1].append((kind, args))
    return found


@pytest.mark.parametrize("path", DOCKERFILES)
def test_base_image_is_pinned_and_runs_python_3_10(path):
    base = default_base(path)
    assert all(args.split()[0] == "${BASE}" for kind, args in instructions(path)
               if kind == "FROM"), "every stage starts from the BASE build argument"
    assert ":" in base and "latest" not in base
    assert re.search(r"python:3\.10\.\d+|ubuntu22\.04", base), base
    assert sys.version_info[:2] == (3, 10)


def test_gpu_base_matches_tensorflows_cuda():
    base = default_base("docker/Dockerfile")
    cuda = re.search(r"nvidia/cuda:(\d+\.\d+)", base).group(1)
    requirements = importlib.metadata.requires("tensorflow")
    runtime = next(r for r in requirements if r.startswith("nvidia-cuda-runtime-cu12")
                   and "and-cuda" in r)
    assert re.search(r"==\s*(\d+\.\d+)", runtime).group(1) == cuda
    assert '"tensorflow[and-cuda]==' + importlib.metadata.version("tensorflow") + '"' in read(
        "docker/Dockerfile")


@pytest.mark.parametrize("path", DOCKERFILES)
def test_copies_exist_and_entrypoint_is_the_compiled_command(path):
    for kind, args in instructions(path):
        if kind == "COPY" and not args.startswith("--from="):
            for source in args.split()[:-1]:
                assert os.path.exists(os.path.join(REPO, source)), f"{path}: COPY {source}"
    [entrypoint] = [args for kind, args in instructions(path) if kind == "ENTRYPOINT"]
    assert entrypoint == '["' + '", "'.join(ENTRYPOINT) + '"]'


@pytest.mark.parametrize("path", DOCKERFILES)
def test_the_runtime_stage_is_non_root_and_has_no_build_tools_or_ca(path):
    build, runtime = stages(path)
    users = [args for kind, args in runtime if kind == "USER"]
    assert users and users[-1] not in ("0", "root")
    runtime_text = " ".join(args for _, args in runtime)
    assert "build-ca" not in runtime_text and "gcc" not in runtime_text
    assert "COPY --from=build /opt/venv /opt/venv" in [f"{k} {a}" for k, a in runtime]
    # HOME and the caches are group 0 and group-writable, for clusters that force a UID.
    assert "HOME=/home/spoofdetect" in runtime_text and "chmod -R g=u /home/spoofdetect" in (
        runtime_text)
    assert any("build-ca" in args for kind, args in build if kind == "COPY")


def test_the_build_context_is_an_allow_list():
    lines = [line for line in read(".dockerignore").splitlines()
             if line and not line.startswith("#")]
    assert lines[0] == "*"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    copied = {source.rstrip("/") for path in DOCKERFILES for kind, args in instructions(path)
              if kind == "COPY" and not args.startswith("--from=")
              for source in args.split()[:-1]}
    assert copied <= allowed, f"COPY sources the context leaves out: {copied - allowed}"
    assert not {".venv", "workdir", "demo_data", "benchmarks"} & allowed


def test_entrypoint_module_imports_and_runs():
    result = subprocess.run([sys.executable, "-m", ENTRYPOINT[2], "--help"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "--executor_class_path" in result.stdout
