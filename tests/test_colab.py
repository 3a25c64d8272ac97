"""The Colab cells: badge with hand-in steps, `course stamp --repository`, and the bootstrap on a
simulated Colab runtime.

The simulated runtime is a kernel that imports a stub ``google.colab`` at start (as Colab's kernel
does). The bootstrap is pointed at a local git repository (a scratch clone of this one, served as
``file://``) or at one that does not exist. The full install runs in a virtual environment holding
Colab's preinstalled packages (tests/colab_env.py; built once, cached, marked slow).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from course_tools import colab
from support import ROOT

KERNEL = "colab-sim"


def colab_kernel(base: Path, python: str) -> KernelSpecManager:
    """Return a kernelspec manager offering a kernel on ``python`` that imports a stub google.colab at start."""
    stub = base / "colab-stub"
    # google/ stays a namespace package so the stub does not hide google.protobuf and friends.
    (stub / "google" / "colab").mkdir(parents=True, exist_ok=True)
    (stub / "google" / "colab" / "__init__.py").write_text('"""Stand-in for Colab\'s google.colab."""\n')
    spec = base / "kernels" / KERNEL
    spec.mkdir(parents=True, exist_ok=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [python, "-m", "ipykernel_launcher", "-f", "{connection_file}",
                 "--IPKernelApp.exec_lines=import google.colab"],
        "display_name": "Colab (simulated)", "language": "python",
        "env": {"PYTHONPATH": str(stub), "HF_HUB_OFFLINE": "1", "GIT_CONFIG_NOSYSTEM": "1"},
    }))
    return KernelSpecManager(kernel_dirs=[str(base / "kernels")])


