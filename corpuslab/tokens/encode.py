"""Tokenization as executor tasks: one task per document shard, run by the curation executor (pool or Ray).

A task loads the tokenizer from its stage folder (once per worker process) and returns the shard's token
ids as one flat array with per-document lengths, plus what the token stream's document index records
(id, UTF-8 bytes, category, canary flag). The tokens stage writes the shards' results in shard order, so
the stream is the same whichever executor ran the tasks.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from corpuslab.shards import read_documents

ENCODE_BATCH = 512
PARALLEL_MIN_DOCS = 5000
_TOKENIZERS: dict[str, Any] = {}  # per worker process: folder -> loaded tokenizer


@dataclass(frozen=True)
class EncodeTask:
    path: str  # one document shard
    tokenizer: str  # the tokenizer stage folder
    batch: int = ENCODE_BATCH


@dataclass
class EncodedShard:
    """One shard's documents, tokenized, in row order."""

    ids: list[str]
    bytes: np.ndarray  # int64 per document
    categories: list[str | None]
    canaries: np.ndarray  # bool per document
    lengths: np.ndarray  # int64 tokens per document
    tokens: np.ndarray  # int64, every document's ids back to back

    def documents(self) -> list[np.ndarray]:
        """Each document's token ids (views into `tokens`)."""
        return np.split(self.tokens, np.cumsum(self.lengths)[:-1]) if len(self.lengths) else []


def encode_shard(task: EncodeTask) -> EncodedShard:
    """Executor task: tokenize every document of one shard."""
    from corpuslab.tokens.tokenizer import encode_batch, load_tokenizer

    tokenizer = _TOKENIZERS.get(task.tokenizer)
    if tokenizer is None:
        tokenizer = _TOKENIZERS[task.tokenizer] = load_tokenizer(Path(task.tokenizer))
    ids: list[str] = []
    byte_counts: list[int] = []
    categories: list[str | None] = []
    canaries: list[bool] = []
    pieces: list[list[int]] = []
    batch: list = []
    for doc in _with_end(read_documents([Path(task.path)])):
        if doc is not None:
            batch.append(doc)
            ids.append(doc.id)
            byte_counts.append(len(doc.text.encode("utf-8")))
            categories.append(doc.category)
            canaries.append(doc.metadata.get("canary") is not None)
        if len(batch) == task.batch or (doc is None and batch):
            pieces += encode_batch(tokenizer, [d.text for d in batch])
            batch = []
    lengths = np.array([len(p) for p in pieces], dtype=np.int64)
    tokens = np.fromiter((t for p in pieces for t in p), dtype=np.int64, count=int(lengths.sum()))
    return EncodedShard(ids, np.array(byte_counts, dtype=np.int64), categories, np.array(canaries, dtype=bool), lengths, tokens)


def _with_end(docs: Iterator) -> Iterator:
    yield from docs
    yield None


def encoded_shards(executor: Any, paths: list[Path], tokenizer_folder: str) -> Iterator[EncodedShard]:
    """Every shard of `paths` tokenized through `executor`, in shard order. Fewer than PARALLEL_MIN_DOCS
    documents, or a lone shard, are tokenized here: a worker's start-up (importing transformers, ~3 s, and
    loading the tokenizer) would cost more than it saves. The tokens are the same either way."""
    tasks = [EncodeTask(str(path), tokenizer_folder) for path in paths]
    docs = sum(pq.ParquetFile(path).metadata.num_rows for path in paths)
    parallel = len(tasks) > 1 and docs >= PARALLEL_MIN_DOCS
    return executor.map(encode_shard, tasks) if parallel else map(encode_shard, tasks)
