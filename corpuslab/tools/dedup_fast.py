"""The Arrow path of `corpuslab dedup` for plain JSON Lines and Parquet files.

When every input is an uncompressed `.jsonl` file (no blank lines) or every input is a `.parquet` file,
with the default encoding and ids, the text column goes from the file to the working shards through
Arrow (`pyarrow.json` parses only the text field) without a Python object per document, and the kept
documents are written back as the input's own records: JSON lines copied byte for byte, Parquet rows
filtered with every column. Ids are the `local` source's (`<relative path>:<line>`, `<relative path>:<row>`),
so the decisions are the same either way. Anything the Arrow readers reject -- a malformed line, a
non-string or null text, mixed schemas -- returns None and the `local` source reads the files instead,
counting bad input by reason.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj
import pyarrow.parquet as pq

WORK_SCHEMA = pa.schema([("id", pa.string()), ("text", pa.string())])
SHARD_ROWS = 20_000
ROW_GROUP = 2048
JSON_BLOCK = 1 << 24

if TYPE_CHECKING:
    from corpuslab.curation.dedup.scan import Ids


@dataclass
class FastInput:
    files: list[Path]
    relative: list[str]
    format: str  # jsonl | parquet
    spans: dict[Path, np.ndarray] = field(default_factory=dict)  # (start, end) of each JSON line, found while checking them


@dataclass
class FastIngested:
    shards: list[Path]
    docs: int
    lengths: np.ndarray  # characters per document, for --keep longest
    source: FastInput


def fast_input(cfg, files: list[Path]) -> FastInput | None:
    """The inputs, if the Arrow path can read them all."""
    if (cfg.encoding not in (None, "utf-8") or cfg.id_field or cfg.max_docs or cfg.format not in ("auto", "jsonl", "parquet")
            or cfg.keep not in ("earliest", "longest") or not files):
        return None
    suffixes = {path.suffix.lower() for path in files}
    if suffixes not in ({".jsonl"}, {".parquet"}):
        return None
    if suffixes == {".parquet"}:
        try:
            pa.unify_schemas([pq.read_schema(path) for path in files])
        except (pa.ArrowInvalid, pa.ArrowTypeError, OSError):
            return None
    base = os.path.commonpath([os.path.dirname(os.path.abspath(path)) for path in files])
    relative = [Path(os.path.relpath(os.path.abspath(path), base)).as_posix() for path in files]
    return FastInput(files, relative, "jsonl" if suffixes == {".jsonl"} else "parquet")


def ingest_fast(source: FastInput, text_field: str, work: Path) -> FastIngested | None:
    """Working shards (id, text) of every input, or None when a file needs the `local` source's care."""
    work.mkdir(parents=True, exist_ok=True)
    writer = _ShardWriter(work)
    docs = 0
    lengths: list[np.ndarray] = []
    try:
        for batch_ids, texts in _input_batches(source, text_field):
            writer.write(pa.table([pa.array(batch_ids, pa.string()), texts.cast(pa.string())], schema=WORK_SCHEMA))
            docs += len(batch_ids)
            lengths.append(pc.utf8_length(texts).to_numpy(zero_copy_only=False))
    except _NeedsLocalSource:
        return None
    finally:
        writer.close()
    return FastIngested(writer.paths, docs, np.concatenate(lengths) if lengths else np.empty(0, np.int64), source)


class _NeedsLocalSource(Exception):
    """A file the fast path cannot read as is (blank lines, a missing or non-string text field, a parse
    error): the caller falls back to the `local` source, which reports or skips each bad record."""


def _input_batches(source: FastInput, text_field: str) -> Iterator[tuple[list[str], pa.Array]]:
    """(ids, texts) of every input, a batch at a time, ids named as the `local` source names them."""
    try:
        for path, relative in zip(source.files, source.relative):
            first = 1 if source.format == "jsonl" else 0  # the local source counts lines from 1, rows from 0
            if source.format == "jsonl":
                spans = _plain_spans(path)
                if spans is None:
                    raise _NeedsLocalSource(path)
                source.spans[path] = spans
            for texts in (_jsonl_texts if source.format == "jsonl" else _parquet_texts)(path, text_field):
                if texts.null_count or not (pa.types.is_string(texts.type) or pa.types.is_large_string(texts.type)):
                    raise _NeedsLocalSource(path)
                yield [f"{relative}:{n}" for n in range(first, first + len(texts))], texts
                first += len(texts)
    except (pa.ArrowInvalid, pa.ArrowTypeError, KeyError, OSError) as err:
        raise _NeedsLocalSource(str(err)) from err


