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

That is for Jaccard, which is symmetric. Containment (|A & B| / |A|, A the smaller set) is directed -- A is
copied inside B, B is a copy of nothing -- so its pairs are not clustered by union-find:
`containment_decisions` decides documents largest shingle set first and drops one only into a document
already kept, so there `duplicate_of` is always a kept document and the cluster is the one it points at.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
from numba import njit

from corpuslab.atomic import write_json_atomic
from corpuslab.curation.decisions import DECISION_SCHEMA, ROWS_PER_GROUP, Decision, DecisionTableWriter
from corpuslab.curation.dedup.scan import Ids, ShardIds
from corpuslab.curation.dedup.textbatch import release_memory
from corpuslab.tools import arrow_columns

EXACT = "exact_duplicate"
NEAR = "near_duplicate"
LARGEST_CLUSTERS = 10
MEMBERS_LISTED = 100  # member ids listed per large cluster in stats.json


KEPT, EXACT_CODE, NEAR_CODE = 0, 1, 2  # `DedupResult.reasons`
REASONS = (None, EXACT, NEAR)


@dataclass
class DedupResult:
    """Decisions for every document in a cluster (all others are kept), plus run statistics.

    Held as arrays over the clustered documents (`members`, global indices in corpus order) rather than a
    `Decision` object per document: ~41 bytes per clustered document where the objects and their id strings
    took ~300. `decisions` and `verified_pairs` build the Python objects on demand (tests, small corpora);
    `write` and `write_every_row` stream the table to Parquet a row group at a time, built from Arrow buffers
    (`arrow_columns`: no pandas import) with the ids taken from the shards (`ShardIds`) or an id buffer (`Ids`).
    The ids the tables name besides a row's own (clusters, duplicate_of, pairs) are read once (`names`).
    """

    ids: Ids | ShardIds  # every document's id, in corpus order (`take` gives them by index)
    members: np.ndarray  # int64, sorted: documents in a cluster of two or more
    roots: np.ndarray  # int64 per member: the document its cluster keeps
    reasons: np.ndarray  # int8 per member: KEPT, EXACT_CODE or NEAR_CODE
    duplicate_of: np.ndarray  # int64 per member: the document it duplicates (-1 when kept)
    similarity: np.ndarray  # float64 per member: to `duplicate_of` (unused when kept)
    links: Links
    stats: dict
    _named: tuple[np.ndarray, pa.Array] | None = field(default=None, init=False, repr=False, compare=False)

    def names(self, docs: np.ndarray) -> pa.Array:
        """Ids of the documents `docs` (a negative index gives a null) as an Arrow string array.

        The ids of the clustered documents and of both sides of every verified pair are read from the shards
        once, on the first call, and kept until `forget_names`: memory in proportion to the duplicates, where
        taking each row group's cluster and duplicate_of ids from the shards would read every shard again
        for each row group. Any other document is read back from the shards.
        """
        if self._named is None:
            named = np.unique(np.concatenate([self.members, self.links.near_left, self.links.near_right])).astype(np.int64)
            self._named = (named, self.ids.take(named))
            release_memory()  # what reading the shards' ids left behind
        named, names = self._named
        docs = np.asarray(docs, dtype=np.int64)
        position = np.searchsorted(named, docs)
        found = docs < 0
        if len(named):
            found |= named[np.minimum(position, len(named) - 1)] == docs
        if not found.all():
            return self.ids.take(docs)
        return arrow_columns.take(names, np.where(docs < 0, -1, position))

    def forget_names(self) -> None:
        """Drop the ids kept by `names` (before work that needs the memory more)."""
        self._named = None

    @property
    def decisions(self) -> list[Decision]:
        count = len(self.members)
        names = self.ids.take(np.concatenate([self.members, self.roots, self.duplicate_of])).to_pylist()
        return [
            Decision(names[k], True, None, names[count + k], None, None) if code == KEPT
            else Decision(names[k], False, REASONS[code], names[count + k], names[2 * count + k], float(sim))
            for k, (code, sim) in enumerate(zip(self.reasons.tolist(), self.similarity.tolist()))
        ]

    @property
    def verified_pairs(self) -> list[tuple[str, str, float]]:
        links = self.links
        names = self.ids.take(np.concatenate([links.near_left, links.near_right])).to_pylist()
        count = len(links.near_left)
        return [(names[k], names[count + k], float(j)) for k, j in enumerate(links.near_jaccard.tolist())]

    def dropped_ids(self) -> set[str]:
        return set(self.ids.take(self.members[self.reasons != KEPT]).to_pylist())

    def kept_mask(self) -> np.ndarray:
        """bool per document of the corpus: False for the dropped duplicates."""
        kept = np.ones(len(self.ids), dtype=bool)
        kept[self.members[self.reasons != KEPT]] = False
        return kept

    def write(self, folder: str | Path) -> None:
        """decisions.parquet (a row per clustered document) and stats.json."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        with DecisionTableWriter(folder) as writer:
            for first in range(0, len(self.members), ROWS_PER_GROUP):
                docs = self.members[first : first + ROWS_PER_GROUP]
                writer.write_table(self._table(docs, self.names(docs), slice(first, first + ROWS_PER_GROUP)))
                release_memory()
        write_json_atomic(folder / "stats.json", self.stats)

    def write_every_row(self, folder: str | Path) -> dict:
        """decisions.parquet with a row per document of the corpus (the unclustered ones kept), and the
        counts `DecisionWriter.close` returns."""
        with DecisionTableWriter(Path(folder)) as writer:
            for first in range(0, len(self.ids), ROWS_PER_GROUP):
                docs = np.arange(first, min(first + ROWS_PER_GROUP, len(self.ids)), dtype=np.int64)
                low, high = np.searchsorted(self.members, [first, first + len(docs)])
                writer.write_table(self._table(docs, self.ids.take(docs), slice(low, high), self.members[low:high] - first))
                release_memory()
        dropped = self.stats.get("dropped_by_reason", {})
        total = sum(dropped.values())
        return {"input": len(self.ids), "kept": len(self.ids) - total, "dropped": total, "dropped_by_reason": dict(dropped),
                "repeated": 0}

    def _table(self, docs: np.ndarray, names: pa.Array, decided: slice, rows: np.ndarray | None = None) -> pa.Table:
        """Decision rows of the documents `docs` (ids `names`); the members `decided` fill rows `rows` (default: all,
        in order). The one layout of a decision table here: `corpuslab dedup` writes it through this too."""
        n = len(docs)
        rows = np.arange(n) if rows is None else rows
        reasons = np.zeros(n, dtype=np.int8)
        roots = np.full(n, -1, dtype=np.int64)
        duplicate_of = np.full(n, -1, dtype=np.int64)
        similarity = np.zeros(n, dtype=np.float64)
        reasons[rows], roots[rows] = self.reasons[decided], self.roots[decided]
        duplicate_of[rows], similarity[rows] = self.duplicate_of[decided], self.similarity[decided]
        kept = reasons == KEPT
        return pa.Table.from_arrays([
            names,
            arrow_columns.bools(kept),
            reason_column(reasons),
            self.names(roots),  # cluster_id
            self.names(duplicate_of),
            arrow_columns.numbers(similarity, kept),
            pa.nulls(n, pa.float64()),  # score
            pa.nulls(n, pa.int32()),  # repeat
        ], schema=DECISION_SCHEMA)


def reason_column(reasons: np.ndarray) -> pa.Array:
    """The reason of each code in `reasons` (null where KEPT) as an Arrow string array."""
    names = arrow_columns.column(list(REASONS[1:]), pa.string())
    return arrow_columns.take(names, np.where(reasons == KEPT, -1, reasons.astype(np.int64) - 1))


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
    # containment only: shingle-set sizes of near_left and near_right (which side is contained in which)
    near_left_size: np.ndarray = field(default_factory=_no_docs)
    near_right_size: np.ndarray = field(default_factory=_no_docs)


def build_result(
    ids: Ids | ShardIds | Sequence[str],
    links: Links,
    stats: dict,
    priority: np.ndarray | None = None,
    containment: bool = False,
) -> DedupResult:
    """Cluster the links, decide every member and fill in the cluster statistics.

    Each cluster keeps its earliest member, or with `priority` (one number per document, lower wins) the
    member of lowest priority, the earliest on ties: how `corpuslab dedup --keep longest` keeps the
    longest copy without reordering the corpus. With `containment` the near links are directed and decided
    by `containment_decisions` instead (the links must carry their shingle-set sizes).
    """
    ids = ids if isinstance(ids, (Ids, ShardIds)) else Ids.from_strings(ids)
    if containment:
        members, roots, reasons, duplicate_of, similarity = containment_decisions(links, priority)
        stats = {**stats, **cluster_stats(ids, members, roots, reasons)}
        return DedupResult(ids, members, roots, reasons, duplicate_of, similarity, links, stats)
    sources = np.concatenate([links.exact_source, links.near_left])
    targets = np.concatenate([links.exact_target, links.near_right])
    members = np.unique(np.concatenate([sources, targets])).astype(np.int64)
    roots = members[
        _component_roots(len(members), np.searchsorted(members, sources), np.searchsorted(members, targets))
    ]
    del sources, targets
    if priority is not None:
        roots = _preferred_roots(members, roots, np.asarray(priority, dtype=np.float64))
    reasons, duplicate_of, similarity = _decide(members, roots, links)
    stats = {**stats, **cluster_stats(ids, members, roots, reasons)}
    return DedupResult(ids, members, roots, reasons, duplicate_of, similarity, links, stats)


def containment_decisions(
    links: Links, priority: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(members, roots, reasons, duplicate_of, similarity) when the near links are verified containments.

    Containment is directed: a verified pair says the smaller shingle set lies (>= threshold) inside the
    larger, not that the larger is a copy of anything, so the links are not clustered by union-find.
    Documents with the same normalized text (the exact links) form one *text*, represented by its preferred
    copy (lowest `priority`, the earliest on ties: the --keep policy). Texts are then decided largest
    shingle set first (ties: the preferred copy's priority, then corpus order), so a container is decided
    before what it contains. A text is dropped iff it has a verified pair with a text already KEPT -- by
    the order, the larger side (or the earlier on equal sizes) -- and then every copy of it is a
    near_duplicate of that kept text's preferred copy (the highest containment; ties: the lowest index),
    `similarity` = the containment. A kept text keeps its preferred copy; its other copies are
    exact_duplicate of it. So `duplicate_of` always names a kept document, there are no loops, and a
    document is dropped only if it is an exact copy of a kept one or contained (>= threshold) in one.

    --keep therefore only breaks ties among texts of equal size and picks which exact copy is kept;
    otherwise the containing document is kept, whatever the policy. A cluster (`roots`, cluster_id) is a
    kept document with everything pointing at it; a document contained in two kept documents belongs to
    the one it points at. Members: the documents in such a cluster of two or more (a kept document none
    points at is not one, even if it has a verified pair with a dropped one).
    """
    members = np.unique(np.concatenate([links.exact_source, links.exact_target, links.near_left, links.near_right])).astype(np.int64)
    n = len(members)
    text_of = np.arange(n)  # position of the earliest copy of the member's text
    text_of[np.searchsorted(members, links.exact_source)] = np.searchsorted(members, links.exact_target)
    rank = np.zeros(n) if priority is None else np.asarray(priority, dtype=np.float64)[members]
    order = np.lexsort((members, rank, text_of))
    first = np.ones(n, dtype=bool)
    first[1:] = text_of[order][1:] != text_of[order][:-1]
    preferred = order[first]  # per text (in order of its earliest copy): position of the copy kept
    text = np.searchsorted(text_of[order][first], text_of)  # per member: its text
    left = text[np.searchsorted(members, links.near_left)]
    right = text[np.searchsorted(members, links.near_right)]
    size = np.zeros(len(preferred), dtype=np.int64)
    size[left], size[right] = links.near_left_size, links.near_right_size
    decided = np.lexsort((members[preferred], rank[preferred], -size))  # texts, largest first
    position = np.empty(len(preferred), dtype=np.int64)
    position[decided] = np.arange(len(preferred))
    later = np.where(position[left] > position[right], left, right)
    earlier = np.where(position[left] > position[right], right, left)
    by_later = np.argsort(position[later], kind="stable")
    target, best = _contained_in_kept(later[by_later], earlier[by_later], links.near_jaccard[by_later],
                                      members[preferred], len(preferred))
    mine = target[text]  # per member: the text it is contained in (-1: its text is kept)
    kept = (mine < 0) & (preferred[text] == np.arange(n))
    root_text = np.where(mine < 0, text, mine)
    roots = members[preferred[root_text]]
    reasons = np.where(kept, KEPT, np.where(mine < 0, EXACT_CODE, NEAR_CODE)).astype(np.int8)
    duplicate_of = np.where(kept, -1, roots).astype(np.int64)
    similarity = np.where(kept, 0.0, np.where(mine < 0, 1.0, best[text]))
    in_cluster = np.bincount(root_text, minlength=len(preferred)) > 1
    keep = in_cluster[root_text]
    return members[keep], roots[keep], reasons[keep], duplicate_of[keep], similarity[keep]


