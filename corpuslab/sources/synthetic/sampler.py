"""Randomness of the synthetic corpus: block sampling and one independent stream per use."""

from __future__ import annotations

import bisect
from collections.abc import Sequence

import numpy as np

# Independent random streams, so e.g. changing the near-dup edits never changes an original's text.
# Each stream is seeded with [corpus seed, stream, item]; the values are part of every corpus's identity.
LAYOUT_STREAM, ORIGINAL_STREAM, NEAR_EDIT_STREAM, BOILERPLATE_INSTANCE_STREAM, BOILERPLATE_TEMPLATE_STREAM = range(5)
JUNK_LAYOUT_STREAM, JUNK_STREAM, JUNK_FARM_STREAM = range(5, 8)  # used only when junk is on


class Sampler:
    """Draws from a numpy Generator in blocks of uniforms: one numpy call per word would dominate run time."""

    def __init__(self, rng: np.random.Generator, block: int = 1024):
        self._rng, self._block = rng, block
        self._buffer: list[float] = []
        self._next = 0

    def uniform(self) -> float:
        if self._next == len(self._buffer):
            self._buffer, self._next = self._rng.random(self._block).tolist(), 0
        self._next += 1
        return self._buffer[self._next - 1]

    def index(self, n: int) -> int:
        return min(int(self.uniform() * n), n - 1)

    def choice(self, items: Sequence[str]) -> str:
        return items[self.index(len(items))]

    def integer(self, low: int, high: int) -> int:
        """Uniform on [low, high], both ends included."""
        return low + self.index(high - low + 1)

    def weighted(self, cumulative: Sequence[float]) -> int:
        return min(bisect.bisect_right(cumulative, self.uniform() * cumulative[-1]), len(cumulative) - 1)
