"""`make demo`: the embedded models working end to end, then the grading loop run with the course's own commands.

Steps, in order (each prints what it did and how long it took):
1. the device the course will use;
2. the embedded models made ready (SmolLM2 converted once from its GGUF file);
3. a short chat reply from the chat model;
4. sentence-embedding similarities from the encoder;
5. the grading loop on a scratch copy of the course (its nbgrader_config.py copied unchanged), for
   every graded assignment under source/: `course release`, a download of three submissions
   (reference, partial, blank) put in place by `course collect`, `course grade --workers 2`,
   `course feedback`, `course export`; it ends with the grade table and the points that await
   manual grading in formgrader.
"""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import torch

import helpers
from course_tools import checks
from course_tools.environment import nbgrader_env
from helpers.config import CONFIG_NAME, ROOT_MARKER, find_course_root

# The practice assignment made of the lecture notebooks runs for minutes and is executed by the
# test suite anyway; the demo grades the graded assignments only.
PRACTICE = {"lectures"}
# Copied beside source/ so the scratch course is the course: settings, and what `course release` stamps from.
COURSE_FILES = (ROOT_MARKER, CONFIG_NAME, "pyproject.toml", "models.txt")


def step(title: str) -> None:
    """Print a step heading."""
    print(f"\n== {title} ==", flush=True)


def chat_demo() -> None:
    """Load the chat model and print its greedy reply to one question, with timings."""
    tokenizer, model, report = helpers.load_model("chat")
    question = "What is the capital of France? Answer in one sentence."
    enc = tokenizer.apply_chat_template([{"role": "user", "content": question}], add_generation_prompt=True,
                                        return_tensors="pt", return_dict=True).to(model.device)
    start = time.perf_counter()
    out = model.generate(**enc, max_new_tokens=24, do_sample=False)
    new = out[0, enc["input_ids"].shape[1]:]
    seconds = time.perf_counter() - start
    print(f"user:      {question}")
    print(f"assistant: {tokenizer.decode(new, skip_special_tokens=True).strip()}")
    print(f"({len(new)} tokens in {seconds:.1f} s, {len(new) / seconds:.1f} tok/s; load {report.seconds:.1f} s)")


def embedding_demo() -> None:
    """Load the encoder and print mean-pooled cosine similarities of a few sentence pairs."""
    tokenizer, model, report = helpers.load_model("encoder")
    pairs = [("A man is playing a guitar.", "Someone strums a guitar."),
             ("A man is playing a guitar.", "The stock market fell sharply today.")]
    for a, b in pairs:
        batch = tokenizer([a, b], padding=True, return_tensors="pt").to(model.device)
        with torch.no_grad():
            hidden = model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1)
        cosine = torch.nn.functional.cosine_similarity(pooled[0], pooled[1], dim=0).item()
        print(f"cos = {cosine:+.2f}  {a!r} vs {b!r}")


def graded_assignments(root: Path) -> list[str]:
    """Return the graded assignments under ``root``/source/ (folders with notebooks, practice excluded)."""
    source = root / "source"
    if not source.is_dir():
        return []
    return sorted(p.name for p in source.iterdir()
                  if p.is_dir() and p.name not in PRACTICE and not p.name.startswith(".") and any(p.glob("*.ipynb")))


