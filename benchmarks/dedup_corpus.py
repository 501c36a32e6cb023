"""A benchmark corpus for duplicate detection whose ground truth is known exactly.

Base documents are ~800 random words drawn from a seeded Zipf vocabulary of 50k made-up words. Into
them we plant:

- near-duplicate groups: a base plus 1-4 variants, each made by editing the base (or, sometimes, the
  previous variant, so groups chain) with an edit rate chosen for a target Jaccard drawn uniformly from
  0.5 to 1.0 -- so the benchmark sees the hard pairs around the threshold, not only easy ones;
- exact copies of random documents, half of them re-cased and re-spaced so that only normalization
  (lowercase, whitespace collapse) makes them equal.

Every planted document is shuffled to a random position, so duplicates cross shard boundaries.

Truth is computed independently of corpuslab's hashing: Python sets of word 5-gram tuples of the
normalized text (``text.lower().split()``), all pairs within each planted group. Only pairs inside a
planted group can be similar: random 800-word Zipf documents share essentially no 5-gram; `build`
checks this on random cross-group pairs and records the largest such Jaccard in the truth file.

    python benchmarks/dedup_corpus.py --docs 20000 --out /tmp/dedup_corpus
"""

from __future__ import annotations

import argparse
import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

VOCAB_SIZE = 50_000
ZIPF_EXPONENT = 1.05
DOC_WORDS = (600, 1000)  # uniform length range, mean 800
SHARD_DOCS = 5_000
ROW_GROUP_DOCS = 1_000
NGRAM = 5
NEAR_FRACTION = 0.12  # share of the corpus that are near-duplicate variants
EXACT_FRACTION = 0.03  # share of the corpus that are exact (post-normalization) copies
TARGET_JACCARD = (0.5, 1.0)
CHAIN_PROBABILITY = 0.3  # a variant edits the previous variant instead of the base
CROSS_CHECK_PAIRS = 2_000


@dataclass
class PlantedCorpus:
    """Documents in corpus order plus the planted groups (lists of corpus positions)."""

    texts: list[str]
    groups: list[list[int]] = field(default_factory=list)
    exact_copies: list[tuple[int, int]] = field(default_factory=list)  # (original, copy) positions