def _plain_lines(path: Path) -> bool:
    """No blank line (which the local source skips but would shift Arrow's row numbers), ends in a record."""
    return _plain_spans(path) is not None


def _plain_spans(path: Path) -> np.ndarray | None:
    """(start, end) of each line where no line is blank (see `_plain_lines`), else None."""
    with _mapped(path) as data:
        if data is None:
            return np.empty((0, 2), dtype=np.int64)
        spans = []
        for start, end in _line_spans(data):
            if data[start] != 123 and not data[start:end].strip():  # 123: "{", the usual first byte
                return None
            spans.append((start, end))
    return np.array(spans, dtype=np.int64).reshape(-1, 2)


def _mapped(path: Path):
    """The file's bytes, memory-mapped (no copy into Python), or None for an empty file (mmap rejects those)."""
    import contextlib
    import mmap

    if os.path.getsize(path) == 0:
        return contextlib.nullcontext(None)
    with open(path, "rb") as stream:
        return mmap.mmap(stream.fileno(), 0, access=mmap.ACCESS_READ)


def _line_spans(data) -> Iterator[tuple[int, int]]:
    """(start, end) of each line, the end one past its newline (or the file's end for a last line without one):
    memchr per line, so the cost is one Python step per line rather than per byte."""
    start, size = 0, len(data)
    while start < size:
        end = data.find(b"\n", start)
        end = size if end < 0 else end + 1
        yield start, end
        start = end


def _jsonl_texts(path: Path, text_field: str) -> Iterator[pa.Array]:
    schema = pa.schema([(text_field, pa.string())])
    parse = pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore", newlines_in_values=False)
    reader = pj.open_json(path, read_options=pj.ReadOptions(block_size=JSON_BLOCK, use_threads=False), parse_options=parse)
    for batch in reader:
        yield batch.column(0)


def _parquet_texts(path: Path, text_field: str) -> Iterator[pa.Array]:
    for batch in pq.ParquetFile(path).iter_batches(batch_size=ROW_GROUP * 4, columns=[text_field], use_threads=False):
        yield batch.column(0)


class _ShardWriter:
    def __init__(self, folder: Path):
        self.folder, self.paths, self._writer, self._rows = folder, [], None, 0

    def write(self, table: pa.Table) -> None:
        if self._writer is None:
            self.paths.append(self.folder / f"part-{len(self.paths):05d}.parquet")
            self._writer = pq.ParquetWriter(self.paths[-1], WORK_SCHEMA, compression="none")
        self._writer.write_table(table, row_group_size=ROW_GROUP)
        self._rows += table.num_rows
        if self._rows >= SHARD_ROWS:
            self.close()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer, self._rows = None, 0


def write_kept(source: FastInput, kept: np.ndarray, out: Path, compression: str = "none") -> None:
    """The kept records in the input's own form: JSON lines byte for byte, Parquet rows with every column.

    Parquet is written uncompressed unless `compression` names a codec: re-encoding costs ~0.04 CPU-s per
    60 MB of text uncompressed against ~0.3 with LZ4 and ~0.4 with snappy (the file is ~1.4x larger)."""
    position = 0
    if source.format == "jsonl":
        with open(out, "wb") as stream:
            for path in source.files:
                position = _copy_kept_lines(path, kept, position, stream, source.spans.get(path))
        return
    schema = pa.unify_schemas([pq.read_schema(path) for path in source.files])
    with pq.ParquetWriter(out, schema, compression=compression) as writer:
        for path in source.files:
            for batch in pq.ParquetFile(path).iter_batches(batch_size=ROW_GROUP * 4, use_threads=False):  # threads: more CPU-s on 2 cores
                mask = kept[position : position + batch.num_rows]
                position += batch.num_rows
                if not mask.all():
                    batch = batch.filter(pa.array(mask))
                writer.write_table(pa.Table.from_batches([batch]).cast(schema))


@dataclass
class ExactScan:
    """What exact dedup needs of every document, read straight from the inputs (no working shards)."""

    ids: Ids  # one UTF-8 buffer, not a Python string per document
    empty: np.ndarray  # bool: normalizes to nothing (never matched)
    digests: np.ndarray  # (n, 2) uint64: a 128-bit digest of the normalized text (`fast_digests`)
    lengths: np.ndarray  # characters per document, for --keep longest


