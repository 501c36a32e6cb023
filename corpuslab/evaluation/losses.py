"""One pass of per-token losses over a split; every split metric (loss, by position, by category) derives from it.

Method (`token_losses`):

1. Coverage. With `max_tokens`, only whole documents are evaluated: the first k documents whose tokens
   (each with its trailing eos) fit in `max_tokens`. Whole documents keep the byte count exact, so
   bits per byte is not biased by a document cut in half.
2. Windows. The covered tokens t[0..N) are split into non-overlapping windows of `context` targets
   (the last one shorter). Every covered token, eos included, is a target exactly once. The input for
   target t[i] is the `context`-window ending at t[i-1]; for t[0] the input is a single eos, the same
   separator every other document start is conditioned on. So the first document is scored like the
   others and there is no unscored first token.
   Non-overlapping windows give tokens at the start of a window little context, so the loss is a little
   higher than a sliding-window evaluation would report; it is cheaper by a factor of `context`, and
   every arm is measured the same way, which is what a comparison needs.
3. Losses. loss_i = -ln p(t[i] | its input), in fp32 from the logits, kept as float64.

What derives from the losses:

- `lm_numbers`: total_nats = sum of the losses; loss = total_nats / N (nats per token), perplexity =
  exp(loss), bits_per_byte = total_nats / ln 2 / n_bytes, where n_bytes is the UTF-8 byte count of the
  covered documents' text. Bits per byte does not depend on the tokenizer, so arms with different
  tokenizers compare; the eos targets carry no bytes, but their code length is counted, as a compressor
  would have to encode the document boundaries too.
- `position_means` (the in-context learning curve): token i is the target at position `i % context` of
  its window, conditioned on `i % context + 1` input tokens. Position p's value is the mean loss of the
  targets at p; the shorter last window counts for the positions it has.
- `category_means`: each target token belongs to the document that owns it (a document's trailing eos is
  its own), and a category's loss is the mean over its documents' tokens. Windows are not cut at
  document boundaries, so a document's first tokens see the end of the previous one: this splits the
  headline loss by category rather than re-scoring documents in isolation. Documents without a category
  fall in `uncategorized`.

All three read the same losses, so the breakdowns' token-weighted means are the headline loss.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import torch
import torch.nn.functional as F

from corpuslab.errors import ConfigError, StageError
from corpuslab.tokens.stream import TokenStream

UNCATEGORIZED = "uncategorized"


@dataclass(frozen=True)
class TokenLosses:
    """-ln p of every covered target token of a stream, in stream order, and what they cover.

    `total_nats` is the sum of per-batch fp32 sums, accumulated in the order earlier releases summed
    them: summing `losses` in float64 instead differs in the last float32 bits, which a perplexity
    printed to four decimals (hundreds, say 152.1234) would show. Keeping the old sum keeps every
    reported number identical to earlier releases'.
    """

    losses: np.ndarray  # (tokens,) float64
    total_nats: float
    context: int
    offsets: np.ndarray  # (docs + 1,) token offset of each covered document, then the end

    @property
    def tokens(self) -> int:
        return len(self.losses)

    @property
    def docs(self) -> int:
        return len(self.offsets) - 1


def model_context(model: torch.nn.Module) -> int | None:
    """The longest input the model takes (None when its config does not say)."""
    config = getattr(model, "config", None)
    return getattr(config, "n_positions", None) or getattr(config, "max_position_embeddings", None)


def covered_docs(stream: TokenStream, max_tokens: int | None) -> int:
    """How many leading whole documents fit in `max_tokens`; an error when none does."""
    n_docs = stream.docs_within(max_tokens)
    if n_docs == 0:
        raise StageError("evaluate", f"no whole document fits in max_tokens={max_tokens} "
                         f"(the stream has {stream.n_docs} documents)")
    return n_docs


def window_block(stream: TokenStream, starts: np.ndarray, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and targets for windows whose targets are `[s, s + length)`; position -1 reads as eos."""
    positions = np.asarray(starts, dtype=np.int64)[:, None] + np.arange(-1, length)
    block = stream.tokens[np.maximum(positions, 0)].astype(np.int64)
    block[positions < 0] = stream.eos_id
    block = torch.from_numpy(block)
    return block[:, :-1], block[:, 1:]


def window_batches(n_tokens: int, context: int, batch_size: int) -> Iterator[tuple[np.ndarray, int]]:
    """(window starts, targets per window) per forward pass: full windows in batches, then the shorter last one."""
    starts = np.arange(0, n_tokens, context, dtype=np.int64)
    full = starts[starts + context <= n_tokens]
    for first in range(0, len(full), batch_size):
        yield full[first : first + batch_size], context
    if len(full) < len(starts):
        tail = starts[len(full) :]
        yield tail, n_tokens - int(tail[0])


