"""Curation recipes: `none`, `exact`, `near`. A recipe never copies the corpus; it decides.

The outcome is a decision table with one row per input item (document or chunk): id, kept, reason,
cluster id and the id it duplicates, plus stats that account for every dropped item by reason.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from corpuslab.curation.dedup.exact import find_exact_duplicates
from corpuslab.curation.dedup.minhash import MinHashConfig
from corpuslab.curation.dedup.near import find_exact_and_near_duplicates
from corpuslab.curation.dedup.normalize import NormalizeConfig
from corpuslab.executor import Executor
from corpuslab.shards import read_documents

DECISION_SCHEMA = pa.schema(
    [("id", pa.string()), ("kept", pa.bool_()), ("reason", pa.string()), ("cluster_id", pa.string()), ("duplicate_of", pa.string()),
     ("jaccard", pa.float64())]
)


@dataclass
class Decision:
    id: str
    kept: bool
    reason: str | None = None
    cluster_id: str | None = None
    duplicate_of: str | None = None
    jaccard: float | None = None


@dataclass
class CurationOutcome:
    items: list[Path]
    decisions: dict[str, Decision] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)

    def dropped_ids(self) -> set[str]:
        return {d.id for d in self.decisions.values() if not d.kept}

    def write(self, folder: Path) -> None:
        """Write `decisions.parquet` with a row for every input item, kept or not, in corpus order."""
        writer = pq.ParquetWriter(folder / "decisions.parquet", DECISION_SCHEMA, compression="zstd")
        rows: list[Decision] = []
        for doc in read_documents(self.items, columns=["id"]):
            rows.append(self.decisions.get(doc.id) or Decision(doc.id, True))
            if len(rows) >= 65536:
                writer.write_table(_decision_table(rows))
                rows = []
        writer.write_table(_decision_table(rows))
        writer.close()


def _decision_table(rows: list[Decision]) -> pa.Table:
    return pa.table(
        {
            "id": [r.id for r in rows],
            "kept": [r.kept for r in rows],
            "reason": [r.reason for r in rows],
            "cluster_id": [r.cluster_id for r in rows],
            "duplicate_of": [r.duplicate_of for r in rows],
            "jaccard": [r.jaccard for r in rows],
        },
        schema=DECISION_SCHEMA,
    )


def curate_items(
    items: list[Path],
    recipe: str,
    normalize: NormalizeConfig,
    minhash: MinHashConfig,
    executor: Executor,
    log: Callable[[str], None] = print,
) -> CurationOutcome:
    """Apply `recipe` to the items in these shards. `near` is `exact` first, then MinHash LSH on the survivors."""
    outcome = CurationOutcome(items)
    n_items = sum(pq.ParquetFile(p).metadata.num_rows for p in items)
    stats: dict[str, Any] = {"recipe": recipe, "input": n_items}
    if recipe == "exact":
        result = find_exact_duplicates(items, normalize, executor)
    elif recipe == "near":
        result = find_exact_and_near_duplicates(items, minhash, normalize, executor)
    else:
        result = None
    if result is not None:
        outcome.decisions = {d.id: Decision(d.id, d.kept, d.reason, d.cluster_id, d.duplicate_of, d.jaccard)
                             for d in result.decisions}
        stats["engine"] = result.stats
        log(f"  {recipe}: {result.stats.get('dropped_by_reason', {})} of {n_items}"
            + (f" ({minhash}; {result.stats.get('candidate_pairs', 0)} candidate pairs, "
               f"{result.stats.get('candidates_rejected_by_verification', 0)} rejected by verification)"
               if recipe == "near" else ""))
    reasons = Counter(d.reason for d in outcome.decisions.values() if not d.kept)
    stats["dropped_by_reason"] = dict(reasons)
    stats["dropped"] = sum(reasons.values())
    stats["kept"] = n_items - stats["dropped"]
    outcome.stats = stats
    return outcome
