"""`course collect`: every member of an LMS download is collected, unmatched or rejected, exactly.

Each test builds its zip here (no fixtures on disk) and asserts the exact files written under
submitted/, the lists of the report and the exit code.
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import tracemalloc
import zipfile
import zlib
from pathlib import Path

import nbformat
import pytest

from course_tools import collect

NOTEBOOKS = ["one", "two"]
OLD, NEW, NEWER = (2026, 1, 10, 9, 0, 0), (2026, 1, 11, 9, 0, 0), (2026, 1, 12, 9, 0, 0)


def notebook(marker: str) -> str:
    """Return a valid notebook whose only cell says ``marker`` (to tell copies apart)."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(f"# {marker}")])
    return nbformat.writes(nb)


def make_zip(path: Path, members: list[tuple[str, str | bytes] | tuple[str, str | bytes, tuple]]) -> Path:
    """Write a deflated zip of (name, content[, date]) members, each notebook marked with its name."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, content, *date in members:
            info = zipfile.ZipInfo(name, date[0] if date else OLD)
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, content)
    return path


def course(tmp_path: Path) -> Path:
    """Return a scratch course with the two-notebook assignment `tiny`."""
    root = tmp_path / "course"
    (root / "source" / "tiny").mkdir(parents=True)
    (root / "nbgrader_config.py").write_text("c = get_config()  # noqa: F821\n")
    for name in NOTEBOOKS:
        nbformat.write(nbformat.v4.new_notebook(), root / "source" / "tiny" / f"{name}.ipynb")
    return root


def course_command(root: Path, *args: str) -> subprocess.CompletedProcess:
    """Run the real `course collect tiny ...` command inside the course root."""
    return subprocess.run([sys.executable, "-m", "course_tools.cli", "collect", "tiny", *args], cwd=root,
                          text=True, capture_output=True, timeout=300)


@pytest.fixture
def run_collect(monkeypatch, capsys):
    """Return a function running `course collect tiny ...` in-process inside a course root (fast)."""
    from course_tools import cli

    monkeypatch.setenv("COURSE_ROOT", "")  # restored afterwards: cli.main sets it for child processes

    def run(root: Path, *args: str) -> subprocess.CompletedProcess:
        """Run the command in ``root`` and return its exit code and captured output."""
        monkeypatch.chdir(root)
        capsys.readouterr()
        code = cli.main(["collect", "tiny", *args])
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(["course", "collect"], code, out, err)

    return run


def submitted(root: Path) -> dict[str, str]:
    """Return {student/notebook: marker} of every collected notebook."""
    found = {}
    for path in sorted((root / "submitted").rglob("*.ipynb")):
        student = path.relative_to(root / "submitted").parts[0]
        source = nbformat.read(path, as_version=4).cells[0].source
        found[f"{student}/{path.stem}"] = source.removeprefix("# ")
    return found


def members(pairs: list[tuple[str, str]]) -> list[str]:
    """Return the member names of a report list."""
    return [member for member, *_ in pairs]


def run(tmp_path: Path, zip_members: list, **kwargs) -> tuple[collect.Collection, Path]:
    """Collect a zip built from ``zip_members`` into a scratch course, in-process."""
    root = course(tmp_path)
    z = make_zip(tmp_path / "download.zip", zip_members)
    result = collect.collect(z, NOTEBOOKS, root=root, assignment="tiny", **kwargs)
    return result, root


# ------------------------------------------------------------------------------- attribution

def test_lookalike_in_another_students_folder_is_unmatched(tmp_path):
    """mallory/bob_one.ipynb (newer) is nobody's: bob keeps his own one.ipynb, the look-alike is listed.

    This one runs the installed command end to end; the others call it in-process.
    """
    root = course(tmp_path)
    z = make_zip(tmp_path / "d.zip", [("bob/one.ipynb", notebook("bob/one.ipynb"), OLD),
                                      ("mallory/bob_one.ipynb", notebook("mallory/bob_one.ipynb"), NEWER),
                                      ("mallory/one.ipynb", notebook("mallory/one.ipynb"), NEW)])
    done = course_command(root, str(z))
    assert done.returncode == 2, done.stderr
    assert submitted(root) == {"bob/one": "bob/one.ipynb", "mallory/one": "mallory/one.ipynb"}
    assert "UNMATCHED 1 file(s)" in done.stdout and "layout: folders (detected" in done.stdout
    line = next(x for x in done.stdout.splitlines() if x.strip().startswith("mallory/bob_one.ipynb"))
    assert "'bob'" in line and "'mallory'" in line
    assert "duplicates" not in done.stdout and "1 unmatched and 0 rejected" in done.stderr


def test_lookalike_in_process_lists(tmp_path):
    """The same case seen through the Collection: exactly one unmatched member, no duplicate."""
    result, _ = run(tmp_path, [("bob/one.ipynb", notebook("b"), OLD), ("mallory/bob_one.ipynb", notebook("m"), NEWER)])
    assert result.students() == {"bob": ["one"]}
    assert members(result.unmatched) == ["mallory/bob_one.ipynb"] and not result.duplicates and not result.rejected


def test_own_prefixed_name_inside_own_folder_counts(tmp_path):
    """alice/alice_two.ipynb is alice's (the name agrees with the folder)."""
    result, root = run(tmp_path, [("alice/one.ipynb", notebook("a1")), ("alice/alice_two.ipynb", notebook("a2"))])
    assert submitted(root) == {"alice/one": "a1", "alice/two": "a2"} and not result.problems


