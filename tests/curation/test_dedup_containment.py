"""Containment dedup is directed: a document is dropped only if it lies (>= threshold) inside a KEPT one.

Tiny corpora in tmp_path Parquet shards through the engine (`find_exact_and_near_duplicates`); expected
answers come from pure-Python references (sets of word 5-grams, the rules written out in Python).
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from corpuslab.curation.dedup.clusters import EXACT, NEAR
from corpuslab.curation.dedup.minhash import MinHashConfig
from corpuslab.curation.dedup.near import Similarity, find_exact_and_near_duplicates
from corpuslab.curation.dedup.normalize import NormalizeConfig, normalize
from corpuslab.executor import SerialExecutor

VOCAB = [f"w{i}" for i in range(2000)]
# one shared min-hash makes a candidate: pairs of Jaccard >= 0.1 are missed with probability 0.9**128
ALL_CANDIDATES = MinHashConfig(threshold=0.05, bands=128, rows=1)


def words(rng: random.Random, n: int) -> list[str]:
    return [rng.choice(VOCAB) for _ in range(n)]


def write(folder: Path, texts: list[str]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "shard-0.parquet"
    pq.write_table(pa.table({"id": [f"d{i:03d}" for i in range(len(texts))], "text": texts}), path, row_group_size=7)
    return [path]


def dedup(folder: Path, texts: list[str], measure: str = "containment", threshold: float = 0.8, priority=None):
    shards = write(folder, texts)
    return find_exact_and_near_duplicates(shards, ALL_CANDIDATES, NormalizeConfig(), SerialExecutor(),
                                          None if priority is None else np.asarray(priority, dtype=np.float64),
                                          Similarity(measure, threshold))


def grams(text: str, n: int = 5) -> frozenset:
    tokens = normalize(text, NormalizeConfig()).split()
    return frozenset({tuple(tokens)} if len(tokens) < n else zip(*(tokens[i:] for i in range(n))))


def ref_containment(small: str, large: str) -> float:
    a, b = grams(small), grams(large)
    return len(a & b) / len(a)


def by_id(result) -> dict:
    return {d.id: d for d in result.decisions}


def kept_ids(result) -> set[str]:
    return set(result.ids.take(np.flatnonzero(result.kept_mask())).to_pylist())


# --- the reviewer's case and small shapes ----------------------------------------------------------------


def test_a_passage_in_two_documents_drops_only_the_passage(tmp_path):
    """1 = a 530-word article, 2 = one paragraph of it, 3 = two other articles with the paragraph between."""
    rng = random.Random(0)
    article = words(rng, 530)
    passage = article[200:260]
    texts = [" ".join(article), " ".join(passage), " ".join(words(rng, 400) + passage + words(rng, 400))]
    assert ref_containment(texts[1], texts[0]) == 1.0 and ref_containment(texts[1], texts[2]) == 1.0
    assert ref_containment(texts[0], texts[2]) < 0.2
    for run, priority in enumerate([None, [-len(t) for t in texts], [2.0, 0.0, 1.0]]):  # earliest, longest, the passage first
        result = dedup(tmp_path / f"run{run}", texts, priority=priority)
        decisions = by_id(result)
        assert kept_ids(result) == {"d000", "d002"}
        passage_row = decisions["d001"]
        assert passage_row.reason == NEAR and passage_row.duplicate_of == "d000" == passage_row.cluster_id  # ties: lowest index
        assert passage_row.similarity == 1.0
        assert decisions["d000"].kept and "d002" not in decisions  # kept, and no one points at it
        assert result.stats["dropped_by_reason"] == {NEAR: 1} and result.stats["clusters"] == 1


def test_the_passage_points_at_the_document_that_contains_more_of_it(tmp_path):
    rng = random.Random(1)
    article = words(rng, 300)
    passage = article[100:160]
    edited = passage[:30] + ["edited"] + passage[31:]  # 5 of the passage's 56 five-grams lost
    texts = [" ".join(article[:130] + edited[30:] + article[160:]), " ".join(passage), " ".join(words(rng, 200) + passage)]
    result = dedup(tmp_path, texts)
    row = by_id(result)["d001"]
    assert row.duplicate_of == "d002" and row.similarity == 1.0 and kept_ids(result) == {"d000", "d002"}


def test_a_chain_keeps_the_largest_and_drops_both_smaller(tmp_path):
    """A inside B inside C, listed smallest first: C is decided first and contains both."""
    rng = random.Random(2)
    c = words(rng, 200)
    texts = [" ".join(c[50:90]), " ".join(c[30:130]), " ".join(c)]
    result = dedup(tmp_path, texts)
    decisions = by_id(result)
    assert kept_ids(result) == {"d002"}
    assert decisions["d000"].duplicate_of == decisions["d001"].duplicate_of == "d002"
    assert {d.cluster_id for d in decisions.values()} == {"d002"} and result.stats["cluster_size_histogram"] == {3: 1}


def test_a_chain_where_the_middle_is_dropped_does_not_drop_through_it(tmp_path):
    """A inside B (>= 0.8), B inside C (>= 0.8), A not inside C: B is dropped into C, and A -- whose only
    container is dropped -- is kept."""
    rng = random.Random(3)
    b = words(rng, 100)
    a = b[:40]  # all 36 of its five-grams in B
    c = list(b)
    for at in (32, 24, 16, 8):  # each "x" breaks 4 five-grams, all inside A: B keeps 80/96 in C, A 20/36
        c.insert(at, "x")
    c += words(rng, 60)
    texts = [" ".join(a), " ".join(b), " ".join(c)]
    assert ref_containment(texts[0], texts[1]) >= 0.8 and ref_containment(texts[1], texts[2]) >= 0.8
    assert ref_containment(texts[0], texts[2]) < 0.8
    result = dedup(tmp_path, texts)
    decisions = by_id(result)
    assert kept_ids(result) == {"d000", "d002"}
    assert decisions["d001"].duplicate_of == "d002" and "d000" not in decisions


def test_mutual_near_containment_keeps_one_by_the_keep_policy(tmp_path):
    """Two equal-size texts one word apart contain each other at 91/101 (sizes 96): the tie in size goes to
    the --keep order, and the other points at it."""
    rng = random.Random(4)
    a = words(rng, 100)
    b = a[:50] + ["changed"] + a[51:]
    texts = [" ".join(words(rng, 30)), " ".join(a), " ".join(b)]
    earliest = by_id(dedup(tmp_path / "earliest", texts))
    assert earliest["d001"].kept and earliest["d002"].duplicate_of == "d001"
    assert earliest["d002"].similarity == pytest.approx(91 / 96)
    preferred = by_id(dedup(tmp_path / "priority", texts, priority=[0.0, 5.0, 1.0]))
    assert preferred["d002"].kept and preferred["d001"].duplicate_of == "d002"


def test_exact_copies_follow_the_keep_policy_and_point_at_a_kept_document(tmp_path):
    """The passage has two exact copies and the article one: the article's preferred copy is kept, its
    other copy is its exact_duplicate, and every copy of the passage is a near_duplicate of the kept one."""
    rng = random.Random(5)
    article = words(rng, 200)
    passage = " ".join(article[20:80])
    texts = [passage, " ".join(article), passage.upper(), "  " + " ".join(article), passage]
    result = dedup(tmp_path / "earliest", texts)
    decisions = by_id(result)
    assert kept_ids(result) == {"d001"}
    assert decisions["d003"].reason == EXACT and decisions["d003"].duplicate_of == "d001"
    assert all(decisions[d].reason == NEAR and decisions[d].duplicate_of == "d001" for d in ("d000", "d002", "d004"))
    later = by_id(dedup(tmp_path / "latest", texts, priority=[-k for k in range(5)]))  # the latest copy preferred
    assert later["d003"].kept and later["d001"].duplicate_of == "d003" and later["d001"].reason == EXACT
    assert all(later[d].duplicate_of == "d003" for d in ("d000", "d002", "d004"))


# --- properties on random small corpora -----------------------------------------------------------------


def random_corpus(rng: random.Random) -> list[str]:
    """Random documents, excerpts of earlier ones (some edited), joins of two, and exact copies."""
    texts: list[str] = []
    for _ in range(rng.randint(4, 14)):
        kind = rng.random() if texts else 0.0
        if kind < 0.3:
            texts.append(" ".join(words(rng, rng.randint(8, 80))))
            continue
        source = rng.choice(texts).split()
        if kind < 0.55:  # an excerpt, maybe with an edit
            start = rng.randrange(len(source))
            piece = source[start : start + rng.randint(min(5, len(source)), len(source))]
            if rng.random() < 0.5:
                piece[rng.randrange(len(piece))] = "edit"
            texts.append(" ".join(piece))
        elif kind < 0.8:  # a join of two, with noise between
            other = rng.choice(texts).split()
            texts.append(" ".join(source + words(rng, rng.randint(0, 3)) + other))
        elif kind < 0.9:  # a copy with one word changed (near equal sizes)
            source[rng.randrange(len(source))] = "changed"
            texts.append(" ".join(source))
        else:
            texts.append(rng.choice(texts).upper())  # an exact copy after normalization
    return texts


def reference_containment_decisions(texts, pairs, threshold, priority):
    """The rule written out in Python: texts (normalized) decided largest first, ties by (priority, index);
    dropped iff a verified pair joins it to a kept text; copies of a kept text are its exact duplicates."""
    index = {f"d{i:03d}": i for i in range(len(texts))}
    key = [normalize(t, NormalizeConfig()) for t in texts]
    preferred: dict[str, int] = {}
    for i in sorted(range(len(texts)), key=lambda i: (priority[i], i)):
        preferred.setdefault(key[i], i)
    neighbours: dict[str, dict[str, float]] = {k: {} for k in preferred}
    for a, b, c in pairs:
        ka, kb = key[index[a]], key[index[b]]
        neighbours[ka][kb] = neighbours[kb][ka] = c
    order = sorted(preferred, key=lambda k: (-len(grams(k)), priority[preferred[k]], preferred[k]))
    kept_texts: set[str] = set()
    into: dict[str, tuple[int, float]] = {}
    for k in order:
        options = [(-c, preferred[other]) for other, c in neighbours[k].items() if other in kept_texts]
        if options:
            c, target = min(options)
            into[k] = (target, -c)
        else:
            kept_texts.add(k)
    expected = {}
    for i, k in enumerate(key):
        if k in into:
            expected[i] = (NEAR, into[k][0], into[k][1])
        elif preferred[k] != i:
            expected[i] = (EXACT, preferred[k], 1.0)
        else:
            expected[i] = None  # kept
    return expected


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1), threshold=st.sampled_from([0.5, 0.8, 0.95]), by_priority=st.booleans())
def test_every_dropped_document_is_contained_in_a_kept_one(tmp_path, seed, threshold, by_priority):
    rng = random.Random(seed)
    texts = random_corpus(rng)
    priority = [rng.choice([0.0, 1.0, 2.0]) for _ in texts] if by_priority else None
    result = dedup(tmp_path / f"c{seed}", texts, threshold=threshold, priority=priority)
    kept = kept_ids(result)
    pairs = result.verified_pairs
    for a, b, c in pairs:  # verification is exact: the smaller set's share inside the larger
        small, large = sorted((texts[int(a[1:])], texts[int(b[1:])]), key=lambda t: len(grams(t)))
        assert c == pytest.approx(ref_containment(small, large)) and c >= threshold
        assert not (a in kept and b in kept)  # of a verified pair, the one decided later is dropped
    decisions = by_id(result)
    for d in decisions.values():
        if not d.kept:
            assert d.duplicate_of in kept and d.cluster_id == d.duplicate_of
            dropped, container = texts[int(d.id[1:])], texts[int(d.duplicate_of[1:])]
            assert len(grams(dropped)) <= len(grams(container))
            assert ref_containment(dropped, container) >= threshold
            assert d.similarity == pytest.approx(ref_containment(dropped, container))
        else:
            assert d.cluster_id == d.id
    expected = reference_containment_decisions(texts, pairs, threshold, priority or [0.0] * len(texts))
    for i, want in expected.items():
        got = decisions.get(f"d{i:03d}")
        if want is None:
            assert got is None or got.kept
        else:
            assert (got.reason, got.duplicate_of) == (want[0], f"d{want[1]:03d}") and got.similarity == pytest.approx(want[2])


def reference_jaccard_decisions(texts, pairs, priority):
    """What clusters.py documented before containment existed, in Python: union-find over exact copies and
    verified pairs, each cluster keeps its lowest (priority, index); an exact copy of the kept text points
    at it, another exact copy at its earliest copy, anything else at its earliest verified neighbour."""
    index = {f"d{i:03d}": i for i in range(len(texts))}
    key = [normalize(t, NormalizeConfig()) for t in texts]
    earliest: dict[str, int] = {}
    for i, k in enumerate(key):
        if k.strip():
            earliest.setdefault(k, i)
    links = [(i, earliest[k]) for i, k in enumerate(key) if k.strip() and earliest[k] != i]
    links += [(index[a], index[b]) for a, b, _ in pairs]
    parent = list(range(len(texts)))

    def find(i):
        while parent[i] != i:
            i = parent[i]
        return i

    for a, b in links:
        ra, rb = find(a), find(b)
        parent[max(ra, rb)] = min(ra, rb)
    members = sorted({i for link in links for i in link})
    clusters: dict[int, list[int]] = {}
    for i in members:
        clusters.setdefault(find(i), []).append(i)
    neighbour: dict[int, tuple[int, float]] = {}
    for a, b, j in pairs:
        for x, y in ((index[a], index[b]), (index[b], index[a])):
            if x not in neighbour or y < neighbour[x][0]:
                neighbour[x] = (y, j)
    expected = {}
    for group in clusters.values():
        root = min(group, key=lambda i: (priority[i], i))
        for i in group:
            if i == root:
                expected[i] = (None, root, None)
            elif key[i] == key[root]:
                expected[i] = (EXACT, root, root)
            elif earliest[key[i]] != i:
                expected[i] = (EXACT, root, earliest[key[i]])
            else:
                expected[i] = (NEAR, root, neighbour[i][0])
    return expected


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1), by_priority=st.booleans())
def test_jaccard_decisions_are_the_union_find_rule_as_before(tmp_path, seed, by_priority):
    rng = random.Random(seed)
    texts = random_corpus(rng)
    priority = [rng.choice([0.0, 1.0]) for _ in texts] if by_priority else None
    result = dedup(tmp_path / f"j{seed}", texts, measure="jaccard", threshold=0.5, priority=priority)
    got = {int(d.id[1:]): (d.reason, int(d.cluster_id[1:]), None if d.duplicate_of is None else int(d.duplicate_of[1:]))
           for d in result.decisions}
    assert got == reference_jaccard_decisions(texts, result.verified_pairs, priority or [0.0] * len(texts))
