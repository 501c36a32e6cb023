"""Canary memorization: how much a trained model memorized the canaries planted in its training data.

Two measures per canary (`measure_memorization`; the canaries themselves come from `corpus.canaries`):

- extraction: greedy-decode from the prefix; `exact` when the first tokens reproduce the secret
  (Carlini et al. 2022, "Quantifying memorization").
- exposure (Carlini et al. 2019, "The Secret Sharer"): the log-perplexity of a secret s given the prefix
  is Px(s) = -sum_i log2 p(s_i | prefix, s_<i). Draw `num_candidates` random secrets of the same format;
  rank = 1 + #{candidates with Px lower than the canary's}; exposure = log2(num_candidates + 1) - log2(rank).
  The +1 counts the canary itself among the secrets it is ranked against, so exposure lies in
  [0, log2(num_candidates + 1)]: 0 when every candidate is more likely than the canary, the maximum
  when the canary is the most likely of all. An unseen canary has rank uniform on 1..n+1, so its
  expected exposure is about log2(e) = 1.44 bits.

`summarize` gives the rates per copy count, `overall` over every canary: what the report shows.
"""

from __future__ import annotations

import copy
import math
import statistics
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from corpuslab.corpus.canaries import Canary, CanaryConfig, random_secret
from corpuslab.errors import StageError
from corpuslab.progress import progress

SCORE_BATCH = 512  # candidate sequences per forward pass
HEAD_ROWS = 1024  # distinct contexts per vocabulary projection: bounds memory at HEAD_ROWS x vocab floats


def _split_tokens(canary: Canary, encode: Callable[[str], list[int]]) -> tuple[list[int], list[int]]:
    """(prefix ids, secret ids) such that prefix ids + secret ids == encode(canary.text).

    The secret's ids include the separating space. Candidates are scored with the same split, so a
    tokenizer that merged across the boundary would compare unlike things: refuse it instead.
    """
    prefix_ids, secret_ids = list(encode(canary.prefix)), list(encode(" " + canary.secret))
    if prefix_ids + secret_ids != list(encode(canary.text)):
        raise StageError("canaries", f"{canary.id}: the tokenizer merges tokens across the "
                         "prefix/secret boundary")
    return prefix_ids, secret_ids


@torch.inference_mode()
def _greedy_decode(model: torch.nn.Module, contexts: list[list[int]], n_tokens: int,
                   device: torch.device | str) -> list[list[int]]:
    """Greedy continuation of each context. Contexts of equal length are batched: no padding, so
    no attention-mask or position-id subtleties."""
    out: list[list[int]] = [[] for _ in contexts]
    by_length: dict[int, list[int]] = {}
    for index, context in enumerate(contexts):
        by_length.setdefault(len(context), []).append(index)
    for indices in by_length.values():
        sequences = torch.tensor([contexts[i] for i in indices], device=device)
        for _ in range(n_tokens):
            # logits_to_keep=1: only the last position goes through the vocabulary projection.
            logits = model(input_ids=sequences, use_cache=False, logits_to_keep=1).logits[:, -1]
            sequences = torch.cat([sequences, logits.argmax(-1, keepdim=True)], dim=1)
        for row, i in enumerate(indices):
            out[i] = sequences[row, -n_tokens:].tolist()
    return out


