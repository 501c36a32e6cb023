"""Token streams: one flat memmap of token ids per split, plus a document-offset index.

Layout for a prefix `out/train` (the nanoGPT layout, with an index so documents stay addressable):

- `out/train.bin`       all documents concatenated, each followed by `eos_id`; uint16 when every id fits,
                        else uint32
- `out/train.idx.npy`   int64 offsets, length n_docs + 1: document i occupies
                        `[offsets[i], offsets[i+1])`, its trailing eos included; `offsets[-1] == n_tokens`
- `out/train.meta.json` dtype, n_tokens, n_docs, vocab_size, eos_id; written last, so a stream without
                        it is incomplete and is never opened

Training windows may cross document boundaries: the eos between documents tells the model where one
ends, which is what GPT-style pretraining does and wastes no tokens on padding.
"""

from __future__ import annotations

import array
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from corpuslab.atomic import temp_path
from corpuslab.errors import InputError

if TYPE_CHECKING:  # torch is imported where a batch is made: writing and reading streams do not need it
    import torch

UINT16_MAX_VOCAB = 65535  # ids 0..65534 fit in uint16 with room to spare for the eos id


def token_dtype(vocab_size: int) -> np.dtype:
    """The smallest unsigned dtype that holds every id of a vocabulary of `vocab_size`."""
    return np.dtype(np.uint16 if vocab_size <= UINT16_MAX_VOCAB else np.uint32)


def stream_paths(path_prefix: str | Path) -> tuple[Path, Path, Path]:
    """(`.bin`, `.idx.npy`, `.meta.json`) paths of the stream at `path_prefix`."""
    prefix = str(path_prefix)
    return Path(prefix + ".bin"), Path(prefix + ".idx.npy"), Path(prefix + ".meta.json")


def _check_ids(doc: np.ndarray, doc_index: int, vocab_size: int) -> None:
    if doc.size and not np.issubdtype(doc.dtype, np.integer):  # a float array is a caller's bug
        raise ValueError(f"document {doc_index}: token ids must be integers, got dtype {doc.dtype}")
    if doc.size and (int(doc.min()) < 0 or int(doc.max()) >= vocab_size):
        raise ValueError(
            f"document {doc_index}: token ids must lie in [0, {vocab_size}), "
            f"got min {int(doc.min())}, max {int(doc.max())}"
        )


def write_token_stream(
    path_prefix: str | Path,
    docs_token_arrays: Iterable[np.ndarray],
    vocab_size: int,
    eos_id: int,
) -> dict:
    """Write documents' token ids as a flat stream; returns the meta dict.

    Streams: one document is held at a time, plus 8 bytes of offset per document. Every file is
    written under a temporary name and renamed into place, meta last, so a crash never leaves a
    stream that looks complete.
    """
    with TokenStreamWriter(path_prefix, vocab_size, eos_id) as writer:
        for doc in docs_token_arrays:
            doc = np.asarray(doc)
            writer.write_docs(doc, np.array([doc.size]))
    return writer.meta


