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


# Lectures 05-08. Each wrong answer passes every visible assert of its cell; the hidden checks the grader decides
# fail it. All but byte_level_decode's per-token decoding got full marks from the in-kernel hidden tests.
L05, L06, L07, L08 = "05_transformer_block", "06_tasks", "07_bpe", "08_post_training"

L05_ALT = {
    (L05, "layer_norm"): '''def layer_norm(x, weight, bias, eps):
    "torch.var_mean with correction=0 (the biased variance) and rsqrt."
    variance, mean = torch.var_mean(x, dim=-1, keepdim=True, correction=0)
    return (x - mean) * torch.rsqrt(variance + eps) * weight + bias''',
    (L05, "rope_rotate"): '''def rope_rotate(x, position, base):
    "Each pair (x_j, x_j+d/2) as a complex number, turned by multiplying with e^(i angle)."
    half = x.shape[-1] // 2
    angle = position * base ** (-2 * torch.arange(half, dtype=torch.float64) / x.shape[-1])
    z = torch.complex(x[:half].double(), x[half:].double()) * torch.polar(torch.ones_like(angle), angle)
    return torch.cat([z.real, z.imag]).to(x.dtype)''',
}

L05_ALT2 = {
    (L05, "layer_norm"): '''def layer_norm(x, weight, bias, eps):
    "One vector at a time over the flattened leading dimensions (a loop)."
    rows = x.reshape(-1, x.shape[-1])
    out = torch.empty_like(rows)
    for i, row in enumerate(rows):
        centred = row - row.sum() / row.numel()
        out[i] = centred / (centred.square().sum() / row.numel() + eps) ** 0.5
    return out.reshape(x.shape) * weight + bias''',
    (L05, "rope_rotate"): '''def rope_rotate(x, position, base):
    "A loop over the pairs with Python floats (math.cos, math.sin)."
    d = len(x)
    out = x.double().clone()
    for j in range(d // 2):
        angle = position * base ** (-2 * j / d)
        a, b = float(x[j]), float(x[j + d // 2])
        out[j] = a * math.cos(angle) - b * math.sin(angle)
        out[j + d // 2] = b * math.cos(angle) + a * math.sin(angle)
    return out.to(x.dtype)''',
}

L05_WRONG = {
    (L05, "layer_norm"): '''def layer_norm(x, weight, bias, eps):
    "Centres the caller's tensor in place (LayerNorm ignores a shift, so every value is still right)."
    x -= x.mean(-1, keepdim=True)
    return weight * x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + eps) + bias''',
    (L05, "rope_rotate"): '''def rope_rotate(x, position, base):
    "Ignores base: always the chat model's rope_theta."
    d = x.shape[-1]
    theta = chat_config.rope_parameters["rope_theta"] ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    cos, sin = torch.cos(position * theta), torch.sin(position * theta)
    first, second = x[: d // 2].double(), x[d // 2:].double()
    return torch.cat([first * cos - second * sin, second * cos + first * sin]).to(x.dtype)''',
}

L06_ALT = {
    (L06, "top_k_fill"): '''def top_k_fill(logits, input_ids, mask_token_id, k):
    "Counts the masks in a list, softmax in float32, argsort instead of topk."
    ids = input_ids.tolist()
    if ids.count(mask_token_id) != 1:
        raise ValueError(f"expected one mask token, found {ids.count(mask_token_id)}")
    probs = logits[ids.index(mask_token_id)].softmax(dim=-1)
    return [(int(i), probs[i].item()) for i in probs.argsort(descending=True)[:k]]''',
    (L06, "char_span_to_tokens"): '''def char_span_to_tokens(offsets, sequence_ids, start_char, end_char):
    "A table from each context character to its token."
    owner = {}
    for t, ((lo, hi), seq) in enumerate(zip(offsets, sequence_ids)):
        if seq == 1:
            for c in range(lo, hi):
                owner.setdefault(c, t)
    if start_char not in owner or end_char - 1 not in owner:
        raise ValueError("the span does not start and end inside context tokens")
    return owner[start_char], owner[end_char - 1]''',
}

