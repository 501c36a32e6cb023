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

Requests whose inputs start alike share that start (the longest common prefix of their tokens): the choices
of a multiple-choice question (one context), WinoGrande's partial scoring (two contexts that differ after the
blank, one continuation), a BLiMP pair (an empty context, two sentences alike up to the words they swap).
The prefix runs once; the output layer runs once at each prefix position some continuation is predicted from (a
BLiMP sentence's first words), however many requests read it. A GPT-2 stack (corpuslab's models, Hugging Face
GPT-2 checkpoints; `gpt2_runner.py`) runs each group as one packed row, the prefix then every request's rest, under
a mask that lets a rest see the prefix and itself but not the other rests, positions continuing the prefix in each
rest: no key/value cache, nothing gathered or concatenated; rows sorted by length and cut into batches of at most
the tokens of `batch_size` of the window's longest requests (so a call holds as many short answers as fit, not
`batch_size` rows); its last block runs past attention only at the positions read. Another model keeps the prefix's
key/value cache and runs each request's rest on its group's cache, positions continuing the prefix's and the padding
of shorter prefixes masked out: groups are scored in windows of a few batches, the prefixes in batches of similar
prefix length, the rests in batches of similar length (more than `batch_size` rows while they hold no more tokens
than `batch_size` of the window's longest prefix + rest), each batch gathering its rows' caches from the prefix
batches, so the two lengths (a long HellaSwag context with short endings, a short question with long answers) are
padded separately. Requests run whole are batched `batch_size` at most, as the harness's. Mathematically this is
the whole-sequence computation; in floating point the sums run in another order, so log-likelihoods differ from
the harness's by rounding: at most 2.9e-5 on the parity test's data (`tests/evaluation/test_tasks_harness_parity.py`,
tolerance 1e-4, with every acc / acc_norm decision identical) and within 1e-5 of scoring each request whole and
alone through the model's own forward at any batch size (`tests/evaluation/test_tasks_shared_context.py`,
`test_tasks_prefix_sharing.py`, `test_tasks_gpt2_runner.py`). A request that shares no
prefix of two or more tokens with its neighbours (LAMBADA, a context cut on the left) runs whole, as the
harness runs it.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import torch

from corpuslab.errors import ConfigError, StageError
from corpuslab.evaluation.tasks.base import Request
from corpuslab.evaluation.tasks.gpt2_runner import GPT2Runner, packed_mask

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
        self._fast_checked: dict[bool, bool] = {}  # add_special_tokens -> the backend's ids are the tokenizer's

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
            for text, ids in zip(texts, self._encode_batch(list(texts), kind), strict=True):
                self._cache[(text, flag)] = tuple(ids)

    def _encode_batch(self, texts: list[str], add_special_tokens: bool | None) -> list[list[int]]:
        """The tokenizer's ids for each text. A transformers fast tokenizer's Rust backend is called directly
        (`encode_batch_fast`: no offsets, no per-text Python conversion into a BatchEncoding, which cost as much
        as the encoding itself), once the first texts are checked to encode exactly as the tokenizer's own call."""
        kwargs = {} if add_special_tokens is None else {"add_special_tokens": add_special_tokens}
        backend = getattr(self.tokenizer, "backend_tokenizer", None)
        encode = getattr(backend, "encode_batch_fast", None) or getattr(backend, "encode_batch", None)
        if encode is None or backend.truncation is not None or backend.padding is not None:
            return self.tokenizer(texts, **kwargs)["input_ids"]
        flag = True if add_special_tokens is None else add_special_tokens
        sample = texts[:4]
        if self._fast_checked.get(flag) is None:
            expected = self.tokenizer(sample, **kwargs)["input_ids"]
            self._fast_checked[flag] = [e.ids for e in encode(sample, add_special_tokens=flag)] == [list(ids) for ids in expected]
        if not self._fast_checked[flag]:
            return self.tokenizer(texts, **kwargs)["input_ids"]
        return [e.ids for e in encode(texts, add_special_tokens=flag)]


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


def _start(row: _Row) -> int:
    """The input position whose output predicts the row's first continuation token."""
    return len(row.inputs) - len(row.continuation)


MIN_SHARED_PREFIX = 2  # tokens: a shorter common prefix saves less than its extra pass and cache copy cost


@dataclass(frozen=True)
class _SharedPrefix:
    """Requests whose inputs start with the same tokens (the choices of a multiple-choice question, WinoGrande's
    two contexts before the blank, a BLiMP pair before the words that differ): `prefix` runs once, its
    key/value cache serves every request's remaining tokens, and the output layer runs once at each prefix
    position some continuation is predicted from. Every request keeps at least one token after the prefix."""

    prefix: tuple[int, ...]
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


