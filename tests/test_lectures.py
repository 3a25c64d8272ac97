"""Lecture notebooks (notebooks/*.ipynb): stored clean, and each runs offline top to bottom.

The fast test checks what is stored: valid nbformat, no outputs, the Colab cells tagged and up to
date. The slow test executes every notebook as a student would (offline, on the CPU) and checks
that it drew real figures and kept its "check" cells, the cells that assert the key facts.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path

import nbformat
import pytest

from course_tools.colab import BADGE_TAG, BOOTSTRAP_TAG, badge_source, bootstrap_source

from conftest import ROOT, execute_notebook

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
CHECK_TAG = "check"
MIN_CHECK_CELLS = 3
MIN_PNG_BYTES = 5_000
# Beyond the generic "check" tag, the cell that asserts each notebook's central fact.
REQUIRED_TAGS: dict[str, set[str]] = {
    "01_huggingface_tour.ipynb": {"check-loss"},
    "02_bert_embeddings.ipynb": {"check-param-count"},
    "03_attention_heads.ipynb": {"check-attention"},
    "04_fine_tuning.ipynb": {"check-lora", "check-baseline", "check-reload"},
}


def _tags(cell) -> list[str]:
    """Return a cell's metadata tags."""
    return list(cell.get("metadata", {}).get("tags", []))


def _check_tags(path: Path, nb) -> None:
    """Assert the notebook has enough "check" cells and the tags named for it in REQUIRED_TAGS."""
    tagged = [c for c in nb.cells if CHECK_TAG in _tags(c)]
    assert len(tagged) >= MIN_CHECK_CELLS, (
        f"{path.name}: {len(tagged)} cell(s) tagged {CHECK_TAG!r}; at least {MIN_CHECK_CELLS} expected")
    present = {t for c in nb.cells for t in _tags(c)}
    missing = REQUIRED_TAGS.get(path.name, set()) - present
    assert not missing, f"{path.name}: no cell tagged {sorted(missing)}"
    untagged = [t for c in nb.cells for t in _tags(c) if t.startswith("check-") and CHECK_TAG not in _tags(c)]
    assert not untagged, f"{path.name}: cells tagged {untagged} must also carry the tag {CHECK_TAG!r}"


def test_lecture_notebooks_exist():
    assert NOTEBOOKS, f"no lecture notebooks under {ROOT / 'notebooks'}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_lecture_stored_clean(path: Path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3", f"{path.name}: kernelspec is not python3"
    with_outputs = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
    assert not with_outputs, f"{path.name}: cells {with_outputs} store outputs; clear them before saving"
    relative = path.relative_to(ROOT).as_posix()
    for tag, source, kind in ((BADGE_TAG, badge_source(relative), "markdown"),
                              (BOOTSTRAP_TAG, bootstrap_source(), "code")):
        cells = [c for c in nb.cells if tag in _tags(c)]
        assert len(cells) == 1, f"{path.name}: {len(cells)} cells tagged {tag!r}, expected exactly one"
        assert cells[0].cell_type == kind, f"{path.name}: the {tag!r} cell must be a {kind} cell"
        assert "nbgrader" not in cells[0].metadata, f"{path.name}: the {tag!r} cell must carry no nbgrader metadata"
        assert cells[0].source == source, f"{path.name}: the {tag!r} cell is out of date; run `course stamp`"
    _check_tags(path, nb)


def _png_ok(data: str) -> tuple[int, tuple[int, int]]:
    """Decode a base64 PNG and return its size in bytes and its pixel size (raises if it is not a PNG)."""
    from PIL import Image

    raw = base64.b64decode(data)
    with Image.open(io.BytesIO(raw)) as image:
        image.verify()
    with Image.open(io.BytesIO(raw)) as image:
        return len(raw), image.size


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_lecture_runs_offline(path: Path):
    run = execute_notebook(path, timeout=300, env={"HF_HUB_OFFLINE": "1"})
    print(f"{path.name}: executed in {run.seconds:.1f} s")
    assert run.error is None, f"{path.name} failed:\n{run.error}"
    images = run.images()
    assert images, f"{path.name}: no figure (PNG) was displayed"
    for number, data in enumerate(images, 1):
        size, (width, height) = _png_ok(data)
        assert size > MIN_PNG_BYTES and width > 100 and height > 100, (
            f"{path.name}: figure {number} looks empty ({size} bytes, {width}x{height} px)")
    _check_tags(path, run.nb)
