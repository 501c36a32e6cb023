"""From duplicate links to clusters, per-document decisions and the statistics of a dedup run.

A *link* says "document d duplicates document t": an exact copy and its earliest copy, or a near pair
whose true Jaccard was verified to reach the threshold. Clusters are the connected components of the
links (union-find), so a cluster only ever grows through verified links: if A~B and B~C are verified
but A and C are not similar, A, B and C still form one cluster (B bridges them), exactly as with the
connected components of Lee et al. 2021; A and C never join through an unverified LSH collision.

In each cluster the earliest document in corpus order is kept; every other member is dropped with its
reason and `duplicate_of` (decisions as in `curation/decisions.py`, `similarity` = verified Jaccard):

- exact_duplicate: the earliest document with the same normalized text (`jaccard` 1.0);
- near_duplicate: the member's earliest verified neighbour, so `jaccard(doc, duplicate_of)` is always a
  verified value >= threshold. That neighbour may itself be dropped (C above points to B) and may even
  come later in the corpus (if B's only verified neighbour were C); `cluster_id` -- the id of the
  document the cluster keeps -- names the survivor.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numba import njit

from corpuslab.atomic import write_json_atomic
from corpuslab.curation.decisions import Decision, DecisionWriter

EXACT = "exact_duplicate"
NEAR = "near_duplicate"
LARGEST_CLUSTERS = 10
MEMBERS_LISTED = 100  # member ids listed per large cluster in stats.json


@dataclass
class DedupResult:
    """Decisions for every document in a cluster (all others are kept), plus run statistics."""

    decisions: list[Decision]
    stats: dict
    verified_pairs: list[tuple[str, str, float]] = field(default_factory=list)

    def dropped_ids(self) -> set[str]:
        return {d.id for d in self.decisions if not d.kept}

    def write(self, folder: str | Path) -> None:
        """decisions.parquet (a row per clustered document) and stats.json."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        writer = DecisionWriter(folder)
        for decision in self.decisions:
            writer.write(decision)
        writer.close()
        write_json_atomic(folder / "stats.json", self.stats)

def _no_docs() -> np.ndarray:
    return np.empty(0, dtype=np.int64)


@dataclass
class Links:
    """Duplicate links between global document indices (`source` duplicates `target`)."""

    exact_source: np.ndarray = field(default_factory=_no_docs)  # int64: a later copy
    exact_target: np.ndarray = field(default_factory=_no_docs)  # int64: its earliest copy
    near_left: np.ndarray = field(default_factory=_no_docs)  # int64: verified pairs, left < right
    near_right: np.ndarray = field(default_factory=_no_docs)
    near_jaccard: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.float64))


def build_result(ids: Sequence[str], links: Links, stats: dict, priority: np.ndarray | None = None) -> DedupResult:
    """Cluster the links, decide every member and fill in the cluster statistics.

    Each cluster keeps its earliest member, or with `priority` (one number per document, lower wins) the
    member of lowest priority, the earliest on ties: how `corpuslab dedup --keep longest` keeps the
    longest copy without reordering the corpus.
    """
    sources = np.concatenate([links.exact_source, links.near_left])
    targets = np.concatenate([links.exact_target, links.near_right])
    members = np.unique(np.concatenate([sources, targets]))
    roots = members[
        _component_roots(len(members), np.searchsorted(members, sources), np.searchsorted(members, targets))
    ]
    if priority is not None:
        roots = _preferred_roots(members, roots, np.asarray(priority, dtype=np.float64))
    neighbour, similarity = _earliest_neighbours(members, links)
    exact_of = dict(zip(links.exact_source.tolist(), links.exact_target.tolist()))
    decisions = [
        _decide(ids, int(doc), int(root), exact_of, neighbour, similarity, position)
        for position, (doc, root) in enumerate(zip(members, roots))
    ]
    stats = {**stats, **cluster_stats(ids, members, roots, decisions)}
    pairs = [
        (ids[a], ids[b], float(j)) for a, b, j in zip(links.near_left, links.near_right, links.near_jaccard)
    ]
    return DedupResult(decisions=decisions, stats=stats, verified_pairs=pairs)


