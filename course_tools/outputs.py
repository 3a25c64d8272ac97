"""Output bounded in bytes while it arrives: what a submission prints or displays cannot exhaust the grader.

``BoundedExecute`` replaces nbgrader's ``Execute`` in nbgrader_config.py (so ``course grade`` and plain
``nbgrader autograde`` alike use it). It is nbgrader's Execute with nbclient's output handling replaced:

- every output is admitted against three caps (course.toml: ``grade_max_output`` per output,
  ``grade_max_cell_output`` per cell, ``grade_max_notebook_output`` per notebook) as its message
  arrives; what does not fit is counted, not kept, and a note at the end of the cell says how many
  bytes of which output were cut. Consecutive pieces of one stream form one output (as Jupyter shows them).
  Grading sees what it needs: each stream a cell writes keeps an output (a test cell that wrote to
  stderr still scores 0), the first error of a cell is always kept (shortened), and the answers hidden
  checks hand the grader (``helpers.checks.answer``) are kept whole outside the caps (up to the
  per-notebook cap in all), so printing too much never fails a check;
- the kernel is started with ``helpers.kernel_output`` installed, which sends no more per output and
  per cell than the grader keeps (and reports, in one small display, how much it held back), so honest
  but runaway output never leaves the kernel;
- the grader's ZeroMQ sockets refuse any message larger than 8 x the per-output cap (or the
  per-notebook cap, if larger) + 1 MiB (5 MiB by default) before reading it, and queue about 256 MiB of
  messages at most: a kernel that undoes the line above and sends a bigger one closes its output
  channel, and that notebook fails saying so, instead of the grader growing;
- widget state is not collected and Output widgets do not capture (formgrader and feedback drop both).
"""

from __future__ import annotations

from typing import Any

import zmq
import zmq.asyncio
from jupyter_client.asynchronous.client import AsyncKernelClient
from jupyter_client.manager import AsyncKernelManager
from nbclient.exceptions import CellTimeoutError
from nbclient.util import run_sync
from nbformat import NotebookNode
from nbformat.v4 import new_output, output_from_msg
from nbgrader.preprocessors import Execute
from zmq.utils.monitor import parse_monitor_message
from traitlets import Bool, DottedObjectName, Integer, Type, default

from helpers.checks import ANSWER_MIME
from helpers.kernel_output import KEY, SIZE_KEY, human, value_size

QUEUE = 256 << 20  # bytes: about the most a grader's socket queues before reading (see message_limits)
OVERHEAD = 200  # bytes counted per output kept (its indented JSON frame): a flood of tiny outputs is bounded too
NOTE_ROOM = 400  # bytes: a note in place of a dropped display needs this much room
MIN_ERROR = 4096  # bytes: the first error of a cell is kept at least this long, whatever the budget
NOTE = ("[course grade] {what} cut: {cut:,} bytes ({size}) not kept; limits {output} per output, {cell} per cell, "
        "{notebook} per notebook")


def nbytes(text: str) -> int:
    """Return the UTF-8 size of ``text``."""
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def head(text: str, size: int) -> str:
    """Return the longest start of ``text`` that takes at most ``size`` bytes in UTF-8."""
    if size <= 0:
        return ""
    if text.isascii():
        return text[:size]
    return text.encode("utf-8", "surrogatepass")[:size].decode("utf-8", "ignore")


def output_size(out: NotebookNode) -> int:
    """Return about how many bytes an output takes in the notebook."""
    kind = out.get("output_type")
    if kind == "stream":
        return OVERHEAD + nbytes(out.get("text", ""))
    if kind == "error":
        return OVERHEAD + value_size(out.get("ename", "")) + value_size(out.get("evalue", "")) + value_size(
            out.get("traceback", []))
    data = out.get("data", {})
    values = data.values() if isinstance(data, dict) else [data]
    return OVERHEAD + sum(value_size(v) for v in values) + value_size(out.get("metadata", {}))


class _Stream:
    """One stream output being received: its kept pieces and their size."""

    def __init__(self, out: NotebookNode) -> None:
        """Start with nothing kept."""
        self.out, self.parts, self.kept = out, [], 0


