"""Batch samplers: which windows of the training stream make up each step's batch.

A sampler is a plug-in (`samplers` registry), chosen by a training procedure's `sampler` setting. Its
contract: `batch_starts(step)` returns the start offsets (into the stream) of the windows of 0-based
update `step`, each window `chunk_len + 1` tokens, and is a pure function of the data it was set up
with, the seed and `step`. The batch of step s never depends on which batches came before, so a
resumed run sees exactly the batches an uninterrupted one would, with no sampler state to save.

- `shuffled`: every window once per epoch, in a fresh permutation per epoch (the default).
- `sequential`: the windows in stream order, epoch after epoch, never shuffled (online code length needs
  the order of the data).
- `random_window`: a document drawn uniformly, then a window drawn uniformly inside it (the arXiv seed's
  sampler); documents shorter than a window are skipped and counted.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from corpuslab.errors import StageError
from corpuslab.registry import Plugin, Registry

if TYPE_CHECKING:  # a config naming a sampler is validated without importing torch
    from corpuslab.tokens.stream import TokenStream

DEFAULT_SAMPLER = "shuffled"


@dataclass(frozen=True)
class SamplingData:
    """What a sampler may draw from."""

    stream: TokenStream  # the training tokens, with their document offsets
    windows: np.ndarray  # start offsets of the windows the run trains on (curation may have dropped some)
    chunk_len: int  # a window is chunk_len + 1 tokens: inputs and targets shifted by one
    batch_size: int
    seed: int


class Sampler(Plugin):
    """Base of batch samplers; see the module docstring for the contract."""

    def setup(self, data: SamplingData) -> None:
        """Bind to one run's data (once per `train()` call); raise a StageError if it cannot be sampled."""
        self.data = data

    @abstractmethod
    def batch_starts(self, step: int) -> np.ndarray:
        """int64 start offsets of the `batch_size` windows of 0-based update `step`."""

    def stats(self) -> dict[str, Any]:
        """What the sampler saw and skipped, for the run's result."""
        return {"windows": len(self.data.windows)}


samplers: Registry[Sampler] = Registry("sampler", Sampler)


class WindowSampler:
    """Window indices of each step's batch: sample i = s * batch_size + j of step s lives in epoch
    i // n_windows, at position i % n_windows of that epoch's permutation, drawn from a generator seeded
    with (seed, epoch)."""

    def __init__(self, n_windows: int, batch_size: int, seed: int):
        self.n_windows, self.batch_size, self.seed = n_windows, batch_size, seed
        self._permutations: dict[int, np.ndarray] = {}

    def _permutation(self, epoch: int) -> np.ndarray:
        if epoch not in self._permutations:
            if len(self._permutations) >= 2:  # a batch spans at most two epochs... unless tiny data
                self._permutations.pop(min(self._permutations))
            rng = np.random.default_rng([self.seed, epoch])
            self._permutations[epoch] = rng.permutation(self.n_windows)
        return self._permutations[epoch]

    def batch_indices(self, update: int) -> np.ndarray:
        samples = np.arange(update * self.batch_size, (update + 1) * self.batch_size, dtype=np.int64)
        epochs, positions = np.divmod(samples, self.n_windows)
        indices = np.empty(self.batch_size, dtype=np.int64)
        for epoch in np.unique(epochs):
            mask = epochs == epoch
            indices[mask] = self._permutation(int(epoch))[positions[mask]]
        return indices


@samplers.register
class Shuffled(Sampler):
    """Every window once per epoch, in a new order each epoch (a permutation seeded by (seed, epoch))."""

    name = "shuffled"

    def setup(self, data: SamplingData) -> None:
        super().setup(data)
        self._indices = WindowSampler(len(data.windows), data.batch_size, data.seed)

    def batch_starts(self, step: int) -> np.ndarray:
        return self.data.windows[self._indices.batch_indices(step)]


@samplers.register
class Sequential(Sampler):
    """The windows in the order given, wrapping around at the end of each epoch; the seed is unused."""

    name = "sequential"

    def batch_starts(self, step: int) -> np.ndarray:
        batch_size = self.data.batch_size
        samples = np.arange(step * batch_size, (step + 1) * batch_size, dtype=np.int64)
        return self.data.windows[samples % len(self.data.windows)]


@samplers.register
class RandomWindow(Sampler):
    """Draw a document uniformly, then a window uniformly inside it: every document weighs the same,
    however long. A window lies within one document's tokens (its trailing eos excluded), so documents
    shorter than chunk_len + 1 tokens are skipped and counted. Step s draws from a generator seeded with
    (seed, s)."""

    name = "random_window"

    def setup(self, data: SamplingData) -> None:
        super().setup(data)
        if not _covers_stream(data.windows, data.stream.n_tokens, data.chunk_len):
            # Curation that dropped windows (chunk level) would be silently undone by drawing from documents.
            raise StageError("train", "the random_window sampler draws from whole documents, but this run's "
                             "windows are a curated subset of the stream; use the shuffled or sequential "
                             "sampler for chunk-level curation")
        window = data.chunk_len + 1
        doc_tokens = np.diff(data.stream.offsets) - 1  # without each document's trailing eos
        self._eligible = np.flatnonzero(doc_tokens >= window)
        self._doc_starts = data.stream.offsets[self._eligible]
        self._room = doc_tokens[self._eligible] - window  # last possible start inside each document
        if len(self._eligible) == 0:
            raise StageError("train", f"the random_window sampler found no document of at least {window} "
                             f"tokens (chunk_len + 1) among {data.stream.n_docs}; lower training.chunk_len")

    def batch_starts(self, step: int) -> np.ndarray:
        rng = np.random.default_rng([self.data.seed, step])
        docs = rng.integers(0, len(self._eligible), size=self.data.batch_size)
        return self._doc_starts[docs] + rng.integers(0, self._room[docs] + 1)

    def stats(self) -> dict[str, Any]:
        n_docs = self.data.stream.n_docs
        return {"documents": n_docs, "documents_sampled": len(self._eligible),
                "documents_skipped_shorter_than_window": n_docs - len(self._eligible),
                "window_tokens": self.data.chunk_len + 1}


def _covers_stream(windows: np.ndarray, n_tokens: int, chunk_len: int) -> bool:
    """Whether `windows` are every window of the stream at one stride, i.e. none was curated away."""
    if len(windows) < 2:
        return len(windows) == 1 and windows[0] == 0 and n_tokens - (chunk_len + 1) < chunk_len
    stride = int(windows[1] - windows[0])
    full = np.arange(0, n_tokens - chunk_len, stride, dtype=np.int64) if stride > 0 else None
    return full is not None and np.array_equal(windows, full)
