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

L02_ALT = {
    ("02_bert_embeddings", "word_vector"): '''import re


def word_vector(sentence: str, word: str) -> torch.Tensor:
    """Find the word with a regular expression, then average the tokens whose characters lie inside it."""
    match = re.search(rf"(?<!\\w){re.escape(word)}(?!\\w)", sentence, flags=re.IGNORECASE)
    if match is None:
        raise ValueError(f"{word!r} is not a word of {sentence!r}")
    encoding = tokenizer(sentence, return_offsets_mapping=True, return_tensors="pt")
    offsets = encoding.pop("offset_mapping")[0].tolist()
    inside = [t for t, (s, e) in enumerate(offsets) if e > s and s >= match.start() and e <= match.end()]
    hidden = model(**encoding.to(model.device)).last_hidden_state[0]
    return hidden[inside].mean(dim=0)''',
    ("02_bert_embeddings", "semantic_search"): '''def semantic_search(query: str, documents: list[str], k: int = 3) -> list[tuple[int, float]]:
    """One document at a time, F.cosine_similarity, then Python's sorted."""
    q = embed([query])[0]
    scored = [(i, F.cosine_similarity(q, embed([d])[0], dim=0).item()) for i, d in enumerate(documents)]
    return sorted(scored, key=lambda pair: pair[1], reverse=True)[:k]''',
}

L02_ALT2 = {
    ("02_bert_embeddings", "word_vector"): '''def word_vector(sentence: str, word: str) -> torch.Tensor:
    """Group the tokens by word with word_ids() and rebuild each word from its pieces with decode."""
    encoding = tokenizer(sentence, return_tensors="pt").to(model.device)
    groups = {}
    for position, w in enumerate(encoding.word_ids()):
        if w is not None:
            groups.setdefault(w, []).append(position)
    for positions in groups.values():
        if tokenizer.decode(encoding["input_ids"][0, positions]).replace(" ", "") == word.lower():
            return model(**encoding).last_hidden_state[0, positions].mean(dim=0)
    raise ValueError(f"{word!r} is not a word of {sentence!r}")''',
    ("02_bert_embeddings", "semantic_search"): '''def semantic_search(query: str, documents: list[str], k: int = 3) -> list[tuple[int, float]]:
    """The lecture's cosine_matrix and a stable argsort."""
    similarities = cosine_matrix(embed([query] + list(documents)))[0, 1:]
    order = torch.argsort(similarities, descending=True, stable=True)[:k]
    return [(int(i), float(similarities[i])) for i in order]''',
}

L02_NEARMISS = {
    # Missed before: no hidden word's pieces also started a longer word.
    ("02_bert_embeddings", "word_vector"): '''def word_vector(sentence: str, word: str) -> torch.Tensor:
    """Finds the word's pieces as a run of tokens, which may stop inside a longer word."""
    pieces = tokenizer.tokenize(word)
    encoding = tokenizer(sentence, return_tensors="pt").to(model.device)
    tokens = tokenizer.convert_ids_to_tokens(encoding["input_ids"][0])
    for i in range(len(tokens) - len(pieces) + 1):
        if tokens[i:i + len(pieces)] == pieces:
            return model(**encoding).last_hidden_state[0, i:i + len(pieces)].mean(dim=0)
    raise ValueError(f"{word!r} does not occur in {sentence!r}")''',
    # Missed before: the scores were compared to 1e-4.
    ("02_bert_embeddings", "semantic_search"): '''def semantic_search(query: str, documents: list[str], k: int = 3) -> list[tuple[int, float]]:
    """Rounds the scores to four decimals."""
    vectors = F.normalize(embed([query, *documents]), dim=-1)
    scores = vectors[1:] @ vectors[0]
    top = scores.topk(min(k, len(documents)))
    return [(int(i), round(float(s), 4)) for s, i in zip(top.values, top.indices)]''',
}

