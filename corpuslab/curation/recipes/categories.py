"""The diversity-scaling recipe: train on K of the N categories of the corpus (`category_subset`).

Which K (method, `choose_categories`): the pool is the sorted list of distinct categories of the train
split (or `categories`, when the config names them). Every category gets a rank key,

    nested:      sha256("<seed>\\x00<category>")            the same order for every K
    not nested:  sha256("<seed>\\x00<K>\\x00<category>")     a fresh draw per K

and the K categories with the smallest keys are chosen. The choice is a pure function of (K, seed,
sorted pool): no generator whose stream could change with a library version. Nested, the categories
of a smaller K are a subset of a larger K's for the same seed, so a curve over K is not confounded by
which categories were drawn. `k: all` keeps every category (the seed then changes nothing, so arms
that differ only in it share their stages).

Documents of the other categories are dropped as `category_not_selected`; documents without a
category (when some have one) as `no_category`. Canary documents are not a category of the corpus and
are always kept, so memorization stays measurable. Every arm trains for the same token budget
(`training.max_train_tokens`): an arm whose K categories hold fewer tokens repeats them, and the report
states the epochs each arm saw (`training.epochs_seen`).

Bad input stops before any arm trains (`check`, run on the prepared corpus): K larger than the number
of categories, a pool category missing from the corpus, a category without test documents (or without
evaluated ones, when `evaluation.max_tokens` cuts the test split), a corpus without categories. K = 0
stops at config load.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from corpuslab.artifacts import fingerprint
from corpuslab.curation.decisions import Decision
from corpuslab.curation.recipes.base import CurationContext, Recipe, recipes
from corpuslab.errors import ConfigError, InputError
from corpuslab.schema import require
from corpuslab.shards import read_documents

ALL = "all"
NOT_SELECTED = "category_not_selected"
NO_CATEGORY = "no_category"


def choose_categories(k: int | str, seed: int, categories: Iterable[str], nested: bool = True) -> list[str]:
    """The K categories an arm trains on, sorted (method: module docstring). `k` may be "all"."""
    pool = sorted(set(categories))
    if k == ALL:
        return pool
    if not isinstance(k, int) or not 1 <= k <= len(pool):
        raise ValueError(f"k={k!r} for {len(pool)} categories")

    def rank(category: str) -> str:
        parts = [str(seed)] + ([] if nested else [str(k)]) + [category]
        return hashlib.sha256("\x00".join(parts).encode("utf-8")).hexdigest()

    return sorted(sorted(pool, key=rank)[:k])


def _found(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{name} ({n})" for name, n in sorted(counts.items())) or "none"


@recipes.register
class CategorySubset(Recipe):
    """Keep the documents of K of the corpus's N categories, chosen by a deterministic function of (K,
    seed, the sorted category list); optionally nested across K (see the module docstring)."""

    name = "category_subset"

    @dataclass(frozen=True)
    class Config:
        """k: how many categories to train on (an integer >= 1, or "all"). seed: which K (with k and the
        category list). nested: a smaller K's categories are a subset of a larger K's for one seed.
        categories: the pool to draw from; null = every category of the train split."""

        k: int | str = ALL
        seed: int = 0
        nested: bool = True
        categories: list[str] | None = None

        def validate(self, prefix: str) -> None:
            if isinstance(self.k, str):
                require(self.k == ALL, f"{prefix}.k", self.k, f"an integer >= 1 or '{ALL}'")
            else:
                require(self.k >= 1, f"{prefix}.k", self.k, f"an integer >= 1 (how many categories to train on) or '{ALL}'")
            if self.categories is not None:
                require(len(self.categories) > 0 and len(set(self.categories)) == len(self.categories),
                        f"{prefix}.categories", self.categories, "a non-empty list of distinct category names, or null")

    def ignored_fields(self) -> set[str]:
        """Config fields that cannot change a decision of this config, left out of the fingerprint: with every
        category kept, the seed and nesting choose nothing, so arms that differ only in them share stages."""
        return {"seed", "nested"} if self.config.k == ALL else set()

    def fingerprint(self, *inputs: Any) -> str:
        neutral = {"seed": 0, "nested": True}
        config = replace(self.config, **{key: neutral[key] for key in self.ignored_fields()})
        return fingerprint(type(self).__name__, self.name, self.version, config, *inputs)

    def pool(self, found: Iterable[str]) -> list[str]:
        return sorted(self.config.categories) if self.config.categories is not None else sorted(set(found))

    def check(self, categories: Mapping[str, Mapping[str, int]], key: str) -> None:
        """Stop before training when the corpus cannot be subset as configured. `categories[split]` counts
        the documents per category of train, val, test and test_evaluated (the test documents inside
        `evaluation.max_tokens`); canaries are not counted."""
        train, test = categories.get("train", {}), categories.get("test", {})
        evaluated = categories.get("test_evaluated", test)
        named = {c: n for c, n in train.items() if c is not None}
        if not named:
            raise InputError("dataset", f"{key}: the '{self.name}' recipe needs documents with a category, but the "
                             f"train split has none (categories found: {_found(train)}); set dataset.local.category_field "
                             "or category_from: parent_dir (local files), dataset.hf.category_field (Hugging Face)")
        pool = self.pool(named)
        missing = [c for c in pool if c not in named]
        if missing:
            raise ConfigError(f"{key}.categories", self.config.categories,
                              f"categories of the train split; {missing} not found (found: {_found(named)})")
        if self.config.k != ALL and self.config.k > len(pool):
            raise ConfigError(f"{key}.k", self.config.k, f"at most the number of categories, {len(pool)} "
                              f"(found: {_found({c: named[c] for c in pool})})")
        untested = [c for c in pool if not test.get(c)]
        if untested:
            raise ConfigError("split.test", None, f"a test split with documents of every category, so each arm is "
                              f"scored on seen and unseen ones; no test documents for {untested} (test documents "
                              f"per category: {_found(test)}); raise split.test or drop them with {key}.categories")
        unevaluated = [c for c in pool if not evaluated.get(c)]
        if unevaluated:
            raise ConfigError("evaluation.max_tokens", None, f"a budget covering test documents of every category; "
                              f"none evaluated for {unevaluated} (evaluated test documents per category: "
                              f"{_found(evaluated)}); raise evaluation.max_tokens or set it to null")

    def decide(self, items: list[Path], inputs: dict[str, Path], context: CurationContext) -> Iterable[Decision]:
        docs = [(d.id, d.category, d.metadata.get("canary") is not None)
                for d in read_documents(items, columns=["id", "category", "meta"])]
        counts = Counter(category for _, category, canary in docs if category is not None and not canary)
        pool = self.pool(counts)
        chosen = choose_categories(self.config.k, self.config.seed, pool, self.config.nested)
        selected = set(chosen)
        decisions, kept = [], Counter()
        for doc_id, category, canary in docs:
            if canary:
                continue
            if category is None:
                decisions.append(Decision(doc_id, False, NO_CATEGORY))
            elif category not in selected:
                decisions.append(Decision(doc_id, False, NOT_SELECTED, cluster_id=category))
            else:
                kept[category] += 1
        context.stats.update({
            "k": len(chosen), "n": len(pool), "seed": None if self.config.k == ALL else self.config.seed, "nested": self.config.nested,
            "categories": pool, "selected": chosen, "unseen": [c for c in pool if c not in selected],
            "docs_by_category": dict(sorted(counts.items())), "kept_docs_by_category": dict(sorted(kept.items())),
            "canaries_kept": sum(1 for _, _, canary in docs if canary),
        })
        context.log(f"  {self.name}: K={len(chosen)} of {len(pool)} (seed {self.config.seed}): {', '.join(chosen)}")
        return decisions


def category_counts(tokens_dir: Path, splits: Sequence[str] = ("train", "val", "test"),
                    evaluated_tokens: int | None = None) -> dict[str, dict[str, int]]:
    """{split: {category: documents}} of a tokens stage (canaries left out), and `test_evaluated`: the test
    documents that an evaluation capped at `evaluated_tokens` covers (whole leading documents)."""
    import pyarrow.parquet as pq

    from corpuslab.tokens.stream import TokenStream

    out: dict[str, dict[str, int]] = {}
    for split in splits:
        table = pq.read_table(tokens_dir / f"{split}.docs.parquet", columns=["category", "canary"]).to_pydict()
        rows = list(zip(table["category"], table["canary"]))
        out[split] = dict(Counter(c for c, canary in rows if not canary))
        if split == "test":
            covered = TokenStream.open(tokens_dir / "test").docs_within(evaluated_tokens)
            out["test_evaluated"] = dict(Counter(c for c, canary in rows[:covered] if not canary))
    return out
