"""Where a model's validation loss comes from: by position in the context window and by document category.

Method. Both analyses read one loss per token from exactly the windows `evaluate_lm` scores: the first
whole documents that fit in `max_tokens`, split into non-overlapping windows of `context` targets (the
last one shorter), the input of the very first target a single eos. Their token-weighted means are
therefore `evaluate_lm`'s `loss`, and the breakdowns add up to the headline number.

- By position (the in-context learning curve): token i of the covered stream is the target at position
  `i % context` of its window, conditioned on `i % context + 1` input tokens. Position p's value is the
  mean loss of the targets at p; the shorter last window counts for the positions it has.
- By category: each target token belongs to the document that owns it (a document's trailing eos is
  its own), and a category's loss is the mean over its documents' tokens. Windows are not cut at
  document boundaries, so a document's first tokens see the end of the previous one, as in
  `evaluate_lm`: this splits the headline loss by category rather than re-scoring documents in
  isolation. Documents without a category fall in `uncategorized`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import torch
import torch.nn.functional as F

from corpuslab.errors import ConfigError, StageError
from corpuslab.evaluation.lm import _model_context, _window_block
from corpuslab.tokens.stream import TokenStream

UNCATEGORIZED = "uncategorized"


@torch.no_grad()
def token_losses(
    model: torch.nn.Module,
    stream: TokenStream,
    context: int,
    batch_size: int = 8,
    max_tokens: int | None = None,
    device: torch.device | str = "cpu",
) -> np.ndarray:
    """-ln p of every covered target token in stream order (nats, float64), windows as in the module doc."""
    model_context = _model_context(model)
    if context < 1 or (model_context is not None and context > model_context):
        raise ConfigError("evaluation.context", context, f"an integer in [1, {model_context}] (the model's context)")
    n_docs = stream.docs_within(max_tokens)
    if n_docs == 0:
        raise StageError("evaluate", f"no whole document fits in max_tokens={max_tokens} "
                         f"(the stream has {stream.n_docs} documents)")
    n_tokens = int(stream.offsets[n_docs])
    starts = np.arange(0, n_tokens, context, dtype=np.int64)
    full = starts[starts + context <= n_tokens]
    was_training = model.training
    model.eval()
    pieces = [_block_losses(model, stream, full[first : first + batch_size], context, device)
              for first in range(0, len(full), batch_size)]
    if len(full) < len(starts):  # the shorter last window
        tail = starts[len(full) :]
        pieces.append(_block_losses(model, stream, tail, n_tokens - int(tail[0]), device))
    model.train(was_training)
    return np.concatenate(pieces)


def _block_losses(model: torch.nn.Module, stream: TokenStream, starts: np.ndarray, length: int,
                  device: torch.device | str) -> np.ndarray:
    inputs, targets = _window_block(stream, starts, length)
    logits = model(input_ids=inputs.to(device), use_cache=False).logits
    nll = F.cross_entropy(logits.float().flatten(0, 1), targets.to(device).flatten(), reduction="none")
    return nll.double().cpu().numpy()  # row-major: windows in stream order, so tokens in stream order


def position_means(losses: np.ndarray, context: int) -> list[float | None]:
    """Mean loss at each window position 0..context-1 (None for a position no window reaches)."""
    positions = np.arange(len(losses)) % context
    sums = np.bincount(positions, weights=losses, minlength=context)
    counts = np.bincount(positions, minlength=context)
    return [float(s / c) if c else None for s, c in zip(sums, counts)]


def category_means(losses: np.ndarray, stream: TokenStream, doc_categories: Sequence[str | None]) -> dict[str, Any]:
    """{category: {loss, tokens, docs}} over the covered tokens, each token in its owning document's category."""
    n_docs = int(np.searchsorted(stream.offsets, len(losses), side="right")) - 1
    if len(doc_categories) < n_docs:
        raise ValueError(f"{len(doc_categories)} categories for {n_docs} covered documents")
    names = [UNCATEGORIZED if c is None else str(c) for c in doc_categories[:n_docs]]
    doc_tokens = np.diff(stream.offsets[: n_docs + 1])
    doc_nats = np.add.reduceat(losses, stream.offsets[:n_docs]) if n_docs else np.empty(0)
    labels, doc_label = np.unique(np.array(names, dtype=object), return_inverse=True)
    nats = np.bincount(doc_label, weights=doc_nats, minlength=len(labels))
    tokens = np.bincount(doc_label, weights=doc_tokens, minlength=len(labels)).astype(np.int64)
    docs = np.bincount(doc_label, minlength=len(labels))
    return {str(name): {"loss": float(nats[i] / tokens[i]), "tokens": int(tokens[i]), "docs": int(docs[i])}
            for i, name in enumerate(labels)}


def loss_by_position(model: torch.nn.Module, stream: TokenStream, context: int, batch_size: int = 8,
                     max_tokens: int | None = None, device: torch.device | str = "cpu") -> list[float | None]:
    """Mean token loss at each position 0..context-1 of the evaluation windows: the in-context learning curve."""
    return position_means(token_losses(model, stream, context, batch_size, max_tokens, device), context)


def loss_by_category(model: torch.nn.Module, stream: TokenStream, doc_categories: Sequence[str | None], context: int,
                     batch_size: int = 8, max_tokens: int | None = None,
                     device: torch.device | str = "cpu") -> dict[str, Any]:
    """{category: {loss, tokens, docs}}: the evaluation loss split by the category of each token's document."""
    return category_means(token_losses(model, stream, context, batch_size, max_tokens, device), stream, doc_categories)


def analyse_losses(model: torch.nn.Module, stream: TokenStream, doc_categories: Sequence[str | None], context: int,
                   batch_size: int = 8, max_tokens: int | None = None,
                   device: torch.device | str = "cpu") -> dict[str, Any]:
    """Both breakdowns from one pass over the data: {by_position, by_category}."""
    losses = token_losses(model, stream, context, batch_size, max_tokens, device)
    return {"by_position": position_means(losses, context),
            "by_category": category_means(losses, stream, doc_categories)}


def read_doc_categories(docs_parquet: str | Path) -> list[str | None]:
    """Each document's category from a `{split}.docs.parquet`; all None for a table written before the
    tokens stage recorded categories."""
    schema = pq.read_schema(docs_parquet)
    if "category" not in schema.names:
        return [None] * pq.ParquetFile(docs_parquet).metadata.num_rows
    return pq.read_table(docs_parquet, columns=["category"]).column("category").to_pylist()
