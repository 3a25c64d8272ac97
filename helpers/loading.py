"""Load a tokenizer and model for a role or name, choosing dtype, quantization and placement.

The decision (:func:`plan_loading`) is separate from the loading (:func:`load_model`), so the
policy can be tested for devices this machine does not have. The "auto" policy:

* CUDA: 16-bit (bf16 where supported, else fp16) when the weights fit in free GPU memory with
  headroom, else 4-bit NF4. 16-bit causal LMs of at least 1 B parameters generate with a static
  KV cache (6.5x faster decoding for a 3.8 B model on an H100, see BENCHMARKS.md); smaller ones
  keep the dynamic cache, since the ~40 s compilation per new input shape outweighs the gain.
* Apple MPS: fp16, no quantization (bitsandbytes does not support MPS).
* CPU: fp32, no quantization unless asked for.

8-bit is used only on request: it halves memory but is the slowest path.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch

from .config import course_config
from .device import DeviceInfo, detect_device
from .resolve import ModelSource, resolve_model

QUANTIZATIONS = ("auto", "8bit", "4bit", "none")
TASKS = ("causal-lm", "encoder", "sequence-classification", "token-classification", "masked-lm")
HEADROOM = 1.2  # weights x this, plus RESERVE, must fit into free memory for 16-bit
RESERVE = 1 << 30  # bytes kept free for activations, the KV cache and the CUDA context
STATIC_CACHE_MIN_PARAMS = 1_000_000_000  # below this, compiling the static cache costs more than it saves


@dataclass(frozen=True)
class LoadPlan:
    """How a model will be loaded: device, dtype, quantization, KV cache, and why."""

    device: str
    dtype: torch.dtype
    quantization: str | None
    static_cache: bool
    reason: str


@dataclass(frozen=True)
class LoadReport:
    """What :func:`load_model` did: where from, how, how big, how long."""

    source: ModelSource
    task: str
    plan: LoadPlan
    attn_implementation: str | None
    footprint_bytes: int
    seconds: float

    def __str__(self) -> str:
        quant = self.plan.quantization or "no quantization"
        return (f"{self.source.name} [{self.source.kind}] -> {self.plan.device}, {_dtype_name(self.plan.dtype)}, "
                f"{quant}, {self.footprint_bytes / 2**20:.0f} MiB, {self.seconds:.1f} s ({self.plan.reason})")


class Loaded(NamedTuple):
    """A loaded tokenizer and model with the report of how they were loaded."""

    tokenizer: Any
    model: Any
    report: LoadReport


def _dtype_name(dtype: torch.dtype) -> str:
    """Return 'bf16', 'fp16' or 'fp32' for a torch dtype."""
    return {torch.bfloat16: "bf16", torch.float16: "fp16", torch.float32: "fp32"}.get(dtype, str(dtype))


def _normalise_quantization(quantization: str | None) -> str:
    """Return the quantization request as one of QUANTIZATIONS, or raise a clear error."""
    value = "none" if quantization is None else str(quantization).lower().replace("-", "")
    value = {"int8": "8bit", "int4": "4bit", "nf4": "4bit", "16bit": "none", "fp16": "none"}.get(value, value)
    if value not in QUANTIZATIONS:
        raise ValueError(f"Unknown quantization {quantization!r}: use one of 'auto', '8bit', '4bit' or None.")
    return value


def plan_loading(device: DeviceInfo, n_params: int | None, quantization: str | None = "auto",
                 dtype: torch.dtype | None = None, causal: bool = True) -> LoadPlan:
    """Return the loading plan for a model of ``n_params`` parameters on ``device``."""
    request = _normalise_quantization(quantization)
    half = torch.bfloat16 if device.bf16 else torch.float16
    if request in ("8bit", "4bit"):
        if device.type == "mps":
            raise RuntimeError(f"{request} quantization needs bitsandbytes on a CUDA GPU or the CPU; "
                               "it does not run on Apple MPS. Use quantization=None.")
        compute = dtype or (torch.float16 if request == "8bit" else half)
        slow = " (on the CPU: it saves memory, not time)" if device.type == "cpu" else ""
        return LoadPlan(device.type, compute, request, False, f"{request} as requested{slow}")
    if device.type == "cpu":
        return LoadPlan("cpu", dtype or torch.float32, None, False,
                        "CPU: full precision" if request == "auto" else "CPU, no quantization requested")
    if device.type == "mps":
        return LoadPlan("mps", dtype or torch.float16, None, False, "MPS: fp16")
    chosen = dtype or half
    big = n_params is not None and n_params >= STATIC_CACHE_MIN_PARAMS
    static = causal and big and chosen in (torch.float16, torch.bfloat16)
    if request == "none":
        return LoadPlan("cuda", chosen, None, static, "no quantization requested")
    if n_params is None or device.free_memory is None:
        return LoadPlan("cuda", chosen, None, static, "size unknown: 16-bit")
    need = n_params * 2 * HEADROOM + RESERVE
    if need <= device.free_memory:
        return LoadPlan("cuda", chosen, None, static,
                        f"16-bit fits: needs ~{need / 2**30:.1f} of {device.free_memory / 2**30:.1f} GiB free")
    return LoadPlan("cuda", half, "4bit", False,
                    f"16-bit needs ~{need / 2**30:.1f} GiB but only {device.free_memory / 2**30:.1f} GiB "
                    "is free: 4-bit NF4")


def _auto_class(task: str):
    """Return the transformers Auto class for ``task``."""
    import transformers

    classes = {"causal-lm": transformers.AutoModelForCausalLM, "encoder": transformers.AutoModel,
               "sequence-classification": transformers.AutoModelForSequenceClassification,
               "token-classification": transformers.AutoModelForTokenClassification,
               "masked-lm": transformers.AutoModelForMaskedLM}
    if task not in classes:
        raise ValueError(f"Unknown task {task!r}: use one of {', '.join(TASKS)}.")
    return classes[task]


def count_parameters_from_config(location: str, task: str = "causal-lm") -> int:
    """Return a model's parameter count from its config alone (no weights are loaded)."""
    from accelerate import init_empty_weights
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(location)
    with init_empty_weights():
        model = _auto_class(task).from_config(config)
    return sum(p.numel() for p in model.parameters())