L03_ALT = {
    ("03_attention_heads", "attention"): '''def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, allowed: torch.Tensor | None = None):
    """einsum, an additive mask and a softmax written out (the maximum subtracted first)."""
    scores = torch.einsum("...qd,...kd->...qk", q, k) / q.shape[-1] ** 0.5
    if allowed is not None:
        scores = scores + torch.where(allowed, 0.0, float("-inf"))
    exp = (scores - scores.amax(dim=-1, keepdim=True)).exp()
    weights = exp / exp.sum(dim=-1, keepdim=True)
    return torch.einsum("...qk,...kv->...qv", weights, v), weights''',
    ("03_attention_heads", "previous_token_score"): '''def previous_token_score(weights: torch.Tensor) -> float:
    """A loop over the queries, summed in Python floats."""
    T = weights.shape[0]
    return sum(weights[i, i - 1].item() for i in range(1, T)) / (T - 1)''',
}

L03_NEARMISS = {
    # Missed before: no hidden scores were large enough to overflow exp.
    ("03_attention_heads", "attention"): '''def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, allowed: torch.Tensor | None = None):
    """A softmax written out without subtracting the maximum: exp overflows on large scores."""
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    exp = scores.exp()
    if allowed is not None:
        exp = exp * allowed
    weights = exp / exp.sum(dim=-1, keepdim=True)
    return weights @ v, weights''',
    ("03_attention_heads", "previous_token_score"): '''def previous_token_score(weights: torch.Tensor) -> float:
    """Makes the head causal first (drops the weights on later tokens and renormalises)."""
    causal = weights.tril()
    causal = causal / causal.sum(dim=-1, keepdim=True)
    return torch.diagonal(causal, offset=-1).float().mean().item()''',
}

L04_ALT = {
    ("04_fine_tuning", "f1_by_hand"): '''def f1_by_hand(labels, preds) -> float:
    """Precision and recall first, in a loop over the pairs."""
    tp = fp = fn = 0
    for y, p in zip(labels, preds):
        tp += int(y == 1 and p == 1)
        fp += int(y == 0 and p == 1)
        fn += int(y == 1 and p == 0)
    if tp == 0:
        return 0.0
    precision, recall = tp / (tp + fp), tp / (tp + fn)
    return 2 * precision * recall / (precision + recall)''',
    ("04_fine_tuning", "lora_trainable_parameters"): '''def lora_trainable_parameters(hidden_size: int, n_layers: int, r: int, n_targets: int, num_labels: int) -> int:
    """Adds up the shapes of A, B and the head, one layer at a time."""
    total = 0
    for _ in range(n_layers):
        for _ in range(n_targets):
            total += r * hidden_size + hidden_size * r
    return total + (hidden_size + 1) * num_labels''',
}

L04_NEARMISS = {
    ("04_fine_tuning", "f1_by_hand"): '''def f1_by_hand(labels, preds) -> float:
    """Returns the int 0 when there is no true positive."""
    labels, preds = np.asarray(labels), np.asarray(preds)
    tp = int(np.sum((labels == 1) & (preds == 1)))
    fp = int(np.sum((labels == 0) & (preds == 1)))
    fn = int(np.sum((labels == 1) & (preds == 0)))
    return 0 if tp == 0 else 2 * tp / (2 * tp + fp + fn)''',
    ("04_fine_tuning", "lora_trainable_parameters"): '''def lora_trainable_parameters(hidden_size: int, n_layers: int, r: int, n_targets: int, num_labels: int) -> int:
    """Counts the head for two labels, whatever num_labels says."""
    return n_layers * n_targets * r * 2 * hidden_size + hidden_size * 2 + 2''',
}

