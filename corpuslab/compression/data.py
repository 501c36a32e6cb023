"""Byte-level data: the leading N bytes of any source, UTF-8, concatenated without separators.

The stream is cut into fixed chunks of `chunk_bytes` (input chunk[:-1], target chunk[1:]; the last chunk is
zero-padded), vocabulary 256, and is never shuffled. Training is the leading `size` bytes.

Validation and test (`held_out`), as in the seed when the source has splits of its own:

- `source`: the leading `val_bytes` / `test_bytes` (or `all`) of the source's own validation and test splits,
  each concatenated and chunked like the training bytes. The seed trained on the leading N bytes of Wiki40B's
  train split and validated and tested on its validation and test splits. A Hugging Face source reads the
  splits `val_split` / `test_split` of the same dataset (Wiki40B: `validation`, `test`); a local source reads
  the files `val_paths` / `test_paths`.
- `stream`: the `val_bytes` and `test_bytes` that follow the training bytes in the same stream (with size
  `all`, the last val_bytes + test_bytes of the corpus), so the three never overlap. For single-stream sources.
- `auto` (default): `source` when the source has the two splits (a Hugging Face dataset that lists them, a
  local source given val_paths and test_paths), else `stream`. The bytes stage records which was used.

The text is taken as the source gives it: Wiki40B's markup (`_START_ARTICLE_`, `_START_SECTION_`,
`_START_PARAGRAPH_`, `_NEWLINE_`) stays in the bytes, as in the seed, which encoded each example's text as is.

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
HELD_OUT = ("auto", "source", "stream")


@dataclass(frozen=True)
class BytesConfig:
    size: str | int = "16mb"  # training bytes: a preset name (SIZE_PRESETS) or a byte count
    chunk_bytes: int = 2048  # bytes per chunk; the model's context must hold chunk_bytes - 1
    val_bytes: int | str = 204_800  # validation bytes (TAMADE reads the first chunks); `all`: the whole split
    test_bytes: int | str = 204_800  # test bytes; `all`: the whole split (held_out source only)
    held_out: str = "auto"  # auto | source | stream: where validation and test come from (module docstring)
    val_split: str = "validation"  # held_out source, Hugging Face source: the dataset's split names
    test_split: str = "test"
    val_paths: list[str] | None = None  # held_out source, local source: the validation and test files
    test_paths: list[str] | None = None

    def train_bytes(self) -> int | None:
        return SIZE_PRESETS[self.size] if isinstance(self.size, str) else self.size

    def held_out_bytes(self, split: str) -> int | None:
        """The validation (`val`) or test bytes to read; None: the whole split."""
        value = self.val_bytes if split == "val" else self.test_bytes
        return None if value == "all" else value

    def validate(self, prefix: str = "data") -> BytesConfig:
        if isinstance(self.size, str):
            require(self.size in SIZE_PRESETS, f"{prefix}.size", self.size, f"a byte count or one of {sorted(SIZE_PRESETS)}")
        else:
            require_int(self.size, f"{prefix}.size", 1)
        require_int(self.chunk_bytes, f"{prefix}.chunk_bytes", 2)
        for key in ("val_bytes", "test_bytes"):
            value = getattr(self, key)
            if value != "all":
                require(isinstance(value, int) and not isinstance(value, bool) and value >= self.chunk_bytes,
                        f"{prefix}.{key}", value, f"an integer >= chunk_bytes ({self.chunk_bytes}), or 'all' (the "
                        "whole split, when validation and test are the source's own splits)")
        require(self.held_out in HELD_OUT, f"{prefix}.held_out", self.held_out, f"one of {list(HELD_OUT)}")
        for key in ("val_split", "test_split"):
            require(isinstance(getattr(self, key), str) and bool(getattr(self, key)), f"{prefix}.{key}",
                    getattr(self, key), "a split name")
        require(self.val_split != self.test_split, f"{prefix}.test_split", self.test_split,
                f"a split other than val_split ({self.val_split!r})")
        for key in ("val_paths", "test_paths"):
            value = getattr(self, key)
            require(value is None or (isinstance(value, list) and value and all(isinstance(v, str) and v for v in value)),
                    f"{prefix}.{key}", value, "null or a non-empty list of files, folders or globs")
        require((self.val_paths is None) == (self.test_paths is None), f"{prefix}.test_paths" if self.test_paths is None
                else f"{prefix}.val_paths", None, "both val_paths and test_paths, or neither")
        if self.held_out == "stream":
            for key in ("val_bytes", "test_bytes"):
                require(getattr(self, key) != "all", f"{prefix}.{key}", "all", "a byte count: with held_out 'stream' "
                        "validation and test are the bytes after the training bytes")
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
    for name in ("val_bytes", "test_bytes"):
        if getattr(cfg, name) == "all":
            raise ConfigError(f"data.{name}", "all", "a byte count: this source has no validation and test splits of "
                              "its own, so they are the bytes after the training bytes (held_out 'stream')")
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


def read_split(documents: Iterator[Any], limit: int | None, key: str, value: object, what: str) -> bytes:
    """The leading `limit` bytes (all when None) of one split; a split with fewer bytes stops, naming `key`."""
    data = leading_bytes(documents, limit)
    if not data or (limit is not None and len(data) < limit):
        raise ConfigError(key, value, f"at most the {len(data):,} bytes of {what}, or 'all'")
    return data


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
