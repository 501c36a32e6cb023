"""Batched log-likelihoods of (context, continuation) requests, tokenized and truncated as the harness does.

Tokenization (lm-evaluation-harness `TemplateLM.loglikelihood`, `_encode_pair`, `HFLM.tok_encode`):

- trailing whitespace of the context moves to the front of the continuation;
- context + continuation is encoded whole and the context encoded alone; the continuation tokens are
  the whole encoding after the first len(context tokens). A merge across the boundary is thereby scored
  as part of the continuation, as the harness scores it;
- an empty context becomes the prefix token (bos, else eos) and the continuation is encoded without
  special tokens; if it already starts with the prefix token, that token is the context instead;
- strings are encoded with the tokenizer's default special tokens, except strings that start with the
  prefix token's text.

Scoring (`HFLM._loglikelihood_tokens`): the model input is (context + continuation)[-(L + 1):][:-1] with
L the model's context, so long contexts lose their left end; requests are sorted longest first, batched,
right-padded (no attention mask is needed: padding only follows real tokens under causal attention).
is_greedy means every continuation token is the argmax of its logits.

Unlike HFLM we compute the output layer and log-softmax only at continuation positions
(`logits_to_keep`, then a gather); the numbers are the same, the work on a large vocabulary is not.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from corpuslab.errors import ConfigError, StageError
from corpuslab.evaluation.tasks.base import Request

DEFAULT_MAX_LENGTH = 2048  # the harness's fallback when neither model nor tokenizer says
TOKENIZER_INFINITY = 1000000000000000019884624838656  # transformers' "no limit" model_max_length
_SEQUENCE_LENGTH_ATTRS = ("n_positions", "max_position_embeddings", "n_ctx")


@dataclass(frozen=True)
class EncodedRequest:
    context: tuple[int, ...]
    continuation: tuple[int, ...]


class HarnessEncoder:
    """Tokenizes requests exactly as the harness's HFLM does; identical strings are encoded once."""

    def __init__(self, tokenizer) -> None:
        self.tokenizer = tokenizer
        prefix = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
        if prefix is None:
            raise ConfigError("tokenizer", type(tokenizer).__name__, "a tokenizer with a bos or eos token")
        self.prefix_id: int = prefix
        self._prefix_text: str = tokenizer.decode(prefix)
        self._cache: dict[tuple[str, bool | None], tuple[int, ...]] = {}

    def encode(self, text: str, add_special_tokens: bool | None = None) -> tuple[int, ...]:
        key = (text, add_special_tokens)
        if key not in self._cache:
            self._cache[key] = tuple(
                self.tokenizer.encode(text, **self._special_kwargs(text, add_special_tokens))
            )
        return self._cache[key]

    def encode_all(self, requests: Sequence[Request]) -> list[EncodedRequest]:
        self._prefetch(requests)
        return [self.encode_request(request) for request in requests]

    def encode_request(self, request: Request) -> EncodedRequest:
        if request.context == "":
            continuation = self.encode(request.continuation, add_special_tokens=False)
            if not continuation:
                raise StageError("tasks", f"request {request!r}: the continuation encodes to no tokens")
            if continuation[0] == self.prefix_id:
                return EncodedRequest(continuation[:1], continuation[1:])
            return EncodedRequest((self.prefix_id,), continuation)
        context, continuation = _move_trailing_space(request.context, request.continuation)
        whole = self.encode(context + continuation)
        context_ids = self.encode(context)
        return EncodedRequest(context_ids, whole[len(context_ids) :])

    def _special_kwargs(self, text: str, add_special_tokens: bool | None) -> dict[str, bool]:
        if add_special_tokens is not None:
            return {"add_special_tokens": add_special_tokens}
        # A string that already starts with the prefix token must not get a second one.
        return {"add_special_tokens": False} if text.startswith(self._prefix_text) else {}

    def _prefetch(self, requests: Sequence[Request]) -> None:
        """Encode all distinct strings in a few batched tokenizer calls (Rust, parallel) instead of one
        call per string; `encode` then only reads the cache."""
        by_kwargs: dict[tuple[bool | None, bool | None], dict[str, None]] = {}
        for request in requests:
            for text, flag in _strings_to_encode(request):
                if (text, flag) not in self._cache:
                    kind = self._special_kwargs(text, flag).get("add_special_tokens")
                    by_kwargs.setdefault((flag, kind), {})[text] = None
        for (flag, kind), texts in by_kwargs.items():
            kwargs = {} if kind is None else {"add_special_tokens": kind}
            encoded = self.tokenizer(list(texts), **kwargs)["input_ids"]
            for text, ids in zip(texts, encoded, strict=True):
                self._cache[(text, flag)] = tuple(ids)


def _move_trailing_space(context: str, continuation: str) -> tuple[str, str]:
    """Trailing whitespace moves to the continuation ("Answer: " + "x" -> "Answer:" + " x"): a space
    before a word belongs to the word's token."""
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces == 0:
        return context, continuation
    return context[:-n_spaces], context[-n_spaces:] + continuation


