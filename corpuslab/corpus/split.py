"""Deterministic train/val/test split by document, stratified by category when documents have one."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from corpuslab.schema import require

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class SplitConfig:
    """Fractions of documents per split; they must sum to 1.

    stratify: split each category separately so every split has the same category mix.
    """

    train: float = 0.9
    val: float = 0.05
    test: float = 0.05
    stratify: bool = True

    def validate(self, prefix: str = "split") -> None:
        for name in SPLITS:
            value = getattr(self, name)
            require(0.0 <= value <= 1.0, f"{prefix}.{name}", value, "a fraction in [0, 1]")
        total = self.train + self.val + self.test
        require(abs(total - 1.0) < 1e-6, f"{prefix}.train+val+test", round(total, 6), "fractions that sum to 1")
        require(self.train > 0, f"{prefix}.train", self.train, "a positive fraction (the models need training data)")


def assign_splits(ids_and_categories: Iterable[tuple[str, str | None]], cfg: SplitConfig, seed: int) -> dict[str, str]:
    """Map each document id to 'train', 'val' or 'test'.

    Within each stratum (a category, or the whole corpus) the ids are shuffled with a generator seeded
    by `seed` and cut at the cumulative fractions, so the result depends only on the ids, their order,
    the fractions and the seed. Rounding gives val and test floor(n * fraction) documents, train the rest.
    """
    strata: dict[str | None, list[str]] = defaultdict(list)
    for doc_id, category in ids_and_categories:
        strata[category if cfg.stratify else None].append(doc_id)
    rng = np.random.default_rng(seed)
    assignment: dict[str, str] = {}
    for key in sorted(strata, key=lambda k: (k is None, str(k))):
        ids = strata[key]
        order = rng.permutation(len(ids))
        n_val = int(len(ids) * cfg.val)
        n_test = int(len(ids) * cfg.test)
        for rank, index in enumerate(order):
            split = "val" if rank < n_val else "test" if rank < n_val + n_test else "train"
            assignment[ids[index]] = split
    return assignment
