"""One streaming pass over the shards: ids, exact-text digests and LSH band keys per document.

Each shard is one executor task (`scan_shard`), so the pass runs in parallel and holds one batch of one
shard per worker. What comes back is small: per document an id, a 16-byte digest and `bands` 8-byte
band keys (~150 bytes at the defaults), never the text. `scan_corpus` stitches the shards together in
corpus order (shard order, then row order).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from corpuslab.curation.minhash import MinHashConfig, band_keys, batch_shingle_sets, batch_signatures
from corpuslab.curation.normalize import NormalizeConfig, normalize_utf8
from corpuslab.curation.textbatch import TextBatch, iter_batches, release_memory
from corpuslab.errors import InputError
from corpuslab.executor import Executor, SerialExecutor


@dataclass(frozen=True)
class ScanTask:
    """What to compute for one shard. `minhash=None`: digests only (exact dedup)."""

    path: str
    norm: NormalizeConfig
    minhash: MinHashConfig | None = None
    digests: bool = True


@dataclass
class ShardScan:
    ids: list[str]
    empty: np.ndarray  # bool: normalized text has no tokens (no bytes, for digest-only scans)
    digests: np.ndarray | None  # (n, 2) uint64: 128-bit blake2b of the normalized text
    band_keys: np.ndarray | None  # (n, bands) uint64
    shingle_counts: np.ndarray | None  # int32: bounds the size of a document's shingle set


@dataclass
class CorpusScan:
    """All shards' scans concatenated in corpus order; `shard_starts[s]` = index of shard s's row 0."""

    paths: list[str]
    shard_starts: np.ndarray  # int64, len(paths) + 1
    ids: list[str]
    empty: np.ndarray
    digests: np.ndarray | None
    band_keys: np.ndarray | None
    shingle_counts: np.ndarray | None
    seconds: float

    def __len__(self) -> int:
        return len(self.ids)

    def locate(self, docs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(shard number, row within shard) of global document indices."""
        shard = np.searchsorted(self.shard_starts, docs, side="right") - 1
        return shard, docs - self.shard_starts[shard]


def normalized_batch(batch: TextBatch, norm: NormalizeConfig, minhash: MinHashConfig | None,
                     digests: bool) -> tuple[np.ndarray, np.ndarray]:
    # Word shingles split on whitespace anyway, so collapsing it first would change nothing.
    collapse = norm.collapse_whitespace and (digests or minhash is None or minhash.shingle == "char")
    return normalize_utf8(batch.data, batch.offsets, norm, collapse=collapse)


def scan_shard(task: ScanTask) -> ShardScan:
    """Executor task: digests and/or band keys of every document of one shard."""
    ids: list[str] = []
    empty, digests, keys, counts = [], [], [], []
    for batch in iter_batches(task.path):
        data, offsets = normalized_batch(batch, task.norm, task.minhash, task.digests)
        ids.extend(batch.ids)
        if task.digests:
            digests.append(text_digests(data, offsets))
        if task.minhash is None:
            empty.append(np.diff(offsets) == 0)
            continue
        signature_matrix, shingle_counts = batch_signatures(data, offsets, task.minhash)
        keys.append(band_keys(signature_matrix, *task.minhash.bands_rows()))
        empty.append(shingle_counts == 0)
        counts.append(shingle_counts.astype(np.int32))
    release_memory()
    return ShardScan(
        ids=ids,
        empty=_concat(empty, np.bool_, (0,)),
        digests=_concat(digests, np.uint64, (0, 2)) if task.digests else None,
        band_keys=_concat(keys, np.uint64, (0, task.minhash.bands_rows()[0])) if task.minhash else None,
        shingle_counts=_concat(counts, np.int32, (0,)) if task.minhash else None,
    )


def text_digests(data: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """(n, 2) uint64: blake2b-128 of each document's bytes (collisions: ~2^-64 at a billion docs)."""
    view = memoryview(data)
    joined = b"".join(hashlib.blake2b(view[offsets[d] : offsets[d + 1]], digest_size=16).digest()
                      for d in range(len(offsets) - 1))
    return np.frombuffer(joined, dtype=np.uint64).reshape(-1, 2)


def _concat(parts: list[np.ndarray], dtype: type, empty_shape: tuple[int, ...]) -> np.ndarray:
    return np.concatenate(parts) if parts else np.empty(empty_shape, dtype=dtype)


def scan_corpus(shards: Sequence[str | Path], norm: NormalizeConfig, minhash: MinHashConfig | None,
                executor: Executor | None, digests: bool = True) -> CorpusScan:
    """Scan every shard through `executor` and join the results in corpus order."""
    started = time.perf_counter()
    paths = [str(path) for path in shards]
    warm_kernels()
    tasks = [ScanTask(path, norm, minhash, digests) for path in paths]
    scans = list((executor or SerialExecutor()).map(scan_shard, tasks))
    ids = [doc_id for scan in scans for doc_id in scan.ids]
    check_unique_ids(ids, paths, scans)
    return CorpusScan(
        paths=paths,
        shard_starts=np.concatenate([[0], np.cumsum([len(s.ids) for s in scans])]).astype(np.int64),
        ids=ids,
        empty=_concat([s.empty for s in scans], np.bool_, (0,)),
        digests=_concat([s.digests for s in scans], np.uint64, (0, 2)) if digests else None,
        band_keys=_concat([s.band_keys for s in scans], np.uint64, (0, 1)) if minhash else None,
        shingle_counts=_concat([s.shingle_counts for s in scans], np.int32, (0,)) if minhash else None,
        seconds=time.perf_counter() - started,
    )


def check_unique_ids(ids: list[str], paths: list[str], scans: list[ShardScan]) -> None:
    """Decisions are keyed by id, so a repeated id would make them ambiguous."""
    if len(set(ids)) == len(ids):
        return
    seen: dict[str, str] = {}
    for path, scan in zip(paths, scans):
        for doc_id in scan.ids:
            if doc_id in seen:
                raise InputError(path, f"id {doc_id!r} is not unique (also in {seen[doc_id]})")
            seen[doc_id] = path


def warm_kernels() -> None:
    """Compile (or load from numba's cache) every kernel in this process before workers fork from it.

    Forked pool workers inherit the compiled code; otherwise each would load it on its first task.
    """
    data = np.frombuffer(b"Warm up the kernels once", dtype=np.uint8)
    offsets = np.array([0, len(data)], dtype=np.int64)
    for norm in (NormalizeConfig(), NormalizeConfig(collapse_whitespace=False)):
        normalized, normalized_offsets = normalize_utf8(data, offsets, norm)
        for shingle in ("word", "char"):
            cfg = MinHashConfig(shingle=shingle, num_perm=4, bands=2, rows=2)
            band_keys(batch_signatures(normalized, normalized_offsets, cfg)[0], 2, 2)
            batch_shingle_sets(normalized, normalized_offsets, cfg)
