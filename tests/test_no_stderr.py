"""Library notices that reached students' stderr are silenced precisely, at import of helpers.

Each notice is dropped by message (and logger or warning category), never by silencing a whole
library: the controls check that any other message from the same place still gets through.
"""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest

from helpers.quiet import BNB_CPU_LOGGER, BNB_KERNELS_NOTICE, _DropMessage, silence_known_notices


def test_bitsandbytes_kernels_notice_is_dropped_and_nothing_else(caplog):
    logger = logging.getLogger(BNB_CPU_LOGGER)
    with caplog.at_level(logging.WARNING):
        logger.warning(BNB_KERNELS_NOTICE + ": %s. Please make sure you already `pip install kernels`",
                       "No module named 'kernels'")
        logger.warning("a different bitsandbytes warning")
    assert [r.getMessage() for r in caplog.records] == ["a different bitsandbytes warning"]


def test_silencing_is_idempotent():
    silence_known_notices()
    silence_known_notices()
    logger = logging.getLogger(BNB_CPU_LOGGER)
    assert sum(isinstance(f, _DropMessage) for f in logger.filters) == 1


# A tiny BERT wrapped by peft: with transformers 5 and peft 0.21 this emits the FutureWarning
# about `is_gradient_checkpointing`. "-W error::FutureWarning" turns any FutureWarning that is
# not filtered into an exception, so the script fails loudly if the filter stops matching.
PEFT_SCRIPT = """
{prelude}
import warnings
from transformers import BertConfig, BertForSequenceClassification
from peft import LoraConfig, TaskType, get_peft_model
config = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                    intermediate_size=32)
get_peft_model(BertForSequenceClassification(config),
               LoraConfig(task_type=TaskType.SEQ_CLS, r=2, target_modules=["query", "value"]))
warnings.warn("another FutureWarning still shows", FutureWarning)
"""


def _run(prelude: str) -> subprocess.CompletedProcess:
    """Run PEFT_SCRIPT after ``prelude`` in a fresh interpreter with every FutureWarning printed."""
    return subprocess.run([sys.executable, "-W", "always::FutureWarning", "-c", PEFT_SCRIPT.format(prelude=prelude)],
                          capture_output=True, text=True, timeout=300)


def test_peft_checkpointing_warning_is_filtered_exactly():
    without = _run("")
    assert without.returncode == 0, without.stderr
    if "is_gradient_checkpointing" not in without.stderr:
        pytest.skip("this transformers/peft pair no longer warns: helpers.quiet's filter can go")
    with_helpers = _run("import helpers")
    assert with_helpers.returncode == 0, with_helpers.stderr
    assert "is_gradient_checkpointing" not in with_helpers.stderr, with_helpers.stderr
    assert "another FutureWarning still shows" in with_helpers.stderr, "the filter must not hide other warnings"
