"""Stream a Parquet shard's `id` and `text` columns as batches of UTF-8 bytes plus offsets.

The duplicate detectors never need a document as a Python string: they hash bytes. Arrow already
stores a string column as one byte buffer plus offsets, so a batch reaches the numba kernels without
copying, and only one batch of one shard is in memory at a time.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from corpuslab.errors import InputError

BATCH_ROWS = 2048  # ~12 MB of 800-word documents: large enough to amortize a kernel call


@dataclass
class TextBatch:
    """Consecutive rows of one shard: row numbers, ids (if read) and the texts as UTF-8 + offsets."""

    rows: np.ndarray  # int64 row numbers within the shard
    ids: list[str] | None
    data: np.ndarray  # uint8
    offsets: np.ndarray  # int64, len(rows) + 1

    def __len__(self) -> int:
        return len(self.rows)

    def select(self, positions: np.ndarray) -> TextBatch:
        """The documents at these positions, copied into a batch of their own."""
        data, offsets = gather(self.data, self.offsets[positions], self.offsets[positions + 1])
        ids = None if self.ids is None else [self.ids[p] for p in positions.tolist()]
        return TextBatch(rows=self.rows[positions], ids=ids, data=data, offsets=offsets)


def gather(data: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """data[starts[k]:ends[k]] for every k, as one buffer plus offsets.

    numpy rather than Arrow's `take`: the first Arrow compute call initializes its kernel registry,
    which costs a pool worker ~0.1 s and ~40 MB.
    """
    offsets = np.zeros(len(starts) + 1, dtype=np.int64)
    np.cumsum(ends - starts, out=offsets[1:])
    pieces = [data[a:b] for a, b in zip(starts.tolist(), ends.tolist())]
    return (np.concatenate(pieces) if pieces else np.empty(0, np.uint8)), offsets


def open_shard(path: str | Path) -> pq.ParquetFile:
    """Open a shard and check it has string `id` and `text` columns (others are ignored)."""
    try:
        shard = pq.ParquetFile(path)
    except (OSError, pa.ArrowInvalid) as error:
        raise InputError(str(path), f"cannot read as Parquet ({error})") from error
    schema = shard.schema_arrow
    for column in ("id", "text"):
        if column not in schema.names:
            raise InputError(str(path), f"no '{column}' column (columns: {', '.join(schema.names)})")
        kind = schema.field(column).type
        if not (pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind)):
            raise InputError(str(path), f"column '{column}' has type {kind}, expected string")
    return shard


def iter_batches(
    path: str | Path, rows: np.ndarray | None = None, with_ids: bool = True
) -> Iterator[TextBatch]:
    """Batches of the shard in row order; only `rows` (sorted row numbers) if given.

    With `rows`, row groups holding none of them are not read at all. Memory freed by the previous
    shard (and by the pickling of its results) goes back to the OS first, so a long-lived pool worker
    does not grow by one shard's worth per task.
    """
    release_memory()
    try:
        with system_allocator():  # before opening: the reader takes its pool when created
            shard = open_shard(path)
            columns = ["id", "text"] if with_ids else ["text"]
            groups, first_rows = _row_groups_to_read(shard, rows)
            yield from _read_groups(shard, groups, first_rows, rows, columns, path)
    finally:
        release_memory()


def _read_groups(
    shard: pq.ParquetFile,
    groups: list[int],
    first_rows: list[int],
    rows: np.ndarray | None,
    columns: list[str],
    path: str | Path,
) -> Iterator[TextBatch]:
    with_ids = "id" in columns
    for group, first_row in zip(groups, first_rows):
        row = first_row
        for record_batch in shard.iter_batches(
            BATCH_ROWS, row_groups=[group], columns=columns, use_threads=False
        ):
            batch_rows = np.arange(row, row + record_batch.num_rows, dtype=np.int64)
            row += record_batch.num_rows
            batch = _to_text_batch(record_batch, batch_rows, with_ids, path)
            if rows is None:
                yield batch
                continue
            wanted = rows[(rows >= batch_rows[0]) & (rows < row)] if len(batch_rows) else rows[:0]
            if len(wanted):
                yield batch.select(wanted - batch_rows[0])


def _row_groups_to_read(shard: pq.ParquetFile, rows: np.ndarray | None) -> tuple[list[int], list[int]]:
    """Row groups that hold any of `rows` (all if None), with the shard row number each starts at."""
    sizes = [shard.metadata.row_group(g).num_rows for g in range(shard.num_row_groups)]
    starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    groups = list(range(len(sizes)))
    if rows is not None:
        hit = np.unique(np.searchsorted(starts, rows, side="right") - 1)
        groups = [int(g) for g in hit if 0 <= g < len(sizes)]
    return groups, [int(starts[g]) for g in groups]


def _to_text_batch(batch: pa.RecordBatch, rows: np.ndarray, with_ids: bool, path: str | Path) -> TextBatch:
    ids = None
    if with_ids:
        id_column = batch.column("id")
        if id_column.null_count:
            bad = int(rows[np.flatnonzero(id_column.is_null().to_numpy(zero_copy_only=False))[0]])
            raise InputError(str(path), f"row {bad}: id is null")
        ids = id_column.to_pylist()
    data, offsets = utf8_buffers(batch.column("text"))
    return TextBatch(rows=rows, ids=ids, data=data, offsets=offsets)


def utf8_buffers(array: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """The bytes and int64 offsets of a string array, without copying the bytes where possible.

    A null text is read as "" (and so is empty: never matched).
    """
    if pa.types.is_string_view(array.type):
        array = array.cast(pa.large_string())
    validity, offset_buffer, data_buffer = array.buffers()
    offset_type = np.int64 if pa.types.is_large_string(array.type) else np.int32
    offsets = np.frombuffer(offset_buffer, dtype=offset_type)[array.offset : array.offset + len(array) + 1]
    offsets = offsets.astype(np.int64)
    data = np.frombuffer(data_buffer, dtype=np.uint8) if data_buffer is not None else np.empty(0, np.uint8)
    if array.null_count:
        valid = np.unpackbits(np.frombuffer(validity, np.uint8), bitorder="little")
        ends = np.where(valid[array.offset : array.offset + len(array)], offsets[1:], offsets[:-1])
        return gather(data, offsets[:-1], ends)
    return data, offsets


@contextlib.contextmanager
def system_allocator() -> Iterator[None]:
    """Route Arrow allocations to malloc while reading shards.

    Arrow's default mimalloc pool keeps pages of freed row groups committed: measured 60-90 MB above
    steady state per process per shard, against ~30 MB with malloc, and that is multiplied by the
    number of pool workers. Buffers remember their pool, so switching back is safe.
    """
    previous = pa.default_memory_pool()
    pa.set_memory_pool(pa.system_memory_pool())
    try:
        yield
    finally:
        pa.set_memory_pool(previous)


def release_memory() -> None:
    """Return freed buffers to the operating system.

    Arrow's allocators and glibc keep freed memory for reuse; in a long-lived pool worker that is
    tens of MB per process that nothing uses until the next shard.
    """
    pa.default_memory_pool().release_unused()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None).malloc_trim  # glibc only; musl has no malloc_trim
    except (OSError, AttributeError):
        return None