# Task heads created fresh at load time: they hold no quantized weights to load, so keep them in
# ordinary layers (and they are trained in full precision in QLoRA anyway).
HEAD_MODULES = {"sequence-classification": ["classifier", "score", "pre_classifier"],
                "token-classification": ["classifier", "score"]}


def quantization_config(plan: LoadPlan, task: str = "causal-lm"):
    """Return the BitsAndBytesConfig for a plan, or None when it loads unquantized."""
    if plan.quantization is None:
        return None
    try:
        import bitsandbytes  # noqa: F401
    except ImportError as err:
        raise ImportError("8-bit and 4-bit loading need bitsandbytes: pip install bitsandbytes") from err
    from transformers import BitsAndBytesConfig

    skip = {"llm_int8_skip_modules": HEAD_MODULES[task]} if task in HEAD_MODULES else {}
    if plan.quantization == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True, **skip)
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=plan.dtype, **skip)


def load_model(name: str | None = None, *, role: str | None = None, task: str | None = None,
               quantization: str | None = "default", dtype: torch.dtype | None = None,
               device: str | None = None, attn_implementation: str | None = None,
               static_cache: bool | None = None, verbose: bool = True, **model_kwargs) -> Loaded:
    """Return (tokenizer, model, report) for a role ("chat", "encoder"), Hub id or folder."""
    from transformers import AutoTokenizer

    source = resolve_model(name, role)
    role = role or (name if name in ("chat", "encoder") else None)
    task = task or ("encoder" if role == "encoder" else "causal-lm")
    model_class = _auto_class(task)
    if quantization == "default":
        quantization = course_config().quantization
    info = detect_device(device)
    n_params = count_parameters_from_config(source.location, task) if info.type == "cuda" else None
    plan = plan_loading(info, n_params, quantization, dtype, causal=task == "causal-lm")
    if static_cache is not None:
        plan = LoadPlan(plan.device, plan.dtype, plan.quantization, static_cache and task == "causal-lm",
                        plan.reason)

    kwargs: dict[str, Any] = {"dtype": plan.dtype, **model_kwargs}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    bnb = quantization_config(plan, task)
    if bnb is not None:
        # Quantized weights are placed at load time; .to() on them is an error.
        kwargs.update(quantization_config=bnb, device_map={"": 0 if plan.device == "cuda" else "cpu"})
    elif plan.device != "cpu":
        kwargs["device_map"] = {"": plan.device}

    start = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(source.location)
    model = model_class.from_pretrained(source.location, **kwargs)
    model.eval()
    if task == "causal-lm" and tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    if plan.static_cache and getattr(model, "generation_config", None) is not None:
        model.generation_config.cache_implementation = "static"
    seconds = time.perf_counter() - start

    report = LoadReport(source, task, plan, getattr(model.config, "_attn_implementation", None),
                        model.get_memory_footprint(), seconds)
    if verbose:
        print(f"Loaded {report}")
    return Loaded(tokenizer, model, report)
