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

Unlike HFLM we compute the output layer and log-probabilities only at continuation positions (the base
model's hidden states at those positions through the output layer, where a one-time check shows the model's
logits are exactly that; else the whole model with `logits_to_keep`), and a token's log-probability as its
logit minus the logsumexp of all logits (no full log-softmax is written): the numbers are the same up to
rounding, the work on a large vocabulary is not.

Requests that share a context (the choices of a multiple-choice question) run it once: the context but
its last token makes a key/value cache, expanded over the choices, and each choice runs only its last
context token and its continuation on it, with positions continuing the context's and the padding of
shorter contexts masked out. Mathematically this is the whole-sequence computation; in floating point
the sums run in another order, so log-likelihoods differ from the harness's by rounding: at most 2.7e-5
on the parity test's data (`tests/evaluation/test_tasks_harness_parity.py`, tolerance 1e-4, with every
acc / acc_norm decision identical) and within 1e-5 of scoring each request whole and alone at any batch
size (`tests/evaluation/test_tasks_shared_context.py`). A truncated request (context cut on the left),
an empty context and a context no other request shares run whole, as the harness runs them.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

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
    """One request as the model sees it: input ids, and where its continuation is predicted.

    `context` is the full context when the request fits the model (inputs = context + continuation[:-1]),
    and None when its left end was cut off: only then do choices of one question see different inputs.
    """

    index: int
    inputs: tuple[int, ...]
    continuation: tuple[int, ...]
    context: tuple[int, ...] | None


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
    fits = len(tokens) <= max_length + 1
    return _Row(index, tokens[-(max_length + 1) :][:-1], encoded.continuation, encoded.context if fits else None)


@dataclass(frozen=True)
class _SharedContext:
    """Requests with one context (the choices of a multiple-choice question): the context but its last
    token runs once, and its key/value cache serves every continuation."""

    context: tuple[int, ...]
    rows: tuple[_Row, ...]


def _forward_parameters(model: torch.nn.Module) -> set[str]:
    try:
        return set(inspect.signature(model.forward).parameters)
    except (TypeError, ValueError):
        return set()


def _cache_keyword(parameters: set[str]) -> str | None:
    """The forward argument that takes a key/value cache (`cache` since transformers 5, before that
    `past_key_values`), or None when the model cannot take one with explicit positions and a mask."""
    if not {"use_cache", "attention_mask", "position_ids"} <= parameters:
        return None
    return next((name for name in ("cache", "past_key_values") if name in parameters), None)


def _share_contexts(rows: list[_Row]) -> tuple[list[_SharedContext], list[_Row]]:
    """Split rows into groups that share a context worth caching (two or more requests, a context of two
    or more tokens, none truncated) and the rest, which run whole."""
    by_context: dict[tuple[int, ...], list[_Row]] = {}
    alone: list[_Row] = []
    for row in rows:
        if row.context is not None and len(row.context) >= 2:
            by_context.setdefault(row.context, []).append(row)
        else:
            alone.append(row)
    shared = []
    for context, members in by_context.items():
        if len(members) >= 2:
            shared.append(_SharedContext(context, tuple(members)))
        else:
            alone += members
    return shared, alone


def _pack(groups: list[_SharedContext], batch_size: int) -> list[list[_SharedContext]]:
    """Longest continuation first (then longest context), whole groups per batch, at most `batch_size`
    requests per batch unless one group alone has more. The continuation pass, one row per request,
    costs more than the context pass, one row per group: its padding is the one to keep small."""
    groups = sorted(groups, key=lambda g: (-max(len(r.continuation) for r in g.rows), -len(g.context)))
    batches: list[list[_SharedContext]] = []
    size = 0
    for group in groups:
        if batches and size + len(group.rows) <= batch_size:
            batches[-1].append(group)
            size += len(group.rows)
        else:
            batches.append([group])
            size = len(group.rows)
    return batches


def _padded(sequences: list[tuple[int, ...]]) -> torch.Tensor:
    """Right-padded [len(sequences), longest] ids. Under causal attention, padding after a sequence's last
    token changes none of its positions, so no mask is needed for it."""
    width = max(len(s) for s in sequences)
    return torch.tensor([(*sequence, *(0,) * (width - len(sequence))) for sequence in sequences], dtype=torch.long)  # one tensor call