def test_duplicates_are_resolved_within_a_students_own_files(tmp_path):
    """The newest of a student's own copies is kept; the others are listed as duplicates with the reason."""
    result, root = run(tmp_path, [("alice/one.ipynb", notebook("old"), OLD),
                                  ("alice/one (1).ipynb", notebook("newest"), NEWER),
                                  ("alice/backup/one.ipynb", notebook("middle"), NEW),
                                  ("bob/two.ipynb", notebook("bob"), OLD)])
    assert submitted(root) == {"alice/one": "newest", "bob/two": "bob"}
    assert [(d, k) for d, k, _ in result.duplicates] == [("alice/backup/one.ipynb", "alice/one (1).ipynb"),
                                                           ("alice/one.ipynb", "alice/one (1).ipynb")]
    assert all("newer copy" in why and "alice's own files" in why for *_, why in result.duplicates)
    assert not result.problems and result.incomplete == {"alice": ["two"], "bob": ["one"]}
    stamp = (root / "submitted" / "alice" / "tiny" / "timestamp.txt").read_text()
    assert stamp.startswith("2026-01-12 09:00:00")


def test_wrapper_folder_and_top_level_names(tmp_path):
    """One folder around everything is ignored; top-level files name their student (<student>_NB)."""
    result, root = run(tmp_path, [("submissions/alice/one.ipynb", notebook("a1")),
                                  ("submissions/alice/work/two.ipynb", notebook("a2")),
                                  ("submissions/bob/Copy of one (2).ipynb", notebook("b1"))])
    assert submitted(root) == {"alice/one": "a1", "alice/two": "a2", "bob/one": "b1"} and not result.problems
    result, root = run(tmp_path / "flat", [("Copy of carol_two (1).ipynb", notebook("c2")),
                                           ("dave-one.ipynb", notebook("d1")), ("one.ipynb", notebook("?"))])
    assert submitted(root) == {"carol/two": "c2", "dave/one": "d1"}
    assert members(result.unmatched) == ["one.ipynb"]


def test_single_students_folder_is_not_a_wrapper(tmp_path):
    """A zip holding only alice/ is alice's, not a wrapper around students named one and two."""
    result, root = run(tmp_path, [("alice/one.ipynb", notebook("a1")), ("alice/two.ipynb", notebook("a2"))])
    assert submitted(root) == {"alice/one": "a1", "alice/two": "a2"} and not result.problems


# ----------------------------------------------------------------------------------- hostile