@torch.no_grad()
def token_losses(
    model: torch.nn.Module,
    stream: TokenStream,
    context: int,
    batch_size: int = 8,
    max_tokens: int | None = None,
    device: torch.device | str = "cpu",
) -> TokenLosses:
    """Every covered target token's loss, one forward pass per batch of windows (method: module docstring)."""
    limit = model_context(model)
    if context < 1 or (limit is not None and context > limit):
        raise ConfigError("evaluation.context", context, f"an integer in [1, {limit}] (the model's context)")
    n_docs = covered_docs(stream, max_tokens)
    n_tokens = int(stream.offsets[n_docs])
    was_training = model.training
    model.eval()
    pieces, total_nats = [], 0.0
    for starts, length in window_batches(n_tokens, context, batch_size):
        losses, batch_nats = _block_losses(model, stream, starts, length, device)
        pieces.append(losses)
        total_nats += batch_nats
    model.train(was_training)
    return TokenLosses(np.concatenate(pieces), total_nats, context, np.asarray(stream.offsets[: n_docs + 1]))


def _block_losses(model: torch.nn.Module, stream: TokenStream, starts: np.ndarray, length: int,
                  device: torch.device | str) -> tuple[np.ndarray, float]:
    """(each target's loss in stream order, their fp32 sum) for one batch of windows."""
    inputs, targets = window_block(stream, starts, length)
    logits = model(input_ids=inputs.to(device), use_cache=False).logits
    # fp32 log-softmax even for a low-precision model: over a large vocabulary it needs the range. This is
    # `F.cross_entropy` split in its two steps, so both reductions read one log-softmax.
    log_probs = F.log_softmax(logits.float().flatten(0, 1), dim=-1)
    targets = targets.to(device).flatten()
    per_token = F.nll_loss(log_probs, targets, reduction="none")
    batch_sum = F.nll_loss(log_probs, targets, reduction="sum")
    return per_token.double().cpu().numpy(), float(batch_sum.item())  # row-major: windows, so tokens, in stream order


def lm_numbers(losses: TokenLosses, n_bytes: int | Sequence[int] | np.ndarray | None) -> dict[str, Any]:
    """{loss, perplexity, bits_per_byte, tokens, docs, bytes} of the covered tokens.

    `n_bytes` is either the UTF-8 byte count of the covered documents, or a per-document sequence of
    byte counts (then the covered ones are summed); None gives bits_per_byte None.
    """
    covered_bytes = _covered_bytes(n_bytes, losses.docs)
    loss = losses.total_nats / losses.tokens
    return {
        "loss": loss,
        "perplexity": math.exp(loss),
        "bits_per_byte": losses.total_nats / math.log(2) / covered_bytes if covered_bytes else None,
        "tokens": losses.tokens,
        "docs": losses.docs,
        "bytes": covered_bytes,
    }


def _covered_bytes(n_bytes: int | Sequence[int] | np.ndarray | None, n_docs: int) -> int | None:
    if n_bytes is None:
        return None
    if isinstance(n_bytes, (int, np.integer)):
        return int(n_bytes)
    return int(np.sum(np.asarray(n_bytes[:n_docs], dtype=np.int64)))


def position_means(losses: TokenLosses) -> list[float | None]:
    """Mean loss at each window position 0..context-1 (None for a position no window reaches)."""
    positions = np.arange(losses.tokens) % losses.context
    sums = np.bincount(positions, weights=losses.losses, minlength=losses.context)
    counts = np.bincount(positions, minlength=losses.context)
    return [float(s / c) if c else None for s, c in zip(sums, counts)]


def category_means(losses: TokenLosses, doc_categories: Sequence[str | None]) -> dict[str, Any]:
    """{category: {loss, tokens, docs}} over the covered tokens, each token in its owning document's category."""
    n_docs, offsets = losses.docs, losses.offsets
    if len(doc_categories) < n_docs:
        raise ValueError(f"{len(doc_categories)} categories for {n_docs} covered documents")
    names = [UNCATEGORIZED if c is None else str(c) for c in doc_categories[:n_docs]]
    doc_tokens = np.diff(offsets)
    doc_nats = np.add.reduceat(losses.losses, offsets[:-1]) if n_docs else np.empty(0)
    labels, doc_label = np.unique(np.array(names, dtype=object), return_inverse=True)
    nats = np.bincount(doc_label, weights=doc_nats, minlength=len(labels))
    tokens = np.bincount(doc_label, weights=doc_tokens, minlength=len(labels)).astype(np.int64)
    docs = np.bincount(doc_label, minlength=len(labels))
    return {str(name): {"loss": float(nats[i] / tokens[i]), "tokens": int(tokens[i]), "docs": int(docs[i])}
            for i, name in enumerate(labels)}


def read_doc_categories(docs_parquet: str | Path) -> list[str | None]:
    """Each document's category from a `{split}.docs.parquet`; all None for a table written before the
    tokens stage recorded categories."""
    schema = pq.read_schema(docs_parquet)
    if "category" not in schema.names:
        return [None] * pq.ParquetFile(docs_parquet).metadata.num_rows
    return pq.read_table(docs_parquet, columns=["category"]).column("category").to_pylist()
