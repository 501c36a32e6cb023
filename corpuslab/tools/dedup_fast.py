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
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj
import pyarrow.parquet as pq

WORK_SCHEMA = pa.schema([("id", pa.string()), ("text", pa.string())])
SHARD_ROWS = 20_000
ROW_GROUP = 2048
JSON_BLOCK = 1 << 24


@dataclass
class FastInput:
    files: list[Path]
    relative: list[str]
    format: str  # jsonl | parquet


@dataclass
class FastIngested:
    shards: list[Path]
    ids: list[str]
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
    ids: list[str] = []
    lengths: list[np.ndarray] = []
    try:
        for path, relative in zip(source.files, source.relative):
            first = 1 if source.format == "jsonl" else 0  # the local source counts lines from 1, rows from 0
            if source.format == "jsonl" and not _plain_lines(path):
                return None
            for texts in (_jsonl_texts if source.format == "jsonl" else _parquet_texts)(path, text_field):
                if texts.null_count or not (pa.types.is_string(texts.type) or pa.types.is_large_string(texts.type)):
                    return None
                batch_ids = [f"{relative}:{n}" for n in range(first, first + len(texts))]
                first += len(texts)
                writer.write(pa.table([pa.array(batch_ids, pa.string()), texts.cast(pa.string())], schema=WORK_SCHEMA))
                ids += batch_ids
                lengths.append(pc.utf8_length(texts).to_numpy(zero_copy_only=False))
    except (pa.ArrowInvalid, pa.ArrowTypeError, KeyError, OSError):
        return None
    finally:
        writer.close()
    return FastIngested(writer.paths, ids, np.concatenate(lengths) if lengths else np.empty(0, np.int64), source)


def _plain_lines(path: Path) -> bool:
    """No blank line (which the local source skips but would shift Arrow's row numbers), ends in a record."""
    with open(path, "rb") as lines:
        return all(line.strip() for line in lines)


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


def write_kept(source: FastInput, kept: np.ndarray, out: Path) -> None:
    """The kept records in the input's own form: JSON lines byte for byte, Parquet rows with every column."""
    position = 0
    if source.format == "jsonl":
        with open(out, "wb") as stream:
            for path in source.files:
                with open(path, "rb") as lines:
                    for line in lines:
                        if kept[position]:
                            stream.write(line if line.endswith(b"\n") else line + b"\n")
                        position += 1
        return
    schema = pa.unify_schemas([pq.read_schema(path) for path in source.files])
    with pq.ParquetWriter(out, schema) as writer:  # Arrow's default (snappy): zstd would cost as much as the scan
        for path in source.files:
            for batch in pq.ParquetFile(path).iter_batches(batch_size=ROW_GROUP * 4):
                mask = pa.array(kept[position : position + batch.num_rows])
                position += batch.num_rows
                writer.write_table(pa.Table.from_batches([batch.filter(mask)]).cast(schema))
