"""Document sources: the built-in synthetic corpus, local files, Hugging Face datasets.

`open_source` gives every source the same shape: a stream of `Document`s plus the count of
records it skipped and why.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from corpuslab.documents import Document

if TYPE_CHECKING:
    from corpuslab.config import DatasetConfig


@dataclass
class Source:
    cfg: "DatasetConfig"
    seed: int

    def __post_init__(self) -> None:
        from corpuslab.sources.badinput import BadInputLog

        self.bad_input = BadInputLog()

    def documents(self) -> Iterator[Document]:
        if self.cfg.source == "synthetic":
            from corpuslab.sources.synthetic import generate

            return generate(self.cfg.synthetic, self.seed)
        if self.cfg.source == "local":
            from corpuslab.sources.local import read_local

            return read_local(self.cfg.local, self.bad_input)
        from corpuslab.sources.hf import read_hf

        return read_hf(self.cfg.hf, self.bad_input)

    def bad_input_summary(self) -> dict[str, Any]:
        return self.bad_input.summary()

    def describe(self) -> str:
        if self.cfg.source == "synthetic":
            return f"synthetic corpus (seed {self.seed})"
        if self.cfg.source == "local":
            return f"local files {list(self.cfg.local.paths)}"
        return f"Hugging Face dataset {self.cfg.hf.name} ({self.cfg.hf.subset or 'default'}, split {self.cfg.hf.split})"


def open_source(cfg: "DatasetConfig", seed: int) -> Source:
    return Source(cfg, seed)
