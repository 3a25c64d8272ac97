"""Kernel side of grading's output limits: a grading kernel sends no more output than the grader keeps.

The grader (``course_tools.outputs.BoundedExecute``) starts each IPython kernel with
``--IPKernelApp.exec_lines=import helpers.kernel_output as _k; _k.install(...)``. Without it, ipykernel
buffers what a cell prints and sends it every 0.2 s as one message: 120 prints of 5 MB arrive as two
messages of hundreds of MB that the kernel builds and the grader must read whole. After ``install``, per
cell (per execute request):

- each stream (stdout, stderr) passes on at most ``max_output`` characters, and all outputs together at
  most ``max_cell`` bytes; the rest is counted, never buffered or sent;
- a display, result or error larger than ``max_output`` becomes a short note (an error keeps its name and
  the end of its traceback), and a comm message's oversized data is dropped (grading keeps no widget);
  displays of the MIME types grading reads (``keep``: hidden checks' answers) pass whole, uncounted;
- when the cell ends, one display with metadata ``{"course_grade": {"cut": {name: bytes}, "dropped": n,
  "dropped_bytes": b}}`` reports what was not sent; the grader adds it to its note in the notebook.

Code in the kernel can undo this; the grader does not rely on it (its own limits apply to whatever
arrives, and it refuses messages over its size limit). This module imports only the standard library
(ipykernel is reached through the running kernel); notebooks never import it.
"""

from __future__ import annotations

import contextlib
import json
import sys
from typing import Any, Callable, Iterator

NOTE = "[course grade] {what} of {size} not sent (limit {limit} per output)"
REPORT = "[course grade] output not sent by the kernel: {what}"
KEY = "course_grade"
SIZE_KEY = "course_grade_bytes"  # metadata of a note that replaced a display: the display's size
INSTALLED = "_course_output_limits"
KEEP_CELLS = 8  # the counters of this many recent cells are kept


