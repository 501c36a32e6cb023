"""Cross-split decontamination: held-out documents that duplicate a train document leave val/test.

It runs once, before any arm trains, so every arm is evaluated on the same clean sets.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from corpuslab.curation.dedup.minhash import MinHashConfig
from corpuslab.curation.dedup.near import find_cross_duplicates
from corpuslab.curation.dedup.normalize import NormalizeConfig
from corpuslab.executor import Executor
from corpuslab.shards import ShardWriter, read_documents


def decontaminate(
    train: list[Path],
    held_out: dict[str, list[Path]],
    mode: str,
    minhash: MinHashConfig,
    normalize: NormalizeConfig,
    executor: Executor,
    out_dir: Path,
) -> dict[str, Any]:
    """Write `<out_dir>/<split>/` with the clean documents and `removed.parquet` naming what each removed one matched."""
    removed_rows: list[dict[str, Any]] = []
    summary: dict[str, Any] = {"mode": mode}
    for split, paths in held_out.items():
        matches = {} if mode == "none" else find_cross_duplicates(train, paths, minhash, normalize, executor, near=(mode == "near"))
        reasons: Counter[str] = Counter()
        with ShardWriter(out_dir / split) as writer:
            for doc in read_documents(paths):
                match = matches.get(doc.id)
                if match is None:
                    writer.write(doc)
                    continue
                reasons[match.reason] += 1
                removed_rows.append({"split": split, "id": doc.id, "reason": match.reason,
                                     "matched_train_id": match.matched_id, "jaccard": float(match.jaccard)})
        summary[split] = {"input": writer.count + sum(reasons.values()), "kept": writer.count, "removed_by_reason": dict(reasons)}
    schema = pa.schema([("split", pa.string()), ("id", pa.string()), ("reason", pa.string()),
                        ("matched_train_id", pa.string()), ("jaccard", pa.float64())])
    pq.write_table(pa.Table.from_pylist(removed_rows, schema=schema), out_dir / "removed.parquet")
    return summary
