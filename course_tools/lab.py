"""`make lab` / `make lab-instructor`: JupyterLab on the course, with the nbgrader panels each role needs.

Students hand in through the LMS or a Colab download (see README), not through nbgrader's exchange,
so the student view keeps only nbgrader's Validate button: the Assignment List, Courses, Formgrader
and Create Assignment panels (and their server extensions) are switched off. The instructor view
keeps every panel and creates the exchange folder that nbgrader_config.py names, so the Assignment
List opens instead of failing with "exchange directory does not exist".

Each view gets its own Jupyter config folder (under .jupyter/ in the course root, git-ignored)
placed first on the config path: the user's own Jupyter settings and the environment's
extension switches still apply, except for what is written here.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

# nbgrader's front-end plugins and server extensions a student never uses (the exchange workflow
# and the instructor tools); the Validate button (validate-assignment) stays.
STUDENT_OFF_PLUGINS = ("@jupyter/nbgrader:assignment-list", "@jupyter/nbgrader:course-list",
                       "@jupyter/nbgrader:formgrader", "@jupyter/nbgrader:create-assignment",
                       "@jupyter/nbgrader:menu")  # the menu would list the panels above as blank items
STUDENT_OFF_SERVER = ("nbgrader.server_extensions.assignment_list", "nbgrader.server_extensions.course_list",
                      "nbgrader.server_extensions.formgrader")


def config_dir(root: Path, instructor: bool) -> Path:
    """Write the Jupyter config folder of one view under ``root``/.jupyter/ and return it."""
    folder = root / ".jupyter" / ("instructor" if instructor else "student")
    (folder / "labconfig").mkdir(parents=True, exist_ok=True)
    disabled = {} if instructor else {name: True for name in STUDENT_OFF_PLUGINS}
    (folder / "labconfig" / "page_config.json").write_text(json.dumps({"disabledExtensions": disabled}, indent=1))
    server = {} if instructor else {"ServerApp": {"jpserver_extensions": {n: False for n in STUDENT_OFF_SERVER}}}
    (folder / "jupyter_server_config.json").write_text(json.dumps(server, indent=1))
    return folder


def exchange_root(root: Path) -> Path:
    """Return the exchange folder that the course's nbgrader_config.py sets (``root``/.exchange without one)."""
    from traitlets.config.loader import PyFileConfigLoader

    config = root / "nbgrader_config.py"
    if config.is_file():
        found = PyFileConfigLoader(config.name, path=str(root)).load_config().Exchange.get("root")
        if found:
            return Path(found)
    return root / ".exchange"


def lab_environment(root: Path, instructor: bool) -> dict[str, str]:
    """Return os.environ with this view's config folder first on Jupyter's config path."""
    env = dict(os.environ)
    env["JUPYTER_CONFIG_DIR"] = str(config_dir(root, instructor))
    return env


def lab_command(extra: list[str]) -> list[str]:
    """Return the `jupyter lab` command line (``--allow-root`` added when running as root)."""
    command = [sys.executable, "-m", "jupyterlab", *extra]
    if hasattr(os, "geteuid") and os.geteuid() == 0 and "--allow-root" not in extra:
        command.append("--allow-root")
    return command


def main(argv: list[str] | None = None) -> int:
    """Start JupyterLab on the course root in the student view (default) or the instructor view."""
    parser = argparse.ArgumentParser(prog="python -m course_tools.lab", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--instructor", action="store_true", help="every nbgrader panel, exchange created")
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="the course root (default: here)")
    args, extra = parser.parse_known_args(argv)
    root = args.root.resolve()
    if args.instructor:
        exchange_root(root).mkdir(parents=True, exist_ok=True)
    env = lab_environment(root, args.instructor)
    command = lab_command(extra)
    os.chdir(root)
    os.execvpe(command[0], command, env)
    return 0


if __name__ == "__main__":
    sys.exit(main())