def test_traversal_and_absolute_members_are_listed(tmp_path):
    """../, absolute and drive-letter members are rejected with the reason; nothing lands outside."""
    result, root = run(tmp_path, [("../evil.ipynb", notebook("x")), ("alice/../../evil2.ipynb", notebook("x")),
                                  ("/etc/evil3.ipynb", notebook("x")), ("C:\\evil4.ipynb", notebook("x")),
                                  ("../notes.txt", "x"), ("alice/one.ipynb", notebook("a1"))])
    assert submitted(root) == {"alice/one": "a1"}
    assert dict(result.rejected) == {
        "../evil.ipynb": "path traversal (..) in the zip: refused",
        "alice/../../evil2.ipynb": "path traversal (..) in the zip: refused",
        "/etc/evil3.ipynb": "absolute path in the zip: refused",
        "C:\\evil4.ipynb": "absolute path in the zip: refused",
        "../notes.txt": "path traversal (..) in the zip: refused",
    }
    assert not list(tmp_path.glob("evil*")) and not list(root.rglob("evil*"))


def _bomb_zip(path: Path, name: str, mib: int, declared: int | None = None) -> Path:
    """Write a zip whose one member inflates to ``mib`` MiB of zeros (its header may lie about the size).

    The deflate stream is one compressed MiB repeated (full flushes make the pieces identical), so
    building a multi-GiB bomb costs a few MiB of memory and no compression time.
    """
    zero = bytes(2**20)
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    piece = comp.compress(zero) + comp.flush(zlib.Z_FULL_FLUSH)
    stream = piece * mib + comp.flush()
    crc = 0
    for _ in range(mib):
        crc = zlib.crc32(zero, crc)
    size = mib * 2**20 if declared is None else declared
    raw = name.encode()
    date = ((2026 - 1980) << 9) | (1 << 5) | 10
    local = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, date, crc, len(stream), size, len(raw), 0)
    central = struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 8, 0, date, crc, len(stream), size,
                          len(raw), 0, 0, 0, 0, 0, 0)
    body = local + raw + stream
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(central) + len(raw), len(body), 0)
    path.write_bytes(body + central + raw + end)
    return path


def test_zip_bomb_is_refused_without_unpacking(tmp_path):
    """A 2 MB member that inflates to 2 GiB is rejected from its declared size; the rest is collected."""
    root = course(tmp_path)
    z = _bomb_zip(tmp_path / "bomb.zip", "eve/one.ipynb", 2048)
    assert z.stat().st_size < 3 * 2**20
    with zipfile.ZipFile(z, "a") as zf:
        zf.writestr("alice/one.ipynb", notebook("a1"))
    tracemalloc.start()
    result = collect.collect(z, NOTEBOOKS, root=root, assignment="tiny")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert submitted(root) == {"alice/one": "a1"}
    assert result.rejected == [("eve/one.ipynb", "declares 2.0 GiB uncompressed, over the cap of 20.0 MiB: "
                                                 "not unpacked")]
    assert peak < 20 * 2**20 and result.bytes_read < 2**20


def test_zip_bomb_lying_about_its_size_is_stopped_while_reading(tmp_path):
    """A bomb whose header declares 1 KiB is cut off while streaming (at most the declared bytes are read)."""
    root = course(tmp_path)
    z = _bomb_zip(tmp_path / "liar.zip", "eve/one.ipynb", 512, declared=1024)
    tracemalloc.start()
    result = collect.collect(z, NOTEBOOKS, root=root, assignment="tiny")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert submitted(root) == {} and members(result.rejected) == ["eve/one.ipynb"]
    assert result.rejected[0][1].startswith(("corrupt member", "expands beyond"))
    assert peak < 20 * 2**20


def test_caps_per_notebook_and_per_download(tmp_path):
    """--max-notebook and --max-total refuse what exceeds them before reading it; the rest is collected."""
    big = notebook("x" * 5000)
    result, root = run(tmp_path, [("alice/one.ipynb", big), ("bob/one.ipynb", big), ("carol/one.ipynb", notebook("c"))],
                       max_notebook=4096)
    assert submitted(root) == {"carol/one": "c"}
    assert [m for m, why in result.rejected if "over the cap of 4.0 KiB" in why] == ["alice/one.ipynb", "bob/one.ipynb"]
    result, root = run(tmp_path / "total", [("alice/one.ipynb", big), ("bob/one.ipynb", big)],
                       max_total=len(big) + 100)
    assert submitted(root) == {"alice/one": "x" * 5000}
    cap = collect.human(len(big) + 100)
    assert result.rejected == [("bob/one.ipynb", f"the download's total cap of {cap} is reached: not unpacked")]


