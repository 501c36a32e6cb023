from collections import Counter

import pytest

from corpuslab.corpus.split import SplitConfig, assign_splits
from corpuslab.errors import ConfigError


def corpus(n=1000):
    return [(f"d{i}", ["a", "b", "c"][i % 3] if i % 10 else "rare") for i in range(n)]


def test_split_is_deterministic_and_seed_dependent():
    cfg = SplitConfig(train=0.8, val=0.1, test=0.1)
    first = assign_splits(corpus(), cfg, seed=1)
    assert first == assign_splits(corpus(), cfg, seed=1)
    assert first != assign_splits(corpus(), cfg, seed=2)


def test_split_is_stratified_with_exact_counts():
    cfg = SplitConfig(train=0.8, val=0.1, test=0.1)
    docs = corpus()
    out = assign_splits(docs, cfg, seed=0)
    per = Counter((cat, out[i]) for i, cat in docs)
    for cat in ("a", "b", "c", "rare"):
        n = sum(v for (c, _), v in per.items() if c == cat)
        assert per[(cat, "val")] == int(n * 0.1)
        assert per[(cat, "test")] == int(n * 0.1)


def test_fractions_must_sum_to_one():
    with pytest.raises(ConfigError, match="sum to 1"):
        SplitConfig(train=0.5, val=0.1, test=0.1).validate()
