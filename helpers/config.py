"""Course-wide settings, in one place for the notebooks (helpers) and the instructor's `course` command.

Where the course is: the first folder holding ``nbgrader_config.py`` upward from the current
directory, else the folder named by ``COURSE_ROOT`` (nbgrader's own convention is the current
directory; this also finds the course from a notebook's sub-folder). Its settings: defaults, then
``course.toml`` at that course root (or the TOML file named by ``LLM_COURSE_CONFIG``), then one
environment variable per field, ``LLM_COURSE_<FIELD>`` (for example ``LLM_COURSE_CHAT_MODEL``).
Outside any course (a student on Colab) there is no file and the defaults apply.

This module must stay importable by students: it never imports nbgrader or course_tools.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Callable

ENV_PREFIX = "LLM_COURSE_"
ROOT_MARKER = "nbgrader_config.py"
ROOT_ENV = "COURSE_ROOT"
CONFIG_NAME = "course.toml"
SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)


class CourseRootNotFound(RuntimeError):
    """No nbgrader_config.py upward from the current directory and no usable COURSE_ROOT."""


def parse_size(text: str | int) -> int:
    """Return a size such as "6G", "512M", "20MB" or 4096 in bytes (powers of 1024)."""
    if isinstance(text, int):
        return text
    m = SIZE.match(str(text))
    if not m:
        raise ValueError(f"not a size: {text!r} (expected e.g. 512M, 6G or a number of bytes)")
    return int(float(m.group(1)) * 1024 ** " kmgt".index(m.group(2).lower() or " "))


def _text(value: Any) -> str:
    """Return a setting as text (TOML numbers allowed where text is expected)."""
    return str(value)


@dataclass(frozen=True)
class CourseConfig:
    """The course-wide defaults that notebooks and `course` read through :func:`course_config`."""

    # Models (see README, "choosing the models").
    chat_model: str = "HuggingFaceTB/SmolLM2-135M-Instruct"
    encoder_model: str = "sentence-transformers/all-MiniLM-L6-v2"
    quantization: str = "auto"
    model_root: str = "/models/hf"
    # Where converted embedded models live; the grading sandbox exposes it read-only to kernels.
    cache_dir: str = field(default_factory=lambda: str(Path.home() / ".cache" / "llm-course"))
    # `course grade` defaults (its flags override them per run).
    grade_workers: int = 0  # submissions at once; 0 means one per CPU
    grade_timeout: float = 1800.0  # wall seconds per submission
    grade_memory: str = "6G"  # address-space limit per kernel
    grade_cpu: int = 1800  # CPU seconds per kernel
    grade_pids: int = 256  # processes/threads per kernel
    # Output a grading kernel may leave in the autograded notebook, in bytes, counted as it arrives
    # (course_tools/outputs.py); what does not fit is cut, with a note saying how much.
    grade_max_output: str = "512K"  # one output (a stream of a cell, a display, a result)
    grade_max_cell_output: str = "1M"  # all outputs of one cell
    grade_max_notebook_output: str = "2M"  # all outputs of one notebook
    # `course collect` caps, checked before anything is unpacked.
    collect_max_notebook: str = "20M"
    collect_max_total: str = "2G"

    def role_model(self, role: str) -> str:
        """Return the model name configured for ``role`` ("chat" or "encoder")."""
        return {"chat": self.chat_model, "encoder": self.encoder_model}[role]

    @property
    def cache_path(self) -> Path:
        """Return cache_dir as a path with ``~`` expanded."""
        return Path(self.cache_dir).expanduser()


ROLES = ("chat", "encoder")
CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "grade_workers": int, "grade_timeout": float, "grade_cpu": int, "grade_pids": int,
}


def find_course_root(start: str | os.PathLike | None = None, required: bool = True) -> Path | None:
    """Return the course root: nbgrader_config.py's folder upward from ``start`` (cwd), else COURSE_ROOT."""
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / ROOT_MARKER).is_file():
            return folder
    named = os.environ.get(ROOT_ENV)
    if named:
        folder = Path(named).expanduser().resolve()
        if (folder / ROOT_MARKER).is_file():
            return folder
        if required:
            raise CourseRootNotFound(f"{ROOT_ENV}={named} has no {ROOT_MARKER}: it is not a course root.")
        return None
    if required:
        raise CourseRootNotFound(
            f"no course here: neither {here} nor any folder above it holds {ROOT_MARKER}, and {ROOT_ENV} "
            f"is not set. Run `course` inside the course folder (or a sub-folder), or set {ROOT_ENV}=/path/to/course.")
    return None


def config_file(root: str | os.PathLike | None = None) -> Path | None:
    """Return the TOML file that holds the course settings, if there is one."""
    named = os.environ.get(ENV_PREFIX + "CONFIG")
    if named:
        path = Path(named).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"{ENV_PREFIX}CONFIG names {path}, which does not exist.")
        return path
    folder = Path(root) if root is not None else find_course_root(required=False)
    if folder is None:
        return None
    path = folder / CONFIG_NAME
    return path if path.is_file() else None


def _convert(name: str, value: Any, origin: str) -> Any:
    """Return ``value`` converted to the type of setting ``name``, naming ``origin`` on error."""
    try:
        return CONVERTERS.get(name, _text)(value)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{origin}: setting {name} = {value!r} is invalid ({err})") from None


def course_config(root: str | os.PathLike | None = None) -> CourseConfig:
    """Return the course settings: defaults, then course.toml of the course root, then environment variables."""
    config = CourseConfig()
    names = {f.name for f in fields(CourseConfig)}
    path = config_file(root)
    if path is not None:
        data = tomllib.loads(path.read_text())
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"{path}: unknown setting(s) {sorted(unknown)}; known: {sorted(names)}")
        config = replace(config, **{k: _convert(k, v, str(path)) for k, v in data.items()})
    overrides = {
        name: _convert(name, os.environ[ENV_PREFIX + name.upper()], ENV_PREFIX + name.upper())
        for name in names
        if os.environ.get(ENV_PREFIX + name.upper())
    }
    config = replace(config, **overrides)
    for size in ("grade_memory", "collect_max_notebook", "collect_max_total", "grade_max_output",
                 "grade_max_cell_output", "grade_max_notebook_output"):
        try:  # a typo in a size should fail here, not halfway through a grading run
            parse_size(getattr(config, size))
        except ValueError as err:
            raise ValueError(f"course settings: {size}: {err}") from None
    return replace(config, cache_dir=str(config.cache_path))