# Per lecture notebook (stem): its scripted students and the points they should get per test cell.
LECTURE_VARIANTS: dict[str, dict[str, Variant]] = {
    "01_huggingface_tour": {
        "alt": Variant(L01_ALT, {"test_sequence_log_prob": 3, "test_nucleus_filter": 3}),
        "alt2": Variant(L01_ALT2, {"test_sequence_log_prob": 3, "test_nucleus_filter": 3}),
        "nearmiss": Variant(L01_NEARMISS, {"test_sequence_log_prob": 0, "test_nucleus_filter": 0}),
    },
    "02_bert_embeddings": {
        "alt": Variant(L02_ALT, {"test_word_vector": 3, "test_semantic_search": 2}),
        "alt2": Variant(L02_ALT2, {"test_word_vector": 3, "test_semantic_search": 2}),
        "nearmiss": Variant(L02_NEARMISS, {"test_word_vector": 0, "test_semantic_search": 0}),
    },
    "03_attention_heads": {
        "alt": Variant(L03_ALT, {"test_attention": 3, "test_previous_token_score": 2}),
        "nearmiss": Variant(L03_NEARMISS, {"test_attention": 0, "test_previous_token_score": 0}),
    },
    "04_fine_tuning": {
        "alt": Variant(L04_ALT, {"test_f1_by_hand": 2, "test_lora_trainable_parameters": 2}),
        "nearmiss": Variant(L04_NEARMISS, {"test_f1_by_hand": 0, "test_lora_trainable_parameters": 0}),
    },
}

# Lecture 09 has two test cells per exercise: test_<id> (visible asserts, and the hidden checks of the visible
# inputs) and test_<id>_hidden (hidden checks only).
L09 = "09_decoding_evaluation"
L09_ALT = {
    (L09, "ngram_precision"): '''from collections import Counter


def ngram_precision(candidate, references, n):
    """Counter algebra: | keeps the larger of two counts, & the smaller."""
    def grams(tokens):
        return Counter(zip(*(tokens[i:] for i in range(n))))

    most = Counter()
    for reference in references:
        most |= grams(reference)
    mine = grams(candidate)
    return sum((mine & most).values()), sum(mine.values())''',
    (L09, "pick_answers"): '''def pick_answers(option_logprobs, normalise=False):
    """A float64 tensor of scores per question; torch.argmax returns the first of equal maxima."""
    picks = []
    for options in option_logprobs:
        scores = torch.stack([lp.double().sum() / (len(lp) if normalise else 1) for lp in options])
        picks.append(int(torch.argmax(scores)))
    return picks''',
}

L09_ALT2 = {
    (L09, "ngram_precision"): '''def ngram_precision(candidate, references, n):
    """Lists of n-grams and list.count: slow, but plain."""
    grams = [tuple(candidate[i:i + n]) for i in range(len(candidate) - n + 1)]
    in_references = [[tuple(r[i:i + n]) for i in range(len(r) - n + 1)] for r in references]
    clipped = 0
    for gram in set(grams):
        clipped += min(grams.count(gram), max([ref.count(gram) for ref in in_references], default=0))
    return clipped, len(grams)''',
    (L09, "pick_answers"): '''def pick_answers(option_logprobs, normalise=False):
    """numpy: float64 scores and np.argmax (the first of equal maxima), made a Python int."""
    picks = []
    for options in option_logprobs:
        scores = np.array([float(lp.sum()) / (lp.numel() if normalise else 1) for lp in options])
        picks.append(int(np.argmax(scores)))
    return picks''',
}

L09_NEARMISS = {  # both pass every visible assert, and the hidden checks of the visible inputs
    (L09, "ngram_precision"): '''def ngram_precision(candidate, references, n):
    """max() over the references' counts, which raises when there are no references."""
    grams = Counter(tuple(candidate[i:i + n]) for i in range(len(candidate) - n + 1))
    ref_grams = [Counter(tuple(r[i:i + n]) for i in range(len(r) - n + 1)) for r in references]
    clipped = sum(min(count, max(rc[g] for rc in ref_grams)) for g, count in grams.items())
    return clipped, sum(grams.values())''',
    (L09, "pick_answers"): '''def pick_answers(option_logprobs, normalise=False):
    """Sorts the options by score: of equal scores the last one comes out on top."""
    picks = []
    for options in option_logprobs:
        scores = [float(lp.mean()) if normalise else float(lp.sum()) for lp in options]
        picks.append(sorted(range(len(scores)), key=lambda i: scores[i])[-1])
    return picks''',
}

