"""nbgrader configuration for this course; every path derives from this file's location."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent
c = get_config()  # noqa: F821  (injected by traitlets when nbgrader loads this file)

c.CourseDirectory.course_id = "llm-course"
c.CourseDirectory.root = str(ROOT)
# Assignments are registered in the gradebook by `generate_assignment --create` (course release);
# nbgrader 0.9 no longer reads a `db_assignments` list.

# What a student sees where the solution was.
c.ClearSolutions.code_stub = dict(python="# YOUR CODE HERE\nraise NotImplementedError()")
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"

# Loading a model takes seconds, a first conversion up to a minute: be generous, but finite,
# so an infinite loop in a submission is interrupted and the rest of the notebook still graded.
c.Execute.timeout = 120
c.Execute.startup_timeout = 120
c.Execute.interrupt_on_timeout = True
# nbclient waits 4 s by default for a cell's output after it finished: on a loaded grading machine
# that wait expires and fails the whole submission, so give it time.
c.Execute.iopub_timeout = 30
# (nbgrader's Execute always goes on after a failing cell: no allow_errors setting needed.)

# Keep huge outputs of a runaway print loop out of the gradebook and feedback.
c.LimitOutput.max_lines = 500
c.LimitOutput.max_traceback = 100

# The exchange lives inside the course (git-ignored) instead of /usr/local/share.
c.Exchange.root = str(ROOT / ".exchange")
c.Exchange.path_includes_course = True

# A submission that deleted a test cell gets it back (locked, from the gradebook) instead of
# silently losing those points or escaping the test. (course_tools.preprocessors.EnforceSourceCells
# below already puts every missing cell back in its place; this stays as nbgrader's own safety net.)
c.OverwriteCells.add_missing_cells = True

# Grading trusts nothing a student can set (course_tools/preprocessors.py). Order, sanitize step:
# ClearOutput first (outputs are never trusted); then EnforceSourceCells, BEFORE DeduplicateIds and
# OverwriteCells, because those two only see cells that still carry metadata: EnforceSourceCells
# resolves duplicated/unknown/missing ids itself (nbgrader's own handling fails the whole submission),
# recovers cells that lost their metadata, and resets metadata, tags and locked sources from the
# gradebook and source/ (so skip-execution & co. on a test cell have no effect); nbgrader's own
# steps then find nothing left to fix and CheckCellMetadata validates the result.
c.Autograde.sanitize_preprocessors = [
    "nbgrader.preprocessors.ClearOutput",
    "course_tools.preprocessors.EnforceSourceCells",
    "nbgrader.preprocessors.DeduplicateIds",
    "nbgrader.preprocessors.OverwriteKernelspec",
    "nbgrader.preprocessors.OverwriteCells",
    "nbgrader.preprocessors.CheckCellMetadata",
    # Code in the student's cells that can rewrite, skip or watch other cells: an event per construct, before
    # execution (so it is reported even if the kernel dies); grades do not depend on it.
    "course_tools.checks.ReportTampering",
]
# Autograde step: nbgrader's list, with StripActiveContent after the scores are saved (grading is
# unchanged) and before the notebook is written, so the autograded copy that formgrader renders
# and feedback is made from holds no script from the submission.
c.Autograde.autograde_preprocessors = [
    # nbgrader's Execute with outputs bounded in bytes as they arrive (course.toml grade_max_output,
    # grade_max_cell_output, grade_max_notebook_output; course_tools/outputs.py).
    "course_tools.outputs.BoundedExecute",
    "nbgrader.preprocessors.IgnorePattern",
    "nbconvert.preprocessors.ClearMetadataPreprocessor",
    "nbgrader.preprocessors.LimitOutput",
    # The verdict of every test cell, decided here and not in the student's kernel: the answers the cell
    # reported are compared with the reference's, recorded in expected/ (course_tools/checks.py).
    "course_tools.checks.OutsideChecks",
    "nbgrader.preprocessors.SaveAutoGrades",
    "nbgrader.preprocessors.AssignLatePenalties",
    "course_tools.preprocessors.StripActiveContent",
    "nbgrader.preprocessors.CheckCellMetadata",
]
# Feedback: hidden tests become a placeholder (tracebacks quoting them are cut to the error line),
# and active content is stripped again (autograded copies made before this config existed).
# GraderFeedback replaces every output with what the grader allows: the student's submitted outputs for
# their own cells, and for each test cell one line (points, passed or failed, the grader's reason).
c.GenerateFeedback.preprocessors = [
    "nbgrader.preprocessors.GetGrades",
    "course_tools.checks.GraderFeedback",
    "course_tools.preprocessors.HideHiddenTests",
    "course_tools.preprocessors.StripActiveContent",
    "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
]

# `course export` (course_tools/export.py): weight of each assignment in the weighted total; an
# assignment not named here weighs 1. The practice assignment (the lecture exercises) counts less.
c.CourseExport.weights = {"lectures": 0.2}

# Feedback pages carry a Content-Security-Policy (course_tools/feedback_page.py): only MathJax and its
# configuration run, so no script of a submission can, even one the cleaning above missed. Set for
# GenerateFeedback's exporter only (formgrader's pages keep nbgrader's own scripts).
from course_tools import feedback_page  # noqa: E402

c.GenerateFeedback.HTMLExporter.template_name = feedback_page.TEMPLATE_NAME
c.GenerateFeedback.HTMLExporter.extra_template_basedirs = feedback_page.template_basedirs()
# Formgrader renders each autograded notebook when it is opened: clean it again there, so a copy graded
# before this configuration (or edited by hand) shows no script either.
c.HTMLExporter.preprocessors = ["course_tools.preprocessors.StripActiveContent"]