def human(size: float) -> str:
    """Return a byte count as text: '512 KiB', '5.0 MiB'."""
    for unit in ("bytes", "KiB", "MiB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit != "MiB" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def value_size(value: Any) -> int:
    """Return about how many bytes a message value takes (text by its length, anything else as JSON)."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return sum(len(v) for v in value)
    try:
        return len(json.dumps(value))
    except (TypeError, ValueError):
        return 0


class Cell:
    """What one cell (one execute request) has sent and held back."""

    def __init__(self) -> None:
        """Start with nothing sent."""
        self.sent = 0
        self.streams: dict[str, int] = {}
        self.cut: dict[str, int] = {}
        self.dropped = self.dropped_bytes = 0

    def report(self) -> dict:
        """Return what was held back, as the grader reads it."""
        return {"cut": dict(self.cut), "dropped": self.dropped, "dropped_bytes": self.dropped_bytes}


class Limits:
    """The per-output and per-cell limits of one kernel, and the counters of its recent cells."""

    def __init__(self, session: Any, max_output: int, max_cell: int, keep: tuple[str, ...] = (),
                 keep_max: int = 0) -> None:
        """Limit what ``session`` sends; displays of a ``keep`` MIME type up to ``keep_max`` pass uncounted."""
        self.session, self.max_output, self.max_cell = session, max_output, max_cell
        self.keep, self.keep_max = tuple(keep), keep_max
        self.cells: dict[str, Cell] = {}

    def cell(self, parent: Any) -> Cell:
        """Return the counters of the cell that ``parent`` (a parent header) names."""
        key = str((parent or {}).get("msg_id", "")) if isinstance(parent, dict) else ""
        if key not in self.cells:
            if len(self.cells) >= KEEP_CELLS:
                self.cells.pop(next(iter(self.cells)))
            self.cells[key] = Cell()
        return self.cells[key]

    def stream_room(self, cell: Cell, name: str) -> int:
        """Return how many more characters stream ``name`` of ``cell`` may send."""
        return max(0, min(self.max_output - cell.streams.get(name, 0), self.max_cell - cell.sent))

    def take(self, cell: Cell, name: str, text: str) -> str:
        """Return the part of ``text`` that stream ``name`` may still send, counting both parts."""
        room = self.stream_room(cell, name)
        piece = text if len(text) <= room else text[:room]
        cell.streams[name] = cell.streams.get(name, 0) + len(piece)
        cell.sent += len(piece)
        if len(piece) < len(text):
            cell.cut[name] = cell.cut.get(name, 0) + len(text) - len(piece)
        return piece


def install(max_output: int = 512 << 10, max_cell: int = 1 << 20, keep: tuple[str, ...] = (),
            keep_max: int = 2 << 20) -> bool:
    """Limit this kernel's output as described in the module doc; return whether a kernel was found.

    Displays holding a ``keep`` MIME type (the answers hidden checks hand the grader) are sent whole up to
    ``keep_max`` bytes, whatever the cell has printed: grading needs them.
    """
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    session = getattr(getattr(shell, "kernel", None), "session", None)
    if session is None or getattr(session, INSTALLED, False):
        return False
    limits = Limits(session, max_output, max_cell, keep, keep_max)
    if callable(getattr(shell, "_tee", None)):
        # IPython 9 wraps sys.stdout/stderr.write around each cell (to keep all output in its history, in
        # memory) and puts the original back afterwards: wrap in its place, keeping no history.
        shell._tee = limited_tee(limits)
    else:
        for stream in (sys.stdout, sys.stderr):
            if hasattr(stream, "pub_thread") and hasattr(stream, "parent_header"):
                stream.write = limited_write(stream, stream.write, limits)
    session.send = guard_send(session.send, limits)
    setattr(session, INSTALLED, True)
    def _report_cut(*_: Any) -> None:
        report(shell, limits)

    _report_cut.course_grading = True  # helpers.checks does not count the grader's own hook as tampering
    shell.events.register("post_run_cell", _report_cut)
    return True


def limited_write(stream: Any, write: Callable, limits: Limits) -> Callable:
    """Return ``write`` passing on only what the cell's limits allow of each text; the rest is counted."""
    name = str(getattr(stream, "name", "stdout"))

    def limited(text: str, *args: Any, **kwargs: Any) -> Any:
        """Write what is allowed of ``text``; return its whole length, as write does."""
        if not isinstance(text, str):
            return write(text, *args, **kwargs)  # (raises TypeError, as before)
        piece = limits.take(limits.cell(stream.parent_header), name, text)
        if piece:
            write(piece, *args, **kwargs)
        return len(text)

    return limited


def limited_tee(limits: Limits) -> Callable:
    """Return a replacement for IPython's ``InteractiveShell._tee``: the stream's write limited for one cell."""

    @contextlib.contextmanager
    def tee(channel: str = "stdout") -> Iterator[None]:
        """Limit ``sys.<channel>.write`` while a cell runs."""
        stream = getattr(sys, channel)
        original = stream.write
        if hasattr(stream, "parent_header"):
            stream.write = limited_write(stream, original, limits)
        try:
            yield
        finally:
            stream.write = original

    return tee


def report(shell: Any, limits: Limits) -> None:
    """At the end of a cell, send one display saying what was held back (nothing when nothing was)."""
    parent = getattr(shell, "parent_header", None) or getattr(getattr(shell, "kernel", None), "_parent", {})
    cell = limits.cells.get(str((parent or {}).get("msg_id", "")))
    if cell is None or not (cell.cut or cell.dropped):
        return
    parts = [f"{name} {human(size)}" for name, size in cell.cut.items()]
    if cell.dropped:
        parts.append(f"{cell.dropped} output(s) of {human(cell.dropped_bytes)}")
    shell.display_pub.publish(data={"text/plain": REPORT.format(what=", ".join(parts))},
                              metadata={KEY: cell.report()})
    cell.cut, cell.dropped, cell.dropped_bytes = {}, 0, 0


def guard_send(send: Callable, limits: Limits) -> Callable:
    """Return ``session.send`` that applies the limits to streams, displays, errors and comm messages."""

    def guarded(stream: Any, msg_or_type: Any, content: Any = None, parent: Any = None, *args: Any,
                **kwargs: Any) -> Any:
        """Send one message within the limits (or count it and send nothing)."""
        msg = msg_or_type if isinstance(msg_or_type, dict) else None
        kind = (msg.get("header", {}).get("msg_type") or msg.get("msg_type")) if msg else msg_or_type
        body = msg.get("content") if msg else content
        head = msg.get("parent_header") if msg else parent
        if isinstance(body, dict):
            body = shrink(kind, body, limits, head)
            if body is None:
                return None
            if msg is not None:
                msg["content"] = body
            else:
                content = body
            buffers = kwargs.get("buffers") or []
            if kind.startswith("comm") and sum(memoryview(b).nbytes for b in buffers) > limits.max_output:
                kwargs["buffers"] = []
        return send(stream, msg_or_type if msg is None else msg, content, parent, *args, **kwargs)

    return guarded


def shrink(kind: str, body: dict, limits: Limits, parent: Any) -> dict | None:
    """Return a message body within the limits, or None when it is not to be sent at all."""
    most = limits.max_output
    if kind == "stream":
        cell = limits.cell(parent)
        text = body.get("text")
        if isinstance(text, str):
            # Text written through sys.stdout was counted already; only what bypassed it is counted here.
            if len(text) > most:
                body = {**body, "text": text[:most]}
                cell.cut[str(body.get("name"))] = cell.cut.get(str(body.get("name")), 0) + len(text) - most
        return body
    if kind in ("display_data", "execute_result", "update_display_data"):
        if isinstance(body.get("metadata"), dict) and KEY in body["metadata"]:
            return body  # our own report
        data = body.get("data")
        size = value_size(data) + value_size(body.get("metadata", {}))
        if isinstance(data, dict) and any(m in data for m in limits.keep) and size <= limits.keep_max:
            return body  # an answer for the grader: neither cut nor counted
        if size > most:
            what = ", ".join(sorted(data)) if isinstance(data, dict) else "output"
            body = {**body, "data": {"text/plain": NOTE.format(what=what, size=human(size), limit=human(most))},
                    "metadata": {SIZE_KEY: size}}
            size = value_size(body["data"])
        cell = limits.cell(parent)
        if kind != "update_display_data" and cell.sent + size > limits.max_cell:
            cell.dropped += 1
            cell.dropped_bytes += size
            return None
        cell.sent += size
        return body
    if kind == "error" or (kind == "execute_reply" and body.get("status") == "error"):
        evalue, tb = body.get("evalue"), body.get("traceback")
        if isinstance(evalue, str) and len(evalue) > most // 2:
            body = {**body, "evalue": evalue[: most // 2] + " ..."}
        if isinstance(tb, list) and value_size(tb) > most // 2:
            kept, used = [], 0
            for line in reversed(tb):  # the last lines say what failed
                line = (line if isinstance(line, str) else str(line))[: max(0, most // 2 - used)]
                kept.append(line)
                used += len(line)
                if used >= most // 2:
                    break
            body = {**body, "traceback": ["... traceback cut ...", *reversed(kept)]}
        return body
    if kind == "execute_input" and isinstance(body.get("code"), str) and len(body["code"]) > most:
        return {**body, "code": body["code"][:most]}  # (the echo of a cell's code; graders ignore it)
    if kind.startswith("comm") and value_size(body.get("data")) > most:
        return {**body, "data": {}}
    return body
