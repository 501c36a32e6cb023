"""Byte-level data: the leading N bytes of any source, UTF-8, concatenated without separators.

The stream is cut into fixed chunks of `chunk_bytes` (input chunk[:-1], target chunk[1:]; the last chunk is
zero-padded), vocabulary 256, and is never shuffled. Training is the leading `size` bytes; validation and
test are the `val_bytes` and `test_bytes` that follow them in the same stream (with size `all`, the last
val_bytes + test_bytes of the corpus), so the three never overlap.

Each split is written as a corpuslab token stream (one uint8 "document", `.bin/.idx.npy/.meta.json`), which
the trainer and the evaluation read like any other stream.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from corpuslab.errors import ConfigError
from corpuslab.schema import require, require_int

# The seed's standard training sizes (its README "Standard Dataset Configurations"); `all` is the whole corpus.
SIZE_PRESETS: dict[str, int | None] = {"16mb": 16_384_000, "50mb": 50_003_968, "300mb": 299_991_040, "all": None}
VOCAB = 256
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class BytesConfig:
    size: str | int = "16mb"  # training bytes: a preset name (SIZE_PRESETS) or a byte count
    chunk_bytes: int = 2048  # bytes per chunk; the model's context must hold chunk_bytes - 1
    val_bytes: int = 204_800  # the bytes after the training bytes (TAMADE reads the first chunks)
    test_bytes: int = 204_800

    def train_bytes(self) -> int | None:
        return SIZE_PRESETS[self.size] if isinstance(self.size, str) else self.size

    def validate(self, prefix: str = "data") -> BytesConfig:
        if isinstance(self.size, str):
            require(self.size in SIZE_PRESETS, f"{prefix}.size", self.size, f"a byte count or one of {sorted(SIZE_PRESETS)}")
        else:
            require_int(self.size, f"{prefix}.size", 1)
        require_int(self.chunk_bytes, f"{prefix}.chunk_bytes", 2)
        require_int(self.val_bytes, f"{prefix}.val_bytes", self.chunk_bytes)
        require_int(self.test_bytes, f"{prefix}.test_bytes", self.chunk_bytes)
        return self


def _utf8(documents: Iterator[Any]) -> Iterator[bytes]:
    for doc in documents:
        if doc.text:
            yield doc.text.encode("utf-8")


def leading_bytes(documents: Iterator[Any], limit: int | None) -> bytes:
    """The first `limit` bytes (all when None) of the documents' UTF-8 text, concatenated."""
    parts, total = [], 0
    for data in _utf8(documents):
        if limit is not None and total + len(data) >= limit:
            parts.append(data[: limit - total])
            total = limit
            break
        parts.append(data)
        total += len(data)
    return b"".join(parts)


def split_bytes(data: bytes, cfg: BytesConfig, complete: bool, key: str = "data.size") -> dict[str, bytes]:
    """Train / val / test bytes from the stream's head `data` (`complete`: it is the whole corpus)."""
    train = cfg.train_bytes()
    held_out = cfg.val_bytes + cfg.test_bytes
    if train is None:
        train = len(data) - held_out
    if train < 1 or len(data) < train + held_out:
        available = len(data) - held_out
        raise ConfigError(key, cfg.size, f"at most the corpus's {len(data):,} bytes less val_bytes + test_bytes "
                          f"({held_out:,}), i.e. {max(available, 0):,} training bytes" + ("" if complete else " (the corpus ended early)"))
    return {"train": data[:train], "val": data[train : train + cfg.val_bytes],
            "test": data[train + cfg.val_bytes : train + held_out]}


def chunk_count(n_bytes: int, chunk_bytes: int) -> int:
    return math.ceil(n_bytes / chunk_bytes)


def write_byte_stream(prefix: Path, data: bytes, chunk_bytes: int) -> dict[str, Any]:
    """Write `data` zero-padded to whole chunks as a uint8 token stream; returns its meta."""
    chunks = chunk_count(len(data), chunk_bytes)
    padded = data + bytes(chunks * chunk_bytes - len(data))
    prefix.parent.mkdir(parents=True, exist_ok=True)
    Path(f"{prefix}.bin").write_bytes(padded)
    np.save(f"{prefix}.idx.npy", np.array([0, len(padded)], dtype=np.int64))
    meta = {"dtype": "uint8", "n_tokens": len(padded), "n_docs": 1, "vocab_size": VOCAB, "eos_id": 0,
            "bytes": len(data), "chunks": chunks, "chunk_bytes": chunk_bytes, "padding": len(padded) - len(data)}
    Path(f"{prefix}.meta.json").write_text(json.dumps(meta, indent=2))
    return meta


def chunk_starts(n_chunks: int, chunk_bytes: int) -> np.ndarray:
    """Window starts of the fixed chunks: the trainer reads chunk_len + 1 = chunk_bytes tokens from each."""
    return np.arange(n_chunks, dtype=np.int64) * chunk_bytes
