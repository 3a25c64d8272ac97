"""Small project-authored data sets generated from templates: fill-in-the-blank facts and reading questions.

The lecture on task heads trains a masked-LM head and an extractive question-answering head in
seconds on these examples. The held-out split uses other sentence frames (masked facts) or other
names, cities and years (questions), so a score on it is not memorisation of the training rows.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

# Facts whose missing word is determined by the rest of the sentence (one word-piece each in BERT's
# uncased vocabulary; a test checks this against the encoder's tokenizer).
CAPITALS = {"france": "paris", "italy": "rome", "japan": "tokyo", "egypt": "cairo", "spain": "madrid",
            "germany": "berlin", "russia": "moscow", "greece": "athens", "kenya": "nairobi", "peru": "lima",
            "china": "beijing", "england": "london"}
COLOURS = {"banana": "yellow", "lemon": "yellow", "grass": "green", "sky": "blue", "snow": "white",
           "coal": "black", "tomato": "red", "cherry": "red", "lime": "green", "sea": "blue"}
CAPITAL_FRAMES = {"train": ["the capital of {a} is {b} .", "{b} is the capital city of {a} .",
                            "people in {a} call {b} their capital ."],
                  "test": ["the government of {a} sits in {b} ."]}
COLOUR_FRAMES = {"train": ["the colour of {a} is {b} .", "{a} is usually {b} .", "most {a} looks {b} ."],
                 "test": ["she painted the {a} {b} ."]}

NAMES = {"train": ["Alice", "Bruno", "Chen", "Dara", "Emil", "Fatima", "Goran", "Hana", "Ivan", "Julia",
                   "Kofi", "Lena", "Marco", "Nadia"],
         "test": ["Oscar", "Priya", "Quinn", "Rosa", "Samir", "Tara"]}
CITIES = {"train": ["Lisbon", "Oslo", "Cairo", "Lima", "Dublin", "Vienna", "Prague", "Seoul", "Quito", "Dakar"],
          "test": ["Perth", "Turin", "Bergen", "Kyoto", "Porto", "Riga"]}
JOBS = ["baker", "pilot", "nurse", "painter", "farmer", "teacher", "chemist", "sailor", "lawyer", "dentist"]
YEARS = {"train": (1900, 1959), "test": (1960, 1999)}


@dataclass(frozen=True)
class MaskedFact:
    """A sentence with one blank, written ``{mask}``, and the word that fills it."""

    template: str
    answer: str

    def text(self, mask_token: str) -> str:
        """Return the sentence with the blank replaced by ``mask_token``."""
        return self.template.format(mask=mask_token)


@dataclass(frozen=True)
class QAExample:
    """A question, the context that answers it, the answer and its character offset in the context."""

    question: str
    context: str
    answer: str
    answer_start: int


def _check_split(split: str) -> None:
    """Raise a clear error for an unknown split name."""
    if split not in ("train", "test"):
        raise ValueError(f"Unknown split {split!r}: use 'train' or 'test'.")


def masked_facts(split: str = "train") -> list[MaskedFact]:
    """Return the fill-in-the-blank facts of a split (the test split uses unseen sentence frames)."""
    _check_split(split)
    facts = [MaskedFact(frame.format(a=a, b="{mask}"), b) for a, b in CAPITALS.items() for frame in CAPITAL_FRAMES[split]]
    facts += [MaskedFact(frame.format(a=a, b="{mask}"), b) for a, b in COLOURS.items() for frame in COLOUR_FRAMES[split]]
    return facts


def qa_examples(n: int, split: str = "train", seed: int = 0) -> list[QAExample]:
    """Return ``n`` reading-comprehension examples about invented people (test: unseen names, cities, years)."""
    _check_split(split)
    rng = random.Random(f"{split}-{seed}")
    low, high = YEARS[split]
    examples = []
    for _ in range(n):
        name, city, job = rng.choice(NAMES[split]), rng.choice(CITIES[split]), rng.choice(JOBS)
        year = str(rng.randint(low, high))
        context = f"{name} was born in {city} in {year}. Later {name} worked as a {job}."
        question, answer = rng.choice([(f"Where was {name} born?", city), (f"When was {name} born?", year),
                                       (f"What did {name} work as?", job)])
        examples.append(QAExample(question, context, answer, context.index(answer)))
    return examples
