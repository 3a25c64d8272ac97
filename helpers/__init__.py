"""Shared helpers for the language-model course: devices, model loading, inspection, plots.

Names are imported on first use (PEP 562), so ``import helpers`` and the instructor's ``course``
command, which reads only the settings, do not pay for importing torch and transformers.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from .config import CourseConfig, course_config
from .quiet import grading_mode, quiet  # importing it silences the known library notices; the name
# `quiet` is the function, not the submodule
from .checks import capture_baseline as _capture_baseline

# The kernel's cell hooks as the course's setup cell left them: answers to hidden checks report what was
# added since (helpers/checks.py), so the grader's runtime check ignores what the grading machinery installs.
_capture_baseline()

# Each public name and the submodule that defines it.
_LAZY = {
    "chat": ("ChatMarkers", "chat_markers", "header_token_tokenizer", "role_token_tokenizer"),
    "data": ("course_data_path",),
    "device": ("DeviceInfo", "describe_device", "detect_device"),
    "embedded": ("EMBEDDED", "EmbeddedModelMissing", "converted_chat_dir", "prepare_embedded_models"),
    "inspect": ("inspect_sections", "inspector_text", "inspector_widget", "show"),
    "loading": ("Loaded", "LoadPlan", "LoadReport", "load_model", "plan_loading"),
    "plotting": ("plot_attention", "plot_bars", "plot_curves", "plot_heatmap"),
    "resolve": ("ModelNotFound", "ModelSource", "hub_reachable", "resolve_model"),
    "session": ("print_versions", "seed_everything"),
    "toy_data": ("MaskedFact", "QAExample", "masked_facts", "qa_examples"),
}
_WHERE = {name: module for module, names in _LAZY.items() for name in names}

__all__ = sorted(["CourseConfig", "course_config", "grading_mode", "quiet", *_WHERE])


def __getattr__(name: str):
    """Import the submodule that defines ``name`` on first use and return the name."""
    if name in _WHERE:
        value = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'helpers' has no attribute {name!r}")


def __dir__() -> list[str]:
    """List the public names with the loaded submodules."""
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # for editors and type checkers: the eager imports
    from .chat import ChatMarkers, chat_markers, header_token_tokenizer, role_token_tokenizer
    from .data import course_data_path
    from .device import DeviceInfo, describe_device, detect_device
    from .embedded import EMBEDDED, EmbeddedModelMissing, converted_chat_dir, prepare_embedded_models
    from .inspect import inspect_sections, inspector_text, inspector_widget, show
    from .loading import Loaded, LoadPlan, LoadReport, load_model, plan_loading
    from .plotting import plot_attention, plot_bars, plot_curves, plot_heatmap
    from .resolve import ModelNotFound, ModelSource, hub_reachable, resolve_model
    from .session import print_versions, seed_everything
    from .toy_data import MaskedFact, QAExample, masked_facts, qa_examples
