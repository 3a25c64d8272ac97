"""Load and greedy-generation benchmark of the chat model, one row per load mode.

    python benchmarks/bench_loading.py [--model chat] [--new-tokens 64] [--device auto]
    python benchmarks/bench_loading.py --shape phi-3.5-mini --tokenizer DIR   # on a GPU

``--shape`` benchmarks a model of a known architecture with random weights (speed and memory do
not depend on the values), for machines that cannot download the real one.

Each mode runs in a fresh subprocess (so peak memory is that mode's own). Columns: load seconds,
memory footprint of the weights, peak process memory (CPU RSS or CUDA allocated), first
generate call (includes compilation for the static cache), greedy tokens/s afterwards, and on a
GPU the fraction of the memory-bandwidth limit: each new token reads every weight once, so
tok/s <= measured bandwidth / footprint.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CPU_MODES = ["fp32", "bf16", "8bit", "4bit"]
GPU_MODES = ["bf16", "bf16-dynamic", "fp16", "8bit", "4bit"]


SHAPES = {
    # Phi-3.5-mini-instruct's dimensions (3.8 B parameters with its own 32k vocabulary).
    "phi-3.5-mini": dict(model_type="phi3", hidden_size=3072, intermediate_size=8192, num_hidden_layers=32,
                         num_attention_heads=32, num_key_value_heads=32, max_position_embeddings=4096),
    # SmolLM2-135M's dimensions.
    "smollm2-135m": dict(model_type="llama", hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                         num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=8192,
                         tie_word_embeddings=True),
}


def make_shaped_model(shape: str, tokenizer_dir: str, folder: Path) -> Path:
    """Save a randomly initialised model of ``shape`` (bf16) with the given tokenizer into ``folder``."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    spec = dict(SHAPES[shape])
    config = AutoConfig.for_model(spec.pop("model_type"), vocab_size=len(tokenizer),
                                  bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                                  pad_token_id=tokenizer.pad_token_id, **spec)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    del model
    return folder


def measure_bandwidth() -> float:
    """Return the GPU's measured device-to-device copy bandwidth in bytes/s."""
    import torch

    x = torch.empty(1 << 28, dtype=torch.float32, device="cuda")  # 1 GiB
    y = torch.empty_like(x)
    for _ in range(3):
        y.copy_(x)
    torch.cuda.synchronize()
    start, repeats = time.perf_counter(), 20
    for _ in range(repeats):
        y.copy_(x)
    torch.cuda.synchronize()
    return 2 * x.numel() * x.element_size() * repeats / (time.perf_counter() - start)


def run_one(mode: str, model_name: str, new_tokens: int, device: str) -> dict:
    """Load the model in one mode, generate greedily, and return the measurements."""
    import torch

    import helpers

    helpers.quiet(force=True)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "bf16-dynamic": torch.bfloat16,
             "fp16": torch.float16}.get(mode)
    quant = mode if mode in ("8bit", "4bit") else None
    static = False if mode == "bf16-dynamic" else None
    tokenizer, model, report = helpers.load_model(model_name, quantization=quant, dtype=dtype, device=device,
                                                  static_cache=static, verbose=False)
    prompt = [{"role": "user", "content": "Write a short story about a robot who learns to paint."}]
    enc = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, return_tensors="pt",
                                        return_dict=True).to(model.device)
    cuda = model.device.type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    kwargs = dict(do_sample=False, min_new_tokens=new_tokens, max_new_tokens=new_tokens)
    start = time.perf_counter()
    model.generate(**enc, **kwargs)
    sync()
    first = time.perf_counter() - start
    start = time.perf_counter()
    out = model.generate(**enc, **kwargs)
    sync()
    seconds = time.perf_counter() - start
    generated = out.shape[1] - enc["input_ids"].shape[1]
    peak = torch.cuda.max_memory_allocated() if cuda else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    row = dict(mode=mode, device=str(helpers.detect_device(device)), load_s=report.seconds,
               footprint=report.footprint_bytes, peak=peak, first_s=first, tok_s=generated / seconds,
               static=report.plan.static_cache, quantization=report.plan.quantization)
    if cuda:
        row["bandwidth"] = measure_bandwidth()
        row["limit_tok_s"] = row["bandwidth"] / report.footprint_bytes
    return row


def print_table(rows: list[dict]) -> None:
    """Print the measurements as a Markdown table."""
    gpu = any("limit_tok_s" in r for r in rows)
    head = "| mode | load s | weights MiB | peak MiB | first call s | tok/s |" + (" % of bandwidth limit |" if gpu else "")
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for r in rows:
        if "error" in r:
            print(f"| {r['mode']} | error: {r['error']} |")
            continue
        line = (f"| {r['mode']}{' (static cache)' if r['static'] else ''} | {r['load_s']:.2f} | "
                f"{r['footprint'] / 2**20:.0f} | {r['peak'] / 2**20:.0f} | {r['first_s']:.2f} | {r['tok_s']:.1f} |")
        if gpu:
            line += f" {100 * r['tok_s'] / r['limit_tok_s']:.1f} % of {r['limit_tok_s']:.0f} |"
        print(line)


def main() -> None:
    """Run every mode in its own subprocess and print the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="chat", help="role, Hub id or folder (default: chat)")
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"])
    parser.add_argument("--modes", nargs="*", help="default: fp32 bf16 8bit 4bit on CPU; bf16 (static), "
                                                   "bf16-dynamic, fp16, 8bit, 4bit on GPU")
    parser.add_argument("--shape", choices=sorted(SHAPES), help="random weights of this architecture")
    parser.add_argument("--tokenizer", help="tokenizer folder for --shape (default: the chat model's)")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one, args.model, args.new_tokens, args.device)))
        return
    import torch

    on_gpu = args.device != "cpu" and torch.cuda.is_available()
    modes = args.modes or (GPU_MODES if on_gpu else CPU_MODES)
    scratch = tempfile.TemporaryDirectory(prefix="bench-shape-")
    if args.shape:
        import helpers

        tokenizer_dir = args.tokenizer or helpers.resolve_model("chat").location
        args.model = str(make_shaped_model(args.shape, tokenizer_dir, Path(scratch.name) / args.shape))
        print(f"built a random {args.shape} model in {args.model}", file=sys.stderr)
    rows = []
    for mode in modes:
        cmd = [sys.executable, __file__, "--one", mode, "--model", args.model, "--new-tokens", str(args.new_tokens),
               "--device", args.device]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode:
            rows.append(dict(mode=mode, error=done.stderr.strip().splitlines()[-1][:120]))
        else:
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(f"done {mode}", file=sys.stderr, flush=True)
    label = f"{args.shape} (random weights)" if args.shape else args.model
    print(f"model: {label}; device: {rows[0].get('device', '?')}; {args.new_tokens} new tokens, greedy, batch 1\n")
    print_table(rows)


if __name__ == "__main__":
    main()