class TokenStreamWriter:
    """Appends documents to a token stream a batch at a time: no Python object per document.

    `write_docs` takes a batch as one flat array of token ids and the documents' lengths; `copy_docs`
    copies documents (eos included) from another stream of the same vocabulary. Holds 8 bytes of offset
    per document; `close` renames the files into place, meta last (an exception leaves none of them).
    """

    def __init__(self, path_prefix: str | Path, vocab_size: int, eos_id: int):
        if not 0 <= eos_id < vocab_size:
            raise ValueError(f"eos_id must lie in [0, {vocab_size}), got {eos_id}")
        self.vocab_size, self.eos_id, self.dtype = int(vocab_size), int(eos_id), token_dtype(vocab_size)
        self.paths = stream_paths(path_prefix)
        self.paths[0].parent.mkdir(parents=True, exist_ok=True)
        self._bin_tmp = temp_path(self.paths[0])
        self._out = open(self._bin_tmp, "wb")
        self._offsets = array.array("q", [0])  # compact: 8 bytes per document, not a Python int object each
        self.meta: dict = {}

    def write_docs(self, tokens: np.ndarray, lengths: np.ndarray) -> None:
        """Documents `tokens[:lengths[0]]`, the next `lengths[1]`, ...; an eos is added after each."""
        lengths = np.asarray(lengths, dtype=np.int64)
        try:
            _check_ids(tokens, len(self._offsets) - 1, self.vocab_size)
        except ValueError:  # name the document, not the batch
            for k, doc in enumerate(np.split(tokens, np.cumsum(lengths)[:-1])):
                _check_ids(doc, len(self._offsets) - 1 + k, self.vocab_size)
            raise
        ends = np.cumsum(lengths + 1)
        out = np.full(int(ends[-1]) if len(ends) else 0, self.eos_id, dtype=self.dtype)
        is_token = np.ones(len(out), dtype=bool)
        is_token[ends - 1] = False
        out[is_token] = tokens
        self._append(out, ends)

    def copy_docs(self, source: TokenStream, docs: np.ndarray, block_tokens: int = 1 << 20) -> None:
        """Documents `docs` (indices, in the order given, repeats allowed) of `source`, eos included."""
        if source.tokens.dtype != self.dtype or source.eos_id != self.eos_id:
            raise ValueError("copy_docs needs a source stream with the same dtype and eos id")
        starts, ends = source.offsets[docs], source.offsets[np.asarray(docs) + 1]
        lengths = ends - starts
        block_ends = np.cumsum(lengths)
        first = 0
        while first < len(docs):  # blocks of about `block_tokens`, whole documents
            last = max(first + 1, int(np.searchsorted(block_ends, block_ends[first] - lengths[first] + block_tokens, "right")))
            rel = lengths[first:last]
            positions = np.repeat(starts[first:last] - np.cumsum(rel) + rel, rel) + np.arange(int(rel.sum()))
            self._append(_gather_tokens(source, positions, block_tokens), np.cumsum(rel))
            first = last

    def _append(self, tokens_with_eos: np.ndarray, ends: np.ndarray) -> None:
        self._out.write(tokens_with_eos.astype(self.dtype, copy=False).tobytes())
        base = self._offsets[-1]
        self._offsets.frombytes((np.asarray(ends, dtype=np.int64) + base).tobytes())

    def close(self) -> dict:
        """Rename the files into place, meta last; returns the meta dict."""
        self._out.close()
        bin_path, idx_path, meta_path = self.paths
        idx_tmp = temp_path(idx_path)
        np.save(idx_tmp, np.frombuffer(self._offsets, dtype=np.int64))
        self.meta = {
            "dtype": self.dtype.name,
            "n_tokens": int(self._offsets[-1]),
            "n_docs": len(self._offsets) - 1,
            "vocab_size": self.vocab_size,
            "eos_id": self.eos_id,
        }
        meta_tmp = temp_path(meta_path)
        meta_tmp.write_text(json.dumps(self.meta, indent=2))
        os.replace(self._bin_tmp, bin_path)
        os.replace(idx_tmp, idx_path)
        os.replace(meta_tmp, meta_path)
        return self.meta

    def abort(self) -> None:
        self._out.close()
        self._bin_tmp.unlink(missing_ok=True)

    def __enter__(self) -> TokenStreamWriter:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def _gather_tokens(source: TokenStream, positions: np.ndarray, block_tokens: int) -> np.ndarray:
    """source.tokens[positions]; read with a plain file read when the positions lie close together (as when
    packing keeps or repeats documents in order), since pages touched through the memmap stay in this
    process's resident memory until it ends: the whole stream, for a pass over it."""
    filename = getattr(source.tokens, "filename", None)
    if filename is None or len(positions) == 0:
        return np.asarray(source.tokens[positions])
    low, high = int(positions.min()), int(positions.max()) + 1
    if high - low > 4 * max(block_tokens, len(positions)):  # scattered: read only what is needed
        return np.asarray(source.tokens[positions])
    span = np.fromfile(filename, dtype=source.tokens.dtype, count=high - low, offset=low * source.tokens.dtype.itemsize)
    return span[positions - low]