L06_ALT2 = {
    (L06, "top_k_fill"): '''def top_k_fill(logits, input_ids, mask_token_id, k):
    "numpy: a stable softmax in float64 and argsort."
    where = np.flatnonzero(input_ids.numpy() == mask_token_id)
    if where.size != 1:
        raise ValueError("the sequence must hold exactly one mask token")
    row = logits[where[0]].double().numpy()
    probs = np.exp(row - row.max())
    probs /= probs.sum()
    return [(int(i), float(probs[i])) for i in np.argsort(-probs, kind="stable")[:k]]''',
    (L06, "char_span_to_tokens"): '''def char_span_to_tokens(offsets, sequence_ids, start_char, end_char):
    "Context tokens first, then a search for each end of the span."
    context = [(t, lo, hi) for t, ((lo, hi), seq) in enumerate(zip(offsets, sequence_ids)) if seq == 1]
    found = []
    for char in (start_char, end_char - 1):
        tokens = [t for t, lo, hi in context if lo <= char < hi]
        if not tokens:
            raise ValueError(f"character {char} lies in no context token")
        found.append(tokens[0])
    return tuple(found)''',
}

L06_WRONG = {
    (L06, "top_k_fill"): '''def top_k_fill(logits, input_ids, mask_token_id, k):
    "Subtracts the row's maximum in place, for stability: right values, but the caller's logits change."
    positions = (input_ids == mask_token_id).nonzero().flatten()
    if len(positions) != 1:
        raise ValueError(f"expected exactly one mask token, found {len(positions)}")
    row = logits[positions[0]]
    row -= row.max()
    probs = row.double().exp() / row.double().exp().sum()
    top = torch.topk(probs, k)
    return [(int(i), float(p)) for p, i in zip(top.values, top.indices)]''',
    (L06, "char_span_to_tokens"): '''def char_span_to_tokens(offsets, sequence_ids, start_char, end_char):
    "Validates the start only: the last token is the last context token that starts before end_char."
    context = [t for t, s in enumerate(sequence_ids) if s == 1]
    first = next((t for t in context if offsets[t][0] <= start_char < offsets[t][1]), None)
    if first is None:
        raise ValueError(f"character {start_char} is in no context token")
    return first, max(t for t in context if offsets[t][0] < end_char)''',
}

L07_ALT = {
    (L07, "count_pairs"): '''from collections import Counter


def count_pairs(word_freqs):
    "A Counter updated with one mapping per word."
    pairs = Counter()
    for symbols, freq in word_freqs.items():
        for pair in zip(symbols[:-1], symbols[1:]):
            pairs.update({pair: freq})
    return pairs''',
    (L07, "byte_level_decode"): '''from tokenizers import decoders


def byte_level_decode(tokens):
    "The tokenizers library's own byte-level decoder."
    return decoders.ByteLevel().decode(list(tokens))''',
}

L07_ALT2 = {
    (L07, "count_pairs"): '''from collections import defaultdict


def count_pairs(word_freqs):
    "defaultdict(int), indices instead of zip."
    pairs = defaultdict(int)
    for symbols, freq in word_freqs.items():
        for i in range(len(symbols) - 1):
            pairs[symbols[i], symbols[i + 1]] += freq
    return pairs''',
    (L07, "byte_level_decode"): '''def byte_level_decode(tokens):
    "GPT-2's own construction of the table (bytes_to_unicode), inverted."
    bs = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    to_byte = {chr(c): b for b, c in zip(bs, cs)}
    return bytearray(to_byte[c] for c in "".join(tokens)).decode("utf-8")''',
}

L07_WRONG = {
    (L07, "count_pairs"): '''def count_pairs(word_freqs):
    "Counts pairs by their joined text: ('a', 'bc') and ('ab', 'c') become one entry."
    joined, pair_of = {}, {}
    for symbols, freq in word_freqs.items():
        for left, right in zip(symbols, symbols[1:]):
            joined[left + right] = joined.get(left + right, 0) + freq
            pair_of.setdefault(left + right, (left, right))
    return {pair_of[text]: count for text, count in joined.items()}''',
    (L07, "byte_level_decode"): '''def byte_level_decode(tokens):
    "Decodes each token's bytes separately (a character split across tokens breaks)."
    printable = set(range(33, 127)) | set(range(161, 173)) | set(range(174, 256))
    char_to_byte, n = {}, 0
    for b in range(256):
        if b in printable:
            char_to_byte[chr(b)] = b
        else:
            char_to_byte[chr(256 + n)] = b
            n += 1
    return "".join(bytes(char_to_byte[c] for c in token).decode("utf-8", errors="replace") for token in tokens)''',
}

