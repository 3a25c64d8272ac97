"""What is specific to lectures 05-08: their generated data sets, the BPE claim of 07, their exercises.

The notebooks themselves are executed by tests/test_lectures.py (every source/lectures notebook);
this file checks the facts they rest on without running them: the template data in
helpers.toy_data is well formed and its held-out split is really held out, our BPE training loop
reproduces the `tokenizers` trainer merge for merge, and each new lecture has two exercises that
are not the graded transformer_internals ones, whose hidden blocks only hand answers to the grader
(tests/test_lectures.py grades their scripted students, tests/lecture_variants.py).
"""

from __future__ import annotations

from collections import Counter

import nbformat
import pytest

import helpers
from helpers import toy_data

from support import ROOT

NEW_LECTURES = {
    "05_transformer_block.ipynb": {"layer_norm", "rope_rotate"},
    "06_tasks.ipynb": {"top_k_fill", "char_span_to_tokens"},
    "07_bpe.ipynb": {"count_pairs", "byte_level_decode"},
    "08_post_training.ipynb": {"assistant_labels", "sft_loss"},
}
# The graded assignment's exercises: the lectures must not hand out their answers.
GRADED_ELSEWHERE = {"masked_attention", "bpe_merge", "merge_pair", "mean_pool", "mean_pooling", "best_span",
                    "best_answer_span"}


@pytest.fixture(scope="module")
def encoder_tokenizer():
    """Return the encoder's tokenizer (offline)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(helpers.resolve_model("encoder").location)


# ---------------------------------------------------------------- helpers.toy_data


def test_masked_facts_are_well_formed(encoder_tokenizer):
    for split in ("train", "test"):
        facts = helpers.masked_facts(split)
        assert facts and all(type(f) is helpers.MaskedFact for f in facts)
        for fact in facts:
            assert fact.template.count("{mask}") == 1, fact
            assert fact.text("[MASK]").count("[MASK]") == 1
            # Each answer must be one word piece, or a single [MASK] could not stand for it.
            assert encoder_tokenizer.tokenize(fact.answer) == [fact.answer], fact.answer
    train_frames = {f.template for f in helpers.masked_facts("train")}
    assert not train_frames & {f.template for f in helpers.masked_facts("test")}, "held-out sentences occur in training"
    assert {f.answer for f in helpers.masked_facts("test")} <= {f.answer for f in helpers.masked_facts("train")}, (
        "the held-out split tests known facts in new frames")


def test_qa_examples_answer_spans_and_split():
    train = helpers.qa_examples(200, "train", seed=1)
    test = helpers.qa_examples(100, "test", seed=1)
    for example in train + test:
        assert type(example) is helpers.QAExample
        start = example.answer_start
        assert example.context[start:start + len(example.answer)] == example.answer, example
        assert example.question.endswith("?")
    names = lambda rows: {r.context.split()[0] for r in rows}  # noqa: E731
    assert not names(train) & names(test), "held-out questions must be about unseen people"
    years = lambda rows: {w.rstrip(".") for r in rows for w in r.context.split() if w.rstrip(".").isdigit()}  # noqa: E731
    assert max(map(int, years(train))) < min(map(int, years(test))), "held-out years must be unseen"
    kinds = Counter(r.question.split()[0] for r in train)
    assert set(kinds) == {"Where", "When", "What"}, kinds


def test_qa_examples_are_reproducible_and_seeded():
    assert helpers.qa_examples(20, "train", seed=3) == helpers.qa_examples(20, "train", seed=3)
    assert helpers.qa_examples(20, "train", seed=3) != helpers.qa_examples(20, "train", seed=4)
    assert helpers.qa_examples(0) == []


def test_toy_data_rejects_unknown_split():
    with pytest.raises(ValueError, match="split"):
        helpers.qa_examples(3, "validation")
    with pytest.raises(ValueError, match="split"):
        helpers.masked_facts("dev")


def test_toy_data_answers_fit_the_encoder_qa_tokens(encoder_tokenizer):
    """The notebook maps answer characters to tokens with char_to_token: it must find both ends."""
    for example in helpers.qa_examples(60, "test"):
        enc = encoder_tokenizer(example.question, example.context)
        first = enc.char_to_token(example.answer_start, sequence_index=1)
        last = enc.char_to_token(example.answer_start + len(example.answer) - 1, sequence_index=1)
        assert first is not None and last is not None and first <= last, example


# ---------------------------------------------------------------- 07: BPE by hand equals the library


def _train_by_hand(counts: Counter, alphabet: list[str], n_merges: int) -> list[tuple[str, str]]:
    """Return BPE merges: most frequent pair first, ties to the smallest (left id, right id)."""
    ids = {s: i for i, s in enumerate(sorted(alphabet))}
    splits = {w: list(w) for w in counts}
    merges = []
    for _ in range(n_merges):
        pairs = Counter()
        for word, symbols in splits.items():
            for pair in zip(symbols, symbols[1:]):
                pairs[pair] += counts[word]
        if not pairs:
            break
        best = max(pairs, key=lambda p: (pairs[p], -ids[p[0]], -ids[p[1]]))
        merges.append(best)
        ids[best[0] + best[1]] = len(ids)
        for word, symbols in splits.items():
            out, i = [], 0
            while i < len(symbols):
                if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == best:
                    out.append(best[0] + best[1])
                    i += 2
                else:
                    out.append(symbols[i])
                    i += 1
            splits[word] = out
    return merges


@pytest.mark.parametrize("corpus", [
    ["the cat sat on the mat", "the dog sat on the log", "a cat met a dog"] * 2,
    ["low lower lowest", "new newer newest", "wide wider widest", "the end"],
])
def test_bpe_merges_by_hand_equal_the_trainer(corpus):
    import json

    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    n_merges = 25
    trainer = trainers.BpeTrainer(vocab_size=len(alphabet) + n_merges, initial_alphabet=alphabet,
                                  special_tokens=[], show_progress=False)
    tokenizer.train_from_iterator(corpus, trainer)
    library = [tuple(m) for m in json.loads(tokenizer.to_str())["model"]["merges"]]
    counts = Counter(w for line in corpus for w, _ in tokenizer.pre_tokenizer.pre_tokenize_str(line))
    assert _train_by_hand(counts, alphabet, n_merges) == library


# ---------------------------------------------------------------- the exercises of 05-08


@pytest.mark.parametrize("name", sorted(NEW_LECTURES))
def test_new_lecture_exercises(name):
    nb = nbformat.read(ROOT / "source" / "lectures" / name, as_version=4)
    answers = {c.metadata["nbgrader"]["grade_id"] for c in nb.cells
               if c.metadata.get("nbgrader", {}).get("solution")}
    assert answers == NEW_LECTURES[name], answers
    assert not answers & GRADED_ELSEWHERE, "a lecture exercise would hand out a graded answer"
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade"):
            source = cell.source
            hidden = source.split("### BEGIN HIDDEN TESTS")[1].split("### END HIDDEN TESTS")[0]
            visible = source.replace(hidden, "")
            # Decided outside the kernel: the hidden block hands answers to the grader and asserts nothing.
            assert "answer(" in hidden and "assert " not in hidden, (
                f"{meta['grade_id']}: the hidden block hands answers to the grader (helpers.checks.answer), no asserts")
            assert "assert " in visible and "print(" in visible, meta["grade_id"]