def _strings_to_encode(request: Request) -> list[tuple[str, bool | None]]:
    if request.context == "":
        return [(request.continuation, False)]
    context, continuation = _move_trailing_space(request.context, request.continuation)
    return [(context + continuation, None), (context, None)]


def model_max_length(model: torch.nn.Module, tokenizer) -> int:
    """The harness's `resolve_max_length`: the model config's positions, else the tokenizer's limit."""
    config = getattr(model, "config", None)
    config = getattr(config, "text_config", None) or config
    for attr in _SEQUENCE_LENGTH_ATTRS:
        value = getattr(config, attr, None)
        if value is not None:
            return int(value)
    limit = getattr(tokenizer, "model_max_length", None)
    if limit is not None and limit != TOKENIZER_INFINITY:
        return int(limit)
    return DEFAULT_MAX_LENGTH


@dataclass(frozen=True)
class _Row:
    """One request as the model sees it: input ids, and where its continuation is predicted."""

    index: int
    inputs: tuple[int, ...]
    continuation: tuple[int, ...]


def _row(index: int, encoded: EncodedRequest, max_length: int) -> _Row:
    # The harness asserts both; a continuation cut short would be scored on part of its text.
    if not encoded.continuation:
        raise StageError("tasks", f"request {index}: the continuation encodes to no tokens")
    if len(encoded.continuation) > max_length:
        raise StageError(
            "tasks",
            f"request {index}: the continuation has {len(encoded.continuation)} tokens, "
            f"more than the model's context ({max_length})",
        )
    tokens = encoded.context + encoded.continuation
    return _Row(index, tokens[-(max_length + 1) :][:-1], encoded.continuation)


def _accepts_logits_to_keep(model: torch.nn.Module) -> bool:
    try:
        return "logits_to_keep" in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False


@torch.inference_mode()
def _score_batch(
    model: torch.nn.Module, rows: list[_Row], device: torch.device, keep_logits: bool
) -> list[tuple[float, bool]]:
    width = max(len(row.inputs) for row in rows)
    batch = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        batch[i, : len(row.inputs)] = torch.tensor(row.inputs, dtype=torch.long)
    # Row i predicts its continuation at positions [len(inputs) - len(continuation), len(inputs)).
    first_needed = min(len(row.inputs) - len(row.continuation) for row in rows)
    kwargs = {"logits_to_keep": width - first_needed} if keep_logits else {}
    logits = model(input_ids=batch.to(device), use_cache=False, **kwargs).logits  # [B, kept, vocab]
    offset = width - logits.shape[1]
    row_ids: list[int] = []
    positions: list[int] = []
    targets: list[int] = []
    for i, row in enumerate(rows):
        start = len(row.inputs) - len(row.continuation) - offset
        row_ids += [i] * len(row.continuation)
        positions += range(start, start + len(row.continuation))
        targets += row.continuation
    segments = torch.tensor(row_ids, device=logits.device)
    targets_t = torch.tensor(targets, device=logits.device)
    picked = logits[segments, torch.tensor(positions, device=logits.device)].float()  # [tokens, vocab]
    token_lls = torch.log_softmax(picked, dim=-1).gather(1, targets_t[:, None]).squeeze(1)
    greedy = picked.argmax(dim=-1) == targets_t
    # Sum in float64: a long continuation should not lose digits to float32 accumulation.
    sums = torch.zeros(len(rows), dtype=torch.float64, device=logits.device)
    sums.index_add_(0, segments, token_lls.double())
    misses = torch.zeros(len(rows), dtype=torch.long, device=logits.device)
    misses.index_add_(0, segments, (~greedy).long())
    return list(zip(sums.tolist(), (misses == 0).tolist(), strict=True))


def loglikelihoods(
    model: torch.nn.Module,
    tokenizer,
    requests: Sequence[Request],
    batch_size: int = 32,
    device: torch.device | str = "cpu",
    encoder: HarnessEncoder | None = None,
) -> list[tuple[float, bool]]:
    """(log p(continuation | context), is_greedy) for each request, in the order given."""
    if batch_size < 1:
        raise ConfigError("tasks.batch_size", batch_size, "a positive integer")
    if not requests:
        return []
    encoder = encoder or HarnessEncoder(tokenizer)
    max_length = model_max_length(model, tokenizer)
    rows = [_row(i, encoded, max_length) for i, encoded in enumerate(encoder.encode_all(requests))]
    # Longest first, as the harness: batches hold similar lengths (little padding), and an
    # out-of-memory error comes on the first batch rather than the last.
    rows.sort(key=lambda row: -len(row.inputs))
    keep_logits = _accepts_logits_to_keep(model)
    was_training = model.training
    model.eval()
    results: list[tuple[float, bool] | None] = [None] * len(rows)
    try:
        for first in range(0, len(rows), batch_size):
            chunk = rows[first : first + batch_size]
            for row, result in zip(
                chunk, _score_batch(model, chunk, torch.device(device), keep_logits), strict=True
            ):
                results[row.index] = result
    finally:
        model.train(was_training)
    return results  # type: ignore[return-value]
