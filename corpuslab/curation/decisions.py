"""The decision table: one row per curated item (document or training window), for every recipe.

    id            the item's id
    kept          whether the item is trained on
    reason        why it was dropped (None when kept): exact_duplicate, near_duplicate, excluded_cluster, ...
    cluster_id    the cluster the item belongs to (a dedup cluster's kept id, a k-means cluster, a category)
    duplicate_of  the item it duplicates, when dropped as a duplicate
    similarity    its similarity to `duplicate_of` (Jaccard, cosine)
    score         a recipe's own number for the item (distance to centroid, reference loss, ...)
    repeat        how many times the item is trained on per pass: 0 when dropped, 1 by default, more to upsample

A recipe decides only the items it has something to say about; `DecisionWriter` fills the others in as
kept, so the table always has a row for every input item, in corpus order, and the stats count every
dropped item by reason.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from corpuslab.atomic import temp_path

DECISIONS_FILE = "decisions.parquet"
DECISION_SCHEMA = pa.schema([
    ("id", pa.string()), ("kept", pa.bool_()), ("reason", pa.string()), ("cluster_id", pa.string()),
    ("duplicate_of", pa.string()), ("similarity", pa.float64()), ("score", pa.float64()), ("repeat", pa.int32()),
])
ROWS_PER_GROUP = 65536


@dataclass(frozen=True, slots=True)  # slots: a dedup run holds one per duplicate, ~100 bytes less each
class Decision:
    """The fate of one item (see the module docstring for each field)."""

    id: str
    kept: bool
    reason: str | None = None
    cluster_id: str | None = None
    duplicate_of: str | None = None
    similarity: float | None = None
    score: float | None = None
    repeat: int | None = None  # None: 1 when kept, 0 when dropped

    @property
    def times(self) -> int:
        return self.repeat if self.repeat is not None else int(self.kept)


class DecisionWriter:
    """Streams a decision table in corpus order; items without a decision are kept once."""

    def __init__(self, folder: Path):
        self.path = Path(folder) / DECISIONS_FILE
        self._tmp = temp_path(self.path)
        self._writer = pq.ParquetWriter(self._tmp, DECISION_SCHEMA, compression="zstd")
        self._rows: list[Decision] = []
        self.items = 0
        self.dropped_by_reason: Counter[str] = Counter()
        self.repeated = 0  # extra passes over upsampled items

    def write(self, decision: Decision) -> None:
        if decision.kept == (decision.reason is not None):
            raise ValueError(f"{decision.id}: a dropped item needs a reason and a kept one has none ({decision})")
        self.items += 1
        if not decision.kept:
            self.dropped_by_reason[decision.reason] += 1
        self.repeated += max(0, decision.times - 1)
        self._rows.append(decision)
        if len(self._rows) >= ROWS_PER_GROUP:
            self._flush()

    def write_all(self, ids: Iterable[str], decided: Mapping[str, Decision]) -> int:
        """A row for every id in order, kept once unless `decided` says otherwise; returns how many of the
        decisions were used (fewer than given means the recipe decided ids that are not among the items)."""
        used = 0
        for item_id in ids:
            decision = decided.get(item_id)
            used += decision is not None
            self.write(decision or Decision(item_id, True))
        return used

    def close(self) -> dict[str, Any]:
        """Finish the file and return the counts every recipe reports: input, kept, dropped, by reason."""
        self._flush(final=True)
        self._writer.close()
        self._tmp.replace(self.path)
        dropped = sum(self.dropped_by_reason.values())
        return {"input": self.items, "kept": self.items - dropped, "dropped": dropped,
                "dropped_by_reason": dict(self.dropped_by_reason), "repeated": self.repeated}

    def _flush(self, final: bool = False) -> None:
        if self._rows or final:
            self._writer.write_table(decision_table(self._rows))
            self._rows = []


class DecisionTableWriter:
    """Writes a decision table already built as Arrow tables (`DECISION_SCHEMA`), a row group per table, to a
    temporary file that replaces `decisions.parquet` only when the block ends without an error."""

    def __init__(self, folder: Path):
        self.path = Path(folder) / DECISIONS_FILE
        self._tmp = temp_path(self.path)
        self._writer = pq.ParquetWriter(self._tmp, DECISION_SCHEMA, compression="zstd")
        self._written = False

    def write_table(self, table: pa.Table) -> None:
        self._writer.write_table(table, row_group_size=ROWS_PER_GROUP)
        self._written = True

    def __enter__(self) -> DecisionTableWriter:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if not self._written and exc_type is None:
            self._writer.write_table(decision_table([]))  # an empty table, as `DecisionWriter` writes one
        self._writer.close()
        if exc_type is None:
            self._tmp.replace(self.path)
        else:
            self._tmp.unlink(missing_ok=True)


def decision_table(rows: list[Decision]) -> pa.Table:
    columns = {f.name: [getattr(r, f.name) for r in rows] for f in fields(Decision)}
    return pa.table(columns, schema=DECISION_SCHEMA)


def read_decisions(folder: Path, columns: list[str] | None = None) -> pa.Table:
    return pq.read_table(Path(folder) / DECISIONS_FILE, columns=columns)


def repeat_counts(folder: Path) -> tuple[list[str], list[int]]:
    """(ids, times trained per pass) of every item, in corpus order: 0 dropped, 1 kept, more when upsampled."""
    table = read_decisions(folder, ["id", "kept", "repeat"])
    kept = table.column("kept").to_pylist()
    repeat = table.column("repeat").to_pylist()
    return table.column("id").to_pylist(), [r if r is not None else int(k) for k, r in zip(kept, repeat)]
