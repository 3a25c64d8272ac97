"""Small data sets that ship with the course (as package data, so they install with ``helpers``)."""

from __future__ import annotations

from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent


def course_data_path(*parts: str) -> Path:
    """Return the path of a file or folder shipped in the course data (e.g. ``"sentiment", "train.jsonl"``)."""
    path = DATA_DIR.joinpath(*parts)
    if not path.exists():
        available = sorted(p.name for p in DATA_DIR.iterdir() if p.is_dir() and not p.name.startswith("_"))
        raise FileNotFoundError(
            f"{path} is not part of the course data (folders there: {', '.join(available) or 'none'}). "
            "Reinstall the course package (pip install -e . in the repository) if files are missing.")
    return path
