"""One streaming pass over the shards: ids, exact-text digests and LSH band keys per document.

Each shard is one executor task (`scan_shard`), so the pass runs in parallel and holds one batch of one
shard per worker. What comes back is small: per document an id (as UTF-8 bytes in one buffer, `Ids`), a
16-byte digest and `bands` 8-byte band keys (~150 bytes at the defaults), never the text. `scan_corpus` stitches the shards together in
corpus order (shard order, then row order). With a `spill` folder the band keys do not come back at all:
each task writes its shard's keys there, partitioned for the LSH join (`lsh.spill_band_keys`), and with
them its digests, partitioned for the exact join (`digests.spill_digests`). With `ids_in_shards` (the
near and exact engines) the ids do not come back either, only a 64-bit hash of each for the uniqueness
check (with a `spill` folder, not even that: the hashes are spilled by hash for a partitioned check,
`unique_ids.py`): `ShardIds` reads the ids the decisions need back from the shards.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from numba import njit

from corpuslab.curation.dedup.digests import spill_digests
from corpuslab.curation.dedup.lsh import spill_band_keys
from corpuslab.curation.dedup.minhash import MinHashConfig, band_keys, batch_shingle_sets, batch_signatures, fmix64
from corpuslab.curation.dedup.normalize import NormalizeConfig, normalize_utf8
from corpuslab.curation.dedup.textbatch import TextBatch, iter_batches, open_shard, release_memory, system_allocator
from corpuslab.curation.dedup.unique_ids import repeated_hash_documents, spill_id_hashes
from corpuslab.errors import InputError
from corpuslab.executor import Executor, SerialExecutor


@dataclass(frozen=True)
class ScanTask:
    """What to compute for one shard. `minhash=None`: digests only (exact dedup)."""

    path: str
    norm: NormalizeConfig
    minhash: MinHashConfig | None = None
    digests: bool = True
    spill: str | None = None  # a folder: write the band keys (and hashed ids) there (as shard `shard`) instead of returning them
    shard: int = 0
    partitions: int = 1
    hash_ids: bool = False  # return a 64-bit hash of each id instead of the id


@dataclass
class Ids:
    """Document ids as one UTF-8 buffer plus offsets: ~len + 8 bytes per id, where a list of Python strings
    costs ~60 bytes more per id (the largest per-document cost of a scan held for a million documents)."""

    data: np.ndarray  # uint8
    offsets: np.ndarray  # int64, len(ids) + 1

    @classmethod
    def from_strings(cls, ids: Sequence[str]) -> Ids:
        encoded = [doc_id.encode("utf-8") for doc_id in ids]
        offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
        np.cumsum([len(b) for b in encoded], out=offsets[1:])
        return cls(np.frombuffer(b"".join(encoded), dtype=np.uint8), offsets)

    @classmethod
    def concat(cls, parts: Sequence[Ids]) -> Ids:
        ends = np.cumsum([0] + [part.offsets[-1] for part in parts])
        offsets = [np.zeros(1, np.int64)] + [part.offsets[1:] + end for part, end in zip(parts, ends[:-1])]
        data = [part.data for part in parts]
        return cls(np.concatenate(data) if data else np.empty(0, np.uint8), np.concatenate(offsets))

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, index: int) -> str:
        return self.data[self.offsets[index] : self.offsets[index + 1]].tobytes().decode("utf-8")

    def __iter__(self) -> Iterator[str]:
        text = self.data.tobytes()
        bounds = self.offsets.tolist()
        for k in range(len(bounds) - 1):
            yield text[bounds[k] : bounds[k + 1]].decode("utf-8")

    def arrow(self) -> pa.LargeStringArray:
        """The ids as an Arrow array over the same buffers (no copy): for taking ids by index in Arrow."""
        data = self.data if len(self.data) else np.zeros(1, np.uint8)
        return pa.LargeStringArray.from_buffers(len(self), pa.py_buffer(np.ascontiguousarray(self.offsets)), pa.py_buffer(data))

    def take(self, docs: np.ndarray) -> pa.Array:
        """Ids of the documents `docs` as an Arrow string array; a negative index gives a null."""
        docs = np.asarray(docs, dtype=np.int64)
        return self.arrow().take(pa.array(docs, mask=docs < 0)).cast(pa.string())

    def hashes_distinct(self) -> bool:
        """True when no two ids share a 64-bit hash (so no id repeats): 16 bytes per id, where a Python set
        or an Arrow hash table of the strings costs ~0.4 KB. False calls for an exact check."""
        hashes = np.sort(_id_hashes(self.data, self.offsets))
        return not np.any(hashes[1:] == hashes[:-1])


@njit(cache=True, nogil=True)
def _id_hashes(data, offsets):
    """FNV-1a of each id's bytes, finished by a 64-bit mix."""
    out = np.empty(len(offsets) - 1, dtype=np.uint64)
    for d in range(len(out)):
        h = np.uint64(14695981039346656037)
        for k in range(offsets[d], offsets[d + 1]):
            h = (h ^ np.uint64(data[k])) * np.uint64(1099511628211)
        out[d] = fmix64(h)
    return out


