"""LSH banding: candidate pairs are documents that share a band key in at least one band.

A bucket (documents with equal keys in one band) of up to `ALL_PAIRS_MAX_BUCKET` members yields all its
pairs. A larger bucket -- hundreds of copies of one boilerplate page -- would yield a quadratic number,
so it yields each member paired with the bucket's first member and with its predecessor (members in
corpus order): O(bucket) pairs that still connect the whole bucket if it is one duplicate cluster,
while every member stays a candidate in the other bands too.

The join is partitioned by band key so that no process holds every band key: each scan task spills its
shard's keys into `partitions` files by key (`spill_band_keys`), and each partition is joined on its own
(`partition_pairs`, one executor task per partition). A bucket -- one key in one band -- lies wholly in
one partition, with its members in corpus order, so the union of the partitions' pairs is exactly the
unpartitioned `candidate_pairs`. The parent holds the candidate pairs and a byte per document.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numba import njit

ALL_PAIRS_MAX_BUCKET = 64
KEYS_PER_PARTITION = 1 << 21  # ~50 MB of keys, documents and sort order per partition task
MAX_PARTITIONS = 256


def candidate_pairs(keys: np.ndarray, active: np.ndarray) -> np.ndarray:
    """(m, 2) int64 distinct pairs (i < j) of active documents sharing a band key.

    `keys` is (n_docs, bands) uint64; `active` is a bool mask of the documents to index.
    """
    docs = np.flatnonzero(active).astype(np.int64)
    codes = [_band_pair_codes(keys[docs, band], docs) for band in range(keys.shape[1])]
    unique = np.unique(np.concatenate(codes)) if codes else np.empty(0, np.uint64)
    return _decode_pairs(unique)


def _decode_pairs(unique: np.ndarray) -> np.ndarray:
    return np.stack(
        [(unique >> np.uint64(32)).astype(np.int64), (unique & np.uint64(0xFFFFFFFF)).astype(np.int64)], 1
    )


# --- the partitioned join -----------------------------------------------------------------------------


def auto_partitions(documents: int, bands: int) -> int:
    """Partitions for `documents` x `bands` band keys: about `KEYS_PER_PARTITION` keys each."""
    return max(1, min(MAX_PARTITIONS, math.ceil(documents * bands / KEYS_PER_PARTITION)))


def spill_path(folder: str | Path, shard: int, partition: int) -> Path:
    return Path(folder) / f"keys-{shard:06d}-{partition:04d}.npy"


def spill_band_keys(folder: str | Path, shard: int, keys: np.ndarray, partitions: int) -> None:
    """Write one shard's (n, bands) band keys as `partitions` files of (key, band << 32 | row) rows.

    A key goes to partition `key % partitions` whatever its band, so equal keys of a band meet in one file
    set; rows keep (row, band) order, so a partition lists each band's members in corpus order.
    """
    rows, bands = keys.shape
    flat = keys.reshape(-1)
    band_row = (np.tile(np.arange(bands, dtype=np.uint64), rows) << np.uint64(32)) | np.repeat(
        np.arange(rows, dtype=np.uint64), bands
    )
    part = (flat % np.uint64(partitions)).astype(np.int64)
    order = np.argsort(part, kind="stable")
    bounds = np.searchsorted(part[order], np.arange(partitions + 1))
    for p in range(partitions):
        chosen = order[bounds[p] : bounds[p + 1]]
        np.save(spill_path(folder, shard, p), np.stack([flat[chosen], band_row[chosen]], 1))


ACTIVE_FILE = "active.npy"  # in the spill folder: bool per document, the documents to index


@dataclass(frozen=True)
class PartitionTask:
    """Join one partition of the spilled band keys of every shard (documents to index: `ACTIVE_FILE`)."""

    folder: str
    partition: int
    shard_starts: np.ndarray  # int64, len(shards) + 1: global index of each shard's row 0


def partition_pairs(task: PartitionTask) -> np.ndarray:
    """Executor task: sorted distinct pair codes ((i << 32) | j, i < j) of one partition's buckets."""
    if len(task.shard_starts) < 2:
        return np.empty(0, np.uint64)
    keys, bands, docs = [], [], []
    active = np.load(Path(task.folder) / ACTIVE_FILE, mmap_mode="r")
    for shard in range(len(task.shard_starts) - 1):
        rows = np.load(spill_path(task.folder, shard, task.partition))
        doc = (rows[:, 1] & np.uint64(0xFFFFFFFF)).astype(np.int64) + task.shard_starts[shard]
        live = active[doc]
        keys.append(rows[live, 0])
        bands.append((rows[live, 1] >> np.uint64(32)).astype(np.int64))
        docs.append(doc[live])
    key, band, doc = (np.concatenate(parts) for parts in (keys, bands, docs))
    del keys, bands, docs
    order = np.lexsort((doc, key, band))  # buckets of (band, key), members in corpus order
    key, band, doc = key[order], band[order], doc[order]
    del order
    new_bucket = np.ones(len(key), dtype=bool)
    new_bucket[1:] = (key[1:] != key[:-1]) | (band[1:] != band[:-1])
    bucket = np.cumsum(new_bucket)
    return np.unique(_bucket_pairs(bucket, doc, ALL_PAIRS_MAX_BUCKET))


