"""Component plumbing that needs no pipeline run."""

import importlib
import os
import shutil
from importlib import metadata

from spoofdetect.components import code_version
from spoofdetect.components.wgan_pretrainer.executor import checkpoint_dir_for


def test_checkpoints_of_a_restarted_run_are_found_again():
    model_uri = "/root/pipeline_root/WganPretrainer/model/7"
    same = checkpoint_dir_for(model_uri, "/ex/1", '{"epochs": 3}', "{}", "0.1.0+a")
    # A new execution (new output URI) with the same inputs and config finds the same folder.
    assert checkpoint_dir_for("/root/pipeline_root/WganPretrainer/model/9", "/ex/1",
                              '{"epochs": 3}', "{}", "0.1.0+a") == same
    assert same.startswith("/root/pipeline_root/WganPretrainer/.checkpoints/")
    assert checkpoint_dir_for(model_uri, "/ex/1", '{"epochs": 4}', "{}", "0.1.0+a") != same
    assert checkpoint_dir_for(model_uri, "/ex/2", '{"epochs": 3}', "{}", "0.1.0+a") != same
    # Other code does not resume the checkpoints of this one.
    assert checkpoint_dir_for(model_uri, "/ex/1", '{"epochs": 3}', "{}", "0.1.0+b") != same


def wheel_layout(root: str) -> dict[str, list[str]]:
    """This installation's packages copied as a wheel installs them (nested under
    spoofdetect/); each package's folders as its __path__ would then be."""
    dirs = {}
    for package in code_version.TOP_PACKAGES:
        target = os.path.join(root, *package.split("."))
        for source in importlib.import_module(package).__path__:
            shutil.copytree(source, target, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("__pycache__"))
        dirs[package] = [target]
    return dirs


def test_the_code_version_is_the_release_and_a_fingerprint_of_every_python_file(tmp_path):
    release, fingerprint = code_version.current().split("+")
    assert release == metadata.version("spoof-detection")
    # A wheel's nested layout names each file by the same module as this installation's.
    nested = wheel_layout(str(tmp_path))
    assert code_version.source_fingerprint(nested) == fingerprint
    # Neither compiled files nor files other than Python source change it...
    cache = tmp_path / "spoofdetect" / "__pycache__"
    cache.mkdir()
    (cache / "config.cpython-310.pyc").write_bytes(b"\0")
    (tmp_path / "spoofdetect" / "notes.txt").write_text("not code")
    assert code_version.source_fingerprint(nested) == fingerprint
    # ...one changed line of any module does, however deep,
    executor = tmp_path / "spoofdetect" / "components" / "wgan_pretrainer" / "executor.py"
    executor.write_text(executor.read_text() + "\n# changed\n")
    assert code_version.source_fingerprint(nested) != fingerprint
    # and so does the same source under another module name.
    executor.write_text(executor.read_text().removesuffix("\n# changed\n"))
    assert code_version.source_fingerprint(nested) == fingerprint
    executor.rename(executor.with_name("executor_renamed.py"))
    assert code_version.source_fingerprint(nested) != fingerprint


def test_a_pipeline_compiled_without_a_code_version_warns_rather_than_fails(monkeypatch):
    """A spec compiled by a release before code versions has no such parameter: the step runs
    and says so, naming its own version."""
    warnings: list[str] = []
    monkeypatch.setattr(code_version.logging, "warning",
                        lambda message, *args: warnings.append(message % args))
    assert code_version.running_code_version(None) == code_version.current()
    assert (f"runs code version {code_version.current()} but the pipeline was compiled with "
            "none (a release before code versions)") in " ".join(warnings)
    warnings.clear()
    code_version.running_code_version(code_version.current())
    assert "compiled with" not in " ".join(warnings)
