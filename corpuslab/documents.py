"""The one record type that flows through the pipeline."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Document:
    """A document: an id unique within the corpus, its text, and everything else in `metadata`.

    Categories, splits, ground-truth duplicate links and source positions live in metadata so every
    step has the same shape (datatrove's `Document`).
    """

    id: str
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def category(self) -> str | None:
        return self.metadata.get("category")