@dataclass
class ShardIds:
    """The ids of a scanned corpus left in its shards and read back (the `id` column) only where asked for:
    the decisions name the clustered documents alone, so nothing is held per document."""

    paths: list[str]
    starts: np.ndarray  # int64, len(paths) + 1: global index of each shard's row 0

    def __len__(self) -> int:
        return int(self.starts[-1])

    def take(self, docs: np.ndarray) -> pa.Array | pa.ChunkedArray:
        """Ids of the documents `docs` as an Arrow string array; a negative index gives a null. Each shard
        holding any of them is read once. Sorted distinct documents come as a chunked array, a chunk per shard
        (not copied again into one array)."""
        docs = np.asarray(docs, dtype=np.int64)
        valid = docs >= 0
        wanted, position = np.unique(docs[valid], return_inverse=True)
        shard = np.searchsorted(self.starts, wanted, side="right") - 1
        parts = [pa.array([], pa.string())]
        with system_allocator():  # malloc, which `release_memory` trims, rather than mimalloc's kept pages
            for s in np.unique(shard).tolist():
                column = pq.read_table(self.paths[s], columns=["id"]).column("id").combine_chunks().cast(pa.string())
                parts.append(column.take(pa.array(wanted[shard == s] - self.starts[s])))
                del column
            if np.array_equal(wanted, docs):  # sorted distinct documents (`DedupResult.names`): already in order
                return pa.chunked_array(parts, pa.string())
            found = pa.concat_arrays(parts)
            del parts
            index = np.zeros(len(docs), dtype=np.int64)
            index[valid] = position
            return found.take(pa.array(index, mask=~valid))

    def __getitem__(self, index: int) -> str:
        return self.take(np.array([index]))[0].as_py()

    def __iter__(self) -> Iterator[str]:
        for path in self.paths:
            yield from pq.read_table(path, columns=["id"]).column("id").to_pylist()


@dataclass
class ShardScan:
    """Per-document results of a scan, in row order (of one batch, one shard or the corpus)."""

    ids: Ids | None  # None where the ids are hashed (`id_hashes`)
    empty: np.ndarray  # bool: normalized text has no tokens (no bytes, for digest-only scans)
    digests: np.ndarray | None  # (n, 2) uint64: 128-bit blake2b of the normalized text
    band_keys: np.ndarray | None  # (n, bands) uint64
    shingle_counts: np.ndarray | None  # int32: bounds the size of a document's shingle set
    id_hashes: np.ndarray | None = None  # uint64 (`_id_hashes`) in place of the ids, for the uniqueness check

    @classmethod
    def nothing(cls, minhash: MinHashConfig | None, digests: bool, keys: bool = True, hash_ids: bool = False) -> ShardScan:
        """Zero documents, with the right array shapes to concatenate onto (no band keys unless `keys`; id
        hashes instead of ids with `hash_ids`)."""
        bands = minhash.bands_rows()[0] if minhash else 0
        return cls(
            None if hash_ids else Ids.from_strings([]),
            np.empty(0, bool),
            np.empty((0, 2), np.uint64) if digests else None,
            np.empty((0, bands), np.uint64) if minhash and keys else None,
            np.empty(0, np.int32) if minhash else None,
            np.empty(0, np.uint64) if hash_ids else None,
        )

    @classmethod
    def concat(cls, parts: list[ShardScan]) -> ShardScan:
        """Parts in order; parts[0] decides which arrays exist (see `nothing`)."""
        arrays = {}
        for name in ("empty", "digests", "band_keys", "shingle_counts", "id_hashes"):
            present = getattr(parts[0], name) is not None
            arrays[name] = np.concatenate([getattr(part, name) for part in parts]) if present else None
        ids = None if parts[0].ids is None else Ids.concat([part.ids for part in parts])
        return cls(ids, **arrays)


@dataclass
class CorpusScan:
    """All shards' scans concatenated in corpus order; `shard_starts[s]` = index of shard s's row 0."""

    paths: list[str]
    shard_starts: np.ndarray  # int64, len(paths) + 1
    ids: Ids | ShardIds
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


