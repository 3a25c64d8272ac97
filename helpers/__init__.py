"""Shared helpers for the language-model course: devices, model loading, inspection, plots."""

from .chat import ChatMarkers, chat_markers, header_token_tokenizer, role_token_tokenizer
from .config import CourseConfig, course_config
from .data import course_data_path
from .device import DeviceInfo, describe_device, detect_device
from .embedded import EMBEDDED, EmbeddedModelMissing, converted_chat_dir, prepare_embedded_models
from .inspect import inspect_sections, inspector_text, inspector_widget, show
from .loading import Loaded, LoadPlan, LoadReport, load_model, plan_loading
from .plotting import plot_attention, plot_bars, plot_curves, plot_heatmap
from .quiet import grading_mode, quiet
from .resolve import ModelNotFound, ModelSource, hub_reachable, resolve_model
from .session import print_versions, seed_everything
from .toy_data import MaskedFact, QAExample, masked_facts, qa_examples

__all__ = [
    "EMBEDDED", "ChatMarkers", "CourseConfig", "DeviceInfo", "EmbeddedModelMissing", "LoadPlan",
    "LoadReport", "Loaded", "ModelNotFound", "ModelSource", "chat_markers", "converted_chat_dir",
    "course_config", "course_data_path", "describe_device", "detect_device", "grading_mode", "header_token_tokenizer",
    "hub_reachable",
    "inspect_sections", "inspector_text", "inspector_widget", "load_model", "plan_loading", "plot_attention", "plot_bars", "plot_curves",
    "plot_heatmap", "prepare_embedded_models", "print_versions", "quiet", "resolve_model",
    "role_token_tokenizer", "seed_everything", "show",
]
__all__ += ["MaskedFact", "QAExample", "masked_facts", "qa_examples"]
