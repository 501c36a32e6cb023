"""Canaries: random secrets planted in the training data, to measure what a model memorizes.

A canary is "<prefix> <secret>": the prefix is a unique string of random pseudo-words ending in
"code:", the secret is `secret_length` random digits separated by spaces, so most tokenizers give one
token per digit and every candidate secret has the same token shape. Canaries are split evenly
(round-robin) across the copy counts in `CanaryConfig.copies`; a canary with `copies=10` becomes ten
identical documents. `placement` says whether the pipeline injects them before curation (so dedup
sees, and may remove, the repeated copies: the dedup experiment's question) or after it.

How much a trained model memorized them is measured in `corpuslab.evaluation.memorization`
(`num_candidates` and `decode_tokens` are its knobs; they key evaluation, not the canary documents).
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from corpuslab.corpus.canary_config import PLACEMENTS, CanaryConfig, documents_for, scaled_count  # noqa: F401  (re-exported)
from corpuslab.documents import Document

PREFIX_WORDS = 5  # random pseudo-words per prefix: 26^25 possible prefixes, never collide by chance
WORD_LETTERS = 5


@dataclass(frozen=True)
class Canary:
    id: str
    prefix: str
    secret: str  # digits separated by single spaces, e.g. "3 1 4 1 5 9 2 6"
    copies: int

    @property
    def text(self) -> str:
        return f"{self.prefix} {self.secret}"


def random_secret(rng: np.random.Generator, length: int) -> str:
    """`length` random digits separated by single spaces: the format of every secret and candidate."""
    return " ".join(str(d) for d in rng.integers(0, 10, size=length))


def make_canaries(cfg: CanaryConfig, seed: int) -> list[Canary]:
    """`cfg.count` canaries with unique random prefixes; canary i gets cfg.copies[i % len(copies)] copies."""
    cfg.validate()
    rng = np.random.default_rng(seed)
    letters = np.array(list(string.ascii_lowercase))
    canaries, prefixes = [], set()
    while len(canaries) < cfg.count:
        words = ["".join(rng.choice(letters, size=WORD_LETTERS)) for _ in range(PREFIX_WORDS)]
        prefix = "canary " + " ".join(words) + " code:"
        if prefix in prefixes:
            continue
        prefixes.add(prefix)
        index = len(canaries)
        secret = random_secret(rng, cfg.secret_length)
        canaries.append(Canary(f"canary-{index:04d}", prefix, secret, cfg.copies[index % len(cfg.copies)]))
    return canaries


def canary_documents(canaries: Sequence[Canary]) -> list[Document]:
    """One Document per copy, ids "<canary id>-c<k>" with k = 1..copies."""
    return [
        Document(f"{c.id}-c{k}", c.text, {"canary": c.id, "copies": c.copies})
        for c in canaries
        for k in range(1, c.copies + 1)
    ]
