"""The inspector without a front end, and the plotting helpers."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import helpers  # noqa: E402


def test_show_text_fallback(capsys):
    text = helpers.show(helpers.load_model)
    for section in ("Value", "Type", "Attributes", "Docstring", "Source", "File"):
        assert f"== {section} ==" in text
    assert "def load_model" in text and "loading.py" in text
    assert capsys.readouterr().out.strip() == text.strip()


def test_show_instance_uses_its_class_source():
    sections = helpers.inspect_sections(helpers.DeviceInfo("cpu", "x"))
    assert "class DeviceInfo" in sections["Source"]
    assert sections["Type"] == "helpers.device.DeviceInfo"


def test_show_builtin_has_no_source():
    assert "no Python source" in helpers.inspect_sections(len)["Source"]


def test_show_widget_has_one_tab_per_section():
    pytest.importorskip("ipywidgets")
    tabs = helpers.show([1, 2, 3], widget=True)
    assert len(tabs.children) == 6
    assert [tabs.get_title(i) for i in range(6)] == ["Value", "Type", "Attributes", "Docstring", "Source", "File"]


def test_plots_label_everything():
    ax = helpers.plot_bars(["a", "\n", "Ġb"], [0.5, 0.3, 0.2], "next token")
    assert ax.get_title() == "next token" and ax.get_ylabel() == "probability"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "\\n", "Ġb"]
    ax = helpers.plot_attention(np.eye(3), ["x", "y", "z"], "head 0")
    assert len(ax.figure.axes) == 2, "heatmaps need a colour bar"
    ax = helpers.plot_curves({"train": [3, 2, 1], "validation": [3, 2.5, 2]}, "loss")
    assert len(ax.get_lines()) == 2 and ax.get_legend() is not None
