"""Answers handed to the grader: the kernel side of the course's hidden checks.

A hidden test block computes the student's answers on inputs the student has not seen and hands each one
to the grader with :func:`answer`; it never decides pass or fail itself. The grader (nbgrader's process,
``course_tools.checks.OutsideChecks``) reads the answers from the cell's outputs and compares them with
the answers the reference solution gave when the assignment was released, which are stored where no
kernel can read them. Code in the student's kernel can change what is reported, but not what it is
compared with, so tampering with the kernel earns nothing that a correct answer would not.

An answer travels as one ``display_data`` output of the MIME type :data:`ANSWER_MIME`: a JSON document
that encodes the value with its exact type (``int`` is not ``float``, a ``tuple`` is not a ``list``, a
tensor carries its dtype and shape). Students never call this: their notebooks have no hidden blocks.
"""

from __future__ import annotations

import math
import sys
from typing import Any, Callable

ANSWER_MIME = "application/vnd.llm-course.answer+json"
MAX_ITEMS = 50_000  # elements per answer: hidden checks use small inputs, so a huge answer is malformed
FORMAT = 1


class _TooLarge(ValueError):
    """An answer with more elements than MAX_ITEMS."""


def type_name(value: Any) -> str:
    """Return the exact type of ``value`` as the grader compares it ("int", "torch.Tensor", "numpy.float64")."""
    kind = type(value)
    module = kind.__module__
    if module == "builtins":
        return kind.__qualname__
    return f"{module.split('.')[0]}.{kind.__qualname__}"


def _number(x: float) -> float | str:
    """Return a float as JSON can hold it (NaN and infinities as strings)."""
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return x


def encode(value: Any, _budget: list[int] | None = None) -> dict:
    """Return ``value`` as a JSON-ready dict that keeps its exact type (see the module docstring)."""
    budget = _budget if _budget is not None else [MAX_ITEMS]
    budget[0] -= 1
    if budget[0] < 0:
        raise _TooLarge(f"an answer may hold at most {MAX_ITEMS} elements")
    name = type_name(value)
    if value is None:
        return {"t": name}
    if type(value) is bool:
        return {"t": name, "v": value}
    if type(value) is int:
        return {"t": name, "v": value}
    if type(value) is float:
        return {"t": name, "v": _number(value)}
    if type(value) is complex:
        return {"t": name, "v": [_number(value.real), _number(value.imag)]}
    if type(value) in (str, bytes):
        return {"t": name, "v": value if type(value) is str else value.hex()}
    if type(value) in (list, tuple):
        return {"t": name, "v": [encode(item, budget) for item in value]}
    if type(value) in (set, frozenset):
        items = [encode(item, budget) for item in value]
        return {"t": name, "v": sorted(items, key=repr)}
    if type(value) is dict:
        return {"t": name, "v": [[encode(k, budget), encode(v, budget)] for k, v in value.items()]}
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, torch.Tensor):
        flat = value.detach().cpu()
        if flat.dtype in (torch.float16, torch.bfloat16):
            flat = flat.float()  # numpy has no bfloat16: the values travel as float32, the dtype is kept
        return _array(name, str(value.dtype), list(value.shape), flat.resolve_conj().numpy(), budget)
    numpy = sys.modules.get("numpy")
    if numpy is not None and isinstance(value, numpy.ndarray):
        return _array(name, str(value.dtype), list(value.shape), value, budget)
    if numpy is not None and isinstance(value, numpy.generic):
        item = value.item()
        return {"t": name, "v": _number(item) if isinstance(item, float) else item}
    # Anything else is compared by its exact type and repr (kept short: a repr is not a place for data).
    return {"t": name, "repr": repr(value)[:1000]}


def _array(name: str, dtype: str, shape: list[int], array: Any, budget: list[int]) -> dict:
    """Return an array's values as base64 of little-endian bytes (compact: answers travel as cell outputs)."""
    import base64

    import numpy

    budget[0] -= int(array.size)
    if budget[0] < 0:
        raise _TooLarge(f"an answer may hold at most {MAX_ITEMS} elements")
    kind = array.dtype.kind
    if kind not in "biufc":
        return {"t": name, "dtype": dtype, "shape": shape, "repr": repr(array.tolist())[:1000]}
    data = numpy.ascontiguousarray(array).astype(array.dtype.newbyteorder("<"), copy=False)
    return {"t": name, "dtype": dtype, "shape": shape, "np": data.dtype.str, "b64": base64.b64encode(data.tobytes()).decode()}


class Raised:
    """What an answer becomes when computing it raised: the grader sees the exception's type only."""

    def __init__(self, error: BaseException):
        """Keep the exception's type name."""
        self.name = type(error).__name__


def answer(check: str, value: Any | Callable[[], Any], **options: Any) -> None:
    """Hand the grader one answer named ``check``; a callable is called here and an exception it raises
    becomes the answer "raised <type>" (so one failing call fails one check, not the rest of the cell).

    ``options`` (``rtol``, ``atol``, ``dtype``, ``numeric``) say how the grader compares this check; only
    the values recorded from the reference solution count, so a student cannot loosen them.
    """
    from IPython.display import display

    if callable(value) and not isinstance(value, type):
        try:
            value = value()
        except Exception as error:  # noqa: BLE001 - any failure of the student's code is this check's answer
            value = Raised(error)
    if isinstance(value, Raised):
        payload = {"raised": value.name}
    else:
        try:
            payload = {"value": encode(value)}
        except (_TooLarge, RecursionError) as error:
            payload = {"raised": type(error).__name__ if not isinstance(error, _TooLarge) else "AnswerTooLarge"}
    document = {"format": FORMAT, "check": str(check), "options": options, "kernel": kernel_state(), **payload}
    display({ANSWER_MIME: document, "text/plain": f"[answer for the grader: {check}]"}, raw=True)


_BASELINE: dict | None = None


def _hook_counts() -> dict:
    """Return how many input transformers, AST transformers and event callbacks the kernel has now."""
    try:
        from IPython import get_ipython

        shell = get_ipython()
    except ImportError:
        shell = None
    if shell is None:
        return {}
    callbacks = getattr(getattr(shell, "events", None), "callbacks", {})
    return {"input_transformers": len(getattr(shell, "input_transformers_cleanup", [])) +
            len(getattr(shell, "input_transformers_post", [])),
            "ast_transformers": len(getattr(shell, "ast_transformers", [])),
            # the grading machinery marks its own hooks (helpers/kernel_output.py): not the student's doing
            **{f"events.{name}": len([f for f in funcs if not getattr(f, "course_grading", False)])
               for name, funcs in sorted(callbacks.items())}}


def capture_baseline() -> None:
    """Remember the kernel's hooks as they are now (the first call wins: ``import helpers`` makes it)."""
    global _BASELINE
    if _BASELINE is None:
        _BASELINE = _hook_counts()


def kernel_state() -> dict:
    """Return the hooks that can rewrite or watch cells added since ``capture_baseline``, and whether a
    tracer or profiler is set. The grader compares this with the reference's: a difference is reported to
    the instructor; it changes no grade (the outside comparison of the answers does that)."""
    capture_baseline()
    now = _hook_counts()
    added = {key: count - _BASELINE.get(key, 0) for key, count in now.items() if count != _BASELINE.get(key, 0)}
    return {"trace": sys.gettrace() is not None, "profile": sys.getprofile() is not None, "added": added}


def raised(function: Callable[[], Any]) -> str | None:
    """Return the type name of the exception ``function()`` raises, or None when it returns."""
    try:
        function()
    except Exception as error:  # noqa: BLE001 - the type is the answer
        return type(error).__name__
    return None