def _decide(
    ids: Sequence[str],
    doc: int,
    root: int,
    exact_of: dict[int, int],
    neighbour: np.ndarray,
    similarity: np.ndarray,
    position: int,
) -> Decision:
    if doc == root:
        return Decision(ids[doc], True, None, ids[root], None, None)
    if exact_of.get(doc, doc) == exact_of.get(root, root):  # an exact copy of the kept document
        return Decision(ids[doc], False, EXACT, ids[root], ids[root], 1.0)
    if doc in exact_of:
        return Decision(ids[doc], False, EXACT, ids[root], ids[exact_of[doc]], 1.0)
    return Decision(ids[doc], False, NEAR, ids[root], ids[neighbour[position]], float(similarity[position]))


def _preferred_roots(members: np.ndarray, roots: np.ndarray, priority: np.ndarray) -> np.ndarray:
    """Per member, the member of its cluster with the lowest priority (the earliest on ties)."""
    order = np.lexsort((members, priority[members], roots))
    first = np.ones(len(order), dtype=bool)
    first[1:] = roots[order][1:] != roots[order][:-1]
    chosen = members[order][first]
    return chosen[np.searchsorted(roots[order][first], roots)]


def _earliest_neighbours(members: np.ndarray, links: Links) -> tuple[np.ndarray, np.ndarray]:
    """Per member (in `members` order): its earliest verified near neighbour and their Jaccard."""
    neighbour = np.full(len(members), np.iinfo(np.int64).max, dtype=np.int64)
    similarity = np.zeros(len(members), dtype=np.float64)
    left = np.searchsorted(members, links.near_left)
    right = np.searchsorted(members, links.near_right)
    _min_neighbour(left, links.near_right, links.near_jaccard, neighbour, similarity)
    _min_neighbour(right, links.near_left, links.near_jaccard, neighbour, similarity)
    return neighbour, similarity


@njit(cache=True, nogil=True)
def _min_neighbour(positions, others, jaccards, neighbour, similarity):
    for k in range(len(positions)):
        if others[k] < neighbour[positions[k]]:
            neighbour[positions[k]] = others[k]
            similarity[positions[k]] = jaccards[k]


@njit(cache=True, nogil=True)
def _component_roots(n, sources, targets):
    """Union-find over n items; each item's root is the smallest index in its component."""
    parent = np.arange(n)
    for k in range(len(sources)):
        a, b = _find(parent, sources[k]), _find(parent, targets[k])
        if a < b:
            parent[b] = a
        elif b < a:
            parent[a] = b
    for i in range(n):
        parent[i] = _find(parent, i)
    return parent


@njit(cache=True, nogil=True)
def _find(parent, i):
    root = i
    while parent[root] != root:
        root = parent[root]
    while parent[i] != root:  # path compression
        parent[i], i = root, parent[i]
    return root


def cluster_stats(ids: Sequence[str], members: np.ndarray, roots: np.ndarray, decisions: list[Decision]) -> dict:
    sizes = Counter(roots.tolist())
    histogram = Counter(sizes.values())
    largest = sorted(sizes.items(), key=lambda item: (-item[1], item[0]))[:LARGEST_CLUSTERS]
    listed = {root: [] for root, _ in largest}
    for doc, root in zip(members.tolist(), roots.tolist()):
        if root in listed and len(listed[root]) < MEMBERS_LISTED:
            listed[root].append(ids[doc])
    return {
        "dropped_by_reason": dict(Counter(d.reason for d in decisions if not d.kept)),
        "clusters": len(sizes),
        "cluster_size_histogram": {int(size): count for size, count in sorted(histogram.items())},
        "largest_clusters": [
            {"cluster_id": ids[root], "size": size, "members": listed[root]} for root, size in largest
        ],
    }