def test_over_long_id_is_reported_and_the_rest_collected(tmp_path, run_collect):
    """A 300-character student id (folder or name prefix) is rejected with its length; others are collected."""
    long_id = "a" * 300
    root = course(tmp_path)
    z = make_zip(tmp_path / "d.zip", [(f"{long_id}/one.ipynb", notebook("long")), ("alice/one.ipynb", notebook("a1")),
                                      (f"{long_id}_two.ipynb", notebook("long2")), ("zed/two.ipynb", notebook("z2"))])
    done = run_collect(root, str(z))
    assert done.returncode == 2
    assert submitted(root) == {"alice/one": "a1", "zed/two": "z2"}
    assert done.stdout.count("student id is 300 characters long (at most 128)") == 2
    assert "REJECTED 2 file(s)" in done.stdout


def test_bad_names_corrupt_members_and_invalid_notebooks_are_listed(tmp_path, run_collect):
    """A bad id, a corrupt member, invalid JSON and a non-notebook JSON are each rejected; the rest goes on."""
    root = course(tmp_path)
    z = make_zip(tmp_path / "d.zip", [("alice/one.ipynb", notebook("a1")), ("bob/one.ipynb", notebook("b1" * 200)),
                                      ("carol/one.ipynb", "{not json"), ("dave/one.ipynb", json.dumps([1, 2])),
                                      ("my name/one.ipynb", notebook("space")), ("erin/two.ipynb", notebook("e2"))])
    data = bytearray(z.read_bytes())
    with zipfile.ZipFile(z) as zf:  # flip bytes inside bob's compressed data
        info = zf.getinfo("bob/one.ipynb")
    start = info.header_offset + 30 + len(info.filename) + 10
    data[start:start + 8] = bytes(b ^ 0xFF for b in data[start:start + 8])
    z.write_bytes(bytes(data))
    done = run_collect(root, str(z))
    assert done.returncode == 2
    assert submitted(root) == {"alice/one": "a1", "erin/two": "e2"}
    rejected = {line.strip().split(": ", 1)[0]: line.strip().split(": ", 1)[1]
                for line in done.stdout.split("REJECTED")[1].splitlines()[1:] if line.startswith("  ")}
    assert set(rejected) == {"bob/one.ipynb", "carol/one.ipynb", "dave/one.ipynb", "my name/one.ipynb"}
    assert rejected["bob/one.ipynb"].startswith("corrupt member")
    assert rejected["carol/one.ipynb"].startswith("not a Jupyter notebook")
    assert rejected["dave/one.ipynb"].startswith("not a Jupyter notebook")
    assert "is not of the form" in rejected["my name/one.ipynb"]


def test_unreadable_download_is_an_error(tmp_path, run_collect):
    """A file that is not a zip at all: exit code 2 and a message, nothing written."""
    root = course(tmp_path)
    (tmp_path / "d.zip").write_text("not a zip")
    done = run_collect(root, str(tmp_path / "d.zip"))
    assert done.returncode == 2 and "course collect:" in done.stderr and not (root / "submitted").exists()


# ------------------------------------------------------------------------------------- LMSs

CANVAS = [("smithj_1234_9876_one.ipynb", notebook("s1"), OLD),
          ("smithj_LATE_1234_9877_Copy of two.ipynb", notebook("s2"), NEW),
          ("doej_555_9876_one-1.ipynb", notebook("d1 newer"), NEWER),
          ("doej_555_9876_one.ipynb", notebook("d1 older"), OLD),
          ("roe_777_9876_homework.ipynb", notebook("r?"), OLD)]


