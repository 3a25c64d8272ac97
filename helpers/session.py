"""What a notebook's first cell does: print versions, seed every random generator."""

from __future__ import annotations

import importlib.metadata
import platform
import random

DEFAULT_PACKAGES = ("torch", "transformers", "datasets", "accelerate", "bitsandbytes", "peft")


def print_versions(packages=DEFAULT_PACKAGES) -> dict[str, str]:
    """Print and return the Python version and the installed version of each package."""
    found = {"python": platform.python_version()}
    for name in packages:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "not installed"
    print("  ".join(f"{k} {v}" for k, v in found.items()))
    return found


def seed_everything(seed: int = 0) -> int:
    """Seed Python, NumPy and torch (CPU and CUDA) so reruns give the same numbers; return the seed."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return seed
