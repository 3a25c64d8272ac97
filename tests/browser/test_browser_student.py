"""A student's path through JupyterLab, in a real browser: panels, Run All, maths, figures, widgets,
no stderr, and nbgrader's Validate button on a solved and an untouched graded notebook.

Notebooks are found by glob: every graded release notebook (solved with the reference answers of
source/, matched by grade_id), and the lecture notebooks (the instructor versions in
source/lectures/ when they exist, since student copies stop at their exercises). Lectures are the
slowest part, so by default only those with interactive widgets and the first one run;
BROWSER_LECTURES=all runs every lecture, BROWSER_LECTURES=02,05 the ones whose names start so.
"""

from __future__ import annotations

import os
import re
import urllib.error
import urllib.request
from pathlib import Path

import nbformat
import pytest

import submissions as sub
from .lab_driver import ERROR, ROOT, STDERR

GRADED = sorted(p for p in ROOT.glob("release/*/*.ipynb"))
LECTURE_DIR = ROOT / "source" / "lectures"
if not any(LECTURE_DIR.glob("*.ipynb")):
    LECTURE_DIR = ROOT / "notebooks"
ALL_LECTURES = sorted(LECTURE_DIR.glob("*.ipynb"))
SUCCESS = "Success! Your notebook passes all the tests."


def uses_widgets(path: Path) -> bool:
    """Return whether a notebook builds ipywidgets."""
    return "ipywidgets" in path.read_text()


def chosen_lectures() -> list[Path]:
    """Return the lectures this run opens (see the module docstring)."""
    wanted = os.environ.get("BROWSER_LECTURES", "")
    if wanted == "all":
        return ALL_LECTURES
    if wanted:
        prefixes = tuple(w.strip() for w in wanted.split(",") if w.strip())
        return [p for p in ALL_LECTURES if p.name.startswith(prefixes)]
    return [p for i, p in enumerate(ALL_LECTURES) if i == 0 or uses_widgets(p)]


def has_maths(nb) -> bool:
    """Return whether a notebook's markdown holds LaTeX ($...$)."""
    return any(c.cell_type == "markdown" and re.search(r"\$[^$\n]+\$", c.source) for c in nb.cells)


def draws_figures(nb) -> bool:
    """Return whether a notebook's code draws matplotlib figures."""
    return any(c.cell_type == "code" and re.search(r"plt\.|helpers\.plot_|plot_attention", c.source) for c in nb.cells)


def assert_clean(student, name: str) -> None:
    """Assert the open notebook shows no stderr and no error output."""
    stderr, errors = student.texts(STDERR), student.texts(ERROR)
    assert not errors, f"{name}: a cell failed:\n" + "\n---\n".join(e[-1500:] for e in errors)
    assert not stderr, f"{name}: red stderr under a cell:\n" + "\n---\n".join(s[:800] for s in stderr)


def assert_rendered(student, nb, name: str) -> None:
    """Assert maths rendered through MathJax and figures appeared, where the notebook has them."""
    if has_maths(nb):
        assert student.count("mjx-container") > 0, f"{name}: no rendered maths (MathJax) found"
    if draws_figures(nb):
        assert student.count(".jp-RenderedImage img") > 0, f"{name}: no figure appeared"


def solve_into(course: Path, release: Path) -> str:
    """Write ``release`` with the reference answers pasted in under course/solved/; return its course path."""
    assignment = release.parent.name
    answers = sub.reference_answers(ROOT / "source" / assignment).get(release.stem, {})
    nb = nbformat.read(release, as_version=4)
    for gid, source in answers.items():
        sub.find_cell(nb, gid).source = source
    target = course / "solved" / assignment / release.name
    target.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, target)
    return target.relative_to(course).as_posix()


def status(url: str) -> int:
    """Return the HTTP status of a GET."""
    try:
        with urllib.request.urlopen(url, timeout=30) as reply:
            return reply.status
    except urllib.error.HTTPError as err:
        return err.code


def test_student_view_has_validate_but_no_exchange_panels(student, lab):
    student.page.goto(lab.url())
    student.page.wait_for_selector("#jp-main-dock-panel")
    student.page.wait_for_timeout(3000)  # let every extension finish loading and complain if it will
    student.shot("00_lab_student_view")
    dialogs = student.page.locator(".jp-Dialog").all_inner_texts()
    assert not dialogs, f"a dialog opened on start: {dialogs}"
    menus = student.page.locator(".lm-MenuBar-itemLabel").all_inner_texts()
    # The instructor panels and the exchange-based Assignment List are off, server and front end.
    for handler in ("formgrader", "assignments?course_id=llm-course", "formgrader/api/assignments"):
        assert status(f"{lab.base}/{handler}{'&' if '?' in handler else '?'}token={lab.token}") == 404, handler
    assert status(f"{lab.base}/nbgrader_version?version=0.9.6&token={lab.token}") == 200, "Validate's API is off"
    assert "Nbgrader" not in menus, f"the nbgrader menu (instructor and exchange panels) is shown: {menus}"


