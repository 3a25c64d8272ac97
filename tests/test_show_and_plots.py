"""The inspector without a front end, and the plotting helpers."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import helpers  # noqa: E402


def test_show_text_fallback(capsys):
    assert helpers.show(helpers.load_model) is None
    text = capsys.readouterr().out
    for section in ("Value", "Type", "Attributes", "Docstring", "Source", "File"):
        assert f"== {section} ==" in text
    assert "def load_model" in text and "loading.py" in text
    assert text.strip() == helpers.inspector_text(helpers.load_model).strip()


def test_show_instance_uses_its_class_source():
    sections = helpers.inspect_sections(helpers.DeviceInfo("cpu", "x"))
    assert "class DeviceInfo" in sections["Source"]
    assert sections["Type"] == "helpers.device.DeviceInfo"


def test_show_builtin_has_no_source():
    assert "no Python source" in helpers.inspect_sections(len)["Source"]


def test_show_widget_has_one_tab_per_section():
    pytest.importorskip("ipywidgets")
    tabs = helpers.inspector_widget([1, 2, 3])
    assert len(tabs.children) == 6
    assert [tabs.get_title(i) for i in range(6)] == ["Value", "Type", "Attributes", "Docstring", "Source", "File"]


def test_show_ending_a_cell_displays_the_widget_once(tmp_path):
    """In a kernel, `show(x)` as a cell's last line gives exactly one widget output and no Out[] value."""
    pytest.importorskip("ipywidgets")
    import nbformat

    from support import execute_notebook

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import helpers\nhelpers.show([1, 2, 3])")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, tmp_path / "show.ipynb")
    outputs = execute_notebook(tmp_path / "show.ipynb", timeout=120).nb.cells[0].outputs
    widgets = [o for o in outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert len(widgets) == 1, outputs
    assert not [o for o in outputs if o["output_type"] == "execute_result"], outputs


def test_plots_label_everything():
    ax = helpers.plot_bars(["a", "\n", "Ġb"], [0.5, 0.3, 0.2], "next token")
    assert ax.get_title() == "next token" and ax.get_ylabel() == "probability"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "\\n", "Ġb"]
    ax = helpers.plot_attention(np.eye(3), ["x", "y", "z"], "head 0")
    assert len(ax.figure.axes) == 2, "heatmaps need a colour bar"
    ax = helpers.plot_curves({"train": [3, 2, 1], "validation": [3, 2.5, 2]}, "loss")
    assert len(ax.get_lines()) == 2 and ax.get_legend() is not None
