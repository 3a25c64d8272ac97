"""`make lab` and `make lab-instructor`: which nbgrader panels each view switches off (course_tools.lab)."""

from __future__ import annotations

import json
import shutil

from course_tools import lab

from support import ROOT


def test_student_view_keeps_only_validate(tmp_path):
    folder = lab.config_dir(tmp_path, instructor=False)
    disabled = json.loads((folder / "labconfig" / "page_config.json").read_text())["disabledExtensions"]
    assert set(disabled) == set(lab.STUDENT_OFF_PLUGINS) and all(disabled.values())
    assert "@jupyter/nbgrader:validate-assignment" not in disabled
    server = json.loads((folder / "jupyter_server_config.json").read_text())["ServerApp"]["jpserver_extensions"]
    assert server == {name: False for name in lab.STUDENT_OFF_SERVER}
    assert "nbgrader.server_extensions.validate_assignment" not in server


def test_instructor_view_switches_nothing_off_and_finds_the_exchange(tmp_path):
    folder = lab.config_dir(tmp_path, instructor=True)
    assert json.loads((folder / "labconfig" / "page_config.json").read_text()) == {"disabledExtensions": {}}
    assert json.loads((folder / "jupyter_server_config.json").read_text()) == {}
    shutil.copy(ROOT / "nbgrader_config.py", tmp_path / "nbgrader_config.py")
    assert lab.exchange_root(tmp_path) == tmp_path / ".exchange"  # what nbgrader_config.py sets
    assert lab.lab_environment(tmp_path, instructor=False)["JUPYTER_CONFIG_DIR"] == str(
        tmp_path / ".jupyter" / "student")
