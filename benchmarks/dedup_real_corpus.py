"""A duplicate-detection corpus made of real English text, with planted edits and exact truth.

`dedup_corpus.py` writes documents of made-up Zipf words of uniform length; corpuslab's own test data is
generated too. This corpus is built from text the project did not generate: the sentences of the real
corpora under `<workspace>/shared/data` (C4 sample, BBC News, AG News, arXiv abstracts, WikiText-2, tiny
Shakespeare). A base document is a run of sentences drawn at random from that pool, with a heavy-tailed
length (log-normal, median ~500 words, 40 to 4,000 words, as web pages are), so its vocabulary, word
frequencies, punctuation and casing are real. Into these bases the same groups as `dedup_corpus` are
planted: near-duplicate variants made by substituting, deleting and inserting real words at the rate for
a target Jaccard in [0.5, 1.0] (sometimes chained), and exact copies (half re-cased and re-spaced).

Truth is computed as in `dedup_corpus` (Python sets of word 5-grams of `text.lower().split()`, all pairs
in each planted group); random cross-group pairs are checked to be far below the threshold (two bases
share a 5-gram only where they drew the same sentence, which the large pool makes rare).

    python benchmarks/dedup_real_corpus.py --docs 20000 --out /tmp/dedup_real
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import dedup_corpus  # noqa: E402

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
LENGTH_MEDIAN_WORDS = 500
LENGTH_SIGMA = 0.8
LENGTH_RANGE = (40, 4000)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def real_sentences(data: Path = DATA) -> list[str]:
    """Every sentence of at least 4 words of the shared corpora, each once, in a fixed order."""
    texts: list[str] = []
    for path in sorted((data / "c4_sample").glob("*.jsonl")):
        texts += [json.loads(line)["text"] for line in path.open(encoding="utf-8")]
    texts += [p.read_text(encoding="latin-1") for p in sorted((data / "bbc_news").glob("*/*.txt"))]
    csv.field_size_limit(2**31 - 1)
    for path in sorted((data / "ag_news_test").glob("*.csv")):
        texts += [" ".join(row[1:]) for row in csv.reader(path.open(encoding="utf-8"))]
    for path in sorted((data / "arxiv_abstracts_small").glob("*.csv")):
        texts += [row.get("summaries", "") for row in csv.DictReader(path.open(encoding="utf-8"))]
    for name in ("wikitext2/wiki.test.raw", "tinyshakespeare/input.txt"):
        if (data / name).exists():
            texts += (data / name).read_text(encoding="utf-8").split("\n\n")
    seen: set[str] = set()
    sentences = []
    for text in texts:
        for sentence in _SENTENCE_END.split(" ".join(text.split())):
            if len(sentence.split()) >= 4 and sentence not in seen:
                seen.add(sentence)
                sentences.append(sentence)
    return sentences


def plant_real(n_docs: int, seed: int, data: Path = DATA) -> dedup_corpus.PlantedCorpus:
    """As `dedup_corpus.plant`, with bases made of real sentences and edits drawn from real words."""
    rng = np.random.default_rng(seed)
    sentences = real_sentences(data)
    words = [s.split() for s in sentences]
    vocab_list = sorted({w for sentence in words for w in sentence})
    index = {w: i for i, w in enumerate(vocab_list)}
    vocab = np.array(vocab_list, dtype=object)
    counts = np.bincount([index[w] for sentence in words for w in sentence], minlength=len(vocab))
    probs = counts / counts.sum()
    encoded = [np.array([index[w] for w in sentence], dtype=np.int64) for sentence in words]
    n_exact = int(n_docs * dedup_corpus.EXACT_FRACTION)
    n_variants = int(n_docs * dedup_corpus.NEAR_FRACTION)
    n_base = n_docs - n_exact - n_variants
    base_words = [_base_document(rng, encoded) for _ in range(n_base)]
    texts = [" ".join(vocab[w]) for w in base_words]
    return dedup_corpus.plant_copies(rng, texts, base_words, probs, lambda w: " ".join(vocab[w]), n_variants, n_exact)


def _base_document(rng: np.random.Generator, sentences: list[np.ndarray]) -> np.ndarray:
    target = int(np.clip(rng.lognormal(np.log(LENGTH_MEDIAN_WORDS), LENGTH_SIGMA), *LENGTH_RANGE))
    parts, total = [], 0
    while total < target:
        sentence = sentences[int(rng.integers(len(sentences)))]
        parts.append(sentence)
        total += len(sentence)
    return np.concatenate(parts)


def build(n_docs: int, out: Path, seed: int = 0) -> tuple[list[Path], dict]:
    """Shards and truth.json under `out` (reused when built with these settings), as `dedup_corpus.build`."""
    truth_path = out / "truth.json"
    if truth_path.exists():
        truth = json.loads(truth_path.read_text())
        if truth["docs"] == n_docs and truth["seed"] == seed and truth.get("corpus") == "real":
            return sorted(out.glob("shard-*.parquet")), truth
    out.mkdir(parents=True, exist_ok=True)
    corpus = plant_real(n_docs, seed)
    ids = [f"doc-{i:07d}" for i in range(len(corpus.texts))]
    shards = dedup_corpus.write_shards(corpus.texts, ids, out)
    truth = {
        "corpus": "real",
        "docs": n_docs,
        "seed": seed,
        "bytes": sum(len(t.encode()) for t in corpus.texts),
        "words": sum(len(t.split()) for t in corpus.texts),
        "pairs": dedup_corpus.truth_pairs(corpus, ids),
        "exact_duplicates": dedup_corpus.exact_truth(corpus, ids),
        "cross_group_max_jaccard": dedup_corpus.cross_group_max(corpus, seed),
    }
    truth_path.write_text(json.dumps(truth))
    return shards, truth


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=int, default=20_000)
    parser.add_argument("--out", type=Path, default=Path("/tmp/corpuslab_dedup_real"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    shards, truth = build(args.docs, args.out, args.seed)
    print(f"{len(shards)} shards, {truth['docs']} docs, {truth['words'] / truth['docs']:.0f} words per doc, "
          f"{truth['bytes'] / 1e6:.1f} MB, {len(truth['pairs'])} planted pairs, "
          f"cross-group max Jaccard {truth['cross_group_max_jaccard']:.4f}")


if __name__ == "__main__":
    main()
