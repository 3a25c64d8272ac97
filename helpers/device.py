"""Pick the compute device (CUDA, Apple MPS or CPU) and describe it."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class DeviceInfo:
    """What the chosen device is and how much memory it has (bytes; None where unknown)."""

    type: str
    name: str
    total_memory: int | None = None
    free_memory: int | None = None
    bf16: bool = False
    compute_capability: tuple[int, int] | None = None

    def __str__(self) -> str:
        gib = lambda b: f"{b / 2**30:.1f} GiB"  # noqa: E731
        mem = f", {gib(self.free_memory)} free of {gib(self.total_memory)}" if self.total_memory else ""
        return f"{self.type}: {self.name}{mem}"


def _cpu_name() -> str:
    """Return the CPU model name and core count, as far as the OS tells."""
    model = "CPU"
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{model} ({os.cpu_count()} cores, {torch.get_num_threads()} torch threads)"


def detect_device(prefer: str | None = None) -> DeviceInfo:
    """Return the best available device (CUDA > MPS > CPU), or the one named by ``prefer``."""
    wanted = prefer or os.environ.get("LLM_COURSE_DEVICE") or "auto"
    if wanted not in ("auto", "cuda", "mps", "cpu"):
        raise ValueError(f"Unknown device {wanted!r}: use 'auto', 'cuda', 'mps' or 'cpu'.")
    if wanted in ("auto", "cuda") and torch.cuda.is_available():
        free, total = torch.cuda.mem_get_info()
        props = torch.cuda.get_device_properties(0)
        return DeviceInfo("cuda", props.name, total, free, torch.cuda.is_bf16_supported(),
                          (props.major, props.minor))
    if wanted == "cuda":
        raise RuntimeError("A CUDA GPU was requested but none is available (torch.cuda.is_available() "
                           "is False). On Colab: Runtime > Change runtime type > GPU.")
    mps = getattr(torch.backends, "mps", None)
    if wanted in ("auto", "mps") and mps is not None and mps.is_available():
        return DeviceInfo("mps", "Apple MPS", bf16=False)
    if wanted == "mps":
        raise RuntimeError("Apple MPS was requested but is not available on this machine.")
    return DeviceInfo("cpu", _cpu_name(), bf16=True)


def describe_device(info: DeviceInfo | None = None) -> str:
    """Return a one-line description of the device the course will use."""
    return f"Device -> {info or detect_device()}"
