"""Scripted lecture submissions: correct answers written differently from the reference, and wrong ones.

tests/test_lectures.py grades them with nbgrader, one lecture notebook at a time, next to the reference
answers (the source's own solution cells); every test cell is decided outside the kernel, from the recorded
answers of its hidden checks (course_tools/checks.py). A correct alternative keeps every point. Each wrong
answer runs and passes the visible self-check, and loses the points of the test cells its Variant names;
the comments say which ones the in-kernel hidden tests used to miss.
"""

from __future__ import annotations

from submissions import Variant

L01_ALT = {
    ("01_huggingface_tour", "sequence_log_prob"): '''def sequence_log_prob(text: str) -> float:
    """Through the model's own loss: the mean negative log-probability over the n - 1 predicted tokens."""
    ids = tokenizer(text, return_tensors="pt").input_ids.to(model.device)
    n = ids.shape[1]
    if n < 2:
        return 0.0
    return -model(input_ids=ids, labels=ids).loss.item() * (n - 1)''',
    ("01_huggingface_tour", "nucleus_filter"): '''def nucleus_filter(probs: torch.Tensor, top_p: float) -> torch.Tensor:
    """As transformers does it: sort ascending and drop the tokens whose cumulative mass stays within 1 - top_p."""
    ascending, order = torch.sort(probs)
    drop = ascending.cumsum(dim=0) <= 1 - top_p
    drop[-1] = False
    kept = probs.clone()
    kept[order[drop]] = 0
    return kept / kept.sum()''',
}

L01_ALT2 = {
    ("01_huggingface_tour", "sequence_log_prob"): '''def sequence_log_prob(text: str) -> float:
    """One forward pass per prefix, summed in Python."""
    ids = tokenizer(text)["input_ids"]
    total = 0.0
    for t in range(1, len(ids)):
        prefix = torch.tensor([ids[:t]], device=model.device)
        logits = model(input_ids=prefix).logits[0, -1].float()
        total += torch.log_softmax(logits, dim=-1)[ids[t]].item()
    return total''',
    ("01_huggingface_tour", "nucleus_filter"): '''def nucleus_filter(probs: torch.Tensor, top_p: float) -> torch.Tensor:
    """A loop over the tokens from the most likely, until the kept mass reaches top_p."""
    out = torch.zeros_like(probs)
    mass = 0.0
    for i in torch.argsort(probs, descending=True).tolist():
        if mass >= top_p:
            break
        out[i] = probs[i]
        mass += probs[i].item()
    return out / out.sum()''',
}

L01_NEARMISS = {
    # Missed before: the chat model's tokenizer adds no special token, so every text gave the same ids.
    ("01_huggingface_tour", "sequence_log_prob"): '''def sequence_log_prob(text: str) -> float:
    """Tokenizes without the special tokens that tokenizer(text) would add."""
    ids = tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"].to(model.device)
    if ids.shape[1] < 2:
        return 0.0
    log_probs = model(input_ids=ids).logits[0, :-1].float().log_softmax(dim=-1)
    return log_probs.gather(1, ids[0, 1:].unsqueeze(1)).sum().item()''',
    ("01_huggingface_tour", "nucleus_filter"): '''def nucleus_filter(probs: torch.Tensor, top_p: float) -> torch.Tensor:
    """Keeps every token at least as likely as the least likely one of the nucleus (all ties at the edge)."""
    sorted_probs, _ = probs.sort(descending=True)
    n_kept = int(((sorted_probs.cumsum(dim=0) - sorted_probs) < top_p).sum().clamp(min=1))
    kept = torch.where(probs >= sorted_probs[n_kept - 1], probs, torch.zeros_like(probs))
    return kept / kept.sum()''',
}

# Per lecture notebook (stem): its scripted students and the points they should get per test cell.
LECTURE_VARIANTS: dict[str, dict[str, Variant]] = {
    "01_huggingface_tour": {
        "alt": Variant(L01_ALT, {"test_sequence_log_prob": 3, "test_nucleus_filter": 3}),
        "alt2": Variant(L01_ALT2, {"test_sequence_log_prob": 3, "test_nucleus_filter": 3}),
        "nearmiss": Variant(L01_NEARMISS, {"test_sequence_log_prob": 0, "test_nucleus_filter": 0}),
    },
}
