"""Keep graded notebooks' stderr empty: nbgrader scores a test cell 0 if anything reaches stderr."""

from __future__ import annotations

import logging
import os
import warnings

NOISY_LOGGERS = ("bitsandbytes", "transformers", "datasets", "huggingface_hub", "accelerate",
                 "peft", "torch", "urllib3", "filelock", "tokenizers")


def grading_mode() -> str | None:
    """Return nbgrader's execution mode ('autograde', 'validate', ...) or None outside nbgrader."""
    return os.environ.get("NBGRADER_EXECUTION") or None


def quiet(force: bool = False) -> bool:
    """Silence warnings, progress bars and library logs under nbgrader (or when ``force``); return whether it did."""
    if not (force or grading_mode()):
        return False
    os.environ["TQDM_DISABLE"] = "1"
    os.environ["TRANSFORMERS_VERBOSITY"] = "error"
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    warnings.filterwarnings("ignore")
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    except ImportError:
        pass
    try:
        import datasets

        datasets.disable_progress_bars()
        datasets.logging.set_verbosity_error()
    except ImportError:
        pass
    try:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    except ImportError:
        pass
    return True