@dataclass
class TokenStream:
    """An opened token stream: `tokens` is a read-only memmap, `offsets` the document index."""

    tokens: np.ndarray
    offsets: np.ndarray
    meta: dict

    @classmethod
    def open(cls, path_prefix: str | Path) -> TokenStream:
        bin_path, idx_path, meta_path = stream_paths(path_prefix)
        if not meta_path.exists():
            raise InputError(str(meta_path), "token stream is missing or incomplete (no meta file)")
        meta = json.loads(meta_path.read_text())
        dtype = np.dtype(meta["dtype"])
        expected_bytes = meta["n_tokens"] * dtype.itemsize
        if bin_path.stat().st_size != expected_bytes:
            raise InputError(
                str(bin_path), f"holds {bin_path.stat().st_size} bytes, meta says {expected_bytes}"
            )
        offsets = np.load(idx_path)
        if len(offsets) != meta["n_docs"] + 1 or int(offsets[-1]) != meta["n_tokens"]:
            raise InputError(str(idx_path), "document index does not match the meta file")
        # np.memmap cannot map an empty file.
        tokens = (
            np.memmap(bin_path, dtype=dtype, mode="r") if meta["n_tokens"] else np.empty(0, dtype)
        )
        return cls(tokens=tokens, offsets=offsets, meta=meta)

    @property
    def n_tokens(self) -> int:
        return int(self.meta["n_tokens"])

    @property
    def n_docs(self) -> int:
        return int(self.meta["n_docs"])

    @property
    def eos_id(self) -> int:
        return int(self.meta["eos_id"])

    @property
    def vocab_size(self) -> int:
        return int(self.meta["vocab_size"])

    def doc_slice(self, i: int, include_eos: bool = False) -> np.ndarray:
        """Token ids of document `i` (a view into the memmap)."""
        if not 0 <= i < self.n_docs:
            raise IndexError(f"document {i} out of range [0, {self.n_docs})")
        end = int(self.offsets[i + 1]) - (0 if include_eos else 1)
        return self.tokens[int(self.offsets[i]) : end]

    def windows(self, chunk_len: int, stride: int | None = None) -> np.ndarray:
        """Start offsets of every window of `chunk_len + 1` tokens, `stride` apart (default: chunk_len).

        `chunk_len + 1` because a window gives inputs `[s, s+chunk_len)` and targets shifted by one.
        With stride == chunk_len consecutive windows share one token, so every token is a target once.
        """
        stride = chunk_len if stride is None else stride
        if chunk_len < 1 or stride < 1:
            raise ValueError(f"chunk_len and stride must be >= 1, got {chunk_len}, {stride}")
        last_start = self.n_tokens - (chunk_len + 1)
        if last_start < 0:
            return np.empty(0, dtype=np.int64)
        return np.arange(0, last_start + 1, stride, dtype=np.int64)

    def batch(self, starts: np.ndarray, chunk_len: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(inputs, targets) int64 tensors of shape (len(starts), chunk_len) for windows at `starts`."""
        import torch

        positions = np.asarray(starts, dtype=np.int64)[:, None] + np.arange(chunk_len + 1)
        block = torch.from_numpy(self.tokens[positions].astype(np.int64))
        return block[:, :-1], block[:, 1:]

    def docs_within(self, max_tokens: int | None) -> int:
        """How many leading documents (eos included) fit in `max_tokens`; all of them when None."""
        if max_tokens is None:
            return self.n_docs
        return int(np.searchsorted(self.offsets, max_tokens, side="right")) - 1