def run_cells(sources: list[str], specs: KernelSpecManager, cwd: Path, timeout: int = 120):
    """Execute code cells in the simulated Colab kernel; return (notebook, first error or None)."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    km = KernelManager(kernel_name=KERNEL, kernel_spec_manager=specs)
    client = NotebookClient(nb, km=km, timeout=timeout, resources={"metadata": {"path": str(cwd)}})
    try:
        client.execute()
    except CellExecutionError as err:
        return nb, err
    return nb, None


def text_of(cell) -> str:
    """Return everything a cell printed: streams, results and error tracebacks."""
    parts = []
    for out in cell.get("outputs", []):
        parts.append(out.get("text", "") or out.get("data", {}).get("text/plain", ""))
        parts.extend(out.get("traceback", []))
    return "\n".join(parts)


# ---------------------------------------------------------------- cells and stamping (fast)


def test_bootstrap_is_valid_python_naming_repository_and_models():
    source = colab.bootstrap_source()
    compile(source, "bootstrap", "exec")
    assert repr(colab.repository_url()) in source
    for requirement in colab.models_requirements():
        assert repr(requirement) in source
    assert "pip install helpers" not in source.replace("do not `pip install helpers`", "")


def test_badge_carries_hand_in_steps_only_in_graded_notebooks():
    graded = colab.badge_source("release/language_models/01_theory.ipynb")
    for step in ("Validate", "Save a copy in Drive", "Run all", "Download .ipynb", "without renaming",
                 "never delete"):
        assert step in graded, step
    assert "Validate" not in colab.badge_source("notebooks/01_huggingface_tour.ipynb")
    assert "Validate" not in colab.badge_source("source/lectures/01_huggingface_tour.ipynb")


def scratch_course(tmp_path: Path) -> Path:
    """Return a scratch course: pyproject, models.txt, nbgrader config and one graded and one lecture notebook."""
    course = tmp_path / "course"
    course.mkdir()
    for name in ("pyproject.toml", "models.txt", "nbgrader_config.py"):
        shutil.copy(ROOT / name, course / name)
    for folder in ("source/language_models", "notebooks"):
        (course / folder).mkdir(parents=True)
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_markdown_cell("badge", metadata={"tags": [colab.BADGE_TAG]}),
                    nbformat.v4.new_code_cell("bootstrap", metadata={"tags": [colab.BOOTSTRAP_TAG]})]
        nbformat.write(nb, course / folder / "01_x.ipynb")
    return course


def test_set_repository_url_changes_only_that_line(tmp_path):
    course = scratch_course(tmp_path)
    before = (course / "pyproject.toml").read_text()
    assert colab.set_repository_url("https://github.com/someone/their-course/", root=course)
    after = (course / "pyproject.toml").read_text()
    assert colab.repository_url(course) == "https://github.com/someone/their-course"
    changed = [(a, b) for a, b in zip(before.splitlines(), after.splitlines()) if a != b]
    assert len(changed) == 1 and changed[0][1].startswith("Repository = "), changed
    assert not colab.set_repository_url("https://github.com/someone/their-course", root=course)


def test_course_stamp_repository_sets_url_and_restamps(tmp_path):
    course = scratch_course(tmp_path)
    url = "https://github.com/someone/their-course"
    proc = subprocess.run([sys.executable, "-m", "course_tools.cli", "stamp", "--repository", url],
                          cwd=course, capture_output=True, text=True, env={**os.environ, "COURSE_ROOT": str(course)})
    assert proc.returncode == 0, proc.stderr
    assert colab.repository_url(course) == url
    graded = nbformat.read(course / "source/language_models/01_x.ipynb", as_version=4)
    lecture = nbformat.read(course / "notebooks/01_x.ipynb", as_version=4)
    assert "someone/their-course/blob/main/source/language_models/01_x.ipynb" in graded.cells[0].source
    assert "Save a copy in Drive" in graded.cells[0].source
    assert "Save a copy in Drive" not in lecture.cells[0].source
    for nb in (graded, lecture):
        assert repr(url) in nb.cells[1].source


def test_assignment_readmes_carry_the_stamped_hand_in_section(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# A\n\n<!-- BEGIN checking-and-handing-in (shared) -->\nold text\n"
                      "<!-- END checking-and-handing-in -->\nafter\n")
    assert colab.stamp_readme(readme) and not colab.stamp_readme(readme)
    text = readme.read_text()
    assert colab.README_HAND_IN in text and "old text" not in text and text.endswith("after\n")
    for step in ("Validate", "Save a copy in", "Run all", "Download .ipynb", "without renaming", "nbgrader validate"):
        assert step in colab.README_HAND_IN.replace("\n", " "), step
    stale = [p.relative_to(ROOT).as_posix() for p in sorted(ROOT.glob("source/*/README.md"))
             if colab.README_SECTION.search(p.read_text()) and colab.README_HAND_IN not in p.read_text()]
    assert not stale, f"hand-in section out of date in {stale}: run `course stamp`"


def test_bootstrap_does_nothing_outside_colab(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(colab.bootstrap_source())]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    NotebookClient(nb, timeout=60, kernel_name="python3").execute()
    assert nb.cells[0].outputs == []


# ---------------------------------------------------------------- the bootstrap on a simulated Colab


def bootstrap_for(repository: str) -> str:
    """Return this course's bootstrap cell pointed at ``repository``."""
    return colab.BOOTSTRAP.format(repository=repository, models=colab.models_requirements())


def test_unreachable_repository_says_why_in_one_line(tmp_path):
    """A wrong URL: one line naming the URL and the instructor's fix, git's error below, no traceback."""
    specs = colab_kernel(tmp_path, sys.executable)
    missing = (tmp_path / "no-such-repository").as_uri()
    nb, error = run_cells(["import sys\nassert 'google.colab' in sys.modules", bootstrap_for(missing),
                           "print('not reached')"], specs, tmp_path)
    assert error is not None, "the bootstrap must stop Run All when it cannot install"
    (out,) = [o for o in nb.cells[1].outputs if o["output_type"] == "error"]
    assert out["ename"] == "CourseInstallFailed"
    first, *rest = out["traceback"]
    assert missing in first and "[project.urls]" in first and "`course stamp`" in first, first
    assert "do not `pip install helpers`" in first, first
    assert rest and any(line.strip() for line in rest), "git's own error must follow the one-line message"
    assert not any("Traceback" in line or "File \"" in line for line in out["traceback"]), out["traceback"]
    assert nb.cells[2].get("outputs") == [], "Run All must stop at the failed bootstrap"