class Budget:
    """The caps of one notebook and what the current cell has used."""

    def __init__(self, per_output: int, per_cell: int, per_notebook: int, keep: tuple[str, ...] = (ANSWER_MIME,)
                 ) -> None:
        """Start a notebook with nothing kept; displays of a ``keep`` MIME type have a budget of their own."""
        self.per_output, self.per_cell, self.per_notebook = per_output, per_cell, per_notebook
        self.keep = tuple(keep)
        self.notebook = 0
        self.answers = 0  # bytes of ``keep`` displays kept (at most per_notebook)
        self.sizes: dict[int, int] = {}  # id(output) -> bytes counted, for display updates
        self.start_cell()

    def start_cell(self) -> None:
        """Start a cell: nothing used, no stream open, nothing cut or dropped."""
        self.cell = 0
        self.streams: list[_Stream] = []
        self.cut: dict[str, int] = {}  # stream name -> bytes not kept
        self.dropped, self.dropped_bytes, self.errors = 0, 0, 0

    def _cut(self, name: str, size: int) -> None:
        """Count ``size`` bytes of stream ``name`` as not kept."""
        if size > 0:
            self.cut[name] = self.cut.get(name, 0) + size

    def room(self, used: int = 0) -> int:
        """Return how many more bytes an output that already holds ``used`` may keep."""
        left = self.per_notebook - self.notebook - self.cell
        return max(0, min(self.per_output - used, self.per_cell - self.cell, left))

    def note(self, what: str, cut: int) -> NotebookNode:
        """Return a note output saying how much of ``what`` was not kept."""
        text = NOTE.format(what=what, cut=cut, size=human(cut), output=human(self.per_output),
                           cell=human(self.per_cell), notebook=human(self.per_notebook))
        return new_output("display_data", data={"text/plain": text})

    def admit(self, outs: list, out: NotebookNode) -> NotebookNode | None:
        """Account for an arriving output; return what to append to the cell (None: merged or dropped)."""
        kind = out.get("output_type")
        if kind == "stream":
            return self._stream(outs, out)
        if kind == "display_data" and isinstance(out.get("metadata", {}).get(KEY), dict):
            self._kernel_report(out.metadata[KEY])
            return None
        if kind == "error":
            return self._error(out)
        return self._display(out)

    def _kernel_report(self, report: dict) -> None:
        """Add what the kernel held back (helpers.kernel_output) to this cell's counts."""
        def count(value: Any) -> int:
            return value if isinstance(value, int) and 0 <= value < 1 << 50 else 0

        cut = report.get("cut")
        for name, size in (cut.items() if isinstance(cut, dict) else []):
            self._cut(str(name)[:50], count(size))
        self.dropped += count(report.get("dropped"))
        self.dropped_bytes += count(report.get("dropped_bytes"))

    def _stream(self, outs: list, out: NotebookNode) -> NotebookNode | None:
        """Append stream text to the cell's open stream of that name (or open one), within the caps."""
        text = out.get("text", "")
        text = text if isinstance(text, str) else str(text)
        name = out.get("name")
        last = outs[-1] if outs else None
        stream = next((s for s in self.streams if s.out is last), None) if last is not None else None
        new = stream is None or stream.out.get("name") != name
        if new:
            same = [s for s in self.streams if s.out.get("name") == name]
            if same and self.room() < OVERHEAD:  # no room for another output of this stream
                self._cut(str(name), nbytes(text))
                return None
            out["text"] = ""
            stream = _Stream(out)
            self.streams.append(stream)
            self.cell += OVERHEAD
        size = nbytes(text)
        piece = text if size <= self.room(stream.kept) else head(text, self.room(stream.kept))
        kept = nbytes(piece)
        if piece:
            stream.parts.append(piece)
        stream.kept += kept
        self._cut(str(name), size - kept)
        self.cell += kept
        return out if new else None

    def _display(self, out: NotebookNode) -> NotebookNode | None:
        """Keep a display or result that fits; else a note in its place (or only count it)."""
        size = output_size(out)
        data = out.get("data", {})
        if isinstance(data, dict) and any(m in data for m in self.keep) and self.answers + size <= self.per_notebook:
            self.answers += size  # an answer for the grader: kept whatever the cell printed
            return out
        if size - OVERHEAD <= self.per_output and size <= self.room():
            self.cell += size
            self.sizes[id(out)] = size
            return out
        if self.room() < NOTE_ROOM:  # no room even for a note: counted in the cell's last note
            original = out.get("metadata", {}).get(SIZE_KEY)  # (a note the kernel put in its place)
            self.dropped += 1
            self.dropped_bytes += original if isinstance(original, int) and original > 0 else size - OVERHEAD
            return None
        note = self.note(", ".join(sorted(out.get("data", {}))) or "output", size - OVERHEAD)
        if out.get("output_type") == "execute_result":
            note = new_output("execute_result", data=note.data, execution_count=out.get("execution_count"))
        self.cell += output_size(note)
        return note

    def _error(self, out: NotebookNode) -> NotebookNode | None:
        """Keep an error (the first of a cell always, shortened to fit); drop further ones that do not fit."""
        size = output_size(out)
        room = self.room()
        if size <= room:
            self.errors += 1
            self.cell += size
            return out
        if self.errors:
            self.dropped += 1
            self.dropped_bytes += size - OVERHEAD
            return None
        limit = max(room, MIN_ERROR)
        evalue = out.get("evalue", "")
        evalue = evalue if isinstance(evalue, str) else str(evalue)
        out["evalue"] = head(evalue, limit // 2)
        lines, used = [], nbytes(out["evalue"])
        for line in reversed([ln if isinstance(ln, str) else str(ln) for ln in out.get("traceback", [])]):
            line = head(line, limit - used)
            lines.append(line)
            used += nbytes(line)
            if used >= limit:
                break
        out["traceback"] = ["[course grade] traceback cut", *reversed(lines)]
        out["ename"] = head(str(out.get("ename", "Error")), 200)
        self.errors += 1
        self.cell += output_size(out)
        return out

    def clear(self) -> None:
        """The cell's outputs were cleared: what they used is free again."""
        self.start_cell()

    def update(self, out: NotebookNode, new: NotebookNode) -> None:
        """Give ``out`` (an earlier display) the data of ``new`` if it fits, else a note."""
        old = self.sizes.get(id(out), output_size(out))
        size = output_size(new)
        if size - OVERHEAD <= self.per_output and size - old <= self.room():
            out["data"], out["metadata"] = new["data"], new["metadata"]
        else:
            note = self.note("display update of " + (", ".join(sorted(new.get("data", {}))) or "output"),
                             size - OVERHEAD)
            out["data"], out["metadata"], size = note.data, {}, output_size(note)
        self.cell += size - old
        self.sizes[id(out)] = size

    def finish_cell(self, outputs: list) -> None:
        """Write the kept stream texts, append one note per cut stream and one for dropped outputs."""
        for stream in self.streams:
            stream.out["text"] = "".join(stream.parts)
        notes = [self.note(name, size) for name, size in self.cut.items()]
        if self.dropped:
            notes.append(self.note(f"{self.dropped} more output(s)", self.dropped_bytes))
        if len(notes) > 1 and self.notebook + self.cell + sum(map(output_size, notes)) > self.per_notebook:
            notes = [self.note("output", sum(self.cut.values()) + self.dropped_bytes)]  # full: one short note
        outputs.extend(notes)
        self.notebook += self.cell + sum(map(output_size, notes))
        self.start_cell()


def message_limits(per_output: int, per_notebook: int) -> tuple[int, int]:
    """Return (largest message, messages queued per socket) for the caps: a kept output may take up to ~6
    bytes a character as JSON, an answer up to the per-notebook cap; the queue holds about QUEUE bytes."""
    largest = max(8 * per_output, per_notebook) + (1 << 20)
    return largest, max(16, QUEUE // largest)


class BoundedKernelClient(AsyncKernelClient):
    """A kernel client whose sockets refuse messages over ``max_message_bytes`` before reading them and
    queue at most ``max_queued`` messages."""

    max_message_bytes = Integer(5 << 20, help="Largest message accepted from the kernel, in bytes").tag(config=True)
    max_queued = Integer(51, help="Messages a socket queues before the program reads them").tag(config=True)

    @default("context")
    def _context_default(self) -> zmq.asyncio.Context:
        """Return a ZeroMQ context whose sockets have ZMQ_MAXMSGSIZE and ZMQ_RCVHWM set."""
        self._created_context = True
        context = zmq.asyncio.Context()
        context.setsockopt(zmq.MAXMSGSIZE, self.max_message_bytes)
        context.setsockopt(zmq.RCVHWM, self.max_queued)
        return context

    def start_channels(self, *args: Any, **kwargs: Any) -> None:
        """Start the channels and watch the output channel for a connection ZeroMQ closes."""
        super().start_channels(*args, **kwargs)
        self._monitor = None
        if self._iopub_channel is not None:
            self._monitor = self.iopub_channel.socket.get_monitor_socket(zmq.EVENT_DISCONNECTED)

    def stop_channels(self) -> None:
        """Stop watching, then stop the channels."""
        monitor, self._monitor = getattr(self, "_monitor", None), None
        if monitor is not None:
            try:
                self.iopub_channel.socket.disable_monitor()
            except zmq.ZMQError:
                pass
            monitor.close(linger=0)
        super().stop_channels()

    async def output_channel_closed(self) -> bool:
        """Return whether the kernel's output connection was closed (a message over the size limit does it)."""
        monitor = getattr(self, "_monitor", None)
        try:
            while monitor is not None and await monitor.poll(0):
                event = parse_monitor_message(await monitor.recv_multipart())
                if event["event"] == zmq.EVENT_DISCONNECTED:
                    return True
        except zmq.ZMQError:
            pass
        return False


class BoundedKernelManager(AsyncKernelManager):
    """nbgrader's kernel manager with ``BoundedKernelClient`` clients, limited as ``message_limits`` says."""

    client_class = DottedObjectName("course_tools.outputs.BoundedKernelClient")
    client_factory = Type(BoundedKernelClient, klass=AsyncKernelClient)
    max_message_bytes = Integer(5 << 20, help="Largest message its clients accept, in bytes").tag(config=True)
    max_queued = Integer(51, help="Messages its clients' sockets queue").tag(config=True)

    def client(self, **kwargs: Any) -> BoundedKernelClient:
        """Return a client with this manager's message limits."""
        kwargs.setdefault("max_message_bytes", self.max_message_bytes)
        kwargs.setdefault("max_queued", self.max_queued)
        return super().client(**kwargs)


class BoundedExecute(Execute):
    """nbgrader's Execute whose outputs are bounded in bytes as they arrive (see module doc)."""

    max_output_bytes = Integer(None, allow_none=True, help="Bytes kept per output (default: course.toml "
                               "grade_max_output)").tag(config=True)
    max_cell_output_bytes = Integer(None, allow_none=True, help="Bytes kept per cell (default: course.toml "
                                    "grade_max_cell_output)").tag(config=True)
    max_notebook_output_bytes = Integer(None, allow_none=True, help="Bytes kept per notebook (default: "
                                        "course.toml grade_max_notebook_output)").tag(config=True)
    kernel_limits = Bool(True, help="Start IPython kernels with helpers.kernel_output installed").tag(config=True)
    store_widget_state = Bool(False, help="Widget state is dropped from what graders see: do not collect it"
                              ).tag(config=True)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Use the bounded kernel manager (and so the bounded client)."""
        kwargs.setdefault("kernel_manager_class", BoundedKernelManager)
        super().__init__(*args, **kwargs)

    def caps(self) -> tuple[int, int, int]:
        """Return (per output, per cell, per notebook) in bytes: the traits if set, else course.toml."""
        from helpers.config import course_config, parse_size

        settings = None
        values = []
        for trait, setting in (("max_output_bytes", "grade_max_output"),
                               ("max_cell_output_bytes", "grade_max_cell_output"),
                               ("max_notebook_output_bytes", "grade_max_notebook_output")):
            value = getattr(self, trait)
            if value is None:
                settings = settings or course_config()
                value = parse_size(getattr(settings, setting))
            values.append(int(value))
        return values[0], values[1], values[2]

    def preprocess(self, nb: NotebookNode, resources: Any = None, km: Any = None) -> tuple:
        """Execute the notebook with a fresh budget."""
        self.budget = Budget(*self.caps())
        return super().preprocess(nb, resources, km)

    def create_kernel_manager(self) -> BoundedKernelManager:
        """Return the kernel manager, with message limits that follow the caps."""
        km = super().create_kernel_manager()
        if isinstance(km, BoundedKernelManager):
            km.max_message_bytes, km.max_queued = message_limits(self.budget.per_output, self.budget.per_notebook)
        return km

    async def async_start_new_kernel(self, **kwargs: Any) -> None:
        """Start the kernel; an IPython kernel gets helpers.kernel_output installed (small messages)."""
        spec = getattr(self.km, "kernel_spec", None)
        argv = " ".join(getattr(spec, "argv", []) or [])
        if self.kernel_limits and "ipykernel" in argv:
            line = (f"import helpers.kernel_output as _k; _k.install(max_output={self.budget.per_output}, "
                    f"max_cell={self.budget.per_cell}, keep={self.budget.keep!r}, "
                    f"keep_max={self.budget.per_notebook}); del _k")
            arg = f"--IPKernelApp.exec_lines={line}"
            if arg not in self.extra_arguments:
                self.extra_arguments = [*self.extra_arguments, arg]
        await super().async_start_new_kernel(**kwargs)

    start_new_kernel = run_sync(async_start_new_kernel)  # (nbclient binds the sync names to its own coroutines)

    async def async_execute_cell(self, cell: NotebookNode, cell_index: int, execution_count: int | None = None,
                                 store_history: bool = True) -> NotebookNode:
        """Execute one cell with a fresh cell budget; write its notes whatever happens."""
        self.budget.start_cell()
        try:
            return await super().async_execute_cell(cell, cell_index, execution_count, store_history)
        except CellTimeoutError as err:
            closed = isinstance(self.kc, BoundedKernelClient) and await self.kc.output_channel_closed()
            if not closed:
                raise
            raise CellTimeoutError(
                f"the kernel sent a message larger than {human(self.kc.max_message_bytes)}: the grader refused it "
                "unread, which closed the kernel's output channel (see course_tools/outputs.py)") from err
        finally:
            if cell.get("cell_type") == "code":
                self.budget.finish_cell(cell.setdefault("outputs", []))

    execute_cell = run_sync(async_execute_cell)

    def output(self, outs: list, msg: dict, display_id: str | None, cell_index: int) -> NotebookNode | None:
        """nbclient's output(), with each output admitted against the budget (no Output-widget hooks)."""
        try:
            out = output_from_msg(msg)
        except ValueError:
            self.log.error("unhandled iopub msg: %s", msg.get("msg_type"))
            return None
        if self.clear_before_next_output:
            outs[:] = []
            self.clear_display_id_mapping(cell_index)
            self.clear_before_next_output = False
            self.budget.clear()
        out = self.budget.admit(outs, out)
        if out is None:
            return None
        if display_id:
            self._display_id_map.setdefault(display_id, {}).setdefault(cell_index, []).append(len(outs))
        outs.append(out)
        return out

    def clear_output(self, outs: list, msg: dict, cell_index: int) -> None:
        """nbclient's clear_output(); a cleared cell's outputs no longer count."""
        super().clear_output(outs, msg, cell_index)
        if not outs:
            self.budget.clear()

    def _update_display_id(self, display_id: str, msg: dict) -> None:
        """nbclient's display update, with the new data admitted against the budget."""
        if display_id not in self._display_id_map:
            return
        if msg["header"]["msg_type"] == "update_display_data":
            msg["header"]["msg_type"] = "display_data"
        try:
            new = output_from_msg(msg)
        except ValueError:
            self.log.error("unhandled iopub msg: %s", msg.get("msg_type"))
            return
        for cell_idx, indices in self._display_id_map[display_id].items():
            outputs = self.nb["cells"][cell_idx]["outputs"]
            for index in indices:
                if index < len(outputs) and "data" in outputs[index]:
                    self.budget.update(outputs[index], new)

    def on_comm_open_jupyter_widget(self, msg: dict) -> None:
        """Create no widget: an Output widget would keep outputs outside the budget."""
        return None

