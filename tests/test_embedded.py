"""The embedded chat model is converted once, atomically, and the cache is reused."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import helpers
from helpers.embedded import converted_chat_dir


def test_conversion_cache_is_reused():
    folder, _ = converted_chat_dir()
    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    again, converted = converted_chat_dir()
    assert again == folder and converted is False
    assert (folder / "model.safetensors").stat().st_mtime_ns == stamp


def test_converted_folder_is_complete():
    folder, _ = converted_chat_dir()
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
                 "conversion.json"):
        assert (folder / name).is_file(), name
    assert not list(folder.parent.glob(".convert-*")), "a scratch folder was left behind"


def test_converted_folder_is_readable_by_everyone():
    folder, _ = converted_chat_dir()
    assert folder.stat().st_mode & 0o005 == 0o005
    for path in folder.iterdir():
        assert path.stat().st_mode & 0o004, f"{path.name} is not world-readable"


@pytest.mark.slow
def test_two_processes_racing_convert_once(tmp_path):
    script = textwrap.dedent(f"""
        from helpers.embedded import converted_chat_dir
        folder, converted = converted_chat_dir({str(tmp_path)!r})
        print(int(converted), folder)
    """)
    procs = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=600)[0].split() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert sorted(int(o[0]) for o in outputs) == [0, 1], "exactly one process should convert"
    assert outputs[0][1] == outputs[1][1]
    tokenizer, model, report = helpers.load_model(outputs[0][1], verbose=False)
    assert report.source.kind == "path"
    assert not list(tmp_path.glob(".convert-*"))
    assert (Path(outputs[0][1]) / "model.safetensors").stat().st_mode & 0o777 == 0o644
