"""Which document ids an ingest has already written, in a few bytes per id.

The ingest renames a document whose id repeats an earlier one (decision tables and splits are keyed by
id), so it must ask "seen before?" of every id as the documents stream past. A Python set of the id strings
costs ~100 bytes per document at short ids (the string object and its slot), more at long ones: ~100 MB
at a million documents, the largest thing an ingest held. `SeenIds` keeps a 128-bit digest of each id
(126 bits of XXH3-128, or of blake2b without the `xxhash` package) in an open-addressing table instead:
16 bytes per slot at a load of at most 0.7, so 23 to 46 bytes per id whatever its length (1M ids of 26
characters: 41 MB against 109 MB for the set, ~1 us more per id). Two ids are taken as equal when their digests are, as exact dedup takes two texts
(accidental collisions ~n^2 / 2^127, ~1e-20 at a billion ids; XXH3 does not resist a crafted collision,
which would only rename a document whose id is new).
"""

from __future__ import annotations

import hashlib
import itertools
import struct
from collections.abc import Iterable, Iterator

import numpy as np
from numba import njit

from corpuslab.documents import Document

MAX_LOAD = 0.7
BATCH = 1024
_WORDS = struct.Struct("<QQ")
_MASK = (1 << 63) - 1


class SeenIds:
    """A growing set of id digests; `add` says whether the id was already in it."""

    def __init__(self, capacity: int = 1 << 16):
        self._table = np.zeros((1 << max(4, (capacity - 1).bit_length()), 2), dtype=np.int64)
        self._count = 0
        self.renamed = 0  # documents renamed by `documents`

    def __len__(self) -> int:
        return self._count

    def add(self, doc_id: str) -> bool:
        """Add `doc_id`; True when it was already present (nothing is added then)."""
        high, low = _digest(doc_id)
        if _insert(self._table, high, low):
            return True
        self._count += 1
        if self._count > MAX_LOAD * len(self._table):
            self._table = _grown(self._table)
        return False

    def __contains__(self, doc_id: str) -> bool:
        return _find(self._table, *_digest(doc_id))

    def documents(self, documents: Iterable[Document], max_docs: int | None = None) -> Iterator[Document]:
        """The documents (at most `max_docs`, and no more read from `documents`), each whose id was seen
        before renamed '<id>#<n>', n counting the renames (`self.renamed`); every id written is added.

        A batch of ids goes to the table in one call (a call per id cost ~3 us in numba's dispatch)."""
        stream = iter(documents)
        written = 0
        while max_docs is None or written < max_docs:
            batch = list(itertools.islice(stream, BATCH if max_docs is None else min(BATCH, max_docs - written)))
            if not batch:
                return
            written += len(batch)
            yield from self._rename_repeats(batch)

    def _rename_repeats(self, batch: list[Document]) -> list[Document]:
        while self._count + len(batch) > MAX_LOAD * len(self._table):
            self._table = _grown(self._table)
        words = _digests([doc.id for doc in batch])
        start = 0
        while start < len(batch):
            repeat = _add_until_repeat(self._table, words, start)
            self._count += repeat - start
            if repeat == len(batch):
                break
            self.renamed += 1
            doc = batch[repeat]
            batch[repeat] = Document(f"{doc.id}#{self.renamed}", doc.text, doc.metadata)
            self.add(batch[repeat].id)
            start = repeat + 1
        return batch


def _blake2b_128(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=16).digest()


try:  # XXH3-128 (the `xxhash` package comes with `datasets`): ~0.6 us per id where blake2b took ~5 here
    from xxhash import xxh3_128_digest as _hash128
except ImportError:
    _hash128 = _blake2b_128


def _digest(doc_id: str) -> tuple[int, int]:
    """The id's blake2b digest as two 63-bit words (plain ints: numba takes them as int64 without a numpy
    scalar per call); the high word's lowest bit is set so no digest is the empty slot (0)."""
    high, low = _WORDS.unpack(_hash128(doc_id.encode("utf-8", "surrogatepass")))
    return (high & _MASK) | 1, low & _MASK


def _digests(ids: list[str]) -> np.ndarray:
    """(n, 2) int64: `_digest` of each id, hashed into one buffer (no Python tuple per id)."""
    joined = b"".join(_hash128(doc_id.encode("utf-8", "surrogatepass")) for doc_id in ids)
    words = (np.frombuffer(joined, dtype="<u8").reshape(-1, 2) & np.uint64(_MASK)).astype(np.int64)
    words[:, 0] |= 1
    return words


@njit(cache=True, nogil=True)
def _insert(table, high, low):
    """Put (high, low) in its slot (linear probing from `low`); True if it was already there."""
    mask = table.shape[0] - 1
    slot = low & mask
    while True:
        if table[slot, 0] == 0:
            table[slot, 0], table[slot, 1] = high, low
            return False
        if table[slot, 0] == high and table[slot, 1] == low:
            return True
        slot = (slot + 1) & mask


@njit(cache=True, nogil=True)
def _add_until_repeat(table, words, start):
    """Add words[start:] in order up to the first already present; its index (len(words): none was)."""
    for k in range(start, len(words)):
        if _insert(table, words[k, 0], words[k, 1]):
            return k
    return len(words)


@njit(cache=True, nogil=True)
def _find(table, high, low):
    mask = table.shape[0] - 1
    slot = low & mask
    while table[slot, 0] != 0:
        if table[slot, 0] == high and table[slot, 1] == low:
            return True
        slot = (slot + 1) & mask
    return False


@njit(cache=True, nogil=True)
def _rehash(old, new):
    for k in range(old.shape[0]):
        if old[k, 0] != 0:
            _insert(new, old[k, 0], old[k, 1])


def _grown(table: np.ndarray) -> np.ndarray:
    bigger = np.zeros((2 * len(table), 2), dtype=np.int64)
    _rehash(table, bigger)
    return bigger