@pytest.mark.parametrize("how", [[], ["--lms", "canvas"]])
def test_canvas_download_maps_files_to_logins(tmp_path, how, run_collect):
    """Canvas names map to the login (detected or explicit), one student per person, not per file."""
    root = course(tmp_path)
    done = run_collect(root, str(make_zip(tmp_path / "c.zip", CANVAS)), *how)
    assert done.returncode == 2
    assert submitted(root) == {"smithj/one": "s1", "smithj/two": "s2", "doej/one": "d1 newer"}
    assert ("layout: canvas (detected: 5 of 5" if not how else "layout: canvas (chosen with --lms)") in done.stdout
    assert "roe_777_9876_homework.ipynb: file 'homework' is not one of the notebooks" in done.stdout
    assert "doej_555_9876_one.ipynb: not collected, doej_555_9876_one-1.ipynb kept" in done.stdout


def test_canvas_with_roster_uses_lms_user_id(tmp_path):
    """With nbgrader's roster CSV, Canvas' user id (lms_user_id) picks the roster id; others are listed."""
    root = course(tmp_path)
    roster = tmp_path / "roster.csv"
    roster.write_text("id,first_name,last_name,email,lms_user_id\njs01,John,Smith,,1234\nmissy,Mi,Ssy,,999\n")
    result = collect.collect(make_zip(tmp_path / "c.zip", CANVAS), NOTEBOOKS, root=root, assignment="tiny",
                             roster=collect.read_roster(roster))
    assert submitted(root) == {"js01/one": "s1", "js01/two": "s2"}
    assert members(result.unmatched) == ["doej_555_9876_one-1.ipynb", "doej_555_9876_one.ipynb",
                                         "roe_777_9876_homework.ipynb"]
    assert result.missing == ["missy"]


def test_canvas_download_as_folders_makes_no_fake_students(tmp_path):
    """Forcing --lms folders on a Canvas download lists the files instead of inventing students."""
    result, root = run(tmp_path, CANVAS, lms="folders")
    assert submitted(root) == {}
    assert len(result.unmatched) == 5 and not result.rejected
    assert all("use --lms canvas" in why for _, why in result.unmatched)


MOODLE = [("Ada Lovelace_101_assignsubmission_file_/one.ipynb", notebook("ada1")),
          ("Ada Lovelace_101_assignsubmission_file_/Copy of two (1).ipynb", notebook("ada2")),
          ("Alan Turing_102_assignsubmission_file_/one.ipynb", notebook("alan1")),
          ("Alan Turing_102_assignsubmission_file_/Ada Lovelace_two.ipynb", notebook("alan as ada")),
          ("Alan Turing_102_assignsubmission_onlinetext_/onlinetext.html", "<p>hi</p>")]


@pytest.mark.parametrize("how", [[], ["--lms", "moodle"]])
def test_moodle_folders_map_to_people(tmp_path, how, run_collect):
    """Moodle's submission folders map to the person (name in lower case with dots, without a roster)."""
    root = course(tmp_path)
    done = run_collect(root, str(make_zip(tmp_path / "m.zip", MOODLE)), *how)
    assert done.returncode == 2
    assert submitted(root) == {"ada.lovelace/one": "ada1", "ada.lovelace/two": "ada2", "alan.turing/one": "alan1"}
    assert ("layout: moodle (detected" if not how else "layout: moodle (chosen with --lms)") in done.stdout
    assert "UNMATCHED 1 file(s)" in done.stdout and "Ada Lovelace_two.ipynb: its name names" in done.stdout
    assert "ignored 1 file(s) that are not notebooks" in done.stdout


def test_moodle_flat_with_roster_names(tmp_path):
    """Flat Moodle names inside a wrapper folder, matched to roster ids by first and last name."""
    roster = [{"id": "al42", "first_name": "Ada", "last_name": "Lovelace"},
              {"id": "jg7", "first_name": "José", "last_name": "García"}]
    result, root = run(tmp_path, [("export/Ada Lovelace_101_assignsubmission_file_one.ipynb", notebook("ada1")),
                                  ("export/Jose Garcia_103_assignsubmission_file_two.ipynb", notebook("jose2")),
                                  ("export/Bob Other_104_assignsubmission_file_two.ipynb", notebook("bob2"))],
                       roster=roster)
    assert result.layout == "moodle"
    assert submitted(root) == {"al42/one": "ada1", "jg7/two": "jose2"}
    assert members(result.unmatched) == ["export/Bob Other_104_assignsubmission_file_two.ipynb"]
    assert "not on the roster" in result.unmatched[0][1]


