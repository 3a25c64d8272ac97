"""``show(obj)``: look inside any Python object (value, type, attributes, docstring, source, file)."""

from __future__ import annotations

import html
import inspect as _inspect
import sys
from typing import Any

MAX_CHARS = 4000


def _clip(text: str, limit: int = MAX_CHARS) -> str:
    """Return ``text`` cut to ``limit`` characters, saying how much was cut."""
    return text if len(text) <= limit else text[:limit] + f"\n... ({len(text) - limit} more characters)"


def _attributes(obj: Any) -> str:
    """Return the public attribute names of ``obj`` with the type of each, one per line."""
    lines = []
    for name in sorted(n for n in dir(obj) if not n.startswith("_")):
        try:
            kind = type(getattr(obj, name)).__name__
        except Exception as err:  # properties may raise; report, don't crash the inspector
            kind = f"<{type(err).__name__}>"
        lines.append(f"{name}: {kind}")
    return "\n".join(lines) or "(no public attributes)"


def _source_target(obj: Any) -> Any:
    """Return the object whose source describes ``obj`` (its class for plain instances)."""
    if _inspect.ismodule(obj) or _inspect.isclass(obj) or _inspect.isroutine(obj):
        return obj
    return type(obj)


def inspect_sections(obj: Any) -> dict[str, str]:
    """Return the inspector's sections for ``obj`` as title -> text."""
    target = _source_target(obj)
    try:
        source = _inspect.getsource(target)
    except (TypeError, OSError):
        source = "(no Python source: built-in or defined interactively)"
    try:
        where = _inspect.getfile(target)
    except TypeError:
        where = "(built-in)"
    return {
        "Value": _clip(repr(obj)),
        "Type": f"{type(obj).__module__}.{type(obj).__qualname__}",
        "Attributes": _clip(_attributes(obj)),
        "Docstring": _inspect.getdoc(obj) or "(no docstring)",
        "Source": _clip(source, 4 * MAX_CHARS),
        "File": where,
    }


def _has_widget_frontend() -> bool:
    """Return whether we run in a Jupyter kernel where ipywidgets can render."""
    shell = sys.modules.get("IPython") and sys.modules["IPython"].get_ipython()
    return bool(shell) and type(shell).__name__ == "ZMQInteractiveShell" and _widgets() is not None


def _widgets():
    """Return the ipywidgets module, or None when it is not installed."""
    try:
        import ipywidgets
    except ImportError:
        return None
    return ipywidgets


def inspector_text(obj: Any) -> str:
    """Return the inspector for ``obj`` as plain text, one ``== Section ==`` block per section."""
    return "\n\n".join(f"== {title} ==\n{body}" for title, body in inspect_sections(obj).items())


def inspector_widget(obj: Any):
    """Return (without displaying it) an ipywidgets Tab with one tab per inspector section."""
    widgets = _widgets()
    if widgets is None:
        raise ImportError("the inspector widget needs ipywidgets: pip install ipywidgets")
    sections = inspect_sections(obj)
    children = [widgets.HTML(f"<pre style='white-space:pre-wrap;max-height:24em;overflow:auto'>"
                             f"{html.escape(body)}</pre>") for body in sections.values()]
    tabs = widgets.Tab(children=children)
    for index, title in enumerate(sections):
        tabs.set_title(index, title)
    return tabs


def show(obj: Any, widget: bool | None = None) -> None:
    """Display an inspector for ``obj``: tabs in Jupyter, plain text elsewhere.

    It returns None on purpose: Jupyter displays the value of a cell's last line, so returning the
    widget (or the text) would show the inspector twice when ``show(x)`` ends a cell.
    """
    if widget is None:
        widget = _has_widget_frontend()
    if not widget:
        print(inspector_text(obj))
        return
    tabs = inspector_widget(obj)
    from IPython.display import display

    display(tabs)