def partitioned_candidate_pairs(
    folder: str | Path, partitions: int, shard_starts: np.ndarray, active: np.ndarray, executor
) -> np.ndarray:
    """`candidate_pairs` from spilled keys, one executor task per partition, merged in this process.

    The tasks read `active` from the spill folder: sent with each task, a byte per document was pickled once per
    partition and queued in this process (8 MB at a million documents, more with the partitions)."""
    np.save(Path(folder) / ACTIVE_FILE, np.asarray(active, dtype=bool))
    tasks = [PartitionTask(str(folder), p, shard_starts) for p in range(partitions)]
    codes = list(executor.map(partition_pairs, tasks))
    merged = np.unique(np.concatenate(codes)) if codes else np.empty(0, np.uint64)
    return _decode_pairs(merged)


def _band_pair_codes(band: np.ndarray, docs: np.ndarray) -> np.ndarray:
    order = np.argsort(band, kind="stable")  # stable: members of a bucket stay in corpus order
    return _bucket_pairs(band[order], docs[order], ALL_PAIRS_MAX_BUCKET)


@njit(cache=True, nogil=True)
def _bucket_pairs(sorted_keys, members, all_pairs_max):
    """Pairs of every run of equal keys, encoded as (first << 32) | second with first < second."""
    total = 0
    start = 0
    n = len(sorted_keys)
    while start < n:  # first pass: count, so the output is allocated once
        end = start + 1
        while end < n and sorted_keys[end] == sorted_keys[start]:
            end += 1
        size = end - start
        total += size * (size - 1) // 2 if size <= all_pairs_max else 2 * (size - 1) - 1
        start = end
    out = np.empty(total, dtype=np.uint64)
    pos = start = 0
    while start < n:
        end = start + 1
        while end < n and sorted_keys[end] == sorted_keys[start]:
            end += 1
        pos = _emit_bucket(members, start, end, all_pairs_max, out, pos)
        start = end
    return out[:pos]


@njit(cache=True, nogil=True)
def _emit_bucket(members, start, end, all_pairs_max, out, pos):
    if end - start <= all_pairs_max:
        for x in range(start, end):
            for y in range(x + 1, end):
                out[pos] = (np.uint64(members[x]) << np.uint64(32)) | np.uint64(members[y])
                pos += 1
        return pos
    for y in range(start + 1, end):  # star around the first member, plus the chain of neighbours
        out[pos] = (np.uint64(members[start]) << np.uint64(32)) | np.uint64(members[y])
        pos += 1
        if y - 1 > start:
            out[pos] = (np.uint64(members[y - 1]) << np.uint64(32)) | np.uint64(members[y])
            pos += 1
    return pos


@dataclass
class BandIndex:
    """Band keys of one side of a cross-dataset comparison, sorted per band for lookups."""

    sorted_keys: np.ndarray  # (bands, n) uint64
    members: np.ndarray  # (bands, n) int64: document index of each sorted key

    @classmethod
    def build(cls, keys: np.ndarray, active: np.ndarray) -> BandIndex:
        docs = np.flatnonzero(active).astype(np.int64)
        band_keys = keys[docs].T
        order = np.argsort(band_keys, axis=1, kind="stable")
        return cls(np.take_along_axis(band_keys, order, 1), docs[order])

    def probe(self, keys: np.ndarray) -> np.ndarray:
        """(m, 2) int64 distinct (row of `keys`, indexed document) pairs sharing a band key."""
        codes = [
            _probe_band(self.sorted_keys[band], self.members[band], np.ascontiguousarray(keys[:, band]))
            for band in range(self.sorted_keys.shape[0])
        ]
        unique = np.unique(np.concatenate(codes)) if codes else np.empty(0, np.uint64)
        return np.stack(
            [(unique >> np.uint64(32)).astype(np.int64), (unique & np.uint64(0xFFFFFFFF)).astype(np.int64)], 1
        )


@njit(cache=True, nogil=True)
def _probe_band(sorted_keys, members, probe_keys):
    left = np.searchsorted(sorted_keys, probe_keys, side="left")
    right = np.searchsorted(sorted_keys, probe_keys, side="right")
    out = np.empty(int(np.sum(right - left)), dtype=np.uint64)
    pos = 0
    for row in range(len(probe_keys)):
        for k in range(left[row], right[row]):
            out[pos] = (np.uint64(row) << np.uint64(32)) | np.uint64(members[k])
            pos += 1
    return out
