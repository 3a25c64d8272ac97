"""Feedback pages that run no script from a submission, even one the cleaning missed.

``nbgrader generate_feedback`` renders each autograded notebook with nbgrader's ``feedback`` template.
nbgrader_config.py points GenerateFeedback's exporter (and only it: formgrader's pages keep nbgrader's
own scripts) at ``course_feedback`` in ``course_tools/templates``, which extends ``feedback`` and only
replaces its ``mathjax()`` macro: the page's <head> then holds a Content-Security-Policy that allows
scripts from MathJax's folder on the CDN and one inline configuration script (by its sha256 hash), styles
inline, fonts from MathJax, images as embedded data, and nothing else: no inline script, event handler,
javascript: URL, frame, form or request to a host a submission names.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

TEMPLATE_NAME = "course_feedback"
TEMPLATES = Path(__file__).resolve().parent / "templates"


def nbgrader_templates() -> Path:
    """Return nbgrader's formgrader template folder (it holds the ``feedback`` template we extend)."""
    spec = importlib.util.find_spec("nbgrader")
    assert spec is not None and spec.submodule_search_locations, "nbgrader is not installed"
    return Path(list(spec.submodule_search_locations)[0]) / "server_extensions" / "formgrader" / "templates"


def template_basedirs() -> list[str]:
    """Return the template folders GenerateFeedback's exporter searches: ours first, then nbgrader's."""
    return [str(TEMPLATES), str(nbgrader_templates())]