def _common_length(a: tuple[int, ...], b: tuple[int, ...]) -> int:
    n = min(len(a), len(b))
    if a[:n] == b[:n]:
        return n
    low, high = 0, n  # a[:low] == b[:low], a[:high] != b[:high]: bisect with slice comparisons (C, not a Python loop per token)
    while high - low > 1:
        middle = (low + high) // 2
        if a[:middle] == b[:middle]:
            low = middle
        else:
            high = middle
    return low


class _Group:
    """Rows gathered into one shared prefix while grouping: the common length of their inputs, the shortest
    input and the earliest prediction position, kept as rows join."""

    def __init__(self, rows: list[_Row]) -> None:
        self.rows = rows
        self.common = len(rows[0].inputs)
        for row in rows[1:]:
            self.common = min(self.common, _common_length(rows[0].inputs, row.inputs))
        self.shortest = min(len(row.inputs) for row in rows)
        self.first = min(_start(row) for row in rows)

    def prefix_length(self, logits_in_prefix: bool) -> int:
        """Tokens run once: every row keeps at least one after them, and a model whose output layer cannot run on
        its own (no split head) needs no prediction inside them."""
        if len(self.rows) < 2:
            return 0
        length = min(self.common, self.shortest - 1)
        return length if logits_in_prefix else min(length, self.first)

    def joined(self, other: _Group) -> _Group:
        group = _Group.__new__(_Group)
        group.rows = self.rows + other.rows
        group.common = min(self.common, other.common, _common_length(self.rows[0].inputs, other.rows[0].inputs))
        group.shortest = min(self.shortest, other.shortest)
        group.first = min(self.first, other.first)
        return group


def _share_prefixes(rows: list[_Row], logits_in_prefix: bool = True) -> tuple[list[_SharedPrefix], list[_Row]]:
    """Split rows into groups that share a prefix of their inputs and the rest, which run whole.

    Rows with the same context gather first, wherever they are (the choices of a question). Then, in the order
    given (a task's requests come document by document), a group joins the one before it when their common
    prefix saves more tokens than the two save apart: (n - 1) x prefix for a group of n. So WinoGrande's two
    contexts that differ after the blank, and a BLiMP pair (empty context, two sentences alike up to the
    words they swap), share what they have in common, and a document does not join its neighbour on a
    chance common first word.
    """
    clusters: dict[tuple, list[_Row]] = {}
    for row in rows:
        key = (0, row.context) if row.context is not None else (1, row.index)  # a truncated context is its own
        clusters.setdefault(key, []).append(row)
    groups: list[_Group] = []
    for members in clusters.values():
        whole = _Group(members)
        # A context too short to share (BLiMP's empty context, the prefix token alone) gathers nothing: its rows go one by one.
        for group in [whole] if whole.prefix_length(logits_in_prefix) >= MIN_SHARED_PREFIX else [_Group([row]) for row in members]:
            if groups:
                last = groups[-1]
                joined = last.joined(group)
                length = joined.prefix_length(logits_in_prefix)
                apart = (len(last.rows) - 1) * last.prefix_length(logits_in_prefix) + (len(group.rows) - 1) * group.prefix_length(logits_in_prefix)
                if length >= MIN_SHARED_PREFIX and (len(joined.rows) - 1) * length > apart:
                    groups[-1] = joined
                    continue
            groups.append(group)
    shared: list[_SharedPrefix] = []
    alone: list[_Row] = []
    for group in groups:
        length = group.prefix_length(logits_in_prefix)
        if length >= MIN_SHARED_PREFIX:
            shared.append(_SharedPrefix(group.rows[0].inputs[:length], tuple(group.rows)))
        else:
            alone += group.rows
    return shared, alone


def _pack(groups: list[_SharedPrefix], batch_size: int) -> list[list[_SharedPrefix]]:
    """Longest remainder after the prefix first (then longest prefix), whole groups per batch, at most
    `batch_size` requests per batch unless one group alone has more. The remainder pass, one row per request,
    costs more than the prefix pass, one row per group: its padding is the one to keep small."""
    groups = sorted(groups, key=lambda g: (-max(len(r.inputs) for r in g.rows) + len(g.prefix), -len(g.prefix)))
    batches: list[list[_SharedPrefix]] = []
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