@pytest.mark.parametrize("release", GRADED, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_solved_graded_notebook_runs_clean_and_validates(student, course, release):
    name = f"{release.parent.name}_{release.stem}"
    path = solve_into(course, release)
    student.open(path)
    student.run_all()
    student.shot(f"10_{name}_solved_run_all")
    nb = nbformat.read(course / path, as_version=4)
    assert_clean(student, name)
    assert_rendered(student, nb, name)
    text = student.validate()
    student.shot(f"11_{name}_solved_validate")
    assert SUCCESS in text, f"{name}: Validate on a solved notebook says:\n{text[:3000]}"
    student.close_dialog()


def test_untouched_graded_notebook_validate_lists_the_unanswered_exercises(student, course):
    release = next(p for p in GRADED if any(
        c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("solution")
        for c in nbformat.read(p, as_version=4).cells))
    path = release.relative_to(ROOT).as_posix()
    student.open(path)
    text = student.validate()
    student.shot(f"20_{release.parent.name}_{release.stem}_untouched_validate")
    # The button's dialog lists each failing cell ("The following cell failed:") with its error.
    assert "The following cell failed" in text and "NotImplementedError" in text, text[:3000]
    assert SUCCESS not in text
    student.close_dialog()


@pytest.mark.parametrize("lecture", chosen_lectures(), ids=lambda p: p.stem)
def test_lecture_runs_clean_with_maths_figures_and_widgets(student, course, lecture):
    path = lecture.relative_to(ROOT).as_posix()
    nb = nbformat.read(lecture, as_version=4)
    student.open(path)
    student.run_all()
    student.shot(f"30_{lecture.stem}_run_all")
    assert_clean(student, lecture.stem)
    assert_rendered(student, nb, lecture.stem)
    if not uses_widgets(lecture):
        return
    picker = student.page.locator(".widget-interact").first
    picker.scroll_into_view_if_needed()
    picker.locator("img").first.wait_for()
    student.shot(f"31_{lecture.stem}_widget_before")
    # The picker redraws into a new <img>: compare the current image's data, not one element's.
    figure = "([root, old]) => { const img = root.querySelector('img'); return img && img.src !== old; }"
    before = picker.locator("img").first.get_attribute("src")
    select = picker.locator("select").first
    options = select.locator("option").all_inner_texts()
    current = select.evaluate("el => el.options[el.selectedIndex].text")
    select.select_option(label=next(o for o in options if o != current))
    student.page.wait_for_function(figure, arg=[picker.element_handle(), before], timeout=60_000)
    student.shot(f"32_{lecture.stem}_widget_dropdown_changed")
    after_dropdown = picker.locator("img").first.get_attribute("src")
    slider = picker.locator(".widget-slider .noUi-handle, .widget-hslider .ui-slider-handle").first
    slider.focus()
    slider.press("ArrowRight")
    student.page.wait_for_function(figure, arg=[picker.element_handle(), after_dropdown], timeout=60_000)
    student.shot(f"33_{lecture.stem}_widget_slider_changed")
    assert_clean(student, lecture.stem)


def test_show_displays_one_inspector_that_responds(student, course):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell("import helpers\nhelpers.show(helpers.plot_bars)")]
    nbformat.write(nb, course / "show_inspector.ipynb")
    student.open("show_inspector.ipynb")
    student.run_all()
    tabs = student.page.locator(".jp-OutputArea-output .lm-TabBar")
    tabs.first.wait_for()
    assert tabs.count() == 1, f"show() displayed {tabs.count()} inspectors"
    student.page.locator(".jp-OutputArea-output .lm-TabBar-tabLabel", has_text="Source").click()
    student.page.get_by_text("def plot_bars").first.wait_for()
    student.shot("40_show_inspector_source_tab")
    assert_clean(student, "show_inspector")


def test_instructor_view_has_formgrader_and_a_working_exchange(browser_context, tmp_path):
    from .lab_driver import Lab, Student, scratch_course, screenshot_dir

    course = scratch_course(tmp_path)
    server = Lab(course, log=screenshot_dir() / "jupyterlab-instructor.log", instructor=True)
    page = browser_context.new_page()
    try:
        assert status(f"{server.base}/formgrader?token={server.token}") == 200
        with urllib.request.urlopen(f"{server.base}/assignments?course_id=llm-course&token={server.token}",
                                    timeout=60) as reply:
            listing = reply.read().decode()
        assert '"success": true' in listing.replace("'", '"'), listing[:500]
        page.goto(server.url())
        page.wait_for_selector("#jp-main-dock-panel")
        page.locator(".lm-MenuBar-itemLabel", has_text="Nbgrader").click()
        page.locator(".lm-Menu-itemLabel", has_text="Assignment List").click()
        page.wait_for_timeout(3000)
        instructor = Student(page, server, screenshot_dir())
        instructor.shot("50_lab_instructor_assignment_list")
        body = page.locator("body").inner_text()
        assert "Error fetching" not in body and "does not exist" not in body, body[-1500:]
    finally:
        page.close()
        server.stop()
