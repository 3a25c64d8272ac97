"""Keep students' stderr empty: known library notices dropped at import; quiet() for nbgrader runs (a test cell
that writes anything to stderr scores 0)."""

from __future__ import annotations

import logging
import os
import warnings

# bitsandbytes (>= 0.49) on CPUs with AVX512-BF16 tries to fetch an optional fused 4-bit kernel
# through the `kernels` package and, when that is missing, logs a warning telling the user to
# `pip install kernels`. Its own fallback kernel works (tests/test_loading.py loads 4-bit on CPU),
# and that package downloads code from the Hub at run time, so the advice is wrong for this course:
# drop exactly that record, from exactly that logger.
BNB_CPU_LOGGER = "bitsandbytes.backends.cpu.ops"
BNB_KERNELS_NOTICE = "Failed to load CPU gemm_4bit_forward from kernels-community"
# transformers >= 5.25 depends on `kernels` (>= 0.19). When bitsandbytes asks it for that optional kernel
# with HF_HUB_OFFLINE=1 (how this course runs offline, and how a student's offline machine looks), its
# Hub module logs that it skips the publisher check before it finds no cached kernel, and bitsandbytes
# falls back to its own kernel. Nothing for a student to do: drop exactly that record, from that logger.
KERNELS_HUB_LOGGER = "kernels._internals.hf_hub"
KERNELS_OFFLINE_NOTICE = "Skipping publisher trust check for "
# (logger, message prefix) pairs dropped at import; logging filters see only records logged to their own
# logger (not those propagated from children), so each pair names the module that logs it.
DROPPED_NOTICES = ((BNB_CPU_LOGGER, BNB_KERNELS_NOTICE), (KERNELS_HUB_LOGGER, KERNELS_OFFLINE_NOTICE))
# peft (0.21) reads `model.is_gradient_checkpointing`, which transformers 5 deprecated with a
# FutureWarning on every get_peft_model(): a library-to-library matter no student can act on.
PEFT_CHECKPOINTING_WARNING = r"`is_gradient_checkpointing` is deprecated"

NOISY_LOGGERS = ("bitsandbytes", "transformers", "datasets", "huggingface_hub", "accelerate",
                 "peft", "torch", "urllib3", "filelock", "tokenizers")


class _DropMessage(logging.Filter):
    """A logging filter that drops the records whose message template starts with one prefix."""

    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        """Return False (drop) for the records that start with the prefix."""
        return not str(record.msg).startswith(self.prefix)


def silence_known_notices() -> None:
    """Drop library notices that give students wrong advice (idempotent; runs when helpers is imported)."""
    for name, prefix in DROPPED_NOTICES:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropMessage) and f.prefix == prefix for f in logger.filters):
            logger.addFilter(_DropMessage(prefix))
    warnings.filterwarnings("ignore", message=PEFT_CHECKPOINTING_WARNING, category=FutureWarning,
                            module="transformers.modeling_utils")


silence_known_notices()


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
