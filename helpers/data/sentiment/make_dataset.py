"""Generate the course's small sentiment data set (train.jsonl, test.jsonl) from templates.

Every sentence is built from the hand-written templates and word lists below, with a fixed seed,
so running this script again reproduces the committed files byte for byte:

    python helpers/data/sentiment/make_dataset.py            # rewrites the files next to it
    python helpers/data/sentiment/make_dataset.py --out DIR  # writes them into DIR instead

The held-out (test) split uses templates and several adjectives that never occur in the training
split, so a classifier must generalise beyond memorised sentence frames.
"""

from __future__ import annotations

import argparse
import json
import random
from itertools import product
from pathlib import Path

SEED = 2026
TRAIN_PER_LABEL = 150
TEST_PER_LABEL = 50
LABELS = {0: "negative", 1: "positive"}

NOUNS = {
    "movie": ["film", "movie", "plot", "acting", "soundtrack", "ending", "script", "cast", "sequel", "documentary"],
    "restaurant": ["meal", "pasta", "soup", "service", "dessert", "waiter", "pizza", "menu", "coffee", "curry"],
    "product": ["phone", "laptop", "battery", "tablet", "charger", "keyboard", "blender", "camera", "backpack",
                "vacuum cleaner"],
}

# Adjectives seen in training, and adjectives kept for the held-out split only.
ADJECTIVES = {
    "train": {1: ["great", "wonderful", "excellent", "delightful", "superb", "fantastic", "lovely", "brilliant",
                  "impressive", "charming"],
              0: ["terrible", "awful", "boring", "disappointing", "dreadful", "bland", "poor", "horrible",
                  "mediocre", "annoying"]},
    "held_out": {1: ["outstanding", "marvelous", "terrific", "splendid", "enjoyable", "pleasant"],
                 0: ["dismal", "atrocious", "lousy", "tedious", "unpleasant", "pathetic"]},
}

# Templates: {noun}, {adj} (an adjective of the sentence's own label), {Adj} (capitalised),
# {a} (the article that fits {adj}), {opp} (an adjective of the other label, used under negation),
# {verb} and {phrase} (label-specific).
TEMPLATES = {
    "train": {
        "any": ["The {noun} was {adj}.", "What {a} {adj} {noun}!", "I found the {noun} {adj}.",
                "Honestly, the {noun} is {adj}.", "{Adj} {noun}, {phrase}", "I {verb} the {noun}."],
        1: ["I have no complaints about the {noun}."],
        0: ["The {noun} was not {opp} at all."],
    },
    "test": {
        "any": ["Our {noun} turned out {adj}.", "Everyone agreed the {noun} felt {adj}.",
                "This {noun} is really {adj}.", "My friends thought the {noun} was {adj}.",
                "I {verb} the {noun}, to be honest."],
        1: ["I cannot fault the {noun}."],
        0: ["Sadly, the {noun} was far from {opp}."],
    },
}

PHRASES = {1: ["would recommend.", "I will be back.", "worth every penny."],
           0: ["would not recommend.", "never again.", "a waste of money."]}
VERBS = {"train": {1: ["loved", "enjoyed", "adored"], 0: ["hated", "disliked", "regretted"]},
         "test": {1: ["was thrilled with", "was pleasantly surprised by"],
                  0: ["was fed up with", "was let down by"]}}


def _pools(split: str, label: int) -> list[list[tuple[str, str]]]:
    """Return, per template of ``split`` for ``label``, every distinct (sentence, domain) it gives, sorted."""
    adjectives = ADJECTIVES["train"][label] + (ADJECTIVES["held_out"][label] if split == "test" else [])
    opposite = ADJECTIVES["train"][1 - label] + (ADJECTIVES["held_out"][1 - label] if split == "test" else [])
    pools = []
    for template in TEMPLATES[split]["any"] + TEMPLATES[split][label]:
        found = set()
        for domain, nouns in NOUNS.items():
            for noun, adj, opp, phrase, verb in product(nouns, adjectives, opposite, PHRASES[label],
                                                        VERBS[split][label]):
                article = "an" if adj[0] in "aeiou" else "a"
                text = template.format(noun=noun, adj=adj, Adj=adj.capitalize(), a=article, opp=opp,
                                       phrase=phrase, verb=verb)
                found.add((text, domain))
        pools.append(sorted(found))
    return pools


def make_split(split: str, per_label: int, rng: random.Random) -> list[dict]:
    """Return ``per_label`` sentences of each label for ``split`` (templates equally often), shuffled."""
    rows = []
    for label in sorted(LABELS):
        pools = _pools(split, label)
        for i, pool in enumerate(pools):
            # Spread per_label over the templates; the first ones take the remainder.
            count = per_label // len(pools) + (i < per_label % len(pools))
            rows += [{"text": text, "label": label, "domain": domain} for text, domain in rng.sample(pool, count)]
    rng.shuffle(rows)
    return rows


def write_jsonl(rows: list[dict], path: Path) -> None:
    """Write ``rows`` as one JSON object per line."""
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    """Generate train.jsonl and test.jsonl into --out (default: this script's folder)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    out = parser.parse_args(argv).out
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(SEED)
    train = make_split("train", TRAIN_PER_LABEL, rng)
    test = make_split("test", TEST_PER_LABEL, rng)
    overlap = {r["text"] for r in train} & {r["text"] for r in test}
    assert not overlap, f"train and test share sentences: {sorted(overlap)[:3]}"
    write_jsonl(train, out / "train.jsonl")
    write_jsonl(test, out / "test.jsonl")
    print(f"wrote {len(train)} training and {len(test)} held-out sentences to {out}")


if __name__ == "__main__":
    main()
