"""LSH banding: candidate pairs are documents that share a band key in at least one band.

A bucket (documents with equal keys in one band) of up to `ALL_PAIRS_MAX_BUCKET` members yields all its
pairs. A larger bucket -- hundreds of copies of one boilerplate page -- would yield a quadratic number,
so it yields each member paired with the bucket's first member and with its predecessor (members in
corpus order): O(bucket) pairs that still connect the whole bucket if it is one duplicate cluster,
while every member stays a candidate in the other bands too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

ALL_PAIRS_MAX_BUCKET = 64


def candidate_pairs(keys: np.ndarray, active: np.ndarray) -> np.ndarray:
    """(m, 2) int64 distinct pairs (i < j) of active documents sharing a band key.

    `keys` is (n_docs, bands) uint64; `active` is a bool mask of the documents to index.
    """
    docs = np.flatnonzero(active).astype(np.int64)
    codes = [_band_pair_codes(keys[docs, band], docs) for band in range(keys.shape[1])]
    unique = np.unique(np.concatenate(codes)) if codes else np.empty(0, np.uint64)
    return np.stack(
        [(unique >> np.uint64(32)).astype(np.int64), (unique & np.uint64(0xFFFFFFFF)).astype(np.int64)], 1
    )


def _band_pair_codes(band: np.ndarray, docs: np.ndarray) -> np.ndarray:
    order = np.argsort(band, kind="stable")  # stable: members of a bucket stay in corpus order
    return _bucket_pairs(band[order], docs[order], ALL_PAIRS_MAX_BUCKET)


@njit(cache=True, nogil=True)
def _bucket_pairs(sorted_keys, members, all_pairs_max):
    """Pairs of every run of equal keys, encoded as (first << 32) | second with first < second."""
    total = 0
    start = 0
    n = len(sorted_keys)
    while start < n:  # first pass: count, so the output is allocated once
        end = start + 1
        while end < n and sorted_keys[end] == sorted_keys[start]:
            end += 1
        size = end - start
        total += size * (size - 1) // 2 if size <= all_pairs_max else 2 * (size - 1) - 1
        start = end
    out = np.empty(total, dtype=np.uint64)
    pos = start = 0
    while start < n:
        end = start + 1
        while end < n and sorted_keys[end] == sorted_keys[start]:
            end += 1
        pos = _emit_bucket(members, start, end, all_pairs_max, out, pos)
        start = end
    return out[:pos]


@njit(cache=True, nogil=True)
def _emit_bucket(members, start, end, all_pairs_max, out, pos):
    if end - start <= all_pairs_max:
        for x in range(start, end):
            for y in range(x + 1, end):
                out[pos] = (np.uint64(members[x]) << np.uint64(32)) | np.uint64(members[y])
                pos += 1
        return pos
    for y in range(start + 1, end):  # star around the first member, plus the chain of neighbours
        out[pos] = (np.uint64(members[start]) << np.uint64(32)) | np.uint64(members[y])
        pos += 1
        if y - 1 > start:
            out[pos] = (np.uint64(members[y - 1]) << np.uint64(32)) | np.uint64(members[y])
            pos += 1
    return pos


@dataclass
class BandIndex:
    """Band keys of one side of a cross-dataset comparison, sorted per band for lookups."""

    sorted_keys: np.ndarray  # (bands, n) uint64
    members: np.ndarray  # (bands, n) int64: document index of each sorted key

    @classmethod
    def build(cls, keys: np.ndarray, active: np.ndarray) -> BandIndex:
        docs = np.flatnonzero(active).astype(np.int64)
        band_keys = keys[docs].T
        order = np.argsort(band_keys, axis=1, kind="stable")
        return cls(np.take_along_axis(band_keys, order, 1), docs[order])

    def probe(self, keys: np.ndarray) -> np.ndarray:
        """(m, 2) int64 distinct (row of `keys`, indexed document) pairs sharing a band key."""
        codes = [
            _probe_band(self.sorted_keys[band], self.members[band], np.ascontiguousarray(keys[:, band]))
            for band in range(self.sorted_keys.shape[0])
        ]
        unique = np.unique(np.concatenate(codes)) if codes else np.empty(0, np.uint64)
        return np.stack(
            [(unique >> np.uint64(32)).astype(np.int64), (unique & np.uint64(0xFFFFFFFF)).astype(np.int64)], 1
        )


@njit(cache=True, nogil=True)
def _probe_band(sorted_keys, members, probe_keys):
    left = np.searchsorted(sorted_keys, probe_keys, side="left")
    right = np.searchsorted(sorted_keys, probe_keys, side="right")
    out = np.empty(int(np.sum(right - left)), dtype=np.uint64)
    pos = 0
    for row in range(len(probe_keys)):
        for k in range(left[row], right[row]):
            out[pos] = (np.uint64(row) << np.uint64(32)) | np.uint64(members[k])
            pos += 1
    return out
