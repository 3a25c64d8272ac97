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
# (nbgrader's Execute always goes on after a failing cell: no allow_errors setting needed.)

# Keep huge outputs of a runaway print loop out of the gradebook and feedback.
c.LimitOutput.max_lines = 500
c.LimitOutput.max_traceback = 100

# The exchange lives inside the course (git-ignored) instead of /usr/local/share.
c.Exchange.root = str(ROOT / ".exchange")
c.Exchange.path_includes_course = True

# A submission that deleted a test cell gets it back (locked, from the gradebook) instead of
# silently losing those points or escaping the test.
c.OverwriteCells.add_missing_cells = True