L09_WRONG = {  # both fail the visible asserts too
    (L09, "ngram_precision"): '''def ngram_precision(candidate, references, n):
    """Counts every candidate n-gram found in some reference, without clipping."""
    grams = [tuple(candidate[i:i + n]) for i in range(len(candidate) - n + 1)]
    seen = {tuple(r[i:i + n]) for r in references for i in range(len(r) - n + 1)}
    return sum(g in seen for g in grams), len(grams)''',
    (L09, "pick_answers"): '''def pick_answers(option_logprobs, normalise=False):
    """Always ranks by the sum, whatever normalise says."""
    return [max(range(len(options)), key=lambda i: float(options[i].sum())) for options in option_logprobs]''',
}

LECTURE_VARIANTS[L09] = {
    "alt": Variant(L09_ALT, {}),
    "alt2": Variant(L09_ALT2, {}),
    "nearmiss": Variant(L09_NEARMISS, {"test_ngram_precision_hidden": 0, "test_pick_answers_hidden": 0}),
    "wrong": Variant(L09_WRONG, {"test_ngram_precision": 0, "test_ngram_precision_hidden": 0,
                                 "test_pick_answers": 0, "test_pick_answers_hidden": 0}),
}

L10 = "10_token_tasks_seq2seq"
L10_ALT = {
    (L10, "align_labels"): '''def align_labels(word_labels, word_ids):
    """Pairs each token's word id with the previous token's."""
    before = [None] + list(word_ids[:-1])
    return [-100 if w is None or w == b else word_labels[w] for w, b in zip(word_ids, before)]''',
    (L10, "entity_spans"): '''def entity_spans(tags):
    """Starts an entity at every tag that is not O, then extends it while I- tags of its type follow."""
    spans, i = [], 0
    while i < len(tags):
        if tags[i] == "O":
            i += 1
            continue
        kind, start = tags[i][2:], i
        i += 1
        while i < len(tags) and tags[i] == "I-" + kind:
            i += 1
        spans.append((kind, start, i))
    return spans''',
    (L10, "shift_right"): '''def shift_right(labels, start_id, pad_id):
    """torch.roll (a new tensor), the first column overwritten, then torch.where for the -100s."""
    shifted = torch.roll(labels, shifts=1, dims=1)
    shifted[:, 0] = start_id
    return torch.where(shifted == -100, torch.tensor(pad_id, dtype=labels.dtype), shifted)''',
}

L10_NEARMISS = {  # all three pass every visible assert, and the hidden checks of the visible inputs
    (L10, "align_labels"): '''def align_labels(word_labels, word_ids):
    """Takes the first token for [CLS]: wrong without special tokens."""
    labels, previous = [-100], None
    for word in word_ids[1:]:
        labels.append(-100 if word is None or word == previous else word_labels[word])
        previous = word
    return labels''',
    (L10, "entity_spans"): '''def entity_spans(tags):
    """Appends a sentinel O to the caller's list to close the last entity."""
    tags.append("O")
    spans, kind, start = [], None, 0
    for i, tag in enumerate(tags):
        continues = tag.startswith("I-") and tag[2:] == kind
        if kind is not None and not continues:
            spans.append((kind, start, i))
            kind = None
        if tag != "O" and not continues:
            kind, start = tag[2:], i
    return spans''',
    (L10, "shift_right"): '''def shift_right(labels, start_id, pad_id):
    """Replaces the -100s in the caller's tensor, in place, before shifting."""
    labels.masked_fill_(labels == -100, pad_id)
    start = torch.full((labels.shape[0], 1), start_id, dtype=labels.dtype)
    return torch.cat([start, labels[:, :-1]], dim=1)''',
}

LECTURE_VARIANTS[L10] = {
    "alt": Variant(L10_ALT, {}),
    "nearmiss": Variant(L10_NEARMISS, {"test_align_labels_hidden": 0, "test_entity_spans_hidden": 0,
                                       "test_shift_right_hidden": 0}),
}
