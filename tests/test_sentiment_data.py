"""The shipped sentiment data set: balanced, a genuinely held-out test split, and reproducible."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from helpers import course_data_path

SIZES = {"train": 300, "test": 100}


def rows(split: str) -> list[dict]:
    """Return the records of one split of the shipped data set."""
    path = course_data_path("sentiment", f"{split}.jsonl")
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize("split", SIZES)
def test_size_fields_and_balance(split: str):
    data = rows(split)
    assert len(data) == SIZES[split]
    assert all(set(r) == {"text", "label", "domain"} for r in data)
    assert Counter(r["label"] for r in data) == {0: SIZES[split] // 2, 1: SIZES[split] // 2}
    assert len({r["text"] for r in data}) == len(data), f"duplicate sentences in {split}"


def test_test_split_is_held_out():
    train, test = rows("train"), rows("test")
    assert not {r["text"] for r in train} & {r["text"] for r in test}
    # Not just different sentences: held-out adjectives occur only in the test split.
    train_words = {w.strip(".,!").lower() for r in train for w in r["text"].split()}
    test_words = {w.strip(".,!").lower() for r in test for w in r["text"].split()}
    assert {"splendid", "atrocious"} <= test_words - train_words


def test_make_dataset_reproduces_the_shipped_files(tmp_path: Path):
    script = course_data_path("sentiment", "make_dataset.py")
    subprocess.run([sys.executable, str(script), "--out", str(tmp_path)], check=True, capture_output=True)
    for split in SIZES:
        shipped = course_data_path("sentiment", f"{split}.jsonl").read_bytes()
        assert (tmp_path / f"{split}.jsonl").read_bytes() == shipped, (
            f"{split}.jsonl differs from what make_dataset.py generates; rerun the script and commit its output")


def test_course_data_path_names_what_is_missing():
    with pytest.raises(FileNotFoundError, match="sentiment"):
        course_data_path("no-such-data-set")