L08_ALT = {
    (L08, "assistant_labels"): '''def assistant_labels(input_ids, header_ids, end_ids):
    "A state machine: outside a reply, inside a reply."
    labels, inside, i = [], False, 0
    while i < len(input_ids):
        if not inside and input_ids[i:i + len(header_ids)] == header_ids:
            labels += [-100] * len(header_ids)
            i += len(header_ids)
            inside = True
        elif inside and input_ids[i:i + len(end_ids)] == end_ids:
            labels += list(end_ids)
            i += len(end_ids)
            inside = False
        else:
            labels.append(input_ids[i] if inside else -100)
            i += 1
    return labels''',
    (L08, "sft_loss"): '''def sft_loss(logits, labels):
    "log_softmax, gather and a boolean mask, by hand."
    logprobs = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    targets = labels[:, 1:]
    keep = targets != -100
    return -logprobs[keep].gather(1, targets[keep][:, None]).mean()''',
}

L08_ALT2 = {
    (L08, "assistant_labels"): '''def assistant_labels(input_ids, header_ids, end_ids):
    "Copy the ids, then overwrite with -100 what lies outside the replies."
    ids, h, e = list(input_ids), len(header_ids), len(end_ids)
    keep = [False] * len(ids)
    starts = [i + h for i in range(len(ids) - h + 1) if ids[i:i + h] == header_ids]
    for start in starts:
        j = start
        while j < len(ids) and ids[j:j + e] != end_ids:
            keep[j] = True
            j += 1
        for m in range(j, min(j + e, len(ids))):
            keep[m] = True
    return [i if k else -100 for i, k in zip(ids, keep)]''',
    (L08, "sft_loss"): '''def sft_loss(logits, labels):
    "Per-token losses in float64, summed, divided by the count, back in the logits' dtype."
    targets = labels[:, 1:].reshape(-1)
    losses = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).double(), targets, ignore_index=-100,
                             reduction="none")
    return (losses.sum() / (targets != -100).sum()).to(logits.dtype)''',
}

L08_WRONG = {
    (L08, "assistant_labels"): '''def assistant_labels(input_ids, header_ids, end_ids):
    "Finds each header by a text search with a comma after it but none before: '1,2,' matches inside '11,2,'."
    text = ",".join(map(str, input_ids)) + ","
    pattern = ",".join(map(str, header_ids)) + ","
    labels = [-100] * len(input_ids)
    at = text.find(pattern)
    while at >= 0:
        i = text[:at].count(",") + len(header_ids)
        while i < len(input_ids):
            if input_ids[i:i + len(end_ids)] == end_ids:
                labels[i:i + len(end_ids)] = end_ids
                break
            labels[i] = input_ids[i]
            i += 1
        at = text.find(pattern, at + len(pattern))
    return labels''',
    (L08, "sft_loss"): '''def sft_loss(logits, labels):
    "Divides by the labelled positions counted before the shift (the first position is never predicted)."
    vocab = logits.shape[-1]
    total = F.cross_entropy(logits[:, :-1].reshape(-1, vocab).float(), labels[:, 1:].reshape(-1), ignore_index=-100,
                            reduction="sum")
    return total / (labels != -100).sum()''',
}

L08_WRONG2 = {  # with assistant_labels answered correctly (the alternative's)
    (L08, "assistant_labels"): L08_ALT[L08, "assistant_labels"],
    (L08, "sft_loss"): '''def sft_loss(logits, labels):
    "The right value, but it marks the first position ignored in the caller's labels."
    labels[:, 0] = -100
    vocab = logits.shape[-1]
    return F.cross_entropy(logits[:, :-1].reshape(-1, vocab).float(), labels[:, 1:].reshape(-1), ignore_index=-100)''',
}


LECTURE_VARIANTS[L05] = {"alt": Variant(L05_ALT, {}), "alt2": Variant(L05_ALT2, {}),
                         "wrong": Variant(L05_WRONG, {"test_layer_norm": 0, "test_rope_rotate": 0})}
LECTURE_VARIANTS[L06] = {"alt": Variant(L06_ALT, {}), "alt2": Variant(L06_ALT2, {}),
                         "wrong": Variant(L06_WRONG, {"test_top_k_fill": 0, "test_char_span_to_tokens": 0})}
LECTURE_VARIANTS[L07] = {"alt": Variant(L07_ALT, {}), "alt2": Variant(L07_ALT2, {}),
                         "wrong": Variant(L07_WRONG, {"test_count_pairs": 0, "test_byte_level_decode": 0})}
LECTURE_VARIANTS[L08] = {"alt": Variant(L08_ALT, {}), "alt2": Variant(L08_ALT2, {}),
                         "wrong": Variant(L08_WRONG, {"test_assistant_labels": 0, "test_sft_loss": 0}),
                         "wrong2": Variant(L08_WRONG2, {"test_sft_loss": 0})}