def normalized_batch(
    batch: TextBatch, norm: NormalizeConfig, minhash: MinHashConfig | None, digests: bool
) -> tuple[np.ndarray, np.ndarray]:
    # Word shingles split on whitespace anyway, so collapsing it first would change nothing.
    collapse = norm.collapse_whitespace and (digests or minhash is None or minhash.shingle == "char")
    return normalize_utf8(batch.data, batch.offsets, norm, collapse=collapse)


def scan_shard(task: ScanTask) -> ShardScan:
    """Executor task: digests and/or band keys of every document of one shard."""
    parts = [ShardScan.nothing(task.minhash, task.digests, hash_ids=task.hash_ids)]
    parts += [_scan_batch(batch, task) for batch in iter_batches(task.path)]
    scan = ShardScan.concat(parts)
    if task.spill is not None and task.minhash is not None:
        spill_band_keys(task.spill, task.shard, scan.band_keys, task.partitions)
        scan.band_keys = None
        if task.digests:  # near dedup's exact join is partitioned too (`digests.partitioned_exact_links`)
            spill_digests(task.spill, task.shard, scan.digests, ~scan.empty, task.partitions)
            scan.digests = None
    if task.spill is not None and task.hash_ids:  # checked one partition at a time (`unique_ids.py`)
        spill_id_hashes(task.spill, task.shard, scan.id_hashes, task.partitions)
        scan.id_hashes = None
    return scan


def _scan_batch(batch: TextBatch, task: ScanTask) -> ShardScan:
    data, offsets = normalized_batch(batch, task.norm, task.minhash, task.digests)
    digests = text_digests(data, offsets) if task.digests else None
    ids = Ids.from_strings(batch.ids)
    ids, id_hashes = (None, _id_hashes(ids.data, ids.offsets)) if task.hash_ids else (ids, None)
    if task.minhash is None:
        return ShardScan(ids, np.diff(offsets) == 0, digests, None, None, id_hashes)
    signature_matrix, shingle_counts = batch_signatures(data, offsets, task.minhash)
    keys = band_keys(signature_matrix, *task.minhash.bands_rows())
    return ShardScan(ids, shingle_counts == 0, digests, keys, shingle_counts.astype(np.int32), id_hashes)


