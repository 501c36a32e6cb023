"""The exact-duplicate join of near dedup, partitioned like the LSH join so no process holds every digest.

Each scan task writes its shard's 128-bit text digests (non-empty documents only) into `partitions` files
by digest (`spill_digests`); each partition is then joined on its own (`partition_exact_links`, one executor
task per partition): equal digests always meet in one partition, so the union of the partitions' links is
exactly `exact.exact_links` over the whole corpus. The parent receives only the (copy, earliest copy)
links, instead of holding 16 bytes per document and sorting them (~70 bytes per document at the peak).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


def equal_digest_links(high: np.ndarray, low: np.ndarray, docs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(later copies, their earliest copy) among documents `docs` with digests (high, low), as int64."""
    order = np.lexsort((docs, low, high))  # equal digests end up adjacent, earliest first
    high, low, docs = high[order], low[order], docs[order]
    starts_group = np.ones(len(docs), dtype=bool)
    starts_group[1:] = (high[1:] != high[:-1]) | (low[1:] != low[:-1])
    first = docs[np.flatnonzero(starts_group)[np.cumsum(starts_group) - 1]]
    copies = ~starts_group
    return docs[copies].astype(np.int64), first[copies].astype(np.int64)


def digest_spill_path(folder: str | Path, shard: int, partition: int) -> Path:
    return Path(folder) / f"digests-{shard:06d}-{partition:04d}.npy"


def spill_digests(folder: str | Path, shard: int, digests: np.ndarray, active: np.ndarray, partitions: int) -> None:
    """Write one shard's (n, 2) digests of its active rows as `partitions` files of (high, low, row) rows."""
    rows = np.flatnonzero(active).astype(np.uint64)
    table = np.column_stack([digests[active], rows]) if len(rows) else np.empty((0, 3), np.uint64)
    spill_partitioned(table, partitions, lambda p: digest_spill_path(folder, shard, p))


def spill_partitioned(table: np.ndarray, partitions: int, path_of) -> None:
    """Write the uint64 rows of `table` into `partitions` .npy files (`path_of(partition)`) by their first column
    modulo `partitions`, in their order: equal keys of every shard meet in one partition's files."""
    part = (table[:, 0] % np.uint64(partitions)).astype(np.int64)
    order = np.argsort(part, kind="stable")
    bounds = np.searchsorted(part[order], np.arange(partitions + 1))
    for p in range(partitions):
        np.save(path_of(p), table[order[bounds[p] : bounds[p + 1]]])


@dataclass(frozen=True)
class ExactPartitionTask:
    folder: str
    partition: int
    shard_starts: np.ndarray  # int64, len(shards) + 1


def partition_exact_links(task: ExactPartitionTask) -> tuple[np.ndarray, np.ndarray]:
    """Executor task: the exact links among one partition's digests of every shard."""
    parts = [np.load(digest_spill_path(task.folder, shard, task.partition)) for shard in range(len(task.shard_starts) - 1)]
    table = np.concatenate(parts) if parts else np.empty((0, 3), np.uint64)
    shard_of_part = np.repeat(np.arange(len(parts)), [len(part) for part in parts])
    docs = table[:, 2].astype(np.int64) + task.shard_starts[shard_of_part]
    return equal_digest_links(table[:, 0], table[:, 1], docs)


def partitioned_exact_links(folder: str | Path, partitions: int, shard_starts: np.ndarray, executor) -> tuple[np.ndarray, np.ndarray]:
    """`exact.exact_links` of the spilled digests, one executor task per partition, sorted by the copy."""
    tasks = [ExactPartitionTask(str(folder), p, shard_starts) for p in range(partitions)]
    links = list(executor.map(partition_exact_links, tasks))
    source = np.concatenate([np.empty(0, np.int64)] + [s for s, _ in links])
    target = np.concatenate([np.empty(0, np.int64)] + [t for _, t in links])
    order = np.argsort(source, kind="stable")
    return source[order], target[order]
