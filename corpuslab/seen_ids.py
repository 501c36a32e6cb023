"""Which document ids an ingest has already written, in a few bytes per id.

The ingest renames a document whose id repeats an earlier one (decision tables and splits are keyed by
id), so it must ask "seen before?" of every id as the documents stream past. A Python set of the id strings
costs ~100 bytes per document at short ids (the string object and its slot), more at long ones: ~100 MB
at a million documents, the largest thing an ingest held. `SeenIds` keeps a 128-bit blake2b digest of each
id in an open-addressing table instead: 16 bytes per slot at a load of at most 0.7, so 23 to 46 bytes per
id whatever its length. Two ids are taken as equal when their digests are, as exact dedup takes two texts
(accidental collisions: ~n^2 / 2^129, ~1e-21 at a billion ids).
"""

from __future__ import annotations

import hashlib

import numpy as np
from numba import njit

MAX_LOAD = 0.7


class SeenIds:
    """A growing set of id digests; `add` says whether the id was already in it."""

    def __init__(self, capacity: int = 1 << 16):
        self._table = np.zeros((1 << max(4, (capacity - 1).bit_length()), 2), dtype=np.uint64)
        self._count = 0

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


def _digest(doc_id: str) -> tuple[np.uint64, np.uint64]:
    """The id's 128-bit digest as two words; the high word's lowest bit is set so no digest is the empty slot."""
    high, low = np.frombuffer(hashlib.blake2b(doc_id.encode("utf-8", "surrogatepass"), digest_size=16).digest(), dtype=np.uint64)
    return high | np.uint64(1), low


@njit(cache=True, nogil=True)
def _insert(table, high, low):
    """Put (high, low) in its slot (linear probing from `low`); True if it was already there."""
    mask = table.shape[0] - 1
    slot = low & np.uint64(mask)
    while True:
        if table[slot, 0] == 0:
            table[slot, 0], table[slot, 1] = high, low
            return False
        if table[slot, 0] == high and table[slot, 1] == low:
            return True
        slot = (slot + np.uint64(1)) & np.uint64(mask)


@njit(cache=True, nogil=True)
def _find(table, high, low):
    mask = table.shape[0] - 1
    slot = low & np.uint64(mask)
    while table[slot, 0] != 0:
        if table[slot, 0] == high and table[slot, 1] == low:
            return True
        slot = (slot + np.uint64(1)) & np.uint64(mask)
    return False


@njit(cache=True, nogil=True)
def _rehash(old, new):
    for k in range(old.shape[0]):
        if old[k, 0] != 0:
            _insert(new, old[k, 0], old[k, 1])


def _grown(table: np.ndarray) -> np.ndarray:
    bigger = np.zeros((2 * len(table), 2), dtype=np.uint64)
    _rehash(table, bigger)
    return bigger
