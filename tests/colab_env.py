"""A virtual environment with Google Colab's preinstalled packages, for the bootstrap tests.

The versions are Colab's (measured, /work/shared/environment-facts.md): what the bootstrap must
live with rather than replace. Building it takes minutes, so it is cached under
~/.cache/llm-course-test/ in a folder named after a hash of the pins (LLM_COURSE_TEST_CACHE moves it);
changing a pin builds a new one. Run this module to build it ahead of the tests.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import subprocess
import sys
from pathlib import Path

# torch: this exact spec (the on-disk CPU build here; Colab ships a CUDA build of a nearby version).
# transformers: Colab may still ship 4.x, which the course's floor must upgrade.
COLAB_PINS = [
    "torch==2.13.0",
    "ipython==7.34.0",
    "ipykernel==6.17.1",
    "ipywidgets==7.7.1",
    "widgetsnbextension==3.6.10",
    "numpy==2.0.2",
    "pandas==2.2.2",
    "scikit-learn==1.6.1",
    "matplotlib==3.10.0",
    "transformers>=4.40,<5",
]


def cache_dir() -> Path:
    """Return the folder that holds the cached environments."""
    return Path(os.environ.get("LLM_COURSE_TEST_CACHE") or Path.home() / ".cache" / "llm-course-test")


def base_python() -> str:
    """Return a Python interpreter outside any virtual environment (the one this venv was made from)."""
    return str(Path(getattr(sys, "_base_executable", sys.executable)))


def colab_python(log=print) -> str:
    """Return the Python of the Colab-like environment, building it first when it is not cached."""
    key = hashlib.sha256("\n".join(COLAB_PINS).encode()).hexdigest()[:12]
    venv = cache_dir() / f"colab-venv-{key}"
    python = venv / "bin" / "python"
    ready = venv / ".ready"
    cache_dir().mkdir(parents=True, exist_ok=True)
    with open(cache_dir() / f"colab-venv-{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two test processes never build the same folder at once
        if not ready.exists():
            log(f"building the Colab-like environment in {venv} (a few minutes, once)")
            subprocess.run([base_python(), "-m", "venv", "--clear", str(venv)], check=True)
            subprocess.run([str(python), "-m", "pip", "install", "-q", *COLAB_PINS], check=True)
            ready.write_text("\n".join(COLAB_PINS) + "\n")
    return str(python)


if __name__ == "__main__":
    print(colab_python())