def test_pattern_for_other_names(tmp_path, run_collect):
    """--pattern with named groups student and notebook, searched in the member path."""
    root = course(tmp_path)
    z = make_zip(tmp_path / "p.zip", [("hw/smithj-4711-one.ipynb", notebook("s1")),
                                      ("hw/doej-4712-Copy of two.ipynb", notebook("d2")),
                                      ("hw/readme.ipynb", notebook("?"))])
    done = run_collect(root, str(z), "--pattern", r"(?P<student>[a-z]+)-\d+-(?P<notebook>[^/]+)\.ipynb$")
    assert done.returncode == 2
    assert submitted(root) == {"smithj/one": "s1", "doej/two": "d2"}
    assert "layout: pattern" in done.stdout and "hw/readme.ipynb: does not match --pattern" in done.stdout
    bad = run_collect(root, str(z), "--pattern", r"(?P<who>\w+)")
    assert bad.returncode == 2 and "named groups" in bad.stderr


def test_roster_dry_run_and_clean_exit(tmp_path, run_collect):
    """A dry run writes nothing; a clean download exits 0; roster students without a notebook are listed."""
    root = course(tmp_path)
    z = make_zip(tmp_path / "d.zip", [("alice/one.ipynb", notebook("a1")), ("alice/two.ipynb", notebook("a2")),
                                      ("zed/one.ipynb", notebook("z1")), ("readme.txt", "x")])
    roster = tmp_path / "roster.txt"
    roster.write_text("alice\nbob\n")
    dry = run_collect(root, str(z), "--roster", str(roster), "--dry-run")
    assert dry.returncode == 2 and not (root / "submitted").exists() and "nothing written" in dry.stdout
    assert "zed/one.ipynb: not on the roster" in dry.stdout and "without a submission: bob" in dry.stdout
    clean = make_zip(tmp_path / "clean.zip", [("alice/one.ipynb", notebook("a1")), ("alice/two.ipynb", notebook("a2"))])
    done = run_collect(root, str(clean))
    assert done.returncode == 0, done.stdout + done.stderr
    assert submitted(root) == {"alice/one": "a1", "alice/two": "a2"}
    assert not list((root / "submitted").rglob("*.part")) and "course collect" not in done.stderr


def test_unreadable_newest_copy_falls_back_to_an_older_one(tmp_path):
    """When a student's newest copy is not a notebook, it is rejected and their older valid copy is kept."""
    result, root = run(tmp_path, [("alice/one.ipynb", notebook("older"), OLD),
                                  ("alice/one (1).ipynb", "{broken", NEWER)])
    assert submitted(root) == {"alice/one": "older"}
    assert members(result.rejected) == ["alice/one (1).ipynb"] and not result.duplicates


def test_roster_is_imported_into_the_gradebook(tmp_path, run_collect):
    """With --roster, nbgrader's gradebook gets the roster (names and LMS ids) and the collection is exact."""
    from nbgrader.api import Gradebook

    root = course(tmp_path)
    roster = tmp_path / "roster.csv"
    roster.write_text("id,first_name,last_name,email,lms_user_id\njs01,John,Smith,,1234\nmissy,Mi,Ssy,,999\n")
    done = run_collect(root, str(make_zip(tmp_path / "c.zip", CANVAS[:2])), "--roster", str(roster))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "roster: 2 student(s) imported" in done.stdout and "without a submission: missy" in done.stdout
    assert submitted(root) == {"js01/one": "s1", "js01/two": "s2"}
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        assert {(s.id, s.lms_user_id) for s in gb.students} == {("js01", "1234"), ("missy", "999")}