def _unique_contexts(secrets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Map every (candidate, position) to one representative with the same context.

    The prediction at secret position j depends only on prefix + secret[:j], and random digit strings
    share short prefixes (one context at j=0, ten at j=1...): the vocabulary projection, a large share
    of the cost for a small model, is done once per distinct context. Returns (representative (candidate,
    position) per distinct context, distinct-context index per (candidate, position)).
    """
    n, length = secrets.shape
    representatives, pair_rows = [], np.empty((n, length), dtype=np.int64)
    group = np.zeros(n, dtype=np.int64)  # id of secret[:j] among the distinct prefixes of length j
    for j in range(length):
        if j:  # distinct secret[:j] = distinct (id of secret[:j-1], token j-1): a 1-D unique, not rows
            _, group = np.unique(group * (int(secrets.max()) + 1) + secrets[:, j - 1], return_inverse=True)
        _, first = np.unique(group, return_index=True)
        pair_rows[:, j] = len(representatives) + group
        representatives.extend((int(i), j) for i in first)
    return np.array(representatives, dtype=np.int64).reshape(-1, 2), pair_rows


@torch.inference_mode()
def _secret_hidden_states(model: torch.nn.Module, context: list[int], secrets: torch.Tensor) -> torch.Tensor:
    """Final hidden states at the positions that predict each secret token: (n, length, n_embd).

    Every candidate shares the context, so it goes through the network once and its key/value cache is
    repeated across the batch: the candidates cost only their own `length - 1` tokens.
    """
    n, length = secrets.shape
    prefix = model.base_model(input_ids=torch.tensor([context], device=secrets.device), use_cache=True)
    first = prefix.last_hidden_state[:, -1:]  # predicts secret token 0, the same for every candidate
    blocks = []
    for lo in range(0, n, SCORE_BATCH):
        batch = secrets[lo : lo + SCORE_BATCH, :-1]
        parts = [first.expand(len(batch), 1, -1)]
        if length > 1:
            cache = copy.deepcopy(prefix.past_key_values)
            cache.batch_repeat_interleave(len(batch))
            outputs = model.base_model(input_ids=batch, past_key_values=cache, use_cache=True)
            parts.append(outputs.last_hidden_state)
        blocks.append(torch.cat(parts, dim=1))
    return torch.cat(blocks)


@torch.inference_mode()
def _secret_log_perplexities(model: torch.nn.Module, context: list[int], secrets: np.ndarray,
                             device: torch.device | str) -> np.ndarray:
    """Px(s) in bits for every row of `secrets` (token ids, equal length) given `context`."""
    n, length = secrets.shape
    targets = torch.from_numpy(secrets).to(device)
    hidden = _secret_hidden_states(model, context, targets)
    representatives, pair_rows = _unique_contexts(secrets)
    head = model.get_output_embeddings()
    pair_rows_t = torch.from_numpy(pair_rows).to(device)
    log_probs = torch.empty(n, length, dtype=torch.float64, device=device)
    for lo in range(0, len(representatives), HEAD_ROWS):
        block = representatives[lo : lo + HEAD_ROWS]
        log_softmax = torch.log_softmax(head(hidden[block[:, 0], block[:, 1]]).float(), dim=-1)
        in_block = (pair_rows_t >= lo) & (pair_rows_t < lo + len(block))
        log_probs[in_block] = log_softmax[pair_rows_t[in_block] - lo, targets[in_block]].double()
    return (-log_probs.sum(dim=1) / math.log(2)).cpu().numpy()


def _candidate_secrets(canary: Canary, count: int, rng: np.random.Generator) -> list[str]:
    """`count` random secrets of the canary's format, never the canary's own secret."""
    length = len(canary.secret.split())
    candidates = []
    while len(candidates) < count:
        secret = random_secret(rng, length)
        if secret != canary.secret:
            candidates.append(secret)
    return candidates


def _log_perplexities(model: torch.nn.Module, context: list[int], secrets: list[list[int]],
                      device: torch.device | str) -> np.ndarray:
    """Px in bits of each secret (token ids); secrets of equal token length are scored as one batch.

    With a tokenizer that merges some digit pairs, candidates differ in length: one batch per length.
    """
    px = np.empty(len(secrets))
    by_length: dict[int, list[int]] = {}
    for index, ids in enumerate(secrets):
        by_length.setdefault(len(ids), []).append(index)
    for indices in by_length.values():
        rows = np.array([secrets[i] for i in indices], dtype=np.int64)
        px[indices] = _secret_log_perplexities(model, context, rows, device)
    return px


def _exposure_of(canary: Canary, context: list[int], secret_ids: list[int], encode, model, cfg, device,
                 rng: np.random.Generator) -> dict:
    candidates = [list(encode(" " + s)) for s in _candidate_secrets(canary, cfg.num_candidates, rng)]
    px = _log_perplexities(model, context, [secret_ids, *candidates], device)
    rank = 1 + int(np.sum(px[1:] < px[0]))
    return {
        "log_perplexity": float(px[0]),
        "rank": rank,
        "exposure": math.log2(cfg.num_candidates + 1) - math.log2(rank),
        "num_candidates": cfg.num_candidates,
    }


def measure_memorization(
    model: torch.nn.Module,
    tokenizer_encode: Callable[[str], list[int]],
    tokenizer_decode: Callable[[list[int]], str],
    canaries: Sequence[Canary],
    cfg: CanaryConfig,
    device: torch.device | str = "cpu",
    seed: int = 0,
    bos_id: int | None = None,
) -> list[dict]:
    """Extraction and exposure of each canary (method in the module docstring).

    `bos_id`: a token put before every prefix, by default the model's `bos_token_id` (`build_model`
    sets it to the eos id): documents were separated by eos in training, so the prefix is read in the
    context it was trained in. `tokenizer_encode` must not add special tokens. Candidate secrets come
    from (seed, canary index), so every arm of an experiment is ranked against the same candidates.

    Cost: about count x (num_candidates + 1) x secret tokens of forward passes, e.g. 100 x 1001 x 16
    tokens: ~25 s for the `tiny` preset with a 4096-token vocabulary on two CPU cores.
    """
    cfg.validate()
    was_training = model.training
    model.eval()
    splits = [_split_tokens(c, tokenizer_encode) for c in canaries]
    bos_id = bos_id if bos_id is not None else getattr(model.config, "bos_token_id", None)
    contexts = [([bos_id] if bos_id is not None else []) + prefix_ids for prefix_ids, _ in splits]
    n_decode = max(cfg.decode_tokens or 0, max((len(s) for _, s in splits), default=0))
    generations = _greedy_decode(model, contexts, n_decode, device)
    results = []
    rows = zip(canaries, contexts, splits, generations)
    # Ranking each secret among num_candidates others is most of an evaluation's time: show it moving.
    for index, (canary, context, (_, secret_ids), generated) in enumerate(
            progress(rows, "canary exposure", unit="canary", total=len(canaries))):
        results.append({
            "id": canary.id,
            "copies": canary.copies,
            "secret": canary.secret,
            "generation": tokenizer_decode(generated),
            "exact": generated[: len(secret_ids)] == secret_ids,
            **_exposure_of(canary, context, secret_ids, tokenizer_encode, model, cfg, device,
                            np.random.default_rng([seed, index])),
        })
    model.train(was_training)
    return results


def summarize(results: Sequence[dict]) -> list[dict]:
    """Per copy count: how many canaries, the fraction extracted exactly, mean and median exposure."""
    by_copies: dict[int, list[dict]] = {}
    for result in results:
        by_copies.setdefault(result["copies"], []).append(result)
    return [
        {
            "copies": copies,
            "canaries": len(group),
            "exact_rate": sum(r["exact"] for r in group) / len(group),
            "mean_exposure": statistics.fmean(r["exposure"] for r in group),
            "median_exposure": statistics.median(r["exposure"] for r in group),
        }
        for copies, group in sorted(by_copies.items())
    ]


def overall(results: Sequence[dict]) -> dict[str, Any]:
    """Over every canary: how many, the fraction extracted exactly, the mean exposure (None without canaries)."""
    if not results:
        return {"canaries": 0, "exact_rate": None, "mean_exposure": None}
    return {
        "canaries": len(results),
        "exact_rate": sum(bool(r["exact"]) for r in results) / len(results),
        "mean_exposure": float(np.mean([r["exposure"] for r in results])),
    }
