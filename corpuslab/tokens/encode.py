"""Tokenization as executor tasks: one task per document shard, run by the curation executor (pool or Ray).

A task loads the tokenizer from its stage folder (once per worker process) and returns the shard's
documents as `EncodedBatch`es (`corpuslab.tokens.pack`): flat token ids with per-document lengths, plus the
rows of the document table. The tokens stage writes them in shard order, so the stream is the same
whichever executor ran the tasks, and the same as tokenizing in the parent.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from corpuslab.tokens.pack import EncodedBatch, encode_batches

PARALLEL_MIN_DOCS = 5000
_TOKENIZERS: dict[str, Any] = {}  # per worker process: folder -> loaded tokenizer


@dataclass(frozen=True)
class EncodeTask:
    path: str  # one document shard
    tokenizer: str  # the tokenizer stage folder


def encode_shard(task: EncodeTask) -> list[EncodedBatch]:
    """Executor task: tokenize every document of one shard. A shard is bounded in size (the shard
    writer's rows per shard), so its batches travel back together."""
    from corpuslab.tokens.tokenizer import load_tokenizer

    tokenizer = _TOKENIZERS.get(task.tokenizer)
    if tokenizer is None:
        tokenizer = _TOKENIZERS[task.tokenizer] = load_tokenizer(Path(task.tokenizer))
    return list(encode_batches(tokenizer, [task.path]))


def encoded_batches(executor: Any, paths: list[Path], tokenizer_folder: str) -> Iterator[EncodedBatch] | None:
    """Every document of `paths` tokenized through `executor`, in shard order; None (tokenize in the
    parent, streamed) below PARALLEL_MIN_DOCS documents or for a lone shard: a worker's start-up
    (importing transformers, ~3 s, and loading the tokenizer) would cost more than it saves."""
    docs = sum(pq.ParquetFile(path).metadata.num_rows for path in paths)
    if len(paths) < 2 or docs < PARALLEL_MIN_DOCS:
        return None
    tasks = [EncodeTask(str(path), tokenizer_folder) for path in paths]
    return (batch for shard in executor.map(encode_shard, tasks) for batch in shard)