@pytest.mark.slow
def test_bootstrap_installs_reinstalls_and_runs_a_notebook_on_colab_stack(tmp_path):
    """Colab's preinstalled set + the bootstrap from a local git URL: install, no-op, reinstall on a new
    commit, then a graded notebook (solved) and a lecture run with no error and no stderr."""
    from colab_env import colab_python

    python = colab_python()
    subprocess.run([python, "-m", "pip", "uninstall", "-y", "-q", "llm-course"], capture_output=True)
    repo = tmp_path / "repo"
    subprocess.run(["git", "clone", "-q", "--no-hardlinks", str(ROOT), str(repo)], check=True)
    # The working tree may hold uncommitted work of this change: test what is on disk.
    for name in ("helpers", "course_tools", "pyproject.toml", "models.txt", "README.md"):
        src, dst = ROOT / name, repo / name
        if src.is_dir():
            shutil.rmtree(dst, ignore_errors=True)
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(src, dst)
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "course under test"], check=True)
    url = repo.as_uri()
    specs = colab_kernel(tmp_path, python)
    cell = bootstrap_for(url)

    nb, error = run_cells([cell], specs, tmp_path, timeout=1500)
    assert error is None, error
    first = text_of(nb.cells[0]).strip()
    assert first.startswith("Installed llm-course") and url in first and len(first.splitlines()) == 1, first

    nb, error = run_cells([cell], specs, tmp_path, timeout=300)
    again = text_of(nb.cells[0]).strip()
    assert error is None and again.startswith("Already installed:"), again

    (repo / "helpers" / "__init__.py").write_text((repo / "helpers" / "__init__.py").read_text() + "\nCHANGED = 1\n")
    subprocess.run([*git, "commit", "-q", "-am", "the course changed"], check=True)
    # Then the course's widgets on Colab's ipywidgets 7.7: the inspector's tabs and the lectures' pickers.
    widget_cells = ["import helpers\nassert helpers.CHANGED == 1\nhelpers.show(helpers.plot_bars)",
                    "import ipywidgets as widgets\nfrom IPython.display import display\n"
                    "display(widgets.interactive(lambda layer=0, sentence='a': None,\n"
                    "    layer=widgets.IntSlider(value=0, min=0, max=3, description='layer'),\n"
                    "    sentence=widgets.Dropdown(options=['a', 'b'], value='b', description='sentence')))"]
    nb, error = run_cells([cell, *widget_cells], specs, tmp_path, timeout=900)
    assert error is None, error
    assert text_of(nb.cells[0]).strip().startswith("Installed llm-course"), text_of(nb.cells[0])
    for widget_cell in nb.cells[1:]:
        views = [o for o in widget_cell.outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
        assert len(views) == 1, widget_cell.outputs

    import submissions as sub

    release = ROOT / "release" / "language_models"
    answers = sub.reference_answers(ROOT / "source" / "language_models")
    graded = nbformat.read(release / "02_tokenization.ipynb", as_version=4)
    for gid, source in answers["02_tokenization"].items():
        sub.find_cell(graded, gid).source = source
    # The notebook's own bootstrap is swapped for one pointed at the local repository.
    code = [c.source for c in graded.cells
            if c.cell_type == "code" and colab.BOOTSTRAP_TAG not in c.metadata.get("tags", [])]
    nb, error = run_cells([bootstrap_for(url), *code], specs, tmp_path, timeout=600)
    assert error is None, error
    stderr = [o["text"] for c in nb.cells for o in c.outputs if o.get("name") == "stderr"]
    assert not stderr, stderr