class _Model:
    """The model's forward, returning its outputs at the positions a batch's continuations are predicted from.

    When the model is a base model plus a plain output layer (checked once on a few tokens: the layer on
    the base model's last hidden state gives the model's logits), the base model's hidden states at exactly
    those positions are returned and `head` turns them into logits later (in `_sums`, a slice at a time);
    otherwise the whole model runs and logits are kept from the first needed position on (`logits_to_keep`
    where the model takes it).
    """

    def __init__(self, model: torch.nn.Module, device: torch.device, max_length: int, share_contexts: bool) -> None:
        self.model = model
        self.device = device
        self.max_length = max_length
        parameters = _forward_parameters(model)
        self.keep_logits = "logits_to_keep" in parameters
        self.cache_keyword = _cache_keyword(parameters) if share_contexts else None
        self.base, self.head = _split_head(model, device)
        self.gathers = True  # until a cache is found that `_kv_layers` cannot take apart
        # A GPT-2 stack runs through `GPT2Runner`: shared prefixes as packed rows (no cache), its last block at read positions only.
        self.runner = _runner(self.base, device) if self.base is not None else None

    def whole(self, input_ids: torch.Tensor, rows: list[int], positions: list[int]) -> torch.Tensor:
        """Outputs at (rows, positions) of right-padded inputs run whole, without a cache."""
        if self.runner is None:
            return self.outputs(input_ids, rows, positions, use_cache=False)
        input_ids = input_ids.to(self.device)
        where = torch.tensor(rows, device=self.device), torch.tensor(positions, device=self.device)
        return self.runner.run(input_ids, torch.arange(input_ids.shape[1], device=self.device)[None, :], *where)

    def prefix(self, input_ids: torch.Tensor, rows: list[int], positions: list[int]):
        """Run `input_ids` with a key/value cache: (hidden states at (rows, positions), or None when none are
        asked for, the cache). Only a split model is asked for positions (see `_share_prefixes`)."""
        input_ids = input_ids.to(self.device)
        if self.base is not None:
            out = self.base(input_ids=input_ids, use_cache=True)
            cache = getattr(out, "cache", None) or out.past_key_values
            if not rows:
                return None, cache
            index = torch.tensor(rows, device=self.device), torch.tensor(positions, device=self.device)
            return out.last_hidden_state[index], cache
        out = self.model(input_ids=input_ids, use_cache=True, **({"logits_to_keep": 1} if self.keep_logits else {}))
        return None, getattr(out, "cache", None) or out.past_key_values

    def outputs(self, input_ids: torch.Tensor, rows: list[int], positions: list[int], **kwargs) -> torch.Tensor:
        """The hidden states at (rows, positions) when `self.head` is set, else the logits there."""
        input_ids = input_ids.to(self.device)
        kwargs = {key: value.to(self.device) if isinstance(value, torch.Tensor) else value for key, value in kwargs.items()}
        if self.base is not None:
            hidden = self.base(input_ids=input_ids, **kwargs).last_hidden_state  # [B, T, d]
            return hidden[torch.tensor(rows, device=self.device), torch.tensor(positions, device=self.device)]
        width = input_ids.shape[1]
        keep = {"logits_to_keep": width - min(positions)} if self.keep_logits else {}
        logits = self.model(input_ids=input_ids, **keep, **kwargs).logits  # [B, kept, vocab]
        offset = width - logits.shape[1]
        return logits[torch.tensor(rows, device=self.device), torch.tensor(positions, device=self.device) - offset]


def _runner(base: torch.nn.Module, device: torch.device) -> GPT2Runner | None:
    """The GPT-2 runner for `base`, or None (another architecture, or one it does not reproduce): the model's own forward."""
    return GPT2Runner.of(base, device)


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


class _Entries:
    """What a batch scores: per continuation token, the output row it is predicted from (rows in order: a row
    shared by several requests, a prefix position, appears once in the outputs and once here per request),
    the request it counts towards (its index in the batch) and the token."""

    def __init__(self) -> None:
        self.rows: list[int] = []
        self.requests: list[int] = []
        self.targets: list[int] = []

    def add(self, row: int, request: int, target: int) -> None:
        self.rows.append(row)
        self.requests.append(request)
        self.targets.append(target)

    def span(self, first_row: int, request: int, tokens: Sequence[int]) -> None:
        """A request's tokens predicted from consecutive output rows of its own, starting at `first_row`."""
        self.rows += range(first_row, first_row + len(tokens))
        self.requests += [request] * len(tokens)
        self.targets += tokens