def make_vocabulary(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Unique lowercase pseudo-words and their Zipf sampling probabilities."""
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    words: set[str] = set()
    while len(words) < VOCAB_SIZE:
        lengths = rng.integers(2, 11, size=VOCAB_SIZE)
        for length in lengths:
            words.add("".join(rng.choice(letters, size=length)))
            if len(words) == VOCAB_SIZE:
                break
    vocab = np.array(sorted(words), dtype=object)
    rng.shuffle(vocab)
    weights = 1.0 / np.arange(1, VOCAB_SIZE + 1) ** ZIPF_EXPONENT
    return vocab, weights / weights.sum()


def random_words(rng: np.random.Generator, probs: np.ndarray, count: int) -> np.ndarray:
    return rng.choice(len(probs), size=count, p=probs)


def edit_rate_for(target_jaccard: float) -> float:
    """Word edit rate that leaves about `target_jaccard` of 5-gram Jaccard.

    Editing a fraction f of positions keeps u = (1-f)^5 of the shingles, and J = u / (2 - u).
    """
    kept_shingles = 2 * target_jaccard / (1 + target_jaccard)
    return 1.0 - kept_shingles ** (1.0 / NGRAM)


def make_variant(rng: np.random.Generator, probs: np.ndarray, words: np.ndarray, target: float) -> np.ndarray:
    """Substitute, delete or insert words at random positions at the rate that hits `target`."""
    rate = edit_rate_for(target)
    edits = rng.random(len(words)) < rate
    kinds = rng.integers(0, 3, size=len(words))  # 0 substitute, 1 delete, 2 insert before
    fresh = random_words(rng, probs, len(words))
    out: list[int] = []
    for position, word in enumerate(words):
        if not edits[position]:
            out.append(word)
        elif kinds[position] == 0:
            out.append(fresh[position])
        elif kinds[position] == 2:
            out.extend((fresh[position], word))
    return np.array(out, dtype=np.int64)


def render(vocab: np.ndarray, words: np.ndarray, rng: np.random.Generator) -> str:
    """Words joined by spaces with a line break every ~100 words, like paragraphs."""
    tokens = vocab[words]
    lines = [" ".join(tokens[i : i + 100]) for i in range(0, len(tokens), 100)]
    return "\n".join(lines)


def disguise(text: str, rng: np.random.Generator) -> str:
    """Same text after normalization: some words upper-cased and some spaces doubled."""
    words = text.split(" ")
    for i in rng.choice(len(words), size=max(1, len(words) // 20), replace=False):
        words[i] = words[i].upper()
    return "  ".join(words[:10]) + " " + " ".join(words[10:]) + "\n"


def plant(n_docs: int, seed: int) -> PlantedCorpus:
    """Generate texts and planted groups, then shuffle them into corpus order."""
    rng = np.random.default_rng(seed)
    vocab, probs = make_vocabulary(rng)
    n_exact = int(n_docs * EXACT_FRACTION)
    n_variants = int(n_docs * NEAR_FRACTION)
    n_base = n_docs - n_exact - n_variants
    base_words = [random_words(rng, probs, int(rng.integers(*DOC_WORDS))) for _ in range(n_base)]
    texts = [render(vocab, words, rng) for words in base_words]
    return plant_copies(rng, texts, base_words, probs, lambda words: render(vocab, words, rng), n_variants, n_exact)


def plant_copies(rng: np.random.Generator, texts: list[str], base_words: list[np.ndarray], probs: np.ndarray,
                 render_words: Callable[[np.ndarray], str], n_variants: int, n_exact: int) -> PlantedCorpus:
    """After the bases (`texts`, made of `base_words`): groups of near-duplicate variants of random bases (1-4 each,
    some chained), then exact copies of random documents (half of them disguised), all shuffled into corpus order.
    Shared by the generated and the real-text corpus, so both plant the same way."""
    groups: list[list[int]] = []
    made = 0
    for base in rng.permutation(len(base_words)):
        if made >= n_variants:
            break
        group, previous = [int(base)], base_words[base]
        for _ in range(min(int(rng.integers(1, 5)), n_variants - made)):
            parent = previous if rng.random() < CHAIN_PROBABILITY else base_words[base]
            previous = make_variant(rng, probs, parent, float(rng.uniform(*TARGET_JACCARD)))
            group.append(len(texts))
            texts.append(render_words(previous))
            made += 1
        groups.append(group)
    exact_copies = []
    for original in rng.choice(len(texts), size=n_exact, replace=True):
        copy = texts[original] if rng.random() < 0.5 else disguise(texts[original], rng)
        exact_copies.append((int(original), len(texts)))
        texts.append(copy)
    return shuffle(PlantedCorpus(texts, groups, exact_copies), rng)


def shuffle(corpus: PlantedCorpus, rng: np.random.Generator) -> PlantedCorpus:
    order = rng.permutation(len(corpus.texts))
    position = np.empty_like(order)
    position[order] = np.arange(len(order))
    return PlantedCorpus(
        texts=[corpus.texts[i] for i in order],
        groups=[[int(position[i]) for i in group] for group in corpus.groups],
        exact_copies=[(int(position[a]), int(position[b])) for a, b in corpus.exact_copies],
    )


def shingles(text: str) -> frozenset[tuple[str, ...]]:
    """Reference word 5-gram set of the normalized text; shorter docs are one shingle (as corpuslab)."""
    words = text.lower().split()
    if len(words) < NGRAM:
        return frozenset([tuple(words)]) if words else frozenset()
    return frozenset(zip(*(words[i:] for i in range(NGRAM))))


def jaccard(a: frozenset, b: frozenset) -> float:
    return len(a & b) / len(a | b) if a or b else 0.0


def merged_groups(corpus: PlantedCorpus) -> list[list[int]]:
    """Near-dup groups joined with exact copies (a copy of a variant belongs to its group)."""
    parent = list(range(len(corpus.texts)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for group in corpus.groups:
        for member in group[1:]:
            parent[find(member)] = find(group[0])
    for original, copy in corpus.exact_copies:
        parent[find(copy)] = find(original)
    members: dict[int, list[int]] = {}
    for i in range(len(parent)):
        members.setdefault(find(i), []).append(i)
    return [sorted(m) for m in members.values() if len(m) > 1]


def truth_pairs(corpus: PlantedCorpus, ids: list[str]) -> list[tuple[str, str, float]]:
    """Exact Jaccard of every pair inside every planted group (ids in corpus order)."""
    pairs = []
    for group in merged_groups(corpus):
        sets = {i: shingles(corpus.texts[i]) for i in group}
        for a, b in itertools.combinations(group, 2):
            pairs.append((ids[a], ids[b], jaccard(sets[a], sets[b])))
    return pairs


def cross_group_max(corpus: PlantedCorpus, seed: int) -> float:
    """Largest Jaccard over random pairs from different groups: should be ~0."""
    rng = np.random.default_rng(seed + 1)
    group_of = {i: g for g, group in enumerate(merged_groups(corpus)) for i in group}
    best = 0.0
    for _ in range(CROSS_CHECK_PAIRS):
        a, b = (int(x) for x in rng.choice(len(corpus.texts), size=2, replace=False))
        if group_of.get(a, -1 - a) != group_of.get(b, -1 - b):
            best = max(best, jaccard(shingles(corpus.texts[a]), shingles(corpus.texts[b])))
    return best


def write_shards(texts: list[str], ids: list[str], out: Path) -> list[Path]:
    shards = []
    for number, start in enumerate(range(0, len(texts), SHARD_DOCS)):
        table = pa.table({"id": ids[start : start + SHARD_DOCS], "text": texts[start : start + SHARD_DOCS]})
        path = out / f"shard-{number:05d}.parquet"
        pq.write_table(table, path, row_group_size=ROW_GROUP_DOCS)
        shards.append(path)
    return shards


def normalized_text_key(text: str) -> str:
    return " ".join(text.lower().split())


def exact_truth(corpus: PlantedCorpus, ids: list[str]) -> dict[str, str]:
    """Every exact copy mapped to the earliest document with the same normalized text."""
    first: dict[str, str] = {}
    dropped: dict[str, str] = {}
    for doc_id, text in zip(ids, corpus.texts):
        key = normalized_text_key(text)
        if key in first:
            dropped[doc_id] = first[key]
        else:
            first[key] = doc_id
    return dropped


def build(n_docs: int, out: Path, seed: int = 0) -> tuple[list[Path], dict]:
    """Write the shards and `truth.json` under `out`; reuse them if already built with these settings."""
    truth_path = out / "truth.json"
    if truth_path.exists():
        truth = json.loads(truth_path.read_text())
        if truth["docs"] == n_docs and truth["seed"] == seed:
            return sorted(out.glob("shard-*.parquet")), truth
    out.mkdir(parents=True, exist_ok=True)
    corpus = plant(n_docs, seed)
    ids = [f"doc-{i:07d}" for i in range(len(corpus.texts))]
    shards = write_shards(corpus.texts, ids, out)
    truth = {
        "docs": n_docs,
        "seed": seed,
        "bytes": sum(len(t.encode()) for t in corpus.texts),
        "pairs": truth_pairs(corpus, ids),
        "exact_duplicates": exact_truth(corpus, ids),
        "cross_group_max_jaccard": cross_group_max(corpus, seed),
    }
    truth_path.write_text(json.dumps(truth))  # written last: its presence marks the corpus complete
    return shards, truth


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=int, default=20_000)
    parser.add_argument("--out", type=Path, default=Path("/tmp/corpuslab_dedup_corpus"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    shards, truth = build(args.docs, args.out / f"docs{args.docs}_seed{args.seed}", args.seed)
    similar = [p for p in truth["pairs"] if p[2] >= 0.85]
    print(
        f"{len(shards)} shards, {truth['bytes'] / 1e6:.1f} MB, {len(truth['pairs'])} planted pairs "
        f"({len(similar)} with J >= 0.85), {len(truth['exact_duplicates'])} exact copies, "
        f"max Jaccard of random cross-group pairs {truth['cross_group_max_jaccard']:.4f}"
    )


if __name__ == "__main__":
    main()