@njit(cache=True, nogil=True)
def _contained_in_kept(later, earlier, similarity, preferred, texts):
    """Per text: the kept text it is dropped into (-1: kept) and their containment. The pairs come as
    (later, earlier) in the order of decision of `later`, so every pair of a text precedes the pairs in
    which it is the earlier side: whether it is kept is settled before anything asks."""
    target = np.full(texts, -1, dtype=np.int64)
    best = np.zeros(texts, dtype=np.float64)
    for k in range(len(later)):
        a, b, s = later[k], earlier[k], similarity[k]
        if a == b or target[b] >= 0:  # the same text, or the container was itself dropped
            continue
        t = target[a]
        if t < 0 or s > best[a] or (s == best[a] and preferred[b] < preferred[t]):
            target[a] = b
            best[a] = s
    return target, best


def _decide(members: np.ndarray, roots: np.ndarray, links: Links) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(reason, duplicate_of, similarity) of every member. A cluster's kept document is kept; an exact copy
    of it (or a copy of the text it is an exact copy of) points at it; another exact copy at its earliest
    copy; every other member at its earliest verified near neighbour, with their Jaccard."""
    neighbour, near_similarity = _earliest_neighbours(members, links)
    exact_position = np.searchsorted(members, links.exact_source)
    is_exact_copy = np.zeros(len(members), dtype=bool)
    is_exact_copy[exact_position] = True
    text_of = members.copy()  # the earliest document with the member's text
    text_of[exact_position] = links.exact_target
    kept = members == roots
    same_text_as_root = text_of == text_of[np.searchsorted(members, roots)]
    exact = ~kept & (same_text_as_root | is_exact_copy)
    reasons = np.where(kept, KEPT, np.where(exact, EXACT_CODE, NEAR_CODE)).astype(np.int8)
    duplicate_of = np.where(kept, -1, np.where(same_text_as_root, roots, np.where(is_exact_copy, text_of, neighbour)))
    similarity = np.where(exact, 1.0, np.where(kept, 0.0, near_similarity))
    return reasons, duplicate_of.astype(np.int64), similarity


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


def cluster_stats(ids: Ids | ShardIds, members: np.ndarray, roots: np.ndarray, reasons: np.ndarray) -> dict:
    """Counts by reason (in order of first appearance among the members), cluster sizes, and the largest
    clusters (ties: the earliest kept document first) with up to `MEMBERS_LISTED` member ids each."""
    dropped = reasons[reasons != KEPT]
    codes, first, counts = np.unique(dropped, return_index=True, return_counts=True)
    by_reason = {REASONS[int(codes[k])]: int(counts[k]) for k in np.argsort(first)}
    cluster_roots, sizes = np.unique(roots, return_counts=True)
    size_values, size_counts = np.unique(sizes, return_counts=True)
    largest = np.lexsort((cluster_roots, -sizes))[:LARGEST_CLUSTERS]
    listed = [members[roots == cluster_roots[k]][:MEMBERS_LISTED] for k in largest.tolist()]
    names = ids.take(np.concatenate([cluster_roots[largest], *listed]).astype(np.int64)).to_pylist()
    clusters, position = [], len(largest)
    for k, in_cluster in zip(largest.tolist(), listed):
        clusters.append({"cluster_id": names[len(clusters)], "size": int(sizes[k]),
                         "members": names[position : position + len(in_cluster)]})
        position += len(in_cluster)
    return {
        "dropped_by_reason": by_reason,
        "clusters": len(cluster_roots),
        "cluster_size_histogram": {int(size): int(count) for size, count in zip(size_values, size_counts)},
        "largest_clusters": clusters,
    }