def text_digests(data: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """(n, 2) uint64: blake2b-128 of each document's bytes (collisions: ~2^-64 at a billion docs)."""
    view = memoryview(data)
    joined = b"".join(
        hashlib.blake2b(view[offsets[d] : offsets[d + 1]], digest_size=16).digest()
        for d in range(len(offsets) - 1)
    )
    return np.frombuffer(joined, dtype=np.uint64).reshape(-1, 2)


def scan_corpus(
    shards: Sequence[str | Path],
    norm: NormalizeConfig,
    minhash: MinHashConfig | None,
    executor: Executor | None,
    digests: bool = True,
    spill: str | Path | None = None,
    partitions: int = 1,
    ids_in_shards: bool = False,
) -> CorpusScan:
    """Scan every shard through `executor` and join the results in corpus order.

    With `spill`, band keys go to that folder in `partitions` parts (see `lsh.partitioned_candidate_pairs`)
    and `CorpusScan.band_keys` is None. With `ids_in_shards`, the ids stay in the shards (`ShardIds`): the
    workers return a hash of each for the uniqueness check, and the per-document arrays are filled in place
    as the shards' results arrive: the scan holds a byte per document (the empty flag), 16 more for the
    digests unless they were spilled, and, without `spill`, the 8-byte id hashes until they are checked (with
    `spill` they are checked one partition at a time, `unique_ids.py`); no shingle counts.
    """
    started = time.perf_counter()
    release_memory()  # what earlier work left in malloc's and Arrow's free lists, before the pool forks
    paths = [str(path) for path in shards]
    warm_kernels(minhash is not None)
    spill = None if spill is None else str(spill)
    tasks = [ScanTask(path, norm, minhash, digests, spill, shard, partitions, ids_in_shards) for shard, path in enumerate(paths)]
    if ids_in_shards:
        return _scan_leaving_ids(paths, tasks, executor or SerialExecutor(), started, partitions)
    scans = list((executor or SerialExecutor()).map(scan_shard, tasks))
    spilled = spill is not None and minhash is not None  # band keys and digests went to `spill` (`scan_shard`)
    joined = ShardScan.concat([ShardScan.nothing(minhash, digests and not spilled, keys=not spilled), *scans])
    check_unique_ids(paths, scans, joined.ids)
    starts = np.concatenate([[0], np.cumsum([len(scan.ids) for scan in scans])]).astype(np.int64)
    del scans
    release_memory()  # the per-shard copies just joined
    return CorpusScan(
        paths,
        starts,
        joined.ids,
        joined.empty,
        joined.digests,
        joined.band_keys,
        joined.shingle_counts,
        time.perf_counter() - started,
    )


def _scan_leaving_ids(paths: list[str], tasks: list[ScanTask], executor: Executor, started: float, partitions: int = 1) -> CorpusScan:
    """`scan_corpus` with the ids left in the shards, into arrays sized from the shards' row counts."""
    rows = [open_shard(path).metadata.num_rows for path in paths]
    starts = np.concatenate([[0], np.cumsum(rows)]).astype(np.int64)
    total, task = int(starts[-1]), tasks[0] if tasks else None
    empty = np.zeros(total, dtype=bool)
    spilled = task is not None and task.spill is not None and task.minhash is not None  # digests too (`scan_shard`)
    digests = np.empty((total, 2), dtype=np.uint64) if task and task.digests and not spilled else None
    shingle_counts = None  # only `shingle_sets_for` (cross-dataset, ids held) sizes its buffer from them
    spilled_ids = task is not None and task.spill is not None  # the id hashes too (`scan_shard`)
    id_hashes = None if spilled_ids else np.empty(total, dtype=np.uint64)
    for shard, scan in enumerate(executor.map(scan_shard, tasks)):
        first, end = starts[shard], starts[shard + 1]
        if len(scan.empty) != end - first:
            raise InputError(paths[shard], f"has {len(scan.empty)} rows where its metadata said {end - first}: changed while it was read?")
        empty[first:end] = scan.empty
        if id_hashes is not None:
            id_hashes[first:end] = scan.id_hashes
        if digests is not None:
            digests[first:end] = scan.digests
        del scan
    ids = ShardIds(paths, starts)
    release_memory()  # what receiving the shards' results left in malloc's arenas (~30 MB at a million documents)
    if spilled_ids:
        check_suspects(ids, repeated_hash_documents(task.spill, partitions, starts, executor))
    else:
        check_unique_id_hashes(ids, id_hashes)
    return CorpusScan(paths, starts, ids, empty, digests, None, shingle_counts, time.perf_counter() - started)


def check_unique_id_hashes(ids: ShardIds, id_hashes: np.ndarray) -> None:
    """`check_unique_ids` from 64-bit hashes of the ids: only the ids whose hashes repeat are read back and
    compared, in corpus order, so the error names the first repeated id and both shards as before."""
    ordered = np.sort(id_hashes)
    if not np.any(ordered[1:] == ordered[:-1]):
        return
    repeated_hashes = np.unique(ordered[1:][ordered[1:] == ordered[:-1]])
    del ordered
    check_suspects(ids, np.flatnonzero(np.isin(id_hashes, repeated_hashes)))


def check_suspects(ids: ShardIds, suspects: np.ndarray) -> None:
    """Compare the ids of the documents `suspects` (sorted global indices: those whose id hashes repeat)
    exactly, in corpus order: the first id seen twice stops the run, naming both shards."""
    if len(suspects) == 0:
        return
    seen: dict[str, str] = {}
    for doc, doc_id in zip(suspects.tolist(), ids.take(suspects).to_pylist()):
        path = ids.paths[int(np.searchsorted(ids.starts, doc, side="right") - 1)]
        if doc_id in seen:
            raise InputError(path, f"id {doc_id!r} is not unique (also in {seen[doc_id]})")
        seen[doc_id] = path


def check_unique_ids(paths: list[str], scans: list[ShardScan], joined: Ids) -> None:
    """Decisions are keyed by id, so a repeated id would make them ambiguous."""
    if joined.hashes_distinct():
        return
    seen: dict[str, str] = {}
    for path, scan in zip(paths, scans):
        for doc_id in scan.ids:
            if doc_id in seen:
                raise InputError(path, f"id {doc_id!r} is not unique (also in {seen[doc_id]})")
            seen[doc_id] = path


def warm_kernels(minhash: bool = True) -> None:
    """Compile (or load from numba's cache) the shard kernels in this process before workers fork.

    Forked pool workers inherit the compiled code; otherwise each would load it on its first task.
    numba specializes on writability, and Arrow hands out both writable and read-only buffers.
    """
    text = "Warm up the kernels once \u2013 caf\u00e9".encode()
    offsets = np.array([0, len(text)], dtype=np.int64)
    for data in (np.frombuffer(bytearray(text), dtype=np.uint8), np.frombuffer(text, dtype=np.uint8)):
        for norm in (NormalizeConfig(), NormalizeConfig(collapse_whitespace=False)):
            normalized, normalized_offsets = normalize_utf8(data, offsets, norm)
    for shingle in ("word", "char") if minhash else ():
        cfg = MinHashConfig(shingle=shingle, num_perm=4, bands=2, rows=2)
        band_keys(batch_signatures(normalized, normalized_offsets, cfg)[0], 2, 2)
        batch_shingle_sets(normalized, normalized_offsets, cfg)
