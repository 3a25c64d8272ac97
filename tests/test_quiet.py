"""Graded notebooks stay silent on stderr under nbgrader, even with 8-bit models and warnings."""

from __future__ import annotations

import nbformat
import pytest

import helpers
from support import execute_notebook

CELLS = [
    "import helpers\nhelpers.quiet()",
    "import warnings, logging\nwarnings.warn('a library warning')\nlogging.getLogger('transformers').warning('a log line')",
    "tokenizer, model, report = helpers.load_model('chat', quantization='8bit')",
    "enc = tokenizer('The capital of France is', return_tensors='pt')\n"
    "out = model.generate(**enc, max_new_tokens=8, do_sample=False)\n"
    "print(tokenizer.decode(out[0]))",
]


def write_notebook(path, cells):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


@pytest.mark.slow
def test_autograde_execution_has_empty_stderr(tmp_path):
    run = execute_notebook(write_notebook(tmp_path / "q.ipynb", CELLS), env={"NBGRADER_EXECUTION": "autograde"})
    assert run.error is None, run.error
    assert run.stderr() == []
    assert "France" in "".join(o.get("text", "") for o in run.nb.cells[-1].outputs)


@pytest.mark.slow
def test_without_grading_mode_warnings_do_reach_stderr(tmp_path):
    """The control: the same warning cell outside nbgrader is not silenced."""
    run = execute_notebook(write_notebook(tmp_path / "q.ipynb", CELLS[:2]), env={"NBGRADER_EXECUTION": ""})
    assert any("a library warning" in text for text in run.stderr())


def test_quiet_is_a_no_op_outside_grading(monkeypatch):
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    assert helpers.quiet() is False
    assert helpers.grading_mode() is None


IMPORT_BNB = "import bitsandbytes, peft"


def _stderr_of(code: str) -> str:
    import os
    import subprocess
    import sys

    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stderr


def test_offline_bitsandbytes_import_is_silent_after_helpers():
    """transformers >= 5.25 pulls `kernels`, whose offline notice reaches stderr when bitsandbytes loads;
    importing helpers first drops exactly that record (and bitsandbytes' own advice to install kernels)."""
    assert _stderr_of("import helpers\n" + IMPORT_BNB) == ""


def test_the_dropped_notices_are_real_and_others_still_show():
    """Control: without helpers the notice is printed (on CPUs where bitsandbytes asks for the kernel), and the
    filter drops only the named records of the named loggers."""
    bare = _stderr_of(IMPORT_BNB)
    shown = _stderr_of(
        "import helpers, logging\n"
        "logging.getLogger('kernels._internals.hf_hub').warning('Skipping publisher trust check for x')\n"
        "logging.getLogger('kernels._internals.hf_hub').warning('another notice')\n"
        "logging.getLogger('kernels').warning('Skipping publisher trust check from a parent logger')\n")
    assert shown.splitlines() == ["another notice", "Skipping publisher trust check from a parent logger"]
    if not bare:
        pytest.skip("this CPU has no AVX512-BF16: bitsandbytes never asks `kernels` for its 4-bit kernel here")
    assert "Skipping publisher trust check" in bare or "Failed to load CPU gemm_4bit_forward" in bare
