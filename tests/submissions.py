"""Scripted submissions for the nbgrader end-to-end tests: release notebooks edited cell by cell.

Every submission starts from the committed release (what a student downloads) and changes cells by
their nbgrader ``grade_id``, as a student working in JupyterLab or on Colab would.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

ASSIGNMENT = "language_models"
SOLUTION = re.compile(r"^[ \t]*### (BEGIN|END) SOLUTION[ \t]*\n?", re.MULTILINE)


def grade_id(cell) -> str | None:
    """Return the nbgrader grade_id of a cell, or None."""
    return cell.metadata.get("nbgrader", {}).get("grade_id")


def find_cell(nb, gid: str):
    """Return the cell of ``nb`` with grade_id ``gid`` (KeyError when absent)."""
    for cell in nb.cells:
        if grade_id(cell) == gid:
            return cell
    raise KeyError(f"no cell with grade_id {gid!r}")


def reference_answers(source_dir: Path) -> dict[str, dict[str, str]]:
    """Return {notebook: {grade_id: solution cell source without the solution markers}} from source/."""
    answers: dict[str, dict[str, str]] = {}
    for path in sorted(source_dir.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        answers[path.stem] = {grade_id(c): SOLUTION.sub("", c.source) for c in nb.cells
                              if c.metadata.get("nbgrader", {}).get("solution")}
    return answers


def load_release(release_dir: Path) -> dict[str, nbformat.NotebookNode]:
    """Return the release notebooks by stem."""
    return {p.stem: nbformat.read(p, as_version=4) for p in sorted(release_dir.glob("*.ipynb"))}


def solve(nbs: dict, answers: dict, which: list[str] | None = None) -> None:
    """Fill the solution cells named in ``which`` (default: all) with the reference answers."""
    for stem, nb in nbs.items():
        for gid, source in answers[stem].items():
            if which is None or gid in which:
                find_cell(nb, gid).source = source


def set_source(nbs: dict, stem: str, gid: str, source: str) -> None:
    """Replace the source of one cell, found by grade_id."""
    find_cell(nbs[stem], gid).source = source


def submit(course: Path, student: str, nbs: dict, only: list[str] | None = None,
           assignment: str = ASSIGNMENT) -> Path:
    """Write the notebooks (or the stems in ``only``) to submitted/<student>/<assignment>/ and return it."""
    folder = course / "submitted" / student / assignment
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    for stem, nb in nbs.items():
        if only is None or stem in only:
            nbformat.write(nb, folder / f"{stem}.ipynb")
    (folder / "timestamp.txt").write_text("2026-11-20 12:00:00.000000 UTC")
    return folder


# Wrong answers: each runs, but gives wrong results (so a test fails with AssertionError).
WRONG = {
    ("01_theory", "kl_divergence"):
        'def kl_divergence(p, q) -> float:\n    return 0.0',
    ("02_tokenization", "reverse_dict"):
        'def reverse_dict(d: dict) -> dict:\n    return dict(d)',
    ("03_generation", "stopping_criteria"):
        'def build_stopping_criteria(tokenizer):\n    return StoppingCriteriaList([])',
    ("04_chat", "decode_chat_messages"):
        'def decode_chat_messages(ids, tokenizer):\n    return []',
}

LOOP_FOREVER = 'def reverse_dict(d: dict) -> dict:\n    while True:\n        pass'

WITH_WARNINGS = '''import warnings

from transformers.utils import logging as hf_logging


def reverse_dict(d: dict) -> dict:
    "Return the reversed dict, complaining loudly through the warning machinery on the way."
    warnings.warn("reverse_dict: this is a UserWarning", UserWarning)
    warnings.warn("reverse_dict: this is a DeprecationWarning", DeprecationWarning)
    hf_logging.get_logger("transformers.tokenization_utils_base").warning("a transformers logger warning")
    return {value: key for key, value in d.items()}'''

EDITED_TEST = 'print("all tests passed (trust me)")'


# ---------------------------------------------------------------- what each assignment holds


@dataclass(frozen=True)
class Variant:
    """A scripted student: answer cells replaced by ``sources``, expected points per test cell."""

    sources: dict[tuple[str, str], str]
    expected: dict[str, float]

    def notebooks(self) -> list[str]:
        """Return the stems of the notebooks this student hands in."""
        return sorted({stem for stem, _ in self.sources})


@dataclass(frozen=True)
class Spec:
    """One graded assignment as the end-to-end tests see it."""

    name: str
    notebooks: list[str]
    auto: dict[str, dict[str, int]]      # notebook -> {test grade_id: points}
    manual: dict[str, dict[str, int]]    # notebook -> {answer grade_id: points}
    solutions: dict[str, str]            # notebook -> the grade_id of one of its answer cells
    partial: str                         # the one exercise a partial submission answers
    wrong: dict[tuple[str, str], str]    # (notebook, answer grade_id) -> a wrong but running answer
    variants: dict[str, Variant] = field(default_factory=dict)

    @property
    def max_auto(self) -> int:
        """Return the autograded maximum."""
        return sum(sum(tests.values()) for tests in self.auto.values())

    def tests_of(self, exercise: str) -> dict[str, int]:
        """Return {test grade_id: points} of one exercise (its visible and hidden test cells)."""
        return {gid: pts for tests in self.auto.values() for gid, pts in tests.items()
                if gid in (f"test_{exercise}", f"test_{exercise}_hidden")}


def full(spec_auto: dict, *exercises: str) -> dict[str, float]:
    """Return {test grade_id: its points} for every test cell of the named exercises."""
    return {gid: pts for tests in spec_auto.values() for gid, pts in tests.items()
            if any(gid in (f"test_{e}", f"test_{e}_hidden") for e in exercises)}


# Correct answers written differently from the reference: each must keep every point.
LM_ALTERNATIVES = {
    ("01_theory", "kl_divergence"): '''from scipy.special import rel_entr


def kl_divergence(p, q) -> float:
    "KL divergence through scipy's elementwise relative entropy (0 log 0 = 0, p log p/0 = inf)."
    p = np.array(p, dtype=float)
    q = np.array(q, dtype=float)
    return float(np.sum(rel_entr(p, q)))''',
    ("02_tokenization", "reverse_dict"): '''def reverse_dict(d: dict) -> dict:
    "A plain loop: later keys overwrite earlier ones."
    out = {}
    for key in d:
        out[d[key]] = key
    return out''',
    ("03_generation", "stopping_criteria"): '''class NewlineStop(StoppingCriteria):
    "Stop each sequence whose last token contains a line break."

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def __call__(self, input_ids, scores, **kwargs):
        last = self.tokenizer.batch_decode(input_ids[:, -1:])
        return torch.tensor(["\\n" in text for text in last], dtype=torch.bool, device=input_ids.device)


def build_stopping_criteria(tokenizer):
    return StoppingCriteriaList([NewlineStop(tokenizer)])''',
    ("04_chat", "decode_chat_messages"): '''def decode_chat_messages(ids, tokenizer) -> list[dict[str, str]]:
    markers = helpers.chat_markers(tokenizer)
    text = tokenizer.decode([int(i) for i in ids], skip_special_tokens=False)
    starts = []
    for role, header in markers.role_headers.items():
        anchor = header.rstrip()
        at = text.find(anchor)
        while at >= 0:
            starts.append((at, at + len(anchor), role))
            at = text.find(anchor, at + 1)
    starts.sort()
    messages = []
    for n, (_, body_start, role) in enumerate(starts):
        body_end = starts[n + 1][0] if n + 1 < len(starts) else len(text)
        body = text[body_start:body_end].split(markers.end)[0]
        messages.append({"role": role, "content": body.strip()})
    return messages''',
}
LM_ALTERNATIVES_2 = {
    ("01_theory", "kl_divergence"): '''def kl_divergence(p, q) -> float:
    "KL divergence in torch, with the 0 log 0 convention by masking."
    p = torch.as_tensor(p, dtype=torch.float64)
    q = torch.as_tensor(q, dtype=torch.float64)
    support = p > 0
    if (q[support] == 0).any():
        return float("inf")
    return torch.sum(p[support] * torch.log(p[support] / q[support])).item()''',
    ("02_tokenization", "reverse_dict"): '''def reverse_dict(d: dict) -> dict:
    return dict(zip(d.values(), d.keys()))''',
}
LM_ALTERNATIVES_3 = {
    ("01_theory", "kl_divergence"): '''def kl_divergence(p, q) -> float:
    "A loop over the pairs of probabilities."
    total = 0.0
    for pi, qi in zip(p, q):
        pi, qi = float(pi), float(qi)
        if pi == 0:
            continue
        if qi == 0:
            return float("inf")
        total += pi * math.log(pi / qi)
    return total''',
}
# Wrong answers that look right: objects that claim equality with anything, and answers that pass the
# visible tests but not the contract.
LM_LIARS = {
    ("01_theory", "kl_divergence"): '''class Agreeable(float):
    def __eq__(self, other):
        return True

    __hash__ = float.__hash__


def kl_divergence(p, q) -> float:
    return Agreeable(0.0)''',
    ("02_tokenization", "reverse_dict"): '''class Agreeable(dict):
    def __eq__(self, other):
        return True

    def get(self, key, default=None):
        return "anything"


def reverse_dict(d: dict) -> dict:
    return Agreeable()''',
    ("04_chat", "decode_chat_messages"): '''class Agreeable(list):
    def __eq__(self, other):
        return True


def decode_chat_messages(ids, tokenizer):
    return Agreeable([{}, {}, {}])''',
}
LM_NEAR_MISSES = {
    ("01_theory", "kl_divergence"): '''def kl_divergence(p, q) -> float:
    "Forgets the 0 log 0 = 0 convention."
    p, q = np.asarray(p, dtype=float), np.asarray(q, dtype=float)
    return float(np.sum(p * np.log(p / q)))''',
    ("02_tokenization", "reverse_dict"): '''def reverse_dict(d: dict) -> dict:
    "The first key wins instead of the last."
    return {value: key for key, value in reversed(list(d.items()))}''',
    ("04_chat", "decode_chat_messages"): '''def decode_chat_messages(ids, tokenizer):
    "Knows ChatML and Phi-3.5 role tokens by heart, nothing else."
    text = tokenizer.decode(list(ids), skip_special_tokens=False)
    pattern = (r"(?:<\\|im_start\\|>(system|user|assistant)\\n|<\\|(system|user|assistant)\\|>\\n)"
               r"(.*?)(?=<\\|im_end\\|>|<\\|end\\|>|<\\|im_start\\|>|<\\|(?:system|user|assistant)\\|>|$)")
    return [{"role": m.group(1) or m.group(2), "content": m.group(3).strip()} for m in re.finditer(pattern, text, re.S)]''',
}

# Correct answers written differently again (xlogy, map(reversed), a table over the vocabulary, split at
# the end marker), and answers that the hidden tests before the outside checks let through with full marks.
LM_ALT4 = {
    ("01_theory", "kl_divergence"): '''def kl_divergence(p, q) -> float:
    "torch.special.xlogy (x log y, 0 at x = 0): p log p - p log q, which is +inf where q = 0 < p."
    p = torch.as_tensor(p, dtype=torch.float64)
    q = torch.as_tensor(q, dtype=torch.float64)
    return float(torch.sum(torch.special.xlogy(p, p) - torch.special.xlogy(p, q)))''',
    ("02_tokenization", "reverse_dict"): '''def reverse_dict(d: dict) -> dict:
    "Each (key, value) item reversed into (value, key); dict() keeps the last of equal keys."
    return dict(map(reversed, d.items()))''',
    ("03_generation", "stopping_criteria"): '''class LineBreakStop(StoppingCriteria):
    "Stop the sequences whose newest token's text holds a line break (a table over the vocabulary)."

    def __init__(self, tokenizer):
        texts = tokenizer.batch_decode([[i] for i in range(len(tokenizer))])
        self.breaks = torch.tensor(["\\n" in text for text in texts])

    def __call__(self, input_ids, scores, **kwargs):
        return self.breaks.to(input_ids.device)[input_ids[:, -1]]


def build_stopping_criteria(tokenizer):
    return StoppingCriteriaList([LineBreakStop(tokenizer)])''',
    ("04_chat", "decode_chat_messages"): '''def decode_chat_messages(ids, tokenizer) -> list[dict[str, str]]:
    "Split the text at the end marker, then find the header that opens each piece."
    markers = helpers.chat_markers(tokenizer)
    text = tokenizer.decode([int(i) for i in ids], skip_special_tokens=False)
    messages = []
    for piece in text.split(markers.end):
        hits = [(piece.find(header.rstrip()), role, header.rstrip())
                for role, header in markers.role_headers.items() if header.rstrip() in piece]
        if hits:
            at, role, anchor = min(hits)
            messages.append({"role": role, "content": piece[at + len(anchor):].strip()})
    return messages''',
}
LM_NEAR_MISSES_2 = {
    ("01_theory", "kl_divergence"): '''def kl_divergence(p, q) -> float:
    "np.divide(..., out=np.ones_like(p), where=p > 0) keeps p's dtype: a list of ints fails."
    p, q = np.asarray(p), np.asarray(q)
    if np.any((p > 0) & (q == 0)):
        return float("inf")
    ratio = np.divide(p, q, out=np.ones_like(p), where=p > 0)
    return float(np.sum(p * np.log(ratio)))''',
    ("02_tokenization", "reverse_dict"): '''def reverse_dict(d: dict) -> dict:
    "Skips falsy values (0, empty strings), so the token with id 0 is lost."
    return {value: key for key, value in d.items() if value}''',
    ("03_generation", "stopping_criteria"): '''class BreakStop(StoppingCriteria):
    "Counts a carriage return as a line break too."

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def __call__(self, input_ids, scores, **kwargs):
        last = self.tokenizer.batch_decode(input_ids[:, -1:])
        return torch.tensor(["\\n" in t or "\\r" in t for t in last], dtype=torch.bool, device=input_ids.device)


def build_stopping_criteria(tokenizer):
    return StoppingCriteriaList([BreakStop(tokenizer)])''',
    ("04_chat", "decode_chat_messages"): '''def decode_chat_messages(ids, tokenizer):
    "Cuts each message between its whole header and the end marker, but keeps the whitespace around it."
    markers = helpers.chat_markers(tokenizer)
    text = tokenizer.decode([int(i) for i in ids], skip_special_tokens=False)
    roles = {header: role for role, header in markers.role_headers.items()}
    found = list(re.finditer("|".join(re.escape(h) for h in sorted(roles, key=len, reverse=True)), text))
    messages = []
    for k, match in enumerate(found):
        body = text[match.end():found[k + 1].start() if k + 1 < len(found) else len(text)]
        cut = body.find(markers.end)
        messages.append({"role": roles[match.group()], "content": body if cut < 0 else body[:cut]})
    return messages''',
}
LM_LAST_TWO = {
    ("03_generation", "stopping_criteria"): '''class RecentBreakStop(StoppingCriteria):
    "Looks for the line break in the last two tokens (one token too many)."

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def __call__(self, input_ids, scores, **kwargs):
        recent = self.tokenizer.batch_decode(input_ids[:, -2:])
        return torch.tensor(["\\n" in t for t in recent], dtype=torch.bool, device=input_ids.device)


def build_stopping_criteria(tokenizer):
    return StoppingCriteriaList([RecentBreakStop(tokenizer)])''',
}

LM_AUTO = {
    "01_theory": {"test_kl_divergence": 2, "test_kl_divergence_hidden": 3},
    "02_tokenization": {"test_reverse_dict": 2, "test_reverse_dict_hidden": 3},
    "03_generation": {"test_stopping_criteria": 2, "test_stopping_criteria_hidden": 3},
    "04_chat": {"test_decode_chat_messages": 2, "test_decode_chat_messages_hidden": 4},
}
LANGUAGE_MODELS = Spec(
    name="language_models",
    notebooks=["01_theory", "02_tokenization", "03_generation", "04_chat"],
    auto=LM_AUTO,
    manual={"01_theory": {"jensen_proof": 4}, "02_tokenization": {"word_boundary": 2},
            "03_generation": {"context_counterexample": 3}},
    solutions={"01_theory": "kl_divergence", "02_tokenization": "reverse_dict",
               "03_generation": "stopping_criteria", "04_chat": "decode_chat_messages"},
    partial="reverse_dict",
    wrong=WRONG,
    variants={
        "alt1": Variant(LM_ALTERNATIVES, full(LM_AUTO, "kl_divergence", "reverse_dict", "stopping_criteria",
                                              "decode_chat_messages")),
        "alt2": Variant(LM_ALTERNATIVES_2, full(LM_AUTO, "kl_divergence", "reverse_dict")),
        "alt3": Variant(LM_ALTERNATIVES_3, full(LM_AUTO, "kl_divergence")),
        "liar": Variant(LM_LIARS, {gid: 0 for gid in full(LM_AUTO, "kl_divergence", "reverse_dict",
                                                          "decode_chat_messages")}),
        "nearmiss": Variant(LM_NEAR_MISSES, {"test_kl_divergence": 2, "test_kl_divergence_hidden": 0,
                                             "test_reverse_dict": 2, "test_reverse_dict_hidden": 0,
                                             "test_decode_chat_messages": 2,
                                             "test_decode_chat_messages_hidden": 0}),
        "alt4": Variant(LM_ALT4, full(LM_AUTO, "kl_divergence", "reverse_dict", "stopping_criteria",
                                      "decode_chat_messages")),
        "nearmiss2": Variant(LM_NEAR_MISSES_2, {"test_kl_divergence": 2, "test_kl_divergence_hidden": 0,
                                                "test_reverse_dict": 0, "test_reverse_dict_hidden": 0,
                                                "test_stopping_criteria": 2, "test_stopping_criteria_hidden": 0,
                                                "test_decode_chat_messages": 2,
                                                "test_decode_chat_messages_hidden": 0}),
        "nearmiss3": Variant(LM_LAST_TWO, {"test_stopping_criteria": 2, "test_stopping_criteria_hidden": 0}),
    },
)

TI_WRONG = {
    ("01_attention", "attention"): '''def attention(q, k, v, mask=None):
    "Forgets the 1/sqrt(d) scale."
    scores = q @ k.transpose(-2, -1)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else scores + mask
    weights = torch.softmax(scores, dim=-1)
    return weights @ v, weights''',
    ("01_attention", "mean_pool"): '''def mean_pool(hidden, attention_mask):
    "Averages the padding too."
    return hidden.mean(dim=1)''',
    ("02_bpe_and_spans", "merge_pair"): '''def merge_pair(tokens, pair):
    "Merges by string replacement, which also matches inside longer symbols."
    return " ".join(tokens).replace(f"{pair[0]} {pair[1]}", pair[0] + pair[1]).split()''',
    ("02_bpe_and_spans", "most_frequent_pair"): '''from collections import Counter


def most_frequent_pair(corpus):
    "Breaks ties by insertion order, not by the pair."
    counts = Counter()
    for word, count in corpus.items():
        for pair in zip(word, word[1:]):
            counts[pair] += count
    return counts.most_common(1)[0][0] if counts else None''',
    ("02_bpe_and_spans", "best_span"): '''def best_span(start_logits, end_logits, context_mask, max_len):
    "Takes the best start and the best end separately."
    inside = torch.as_tensor([bool(x) for x in context_mask])
    if not inside.any():
        return None
    start = torch.as_tensor([float(x) for x in start_logits]).masked_fill(~inside, float("-inf"))
    end = torch.as_tensor([float(x) for x in end_logits]).masked_fill(~inside, float("-inf"))
    return int(start.argmax()), int(end.argmax())''',
}
# Wrong answers that fail every test (the partial submission's other exercises).
TI_FAILING = {
    ("01_attention", "attention"): 'def attention(q, k, v, mask=None):\n    return q, q',
    ("01_attention", "mean_pool"): 'def mean_pool(hidden, attention_mask):\n    return torch.zeros(hidden.shape[0], hidden.shape[2])',
    ("02_bpe_and_spans", "merge_pair"): 'def merge_pair(tokens, pair):\n    return list(tokens)',
    ("02_bpe_and_spans", "most_frequent_pair"): 'def most_frequent_pair(corpus):\n    return None',
    ("02_bpe_and_spans", "best_span"): 'def best_span(start_logits, end_logits, context_mask, max_len):\n    return (0, 0)',
}
TI_ALTERNATIVES = {
    ("01_attention", "attention"): '''def attention(q, k, v, mask=None):
    "einsum, and a boolean mask turned into an additive one."
    scores = torch.einsum("...qd,...kd->...qk", q, k) * q.shape[-1] ** -0.5
    if mask is not None:
        if mask.dtype == torch.bool:
            mask = torch.where(mask, 0.0, float("-inf")).to(scores.dtype)
        scores = scores + mask
    weights = scores.softmax(dim=-1)
    return torch.einsum("...qk,...kv->...qv", weights, v), weights''',
    ("01_attention", "mean_pool"): '''def mean_pool(hidden, attention_mask):
    "One sequence at a time, with boolean indexing."
    rows = []
    for h, m in zip(hidden, attention_mask):
        real = h[m.bool()]
        rows.append(real.mean(dim=0) if len(real) else torch.zeros(h.shape[-1], dtype=h.dtype))
    return torch.stack(rows)''',
    ("02_bpe_and_spans", "merge_pair"): '''def merge_pair(tokens, pair):
    "Recursive: merge at the front, then the rest."
    if len(tokens) < 2:
        return list(tokens)
    if (tokens[0], tokens[1]) == tuple(pair):
        return [tokens[0] + tokens[1]] + merge_pair(tokens[2:], pair)
    return [tokens[0]] + merge_pair(tokens[1:], pair)''',
    ("02_bpe_and_spans", "most_frequent_pair"): '''from collections import Counter


def most_frequent_pair(corpus):
    "Counter, then sort by (-count, pair)."
    counts = Counter()
    for word, count in corpus.items():
        for pair in zip(word, word[1:]):
            counts[pair] += count
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return ranked[0][0] if ranked else None''',
    ("02_bpe_and_spans", "best_span"): '''def best_span(start_logits, end_logits, context_mask, max_len):
    "All spans at once: an outer sum, masked to the valid ones; argmax returns the first maximum."
    start = torch.as_tensor(np.asarray(start_logits, dtype=np.float64))
    end = torch.as_tensor(np.asarray(end_logits, dtype=np.float64))
    inside = torch.as_tensor(np.asarray(context_mask, dtype=bool))
    n = len(start)
    s, e = torch.arange(n)[:, None], torch.arange(n)[None, :]
    valid = (s <= e) & (e - s < max_len) & inside[:, None] & inside[None, :]
    if not valid.any():
        return None
    scores = (start[:, None] + end[None, :]).masked_fill(~valid, float("-inf"))
    flat = int(scores.flatten().argmax())
    return flat // n, flat % n''',
}
# More correct answers, and answers that the hidden tests before the outside checks let through with full
# marks: symbols compared by their text, a pair counted once per word, pairs keyed or tied by their text,
# a span whose end lies outside the context.
TI_ALTERNATIVES_2 = {
    ("02_bpe_and_spans", "merge_pair"): '''def merge_pair(tokens, pair):
    "One pass with a flag that skips the symbol just merged."
    merged, skip = [], False
    for i, token in enumerate(tokens):
        if skip:
            skip = False
        elif i + 1 < len(tokens) and (token, tokens[i + 1]) == tuple(pair):
            merged.append(token + tokens[i + 1])
            skip = True
        else:
            merged.append(token)
    return merged''',
    ("02_bpe_and_spans", "most_frequent_pair"): '''from collections import Counter


def most_frequent_pair(corpus):
    "Counter per occurrence; max over the sorted pairs keeps the first (smallest) of equal counts."
    counts = Counter()
    for word, count in corpus.items():
        for i in range(len(word) - 1):
            counts[word[i], word[i + 1]] += count
    if not counts:
        return None
    return max(sorted(counts), key=counts.__getitem__)''',
    ("02_bpe_and_spans", "best_span"): '''def best_span(start_logits, end_logits, context_mask, max_len):
    "Ends first, then starts; the larger score wins, ties go to the smaller (start, end)."
    starts = [float(x) for x in start_logits]
    ends = [float(x) for x in end_logits]
    inside = [bool(x) for x in context_mask]
    best = None
    for e in range(len(ends)):
        for s in range(max(0, e - max_len + 1), e + 1):
            if inside[s] and inside[e]:
                key = (starts[s] + ends[e], -s, -e)
                if best is None or key > best:
                    best = key
    return None if best is None else (-best[1], -best[2])''',
}
TI_NEAR_MISSES_2 = {
    ("02_bpe_and_spans", "merge_pair"): '''def merge_pair(tokens, pair):
    "Compares the text two symbols spell with the pair's text, not the symbols themselves."
    merged, i = [], 0
    while i < len(tokens):
        if i + 1 < len(tokens) and tokens[i] + tokens[i + 1] == pair[0] + pair[1]:
            merged.append(tokens[i] + tokens[i + 1])
            i += 2
        else:
            merged.append(tokens[i])
            i += 1
    return merged''',
    ("02_bpe_and_spans", "most_frequent_pair"): '''def most_frequent_pair(corpus):
    "Counts a pair once per word (a set of the word's pairs), not once per occurrence."
    counts = {}
    for word, count in corpus.items():
        for pair in set(zip(word, word[1:])):
            counts[pair] = counts.get(pair, 0) + count
    if not counts:
        return None
    return min(counts, key=lambda pair: (-counts[pair], pair))''',
    ("02_bpe_and_spans", "best_span"): '''def best_span(start_logits, end_logits, context_mask, max_len):
    "Checks that the start is a context position, but not the end."
    starts = [float(x) for x in start_logits]
    ends = [float(x) for x in end_logits]
    inside = [bool(x) for x in context_mask]
    best, best_score = None, -math.inf
    for s in range(len(starts)):
        if inside[s]:
            for e in range(s, min(s + max_len, len(ends))):
                if starts[s] + ends[e] > best_score:
                    best, best_score = (s, e), starts[s] + ends[e]
    return best''',
}
TI_SPELLING = {
    ("02_bpe_and_spans", "most_frequent_pair"): '''def most_frequent_pair(corpus):
    "Counts pairs by the text they spell, so ('ab', 'c') and ('a', 'bc') add up."
    counts, pairs = {}, {}
    for word, count in corpus.items():
        for a, b in zip(word, word[1:]):
            counts[a + b] = counts.get(a + b, 0) + count
            pairs.setdefault(a + b, (a, b))
    if not counts:
        return None
    return pairs[min(counts, key=lambda text: (-counts[text], pairs[text]))]''',
}
TI_TIE_BY_TEXT = {
    ("02_bpe_and_spans", "most_frequent_pair"): '''def most_frequent_pair(corpus):
    "Breaks ties by the pair's text a + b instead of the tuple (a, b)."
    counts = {}
    for word, count in corpus.items():
        for pair in zip(word, word[1:]):
            counts[pair] = counts.get(pair, 0) + count
    if not counts:
        return None
    return min(counts, key=lambda pair: (-counts[pair], pair[0] + pair[1]))''',
}
TI_AUTO = {
    "01_attention": {"test_attention": 2, "test_attention_hidden": 4, "test_mean_pool": 2,
                     "test_mean_pool_hidden": 2},
    "02_bpe_and_spans": {"test_merge_pair": 1, "test_merge_pair_hidden": 2, "test_most_frequent_pair": 1,
                         "test_most_frequent_pair_hidden": 2, "test_best_span": 2, "test_best_span_hidden": 3},
}
TRANSFORMER_INTERNALS = Spec(
    name="transformer_internals",
    notebooks=["01_attention", "02_bpe_and_spans"],
    auto=TI_AUTO,
    manual={"01_attention": {"scaling_question": 4}},
    solutions={"01_attention": "attention", "02_bpe_and_spans": "merge_pair"},
    partial="mean_pool",
    wrong=TI_FAILING,
    variants={
        "alt1": Variant(TI_ALTERNATIVES, full(TI_AUTO, "attention", "mean_pool", "merge_pair",
                                              "most_frequent_pair", "best_span")),
        "nearmiss": Variant(TI_WRONG, {"test_attention": 0, "test_attention_hidden": 0, "test_mean_pool": 0,
                                       "test_mean_pool_hidden": 0, "test_merge_pair": 1,
                                       "test_merge_pair_hidden": 0, "test_most_frequent_pair": 1,
                                       "test_most_frequent_pair_hidden": 0, "test_best_span": 0,
                                       "test_best_span_hidden": 0}),
        "alt2": Variant(TI_ALTERNATIVES_2, full(TI_AUTO, "merge_pair", "most_frequent_pair", "best_span")),
        "nearmiss2": Variant(TI_NEAR_MISSES_2, {"test_merge_pair": 1, "test_merge_pair_hidden": 0,
                                                "test_most_frequent_pair": 1, "test_most_frequent_pair_hidden": 0,
                                                "test_best_span": 2, "test_best_span_hidden": 0}),
        "nearmiss3": Variant(TI_SPELLING, {"test_most_frequent_pair": 1, "test_most_frequent_pair_hidden": 0}),
        "nearmiss4": Variant(TI_TIE_BY_TEXT, {"test_most_frequent_pair": 1, "test_most_frequent_pair_hidden": 0}),
    },
)
SPECS = {spec.name: spec for spec in (LANGUAGE_MODELS, TRANSFORMER_INTERNALS)}
