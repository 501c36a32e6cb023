"""Ground truth: each document's planted-duplicate metadata as `TruthRecord`s, the planted groups, and
`score_removals`, which grades a curation recipe's removals (precision, recall) from ids alone."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, NamedTuple

import numpy as np

from corpuslab.documents import Document

TRUTH_KINDS = ("original", "exact_duplicate", "near_duplicate", "boilerplate")
SHINGLE_WORDS = 5  # word 5-grams: what MinHash dedup uses (Lee et al. 2021) and what truth_jaccard measures


def word_shingles(text: str, n: int = SHINGLE_WORDS) -> set[tuple[str, ...]]:
    """Word n-grams of the lowercased, whitespace-split text (a shorter text is one shingle)."""
    words = text.lower().split()
    if len(words) < n:
        return {tuple(words)} if words else set()
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def shingle_jaccard(a: str, b: str, n: int = SHINGLE_WORDS) -> float:
    """Jaccard similarity of the two texts' word n-gram sets: what a MinHash detector estimates."""
    sa, sb = word_shingles(a, n), word_shingles(b, n)
    if not sa and not sb:
        return 1.0
    return len(sa & sb) / len(sa | sb)


class TruthRecord(NamedTuple):
    """The ground truth of one document, without its text."""

    id: str
    truth_kind: str
    truth_source: str | None
    edit_rate: float = 0.0
    truth_jaccard: float | None = None


def truth_records(docs: Iterable[Any]) -> Iterator[TruthRecord]:
    """Normalise documents or rows into TruthRecords, skipping those with no ground truth (e.g. canaries).

    Accepts `Document`s, `(id, metadata)` pairs, `(id, truth_kind, truth_source[, edit_rate,
    truth_jaccard])` tuples and TruthRecords.
    """
    for item in docs:
        record = _as_record(item)
        if record is not None:
            yield record


def _as_record(item: Any) -> TruthRecord | None:
    if isinstance(item, TruthRecord):
        return item
    if isinstance(item, Document):
        item = (item.id, item.metadata)
    if len(item) == 2 and isinstance(item[1], Mapping):
        meta = item[1]
        if meta.get("truth_kind") not in TRUTH_KINDS:
            return None
        return TruthRecord(
            item[0],
            meta["truth_kind"],
            meta.get("truth_source"),
            float(meta.get("edit_rate") or 0.0),
            meta.get("truth_jaccard"),
        )
    return TruthRecord(*item)


def _truth_group(record: TruthRecord) -> str:
    return record.id if record.truth_kind == "original" else str(record.truth_source)


def truth_groups(records: Iterable[Any]) -> dict[str, list[str]]:
    """Planted duplicate groups (size >= 2): group key -> member ids, the one to keep first.

    A group is an original with its exact and near copies, or all boilerplate from one template. The
    member to keep is the original, or (a boilerplate group, or a split that holds no original) the
    smallest id, i.e. the earliest in corpus order.
    """
    members: dict[str, list[TruthRecord]] = defaultdict(list)
    for record in truth_records(records):
        members[_truth_group(record)].append(record)
    return {key: [r.id for r in _keep_first(group)] for key, group in members.items() if len(group) > 1}


def _keep_first(group: list[TruthRecord]) -> list[TruthRecord]:
    return sorted(group, key=lambda r: (r.truth_kind != "original", r.id))


