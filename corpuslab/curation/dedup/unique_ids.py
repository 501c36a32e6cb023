"""The id uniqueness check of a scan, partitioned by id hash and spilled like the exact and LSH joins.

Decisions are keyed by id, so a repeated id would make them ambiguous. Each scan task writes a 64-bit hash
of each of its ids (`scan._id_hashes`) with its row into `partitions` files by hash (`spill_id_hashes`);
each partition is then checked on its own (`partition_repeated_hashes`, one executor task per partition):
equal ids have equal hashes, so they meet in one partition. The parent receives only the documents whose
hash repeats (none unless an id repeats or two hashes collide), then reads those ids back from the shards
and compares them exactly (`scan.check_suspects`): it never holds a hash per document, where holding them
and their sorted copy cost 16 bytes per document.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from corpuslab.curation.dedup.digests import spill_partitioned


def id_spill_path(folder: str | Path, shard: int, partition: int) -> Path:
    return Path(folder) / f"ids-{shard:06d}-{partition:04d}.npy"


def spill_id_hashes(folder: str | Path, shard: int, hashes: np.ndarray, partitions: int) -> None:
    """Write one shard's id hashes as `partitions` files of (hash, row) rows, by hash."""
    table = np.column_stack([hashes, np.arange(len(hashes), dtype=np.uint64)]) if len(hashes) else np.empty((0, 2), np.uint64)
    spill_partitioned(table, partitions, lambda p: id_spill_path(folder, shard, p))


@dataclass(frozen=True)
class RepeatedHashTask:
    folder: str
    partition: int
    shard_starts: np.ndarray  # int64, len(shards) + 1


def partition_repeated_hashes(task: RepeatedHashTask) -> np.ndarray:
    """Executor task: sorted global indices of the documents of one partition whose id hash another shares."""
    parts = [np.load(id_spill_path(task.folder, shard, task.partition)) for shard in range(len(task.shard_starts) - 1)]
    table = np.concatenate(parts) if parts else np.empty((0, 2), np.uint64)
    shard_of_row = np.repeat(np.arange(len(parts)), [len(part) for part in parts])
    order = np.argsort(table[:, 0])
    hashes = table[order, 0]
    same = hashes[1:] == hashes[:-1]
    if not same.any():
        return np.empty(0, np.int64)
    repeated = np.zeros(len(hashes), dtype=bool)
    repeated[1:] |= same
    repeated[:-1] |= same
    rows = order[repeated]
    return np.sort(table[rows, 1].astype(np.int64) + task.shard_starts[shard_of_row[rows]])


def repeated_hash_documents(folder: str | Path, partitions: int, shard_starts: np.ndarray, executor) -> np.ndarray:
    """Sorted global indices of every document whose id hash repeats, one executor task per partition."""
    tasks = [RepeatedHashTask(str(folder), p, shard_starts) for p in range(partitions)]
    return np.sort(np.concatenate([np.empty(0, np.int64), *executor.map(partition_repeated_hashes, tasks)]))