def _sums(outputs: torch.Tensor, entries: _Entries, n: int, head: torch.nn.Module | None = None) -> list[tuple[float, bool]]:
    """Per request of the batch: the summed log-probability of its tokens and whether each is the argmax of its logits.

    `outputs` holds the logits, or the hidden states that `head` turns into logits, one row per distinct
    prediction (`entries` maps each token to its row, rows in order). Rows go through in slices of
    LOGITS_PER_SLICE logits, each reduced in place while it is in cache: log p(t) = logit(t) - logsumexp(logits),
    with logsumexp = m + log(sum(exp(logits - m))) and m the maximum (torch.logsumexp's own computation,
    without its two full-size temporaries), computed once per row however many requests read it; a token is
    greedy when its logit is the maximum and no earlier one ties it (argmax takes the first, as the harness's does).
    """
    device = outputs.device
    rows = torch.tensor(entries.rows, dtype=torch.long, device=device)
    targets = torch.tensor(entries.targets, dtype=torch.long, device=device)
    token_lls = torch.empty(len(targets), dtype=torch.float32, device=device)
    greedy = torch.empty(len(targets), dtype=torch.bool, device=device)
    vocab = getattr(head, "out_features", None) or outputs.shape[-1]
    n_rows = outputs.shape[0]
    # On an accelerator the whole batch is one slice: each slice costs a host sync (`nonzero`) and launches.
    step = max(1, LOGITS_PER_SLICE // max(1, vocab)) if device.type == "cpu" else max(1, n_rows)
    bounds = [0, n_rows] if step >= n_rows else list(range(0, n_rows, step)) + [n_rows]
    cuts = torch.searchsorted(rows, torch.tensor(bounds, dtype=torch.long, device=device)).tolist()
    for (first, last), (lo, hi) in zip(zip(bounds, bounds[1:]), zip(cuts, cuts[1:])):
        logits = outputs[first:last]
        logits = (head(logits) if head is not None else logits).float()  # reduced in place below: `outputs` is ours
        at = rows[lo:hi] - first
        target = targets[lo:hi]
        best = logits.amax(dim=-1)  # without indices: `max(dim)` is several times slower on CPU
        target_logits = logits[at, target]
        is_greedy = target_logits >= best[at]
        candidates = is_greedy.nonzero().squeeze(1)
        if len(candidates):  # the target ties the maximum: greedy only when no earlier token ties it too
            is_greedy[candidates] = logits[at[candidates]].argmax(dim=-1) == target[candidates]
        lse = logits.sub_(best[:, None]).exp_().sum(dim=-1).log_().add_(best)
        token_lls[lo:hi] = target_logits - lse[at]
        greedy[lo:hi] = is_greedy
    segments = torch.tensor(entries.requests, dtype=torch.long, device=device)
    # Sum in float64: a long continuation should not lose digits to float32 accumulation.
    sums = torch.zeros(n, dtype=torch.float64, device=device)
    sums.index_add_(0, segments, token_lls.double())
    misses = torch.zeros(n, dtype=torch.long, device=device)
    misses.index_add_(0, segments, (~greedy).long())
    return list(zip(sums.tolist(), (misses == 0).tolist(), strict=True))


@torch.inference_mode()
def _score_batch(scorer: _Model, rows: list[_Row]) -> list[tuple[float, bool]]:
    """Each row's whole input in one right-padded batch, as the harness runs it."""
    entries = _Entries()
    batch_rows: list[int] = []
    positions: list[int] = []
    for i, row in enumerate(rows):
        start = _start(row)
        entries.span(len(positions), i, row.continuation)
        batch_rows += [i] * len(row.continuation)
        positions += range(start, start + len(row.continuation))
    outputs = scorer.whole(_padded([row.inputs for row in rows]), batch_rows, positions)
    return _sums(outputs, entries, len(rows), scorer.head)


def _select(cache, owners: torch.Tensor):
    """The cache of each remainder row: its group's row, repeated once per request."""
    if hasattr(cache, "batch_select_indices"):  # transformers' Cache classes (in place)
        cache.batch_select_indices(owners)
        return cache
    return tuple(tuple(t[owners] for t in layer) for layer in cache)  # the legacy tuple of (key, value)


@torch.inference_mode()
def _score_shared_batch(scorer: _Model, groups: list[_SharedPrefix]) -> list[tuple[float, bool]]:
    """Prefixes once, the rest of each request on its group's key/value cache.

    Pass 1 runs every group's prefix (right-padded) and keeps the cache, and the hidden states at the prefix
    positions some request's continuation is predicted from (each once, whichever requests read it). Pass 2
    runs, per request, its inputs after the prefix on a copy of its group's cache: the padding between a short
    prefix and the remainder is masked out, and positions continue the prefix's.
    """
    entries = _Entries()
    prefix_rows: list[int] = []
    prefix_positions: list[int] = []
    request = 0
    for g, group in enumerate(groups):
        starts = [_start(row) for row in group.rows]
        for position in range(min(starts), len(group.prefix)):
            for k, (row, start) in enumerate(zip(group.rows, starts, strict=True)):
                if position >= start:
                    entries.add(len(prefix_positions), request + k, row.continuation[position - start])
            prefix_rows.append(g)
            prefix_positions.append(position)
        request += len(group.rows)
    width = max(len(group.prefix) for group in groups)
    prefix_outputs, cache = scorer.prefix(_padded([group.prefix for group in groups]), prefix_rows, prefix_positions)

    rows = [(group, row) for group in groups for row in group.rows]
    owners = torch.tensor([g for g, group in enumerate(groups) for _ in group.rows], device=scorer.device)
    tails = _padded([row.inputs[len(group.prefix) :] for group, row in rows])
    length = tails.shape[1]
    mask = torch.zeros((len(rows), width + length), dtype=torch.long)
    mask[:, width:] = 1
    starts = torch.tensor([len(group.prefix) for group, _ in rows])
    mask[:, :width] = torch.arange(width)[None, :] < starts[:, None]
    # Padding after a short remainder may run past the model's last position: clamp it (its output is unused).
    positions = (starts[:, None] + torch.arange(length)[None, :]).clamp_(max=scorer.max_length - 1)
    tail_rows: list[int] = []
    tail_positions: list[int] = []
    first = len(prefix_positions)
    for i, (group, row) in enumerate(rows):
        skip = max(0, len(group.prefix) - _start(row))  # continuation tokens predicted inside the prefix
        tokens = row.continuation[skip:]
        entries.span(first + len(tail_positions), i, tokens)
        begin = _start(row) + skip - len(group.prefix)
        tail_rows += [i] * len(tokens)
        tail_positions += range(begin, begin + len(tokens))
    outputs = scorer.outputs(
        tails, tail_rows, tail_positions, attention_mask=mask, position_ids=positions, use_cache=True, **{scorer.cache_keyword: _select(cache, owners)}
    )
    if prefix_outputs is not None:
        outputs = torch.cat([prefix_outputs, outputs])
    return _sums(outputs, entries, len(rows), scorer.head)


WINDOW_BATCHES = 8  # a window of shared-prefix groups holds at most this many batches' requests


def _tail(group: _SharedPrefix) -> int:
    return max(len(row.inputs) for row in group.rows) - len(group.prefix)


def _windows(groups: list[_SharedPrefix], batch_size: int) -> list[list[_SharedPrefix]]:
    """Groups in windows of similar remainders (longest first), each of at most WINDOW_BATCHES x `batch_size`
    requests (one group alone may have more) and at most as many prefix tokens as `batch_size` copies of its
    longest prefix: the prefix caches a window keeps (each prefix batch as wide as its longest) take about as
    much memory as one batch's expanded cache."""
    windows: list[list[_SharedPrefix]] = []
    rows = tokens = longest = 0
    for group in sorted(groups, key=lambda g: (-_tail(g), -len(g.prefix))):
        n, length = len(group.rows), len(group.prefix)
        if windows and rows + n <= WINDOW_BATCHES * batch_size and tokens + length <= batch_size * max(longest, length):
            windows[-1].append(group)
            rows, tokens, longest = rows + n, tokens + length, max(longest, length)
        else:
            windows.append([group])
            rows, tokens, longest = n, length, length
    return windows


def _kv_layers(cache) -> list[tuple[torch.Tensor, torch.Tensor]] | None:
    """Each layer's (keys, values) [batch, heads, length, head size] of a plain cache (transformers' DynamicCache of
    DynamicLayers, or the legacy tuple), else None: a sliding-window or quantised cache is not rebuilt by hand."""
    if isinstance(cache, tuple):
        return [(layer[0], layer[1]) for layer in cache] if all(len(layer) == 2 for layer in cache) else None
    layers = getattr(cache, "layers", None)
    if not layers or any(type(layer).__name__ != "DynamicLayer" or getattr(layer, "keys", None) is None for layer in layers):
        return None
    return [(layer.keys, layer.values) for layer in layers]


def _with_layers(template, layers: list[tuple[torch.Tensor, torch.Tensor]]):
    """A cache like `template` holding `layers` (the template is left as it is)."""
    if isinstance(template, tuple):
        return tuple(layers)
    cache = copy.copy(template)
    cache.layers = []
    for layer, (keys, values) in zip(template.layers, layers, strict=True):
        layer = copy.copy(layer)
        layer.keys, layer.values = keys, values
        cache.layers.append(layer)
    return cache


@torch.inference_mode()
def _score_window(scorer: _Model, groups: list[_SharedPrefix], batch_size: int) -> list[tuple[float, bool]] | None:
    """A window of groups: prefixes run once, in batches of similar prefix length; then the requests' remainders,
    in batches of similar remainder length, each on a cache gathered from its groups' prefix caches.

    Sorting the two passes separately is what keeps padding low: a group's prefix and its requests' remainders
    vary independently (a long HellaSwag context with short endings, a short ARC question with long answers).
    Returns None when the model's cache cannot be rebuilt by hand (see `_kv_layers`); nothing has been scored then.
    """
    entries = _Entries()
    parts: list[torch.Tensor] = []
    n_outputs = 0
    first_request = [0]
    for group in groups:
        first_request.append(first_request[-1] + len(group.rows))
    caches: list[list[tuple[torch.Tensor, torch.Tensor]]] = []
    template = None
    where: dict[int, tuple[int, int]] = {}  # group -> (its prefix batch, its row there)
    by_length = sorted(range(len(groups)), key=lambda g: -len(groups[g].prefix))
    for first, last in _cuts([len(groups[g].prefix) for g in by_length], batch_size):
        chunk = by_length[first:last]
        rows: list[int] = []
        positions: list[int] = []
        for j, g in enumerate(chunk):
            group = groups[g]
            starts = [_start(row) for row in group.rows]
            for position in range(min(starts), len(group.prefix)):
                for k, (row, start) in enumerate(zip(group.rows, starts, strict=True)):
                    if position >= start:
                        entries.add(n_outputs + len(rows), first_request[g] + k, row.continuation[position - start])
                rows.append(j)
                positions.append(position)
            where[g] = (len(caches), j)
        outputs, cache = scorer.prefix(_padded([groups[g].prefix for g in chunk]), rows, positions)
        layers = _kv_layers(cache)
        if layers is None:
            return None
        template = cache
        caches.append(layers)
        if outputs is not None:
            parts.append(outputs)
            n_outputs += len(outputs)

    requests = sorted(((g, k) for g, group in enumerate(groups) for k in range(len(group.rows))),
                      key=lambda gk: -(len(groups[gk[0]].rows[gk[1]].inputs) - len(groups[gk[0]].prefix)))
    rests = [len(groups[g].rows[k].inputs) - len(groups[g].prefix) for g, k in requests]
    longest_prefix = max(len(group.prefix) for group in groups)
    # Rests are short (a choice after its cached question): a batch takes more than `batch_size` of them while it holds
    # no more tokens, prefix width included, than `batch_size` rows of the window's longest prefix + rest would.
    for first, last in _cuts(rests, batch_size, budget=batch_size * (longest_prefix + rests[0]), extra=longest_prefix):
        chunk = requests[first:last]
        prefixes = [len(groups[g].prefix) for g, _ in chunk]
        width = max(prefixes)
        layers = _gather(caches, where, [g for g, _ in chunk], width)
        tails = _padded([groups[g].rows[k].inputs[length:] for (g, k), length in zip(chunk, prefixes, strict=True)])
        length = tails.shape[1]
        starts = torch.tensor(prefixes)
        mask = torch.cat([(torch.arange(width)[None, :] < starts[:, None]).long(), torch.ones((len(chunk), length), dtype=torch.long)], dim=1)
        # Padding after a short remainder may run past the model's last position: clamp it (its output is unused).
        positions_ids = (starts[:, None] + torch.arange(length)[None, :]).clamp_(max=scorer.max_length - 1)
        rows, positions = [], []
        for i, ((g, k), prefix) in enumerate(zip(chunk, prefixes, strict=True)):
            row = groups[g].rows[k]
            skip = max(0, prefix - _start(row))  # continuation tokens predicted inside the prefix
            tokens = row.continuation[skip:]
            entries.span(n_outputs + len(rows), first_request[g] + k, tokens)
            begin = _start(row) + skip - prefix
            rows += [i] * len(tokens)
            positions += range(begin, begin + len(tokens))
        outputs = scorer.outputs(
            tails, rows, positions, attention_mask=mask, position_ids=positions_ids, use_cache=True,
            **{scorer.cache_keyword: _with_layers(template, layers)},
        )
        parts.append(outputs)
        n_outputs += len(outputs)
    return _sums(torch.cat(parts), entries, first_request[-1], scorer.head)


# A forward call's fixed cost, in tokens of padding it is worth, on CPU: the `tiny` model's Python and launches; GPT-2 124M's
# (one thread) is streaming its 0.5 GB of weights, 38 ms for a call of 1 token where a token in a batch of 512+ costs 1.6 ms.
CALL_COST_TOKENS = 64


def _cuts(lengths: list[int], batch_size: int, budget: int = 0, extra: int = 0) -> list[tuple[int, int]]:
    """Cut lengths sorted longest first into batches that minimise the tokens run (each batch as wide as its first)
    plus CALL_COST_TOKENS per batch: fixed-size batches of sorted lengths still pad a short row to a long one where
    the lengths fall steeply (a window's prefixes run from 5 to 100 tokens; LAMBADA's passages of ~90 tokens sorted
    before BLiMP's sentences of ~14, in the requests that run whole). A batch holds at most `batch_size` rows, or
    more while rows x (its width + `extra`) stays within `budget` tokens."""
    best = [0] + [0] * len(lengths)
    cut = [0] * (len(lengths) + 1)
    for end in range(1, len(lengths) + 1):
        options = []
        for start in range(end - 1, -1, -1):  # wider batches as start moves back: stop at the first too large
            if end - start > batch_size and (end - start) * (lengths[start] + extra) > budget:
                break
            options.append((best[start] + (end - start) * lengths[start] + CALL_COST_TOKENS, start))
        best[end], cut[end] = min(options)
    bounds = []
    end = len(lengths)
    while end:
        bounds.append((cut[end], end))
        end = cut[end]
    return bounds[::-1]


def _gather(caches, where: dict[int, tuple[int, int]], groups: list[int], width: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per layer, the keys and values [len(groups), heads, width, head size] of each row's group prefix, copied from
    the prefix batches that ran them (after a shorter prefix: its batch's padding, or zeros past that batch's width;
    masked out, and finite: nothing is filled twice). The prefix batches
    stay as they ran, each as wide as its longest prefix, so a window keeps no more than its prefixes' tokens."""
    by_batch: dict[int, tuple[list[int], list[int]]] = {}
    for i, g in enumerate(groups):
        batch, j = where[g]
        mine, theirs = by_batch.setdefault(batch, ([], []))
        mine.append(i)
        theirs.append(j)
    device = caches[0][0][0].device
    indices = [(batch, torch.tensor(mine, device=device), torch.tensor(theirs, device=device)) for batch, (mine, theirs) in by_batch.items()]
    out = []
    for layer in range(len(caches[0])):
        pair = []
        for tensor in (0, 1):
            sample = caches[0][layer][tensor]
            full = sample.new_empty((len(groups), sample.shape[1], width, sample.shape[3]))
            for batch, mine, theirs in indices:
                source = caches[batch][layer][tensor]
                keep = min(width, source.shape[2])  # a prefix batch is as wide as its longest prefix, maybe wider than these rows'
                full.narrow(2, 0, keep).index_copy_(0, mine, source.narrow(2, 0, keep).index_select(0, theirs))
                if keep < width:  # only past a narrower batch's end is there nothing to copy: zeros (masked out, but finite)
                    full.narrow(2, keep, width - keep).index_fill_(0, mine, 0)
            pair.append(full)
        out.append((pair[0], pair[1]))
    return out


@dataclass(frozen=True)
class _Packed:
    """One input row of a packed batch: a group's prefix, then the rests of some of its requests one after the other
    (`requests`, their indices in the window, and `offsets`, where each rest starts in the row)."""

    group: int
    tokens: tuple[int, ...]
    requests: tuple[int, ...]
    offsets: tuple[int, ...]


def _packed_rows(groups: list[_SharedPrefix], first_request: list[int], limit: int) -> list[_Packed]:
    """Each group as one row, prefix + its requests' rests, or several rows (each with the prefix) where that would
    exceed `limit` tokens: the attention mask is [rows, tokens, tokens]."""
    packed = []
    for g, group in enumerate(groups):
        p = len(group.prefix)
        tokens, requests, offsets = list(group.prefix), [], []
        for k, row in enumerate(group.rows):
            rest = row.inputs[p:]
            if requests and len(tokens) + len(rest) > limit:
                packed.append(_Packed(g, tuple(tokens), tuple(requests), tuple(offsets)))
                tokens, requests, offsets = list(group.prefix), [], []
            requests.append(first_request[g] + k)
            offsets.append(len(tokens))
            tokens += rest
        packed.append(_Packed(g, tuple(tokens), tuple(requests), tuple(offsets)))
    return packed


@torch.inference_mode()
def _score_packed(scorer: _Model, groups: list[_SharedPrefix], batch_size: int) -> list[tuple[float, bool]]:
    """A window of groups in one pass per batch, no key/value cache: each group's prefix, then each request's rest, in
    one row, under a mask that lets a rest see the prefix and itself (causally) but not the other rests, and positions
    that continue the prefix in every rest. So each shared prefix runs once, nothing is copied, and a batch's rows are
    as long as a group's tokens (a question and its four answers), not one request's. Rows are sorted by length and
    cut as the requests run whole are (`_cuts`), a batch holding at most the tokens of `batch_size` of the window's
    longest requests."""
    first_request = [0]
    for group in groups:
        first_request.append(first_request[-1] + len(group.rows))
    longest = max(len(row.inputs) for group in groups for row in group.rows)
    packed = sorted(_packed_rows(groups, first_request, 2 * scorer.max_length), key=lambda r: -len(r.tokens))
    entries = _Entries()
    parts: list[torch.Tensor] = []
    n_outputs = 0
    device = scorer.device
    for first, last in _cuts([len(r.tokens) for r in packed], 1, budget=batch_size * longest):
        chunk = packed[first:last]
        width = len(chunk[0].tokens)
        segments: list[int] = []  # [len(chunk) x width], built as lists: one tensor call, not a few per request
        positions: list[int] = []
        rows: list[int] = []
        cols: list[int] = []
        for i, packed_row in enumerate(chunk):
            group = groups[packed_row.group]
            p = len(group.prefix)
            segments += [0] * p
            positions += range(p)
            ends = (*packed_row.offsets[1:], len(packed_row.tokens))
            members = [(request, group.rows[request - first_request[packed_row.group]]) for request in packed_row.requests]
            starts = [_start(row) for _, row in members]
            for position in range(min(starts), p):  # continuation tokens predicted inside the prefix (a BLiMP pair's first words)
                for (request, row), start in zip(members, starts, strict=True):
                    if position >= start:
                        entries.add(n_outputs + len(rows), request, row.continuation[position - start])
                rows.append(i)
                cols.append(position)
            for s, ((request, row), start, offset, end) in enumerate(zip(members, starts, packed_row.offsets, ends, strict=True)):
                segments += [s + 1] * (end - offset)
                positions += range(p, p + end - offset)
                skip = max(0, p - start)
                tokens = row.continuation[skip:]
                entries.span(n_outputs + len(rows), request, tokens)
                begin = offset + start + skip - p
                rows += [i] * len(tokens)
                cols += range(begin, begin + len(tokens))
            padding = width - len(packed_row.tokens)
            segments += [-1] * padding
            positions += [scorer.max_length - 1] * padding
        outputs = scorer.runner.run(
            _padded([r.tokens for r in chunk]).to(device),
            torch.tensor(positions, device=device).view(len(chunk), width),
            torch.tensor(rows, device=device),
            torch.tensor(cols, device=device),
            mask=packed_mask(torch.tensor(segments, device=device).view(len(chunk), width)),
        )
        parts.append(outputs)
        n_outputs += len(outputs)
    return _sums(torch.cat(parts), entries, first_request[-1], scorer.head)


def _score_groups(scorer: _Model, groups: list[_SharedPrefix], batch_size: int) -> list[tuple[float, bool]]:
    """A window's results, its requests in group order; where the cache cannot be gathered across prefix batches,
    each batch of `_pack` runs its own prefixes and remainders (`_score_shared_batch`)."""
    if scorer.runner is not None:
        return _score_packed(scorer, groups, batch_size)
    results = _score_window(scorer, groups, batch_size) if scorer.gathers else None
    if results is not None:
        return results
    scorer.gathers = False  # found on the first window: the others go straight to the packed batches
    by_index: dict[int, tuple[float, bool]] = {}
    for batch in _pack(groups, batch_size):
        for row, result in zip([row for g in batch for row in g.rows], _score_shared_batch(scorer, batch), strict=True):
            by_index[row.index] = result
    return [by_index[row.index] for group in groups for row in group.rows]


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

    Requests whose inputs share a prefix (the choices of one question, WinoGrande's two contexts, a BLiMP
    pair) run it once (`share_contexts`: packed rows for a GPT-2 stack, else a reused key/value cache when the
    model's forward takes one); the others run whole, longest first. `batch_size` is the harness's: requests per
    forward call for requests run whole; calls of shared prefixes hold at most the tokens of `batch_size` of their
    window's longest requests, so more (shorter) requests where they fit. All give the harness's numbers up to float
    rounding (see the module docstring).
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
        shared, alone = _share_prefixes(rows, scorer.head is not None) if scorer.cache_keyword else ([], rows)
        # Longest first, as the harness: batches hold similar lengths (little padding), and an
        # out-of-memory error comes on the first batch rather than the last.
        alone.sort(key=lambda row: -len(row.inputs))
        batches: list[tuple[list[_Row], Callable[[], list[tuple[float, bool]]]]] = [
            ([row for g in groups for row in g.rows], partial(_score_groups, scorer, groups, batch_size)) for groups in _windows(shared, batch_size)
        ]
        for first, last in _cuts([len(row.inputs) for row in alone], batch_size):
            chunk = alone[first:last]
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