Span = tuple[int, int, tuple[int, ...]]  # (row of the batch, position of the first prediction, continuation ids)


class _Model:
    """The model's forward, returning logits at the positions a batch's continuations are predicted.

    When the model is a base model plus a plain output layer (checked once on a few tokens: the layer on
    the base model's last hidden state gives the model's logits), the output layer runs on exactly those
    positions; otherwise the whole model runs and logits are kept from the first needed position on
    (`logits_to_keep` where the model takes it).
    """

    def __init__(self, model: torch.nn.Module, device: torch.device, max_length: int, share_contexts: bool) -> None:
        self.model = model
        self.device = device
        self.max_length = max_length
        parameters = _forward_parameters(model)
        self.keep_logits = "logits_to_keep" in parameters
        self.cache_keyword = _cache_keyword(parameters) if share_contexts else None
        self.base, self.head = _split_head(model, device)

    def cache(self, input_ids: torch.Tensor):
        """Run `input_ids` and return the key/value cache only."""
        if self.base is not None:
            out = self.base(input_ids=input_ids.to(self.device), use_cache=True)
        else:
            out = self.model(input_ids=input_ids.to(self.device), use_cache=True, **({"logits_to_keep": 1} if self.keep_logits else {}))
        return getattr(out, "cache", None) or out.past_key_values

    def logits(self, input_ids: torch.Tensor, spans: list[Span], **kwargs) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(logits [tokens, vocab] at every span's positions, or the hidden states there when `self.head` is set,
        the span of each token, the target of each)."""
        rows = [row for row, _, continuation in spans for _ in continuation]
        positions = [start + k for _, start, continuation in spans for k in range(len(continuation))]
        segments = torch.tensor([i for i, (_, _, continuation) in enumerate(spans) for _ in continuation], device=self.device)
        targets = torch.tensor([t for _, _, continuation in spans for t in continuation], device=self.device)
        input_ids = input_ids.to(self.device)
        kwargs = {key: value.to(self.device) if isinstance(value, torch.Tensor) else value for key, value in kwargs.items()}
        if self.base is not None:
            hidden = self.base(input_ids=input_ids, **kwargs).last_hidden_state  # [B, T, d]
            # The output layer runs in `_sums`, a slice of rows at a time: its logits stay in the CPU's cache.
            picked = hidden[torch.tensor(rows, device=self.device), torch.tensor(positions, device=self.device)]
            return picked, segments, targets
        width = input_ids.shape[1]
        keep = {"logits_to_keep": width - min(positions)} if self.keep_logits else {}
        logits = self.model(input_ids=input_ids, **keep, **kwargs).logits  # [B, kept, vocab]
        offset = width - logits.shape[1]
        index = torch.tensor(rows, device=self.device), torch.tensor(positions, device=self.device) - offset
        return logits[index], segments, targets


def _split_head(model: torch.nn.Module, device: torch.device) -> tuple[torch.nn.Module | None, torch.nn.Module | None]:
    """(base model, output layer) when the model's logits are the output layer on the base model's last hidden
    state (GPT-2, Llama, Pythia, ...), else (None, None): a model that rescales or caps its logits runs whole."""
    get_head = getattr(model, "get_output_embeddings", None)
    base = getattr(model, "base_model", None)
    head = get_head() if callable(get_head) else None
    if head is None or base is None or base is model:
        return None, None
    probe = torch.tensor([[1, 2, 3, 4]], device=device) % int(getattr(head, "out_features", 4) or 4)
    try:
        with torch.inference_mode():
            expected = model(input_ids=probe, use_cache=False).logits.float()
            got = head(base(input_ids=probe, use_cache=False).last_hidden_state).float()
    except (TypeError, AttributeError, RuntimeError, ValueError):
        return None, None
    if got.shape != expected.shape or not torch.allclose(got, expected, rtol=1e-5, atol=1e-5):
        return None, None
    return base, head


LOGITS_PER_SLICE = 1 << 22  # logits computed and reduced at a time on CPU (16 MB in float32): they stay in cache


def _sums(picked: torch.Tensor, segments: torch.Tensor, targets: torch.Tensor, n: int, head: torch.nn.Module | None = None) -> list[tuple[float, bool]]:
    """Per span: the summed log-probability of its tokens and whether each is the argmax of its logits.

    `picked` holds the logits, or the hidden states that `head` turns into logits. Rows go through in
    slices of LOGITS_PER_SLICE logits, each reduced in place while it is in cache: log p(t) = logit(t) -
    logsumexp(logits), with logsumexp = m + log(sum(exp(logits - m))) and m the maximum (torch.logsumexp's
    own computation, without its two full-size temporaries), and the token is greedy when its logit is the
    maximum and no earlier one ties it (argmax takes the first, as the harness's does).
    """
    token_lls = torch.empty(len(targets), dtype=torch.float32, device=picked.device)
    greedy = torch.empty(len(targets), dtype=torch.bool, device=picked.device)
    vocab = getattr(head, "out_features", None) or picked.shape[-1]
    # On an accelerator the whole batch is one slice: each slice costs a host sync (`nonzero`) and launches.
    step = max(1, LOGITS_PER_SLICE // max(1, vocab)) if picked.device.type == "cpu" else max(1, len(targets))
    for first in range(0, len(targets), step):
        logits = picked[first : first + step]
        logits = (head(logits) if head is not None else logits).float()  # reduced in place below: `picked` is ours
        target = targets[first : first + step]
        best = logits.amax(dim=-1)  # without indices: `max(dim)` is several times slower on CPU
        target_logits = logits.gather(1, target[:, None]).squeeze(1)
        is_greedy = target_logits >= best
        candidates = is_greedy.nonzero().squeeze(1)
        if len(candidates):  # the target ties the maximum: greedy only when no earlier token ties it too
            is_greedy[candidates] = logits[candidates].argmax(dim=-1) == target[candidates]
        lse = logits.sub_(best[:, None]).exp_().sum(dim=-1).log_().add_(best)
        token_lls[first : first + step] = target_logits - lse
        greedy[first : first + step] = is_greedy
    # Sum in float64: a long continuation should not lose digits to float32 accumulation.
    sums = torch.zeros(n, dtype=torch.float64, device=picked.device)
    sums.index_add_(0, segments, token_lls.double())
    misses = torch.zeros(n, dtype=torch.long, device=picked.device)
    misses.index_add_(0, segments, (~greedy).long())
    return list(zip(sums.tolist(), (misses == 0).tolist(), strict=True))


@torch.inference_mode()
def _score_batch(scorer: _Model, rows: list[_Row]) -> list[tuple[float, bool]]:
    """Each row's whole input in one right-padded batch, as the harness runs it."""
    # Row i predicts its continuation at positions [len(inputs) - len(continuation), len(inputs)).
    spans = [(i, len(row.inputs) - len(row.continuation), row.continuation) for i, row in enumerate(rows)]
    picked, segments, targets = scorer.logits(_padded([row.inputs for row in rows]), spans, use_cache=False)
    return _sums(picked, segments, targets, len(rows), scorer.head)


def _select(cache, owners: torch.Tensor):
    """The cache of each continuation row: its group's row, repeated once per choice."""
    if hasattr(cache, "batch_select_indices"):  # transformers' Cache classes (in place)
        cache.batch_select_indices(owners)
        return cache
    return tuple(tuple(t[owners] for t in layer) for layer in cache)  # the legacy tuple of (key, value)


@torch.inference_mode()
def _score_shared_batch(scorer: _Model, groups: list[_SharedContext]) -> list[tuple[float, bool]]:
    """Contexts once, continuations on their key/value cache.

    Pass 1 runs every group's context but its last token (right-padded) and keeps the cache. Pass 2 runs,
    per request, the context's last token and the continuation but its last token, on a copy of its
    group's cache: its logits predict every continuation token, as the whole input would. The padding
    between a short context and the continuation is masked out, and positions continue the context's.
    """
    heads = [g.context[:-1] for g in groups]
    width = max(len(h) for h in heads)
    cache = scorer.cache(_padded(heads))
    rows = [(g, row) for g in groups for row in g.rows]
    owners = torch.tensor([i for i, g in enumerate(groups) for _ in g.rows], device=scorer.device)
    tails = _padded([(g.context[-1],) + row.continuation[:-1] for g, row in rows])
    length = tails.shape[1]
    mask = torch.zeros((len(rows), width + length), dtype=torch.long)
    mask[:, width:] = 1
    for i, (g, _) in enumerate(rows):
        mask[i, : len(g.context) - 1] = 1
    starts = torch.tensor([len(g.context) - 1 for g, _ in rows])
    # Padding after a short continuation may run past the model's last position: clamp it (its output is unused).
    positions = (starts[:, None] + torch.arange(length)[None, :]).clamp_(max=scorer.max_length - 1)
    spans = [(i, 0, row.continuation) for i, (_, row) in enumerate(rows)]
    picked, segments, targets = scorer.logits(
        tails, spans, attention_mask=mask, position_ids=positions, use_cache=True, **{scorer.cache_keyword: _select(cache, owners)}
    )
    return _sums(picked, segments, targets, len(rows), scorer.head)


def loglikelihoods(
    model: torch.nn.Module,
    tokenizer,
    requests: Sequence[Request],
    batch_size: int = 32,
    device: torch.device | str = "cpu",
    encoder: HarnessEncoder | None = None,
    share_contexts: bool = True,
) -> list[tuple[float, bool]]:
    """(log p(continuation | context), is_greedy) for each request, in the order given.

    Requests with the same context (the choices of one question) run it once and reuse its key/value
    cache (`share_contexts`, on whenever the model's forward takes a cache); the others run whole,
    longest first. Both give the harness's numbers up to float rounding (see the module docstring).
    Under torch.distributed (torchrun), the ranks split the batches and every rank returns all results.
    """
    if batch_size < 1:
        raise ConfigError("tasks.batch_size", batch_size, "a positive integer")
    if not requests:
        return []
    encoder = encoder or HarnessEncoder(tokenizer)
    max_length = model_max_length(model, tokenizer)
    rows = [_row(i, encoded, max_length) for i, encoded in enumerate(encoder.encode_all(requests))]
    was_training = model.training
    model.eval()
    try:
        scorer = _Model(model, torch.device(device), max_length, share_contexts)
        shared, alone = _share_contexts(rows) if scorer.cache_keyword else ([], rows)
        # Longest first, as the harness: batches hold similar lengths (little padding), and an
        # out-of-memory error comes on the first batch rather than the last.
        alone.sort(key=lambda row: -len(row.inputs))
        batches: list[tuple[list[_Row], Callable[[], list[tuple[float, bool]]]]] = [
            ([row for g in groups for row in g.rows], partial(_score_shared_batch, scorer, groups)) for groups in _pack(shared, batch_size)
        ]
        for first in range(0, len(alone), batch_size):
            chunk = alone[first : first + batch_size]
            batches.append((chunk, partial(_score_batch, scorer, chunk)))
        rank, world = _data_parallel()
        results: list[tuple[float, bool] | None] = [None] * len(rows)
        for batch_rows, score in batches[rank::world]:  # batches alternate between ranks: similar work per rank
            for row, result in zip(batch_rows, score(), strict=True):
                results[row.index] = result
        if world > 1:
            results = _merge_ranks(results, world)
    finally:
        model.train(was_training)
    return results  # type: ignore[return-value]


def _data_parallel() -> tuple[int, int]:
    """(rank, world size) when torch.distributed is initialised (e.g. under torchrun), else (0, 1). Every rank
    must call `loglikelihoods` with the same requests; each scores every world-th batch and all get all results."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _merge_ranks(results: list, world: int) -> list:
    import torch.distributed as dist

    gathered: list = [None] * world
    dist.all_gather_object(gathered, results)
    return [next((part[i] for part in gathered if part[i] is not None), None) for i in range(len(results))]
