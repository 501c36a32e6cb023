"""In-context curves per category (`category_context`): loss by context length, split by document category.

Read from the same per-token losses as every split metric (`losses.token_losses`: non-overlapping
windows of `context` targets over the covered documents). A target's context length is counted one of
two ways (`position`):

- `document` (default): how many tokens of its own document the model sees before it, i.e.
  min(position in the window + 1, position in the document). Windows are not cut at document
  boundaries, so a token near a window's end may have little of its own document in view; this counts
  only what informs it. Value d in 0..context: the document's first token (d = 0) is conditioned on the
  previous document's eos alone. This is the curve of the arXiv seed, whose windows lie inside one
  document.
- `window`: the position in the window + 1 (the `in_context` metric's x axis), 1..context.

Output, per evaluated split: `<split>_by_category_context` = {"position": ..., "context": ..., "all": curve,
"categories": {category: curve}}, a curve being the mean loss at each context length (None where no token
has it). Lists are not pooled into summary columns; the report's diversity section averages them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from corpuslab.evaluation.losses import UNCATEGORIZED, TokenLosses
from corpuslab.evaluation.metrics import Evaluation, Log, SplitData, SplitMetric, SplitsConfig, metrics
from corpuslab.schema import require


def context_lengths(losses: TokenLosses, position: str = "document") -> np.ndarray:
    """Each covered target's context length (method: module docstring)."""
    index = np.arange(losses.tokens)
    in_window = index % losses.context
    if position == "window":
        return in_window + 1
    doc_of = np.searchsorted(losses.offsets, index, side="right") - 1
    in_document = index - losses.offsets[doc_of]
    return np.minimum(in_window + 1, in_document)


def curves_by_category(losses: TokenLosses, doc_categories: Sequence[str | None],
                       position: str = "document") -> dict[str, object]:
    lengths = context_lengths(losses, position)
    size = losses.context + 1
    names = np.array([UNCATEGORIZED if c is None else str(c) for c in doc_categories[: losses.docs]], dtype=object)
    token_category = np.repeat(names, np.diff(losses.offsets)) if losses.docs else np.empty(0, dtype=object)

    def curve(mask: np.ndarray | slice) -> list[float | None]:
        sums = np.bincount(lengths[mask], weights=losses.losses[mask], minlength=size)
        counts = np.bincount(lengths[mask], minlength=size)
        first = 0 if position == "document" else 1
        return [float(s / c) if c else None for s, c in zip(sums[first:], counts[first:])]

    return {"position": position, "context": losses.context, "all": curve(slice(None)),
            "categories": {str(name): curve(token_category == name) for name in np.unique(names)}}


@dataclass(frozen=True)
class CategoryContextConfig(SplitsConfig):
    """splits: where to compute it (default: test, where the diversity study scores unseen categories).
    position: `document` (tokens of the own document in view) or `window` (position in the window + 1)."""

    splits: list[str] | None = field(default_factory=lambda: ["test"])
    position: Literal["document", "window"] = "document"

    def validate(self, prefix: str) -> None:
        super().validate(prefix)
        require(self.position in ("document", "window"), f"{prefix}.position", self.position, "'document' or 'window'")


@metrics.register
class CategoryContext(SplitMetric):
    """The in-context curve (mean loss by context length) of each document category and of all of them."""

    name = "category_context"
    Config = CategoryContextConfig
    section = "diversity"

    def compute(self, split: SplitData, losses: TokenLosses, log: Log) -> Evaluation:
        return Evaluation({f"{split.name}_by_category_context":
                           curves_by_category(losses, split.doc_categories, self.config.position)})
