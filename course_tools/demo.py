"""`make demo`: the embedded models working end to end, then the course released and autograded.

Steps, in order (each prints what it did and how long it took):
1. the device the course will use;
2. the embedded models made ready (SmolLM2 converted once from its GGUF file);
3. a short chat reply from the chat model;
4. sentence-embedding similarities from the encoder;
5. the graded assignment released and autograded for a reference and a blank submission in a
   scratch course directory, ending with the grade table.
"""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

import helpers
from course_tools.environment import nbgrader_env

ROOT = Path(__file__).resolve().parent.parent


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


def nbgrader(course: Path, *args: str) -> None:
    """Run one nbgrader command in the scratch course, quietly unless it fails."""
    done = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course, capture_output=True, text=True,
                          env=nbgrader_env())
    if done.returncode:
        sys.stderr.write(done.stdout + done.stderr)
        raise SystemExit(f"nbgrader {' '.join(args)} failed in {course}")


def grading_demo() -> None:
    """Release each assignment and autograde a reference and a blank submission; print the grades."""
    names = sorted(p.name for p in (ROOT / "source").glob("*") if p.is_dir()) if (ROOT / "source").is_dir() else []
    if not names:
        print("no assignments under source/ yet")
        return
    with tempfile.TemporaryDirectory(prefix="llm-course-demo-") as scratch:
        course = Path(scratch)
        shutil.copytree(ROOT / "source", course / "source")
        config = (ROOT / "nbgrader_config.py").read_text()
        (course / "nbgrader_config.py").write_text(config.replace("Path(__file__).resolve().parent", repr(str(course))))
        for name in names:
            start = time.perf_counter()
            nbgrader(course, "generate_assignment", name, "--force", "--create")
            for student, origin in (("reference", course / "source" / name), ("blank", course / "release" / name)):
                shutil.copytree(origin, course / "submitted" / student / name)
                nbgrader(course, "db", "student", "add", student)
            nbgrader(course, "autograde", name)
            print(f"{name}: released and autograded 2 submissions in {time.perf_counter() - start:.0f} s")
        nbgrader(course, "export", "--to", str(course / "grades.csv"))
        rows = list(csv.DictReader(open(course / "grades.csv")))
    print(f"\n{'assignment':<18}{'student':<12}{'score':>8}{'max':>8}")
    for row in rows:
        print(f"{row['assignment']:<18}{row['student_id']:<12}{float(row['score']):>8.1f}{float(row['max_score']):>8.1f}")


def main() -> None:
    """Run the demo steps in order."""
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
    step("5. release and autograde")
    grading_demo()


if __name__ == "__main__":
    main()