def scratch_course(root: Path, dest: Path, names: list[str]) -> Path:
    """Copy the course at ``root`` (its files unchanged, the sources of ``names``) into ``dest``; return it."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in COURSE_FILES:
        if (root / name).is_file():
            shutil.copy2(root / name, dest / name)
    for name in names:
        shutil.copytree(root / "source" / name, dest / "source" / name)
        checks.copy_recorded(root, dest, name)
    return dest


def course(root: Path, *args: str) -> str:
    """Run one `course` command inside the course at ``root``; return its output, stopping the demo on failure."""
    done = subprocess.run([sys.executable, "-m", "course_tools.cli", *args], cwd=root, capture_output=True,
                          text=True, env=nbgrader_env(COURSE_ROOT=""))
    if done.returncode:
        sys.stderr.write(done.stdout[-4000:] + done.stderr[-4000:])
        raise SystemExit(f"`course {' '.join(args)}` failed (exit code {done.returncode}) in {root}")
    return done.stdout


def download(root: Path, name: str, zip_path: Path) -> Path:
    """Write an LMS-style zip of three submissions: the reference, a partial one and the blank release."""
    notebooks = sorted((root / "release" / name).glob("*.ipynb"))
    with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for i, released in enumerate(notebooks):
            zf.write(root / "source" / name / released.name, f"reference/{released.name}")
            # The partial submission answers the first notebook only and hands in the rest untouched.
            zf.write(root / "source" / name / released.name if i == 0 else released, f"partial/{released.name}")
            zf.write(released, f"blank/{released.name}")
    return zip_path


def grade_table(root: Path, names: list[str]) -> str:
    """Return the scores from the gradebook, with the points that still await manual grading."""
    from nbgrader.api import Gradebook

    rows = [("assignment", "student", "score", "max", "awaiting manual grading")]
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        for name in names:
            for sub in sorted(gb.find_assignment(name).submissions, key=lambda s: s.student.id):
                manual = [g for nb in sub.notebooks for g in nb.grades if g.needs_manual_grade]
                points = sum(g.max_score for g in manual)
                waiting = (f"{points:g} point{'s' * (points != 1)} in {len(manual)} answer{'s' * (len(manual) != 1)} "
                           f"({', '.join(g.name for g in manual)})" if manual else "-")
                rows.append((name, sub.student.id, f"{sub.score:g}", f"{sub.max_score:g}", waiting))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r[:4], widths)) + "  " + r[4] for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def grading_demo(root: Path) -> None:
    """Run release, collect, grade, feedback and export on a scratch copy of the course; print the grades."""
    names = graded_assignments(root)
    if not names:
        print("no graded assignments under source/ yet")
        return
    with tempfile.TemporaryDirectory(prefix="llm-course-demo-") as scratch:
        where = scratch_course(root, Path(scratch) / "course", names)
        print(f"scratch course: {where} (nbgrader_config.py copied unchanged)")
        start = time.perf_counter()
        course(where, "release", *names)
        print(f"course release {' '.join(names)}: {time.perf_counter() - start:.0f} s")
        for name in names:
            start = time.perf_counter()
            report = course(where, "collect", name, str(download(where, name, Path(scratch) / f"{name}.zip")))
            print(f"course collect {name}: " + "; ".join(report.splitlines()[:2]))
            course(where, "grade", name, "--workers", "2")
            print(f"course grade {name} --workers 2: {time.perf_counter() - start:.0f} s")
            course(where, "feedback", name)
            pages = sorted((where / "feedback").glob(f"*/{name}/*.html"))
            print(f"course feedback {name}: {len(pages)} HTML pages under feedback/")
        course(where, "export", "--to", str(where / "grades.csv"))
        with open(where / "grades.csv", newline="") as table:
            print(f"course export: grades.csv, {sum(1 for _ in csv.DictReader(table))} rows")
        print("\n" + grade_table(where, names))
    print("\nIn a course, the points awaiting manual grading are given in formgrader (`nbgrader formgrader`\n"
          "in the course root); `course feedback` and `course export` then include them.")


def main() -> None:
    """Run the demo steps in order."""
    root = find_course_root()
    step("1. device")
    print(helpers.describe_device())
    step("2. embedded models")
    start = time.perf_counter()
    folder, converted = helpers.converted_chat_dir()
    verb = "converted GGUF -> safetensors" if converted else "cached conversion reused"
    print(f"chat:    {folder} ({verb}, {time.perf_counter() - start:.1f} s)")
    print(f"encoder: {helpers.resolve_model('encoder').location}")
    step("3. chat model")
    chat_demo()
    step("4. encoder: sentence similarity")
    embedding_demo()
    step("5. the grading loop: release, collect, grade, feedback, export")
    grading_demo(root)


if __name__ == "__main__":
    main()
