"""Course-wide settings: which model each role means, the default quantization, where models live.

The instructor sets them in one place: a TOML file named by ``LLM_COURSE_CONFIG`` (or
``course.toml`` at the repository root), and any field can be overridden by an environment
variable ``LLM_COURSE_<FIELD>`` (for example ``LLM_COURSE_CHAT_MODEL``).
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

ENV_PREFIX = "LLM_COURSE_"
REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class CourseConfig:
    """The course-wide defaults that notebooks read through :func:`course_config`."""

    chat_model: str = "HuggingFaceTB/SmolLM2-135M-Instruct"
    encoder_model: str = "sentence-transformers/all-MiniLM-L6-v2"
    quantization: str = "auto"
    model_root: str = "/models/hf"
    cache_dir: str = field(default_factory=lambda: str(Path.home() / ".cache" / "llm-course"))

    def role_model(self, role: str) -> str:
        """Return the model name configured for ``role`` ("chat" or "encoder")."""
        return {"chat": self.chat_model, "encoder": self.encoder_model}[role]


ROLES = ("chat", "encoder")


def _config_file() -> Path | None:
    """Return the TOML file that holds the course settings, if there is one."""
    named = os.environ.get(ENV_PREFIX + "CONFIG")
    if named:
        path = Path(named).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"{ENV_PREFIX}CONFIG names {path}, which does not exist.")
        return path
    default = REPO_ROOT / "course.toml"
    return default if default.is_file() else None


def course_config() -> CourseConfig:
    """Return the course settings: defaults, then the TOML file, then environment variables."""
    config = CourseConfig()
    names = {f.name for f in fields(CourseConfig)}
    path = _config_file()
    if path is not None:
        data = tomllib.loads(path.read_text())
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"{path}: unknown setting(s) {sorted(unknown)}; known: {sorted(names)}")
        config = replace(config, **{k: str(v) for k, v in data.items()})
    overrides = {
        name: os.environ[ENV_PREFIX + name.upper()]
        for name in names
        if os.environ.get(ENV_PREFIX + name.upper())
    }
    return replace(config, **overrides)
