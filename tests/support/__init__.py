"""Code the tests share (imported by test modules; tests/conftest.py turns the session-wide parts into fixtures).

- ``notebooks``: the repository root, ``execute_notebook`` and ``Executed``;
- ``courses``: scratch copies of this course, released with `course release`;
- ``cli``: one runner for `course` and `nbgrader` commands in a course root;
- ``grading``: reading a tiny course's grading results (scores, outputs);
- ``jobs``: the session's expensive runs (released courses, notebook executions, validations), each
  done once, shared, and started ahead in background workers.
"""

from .notebooks import ROOT, Executed, execute_notebook

__all__ = ["ROOT", "Executed", "execute_notebook"]