def score_removals(
    removed_ids: Iterable[str], records: Iterable[Any], threshold: float = 0.85
) -> dict[str, Any]:
    """Grade a dedup recipe's removals against the planted duplicates among `records`.

    Each group should keep exactly one member. A removal is correct when another member of its group is
    kept; so a group may keep a copy instead of the original (the credit moves to the kept copy most
    similar to the original), but removing a whole group costs one wrong removal.

    - precision: correct removals / removals (None when nothing was removed).
    - recall: removed planted duplicates / planted duplicates a detector at `threshold` is *expected* to
      find: exact copies, and near-duplicate or boilerplate documents whose word 5-gram Jaccard with the
      kept member (`truth_jaccard`) is >= threshold. A 30%-edited copy has Jaccard ~0.2 and is not expected.
    - recall_all_planted: the same over every planted duplicate, whatever its Jaccard.
    - by_kind, by_edit_rate: per truth kind and per near-dup edit rate: planted, expected, recalled
      (removed, or standing in for a removed original), recall, recall_all_planted, mean_truth_jaccard.
    Records without ground truth (canaries, other sources) are ignored; `unknown_removed` counts their
    removals.
    """
    removed = set(removed_ids)
    groups: dict[str, list[TruthRecord]] = defaultdict(list)
    for record in truth_records(records):
        groups[_truth_group(record)].append(record)
    known = {r.id for group in groups.values() for r in group}
    credited: list[TruthRecord] = []  # planted duplicates counted as removed
    planted: list[TruthRecord] = []
    wrong = 0
    for group in groups.values():
        ordered = _keep_first(group)
        group_credit, group_wrong = _score_group(ordered, removed)
        credited += group_credit
        wrong += group_wrong
        planted += ordered[1:]
    return _summarise(removed, known, credited, planted, wrong, threshold)


def _score_group(group: list[TruthRecord], removed: set[str]) -> tuple[list[TruthRecord], int]:
    """(planted duplicates credited as removed, wrong removals) for one group, the member to keep first."""
    keeper, copies = group[0], group[1:]
    credit = [r for r in copies if r.id in removed]
    if keeper.id not in removed:
        return credit, 0
    kept = [r for r in copies if r.id not in removed]
    if not kept:
        return credit, 1  # the whole group is gone: one of its removals was wrong
    stand_in = max(kept, key=_similarity)  # the first most similar kept copy now plays the original
    return credit + [stand_in], 0


def _similarity(record: TruthRecord) -> float:
    if record.truth_kind == "exact_duplicate":
        return 1.0
    return record.truth_jaccard if record.truth_jaccard is not None else 0.0


def _expected(record: TruthRecord, threshold: float) -> bool:
    return _similarity(record) >= threshold


def _summarise(
    removed: set[str],
    known: set[str],
    credited: list[TruthRecord],
    planted: list[TruthRecord],
    wrong: int,
    threshold: float,
) -> dict[str, Any]:
    n_removed = len(removed & known)
    expected = [r for r in planted if _expected(r, threshold)]
    credited_ids = {r.id for r in credited}
    return {
        "threshold": threshold,
        "removed": n_removed,
        "correct_removals": n_removed - wrong,
        "wrong_removals": wrong,
        "unknown_removed": len(removed - known),
        "precision": _ratio(n_removed - wrong, n_removed),
        "planted": len(planted),
        "expected": len(expected),
        "recall": _ratio(sum(r.id in credited_ids for r in expected), len(expected)),
        "recall_all_planted": _ratio(len(credited), len(planted)),
        "by_kind": _breakdown(planted, credited_ids, threshold, lambda r: r.truth_kind),
        "by_edit_rate": _breakdown(
            [r for r in planted if r.truth_kind == "near_duplicate"],
            credited_ids,
            threshold,
            lambda r: f"{r.edit_rate:g}",
        ),
    }


def _breakdown(
    planted: list[TruthRecord], credited_ids: set[str], threshold: float, key: Any
) -> dict[str, Any]:
    buckets: dict[str, list[TruthRecord]] = defaultdict(list)
    for record in planted:
        buckets[key(record)].append(record)
    out = {}
    for name in sorted(buckets, key=lambda k: (_as_float(k), k)):
        group = buckets[name]
        expected = [r for r in group if _expected(r, threshold)]
        jaccards = [_similarity(r) for r in group]
        out[name] = {
            "planted": len(group),
            "expected": len(expected),
            "recalled": sum(r.id in credited_ids for r in group),
            "recall": _ratio(sum(r.id in credited_ids for r in expected), len(expected)),
            "recall_all_planted": _ratio(sum(r.id in credited_ids for r in group), len(group)),
            "mean_truth_jaccard": round(float(np.mean(jaccards)), 4),
        }
    return out


def _as_float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return float("inf")


def _ratio(numerator: int, denominator: int) -> float | None:
    """None, not 0 or 1, when undefined: a report should show "no removals", not a perfect score."""
    return numerator / denominator if denominator else None
