"""Documents on disk: Parquet shards with columns `id`, `text`, `category`, `meta` (JSON).

Shards are the unit of streaming and of parallel work: a reader never holds more than one row group,
and the dedup engine maps workers over shard paths.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from corpuslab.documents import Document

SCHEMA = pa.schema(
    [("id", pa.string()), ("text", pa.string()), ("category", pa.string()), ("meta", pa.string())]
)
ROW_GROUP = 1024


class ShardWriter:
    """Writes documents to `<folder>/<prefix>-00000.parquet`, ... with at most `shard_docs` per file."""

    def __init__(self, folder: Path, prefix: str = "part", shard_docs: int = 5000):
        self.folder, self.prefix, self.shard_docs = folder, prefix, shard_docs
        folder.mkdir(parents=True, exist_ok=True)
        self.paths: list[Path] = []
        self.count = 0
        self._rows: list[Document] = []
        self._writer: pq.ParquetWriter | None = None
        self._in_shard = 0

    def write(self, doc: Document) -> None:
        self._rows.append(doc)
        self.count += 1
        if len(self._rows) >= ROW_GROUP or self._in_shard + len(self._rows) >= self.shard_docs:
            self._flush()

    def write_all(self, docs: Iterable[Document]) -> "ShardWriter":
        for doc in docs:
            self.write(doc)
        return self

    def _flush(self) -> None:
        if not self._rows:
            return
        if self._writer is None:
            path = self.folder / f"{self.prefix}-{len(self.paths):05d}.parquet"
            self._writer = pq.ParquetWriter(path, SCHEMA, compression="zstd")
            self.paths.append(path)
        self._writer.write_table(_table(self._rows), row_group_size=ROW_GROUP)
        self._in_shard += len(self._rows)
        self._rows = []
        if self._in_shard >= self.shard_docs:
            self._writer.close()
            self._writer, self._in_shard = None, 0

    def close(self) -> list[Path]:
        self._flush()
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        return self.paths

    def __enter__(self) -> "ShardWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _table(docs: list[Document]) -> pa.Table:
    return pa.table(
        {
            "id": [d.id for d in docs],
            "text": [d.text for d in docs],
            "category": [d.metadata.get("category") for d in docs],
            "meta": [json.dumps({k: v for k, v in d.metadata.items() if k != "category"}) for d in docs],
        },
        schema=SCHEMA,
    )


def read_documents(paths: Iterable[Path], columns: list[str] | None = None) -> Iterator[Document]:
    """Stream documents back, one row group at a time, in shard then row order."""
    for path in paths:
        parquet = pq.ParquetFile(path)
        for batch in parquet.iter_batches(batch_size=ROW_GROUP, columns=columns):
            data = batch.to_pydict()
            n = batch.num_rows
            ids = data.get("id", [""] * n)
            texts = data.get("text", [""] * n)
            cats = data.get("category", [None] * n)
            metas = data.get("meta", ["{}"] * n)
            for i in range(n):
                meta = json.loads(metas[i]) if metas[i] else {}
                if cats[i] is not None:
                    meta["category"] = cats[i]
                yield Document(ids[i], texts[i], meta)


def shard_paths(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.parquet"))
