"""A source of text shipped inside the package, so the compression config runs in a fresh clone offline.

    dataset: {source: {name: packaged_text, text: tiny_shakespeare_head}}

`tiny_shakespeare_head` is the first 196,608 bytes of tiny Shakespeare (public domain plays; see
`corpuslab/compression/data/SOURCE.txt`). It yields one document: the file's text.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from typing import Any

from corpuslab.documents import Document
from corpuslab.schema import require
from corpuslab.sources.base import Source, sources

TEXTS = {"tiny_shakespeare_head": "tiny_shakespeare_head.txt"}


def packaged_text_bytes(name: str) -> bytes:
    return (resources.files("corpuslab.compression") / "data" / TEXTS[name]).read_bytes()


@sources.register
class PackagedText(Source):
    """One document: a text file shipped with corpuslab."""

    name = "packaged_text"

    @dataclass(frozen=True)
    class Config:
        text: str = "tiny_shakespeare_head"

        def validate(self, prefix: str = "dataset.source") -> None:
            require(self.text in TEXTS, f"{prefix}.text", self.text, f"one of {sorted(TEXTS)}")

    def documents(self) -> Iterator[Document]:
        yield Document(self.config.text, packaged_text_bytes(self.config.text).decode("utf-8"))

    def identity(self) -> dict[str, Any]:
        digest = hashlib.sha256(packaged_text_bytes(self.config.text)).hexdigest()
        return {**super().identity(), "sha256": digest}

    def description(self) -> str:
        return f"packaged text {self.config.text}"