def scan_exact(source: FastInput, text_field: str, norm) -> ExactScan | None:
    """Normalize and hash each Arrow batch of text as it is read, keeping 24 bytes per document: the
    `exact` recipe's scan (`scan.normalized_batch`, `scan.text_digests`) without copying the text into
    working shards and reading it back. None when a file needs the `local` source's care."""
    from corpuslab.curation.dedup.normalize import normalize_utf8
    from corpuslab.curation.dedup.scan import Ids

    ids: list[Ids] = []
    empty: list[np.ndarray] = []
    digests: list[np.ndarray] = []
    lengths: list[np.ndarray] = []
    try:
        for batch_ids, texts in _input_batches(source, text_field):
            ids.append(Ids.from_strings(batch_ids))
            data, offsets = utf8_buffers(texts)
            normalized, normalized_offsets = normalize_utf8(data, offsets, norm)
            digests.append(fast_digests(normalized, normalized_offsets))
            empty.append(np.diff(normalized_offsets) == 0)
            lengths.append(pc.utf8_length(texts).to_numpy(zero_copy_only=False))
    except _NeedsLocalSource:
        return None
    if not ids:
        return ExactScan(Ids.from_strings([]), np.empty(0, bool), np.empty((0, 2), np.uint64), np.empty(0, np.int64))
    return ExactScan(Ids.concat(ids), np.concatenate(empty), np.concatenate(digests), np.concatenate(lengths))


def fast_digests(data: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """(n, 2) uint64: XXH3-128 of each document's bytes where the `xxhash` package is installed (it comes with
    `datasets`), else blake2b-128 (`scan.text_digests`). These digests live only for one run -- they decide which
    documents are equal and are never stored, fingerprinted or compared across runs -- so the choice changes no
    decision: both are 128-bit, accidental collisions ~n^2 / 2^129. XXH3 hashes ~10x faster (0.08 against 0.86
    CPU-s per 400 MB here), blake2b was a tenth of the exact scan's time. Unlike blake2b, XXH3 is not built to resist
    deliberately crafted collisions: a document made to collide with another would be dropped as its copy."""
    try:
        from xxhash import xxh3_128_digest
    except ImportError:
        from corpuslab.curation.dedup.scan import text_digests

        return text_digests(data, offsets)
    view = memoryview(data)
    joined = b"".join(xxh3_128_digest(view[offsets[d] : offsets[d + 1]]) for d in range(len(offsets) - 1))
    return np.frombuffer(joined, dtype=np.uint64).reshape(-1, 2)


def utf8_buffers(texts: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """A string array's UTF-8 bytes and int64 offsets (from 0), as numpy views of Arrow's own buffers where
    the array is not sliced."""
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    _, offset_buffer, data_buffer = texts.buffers()
    kind = np.int64 if pa.types.is_large_string(texts.type) else np.int32
    offsets = np.frombuffer(offset_buffer, dtype=kind)[texts.offset : texts.offset + len(texts) + 1].astype(np.int64)
    data = np.frombuffer(data_buffer, dtype=np.uint8) if data_buffer is not None else np.empty(0, np.uint8)
    data = data[offsets[0] : offsets[-1]]
    return data, offsets - offsets[0]


def _copy_kept_lines(path: Path, kept: np.ndarray, position: int, stream, spans: np.ndarray | None = None) -> int:
    """Copy the kept lines of `path` (kept[position:] is its first line's on) byte for byte, a run of
    consecutive kept lines per copy (in the kernel, `copy_file_range`, where the system has it); returns the
    position after its last line."""
    with _mapped(path) as data, open(path, "rb") as source:
        if data is None:
            return position
        if spans is None:
            spans = np.array(list(_line_spans(data)), dtype=np.int64).reshape(-1, 2)
        edges = np.diff(np.concatenate([[0], kept[position : position + len(spans)].astype(np.int8), [0]]))
        for first, last in zip(np.flatnonzero(edges == 1).tolist(), (np.flatnonzero(edges == -1) - 1).tolist()):
            _copy_range(source, data, int(spans[first, 0]), int(spans[last, 1]), stream)
        if data[len(data) - 1] != 10 and kept[position + len(spans) - 1]:  # a kept last line without a newline
            stream.write(b"\n")
    return position + len(spans)


def _copy_range(source, data, start: int, end: int, stream) -> None:
    if hasattr(os, "copy_file_range"):
        stream.flush()
        try:
            while start < end:
                copied = os.copy_file_range(source.fileno(), stream.fileno(), end - start, start)
                if copied <= 0:
                    break
                start += copied
        except OSError:  # a file system or kernel without it: copy through memory
            pass
        stream.seek(0, os.SEEK_END)
    if start < end:
        stream.write(data[start:end])
