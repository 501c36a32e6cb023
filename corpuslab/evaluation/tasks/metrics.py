"""Scores and standard errors, computed as lm-evaluation-harness v0.4.13 computes them.

- acc (multiple choice): the choice with the highest log-likelihood is the gold one (first on ties).
- acc_norm: the same after dividing each log-likelihood by the *character* length of its choice
  (`len(choice)`, without the leading delimiter). The harness's `acc_bytes` divides by UTF-8 bytes; it
  is not among the metrics the tasks here report, so neither is it computed.
- acc (loglikelihood, LAMBADA): 1 when every continuation token is the model's argmax (`is_greedy`).
- perplexity (LAMBADA): exp(-mean log-likelihood of the target word), over documents.
- stderr of a mean: sample standard deviation (n - 1) / sqrt(n) (`mean_stderr`); None for n < 2, where
  the harness prints "N/A".
- stderr of perplexity: bootstrap, `iters` resamples drawn in chunks of 1000 from Python's Mersenne
  Twister seeded with the chunk index (`bootstrap_stderr`). We draw the very same numbers with numpy,
  which is about a hundred times faster than the harness's Python loop.
- a group (BLiMP): the unweighted mean of its subtasks' scores, stderr sqrt(sum se_i^2) / k
  (`aggregate_subtask_metrics(weight_by_size=False)`, `unweighted_mean_stderr`).
- a group weighted by size (MMLU): sum n_i x_i / sum n_i over its leaf subtasks, stderr the pooled
  sqrt(sum (n_i - 1) n_i se_i^2 / (sum n_i - k) / sum n_i) (`pooled_sample_stderr`).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

import numpy as np

BOOTSTRAP_CHUNK = 1000  # the harness draws bootstrap replicates in chunks of (at most) this many


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def mean_stderr(values: Sequence[float]) -> float | None:
    """Standard error of the mean with Bessel's correction; None when undefined (n < 2)."""
    n = len(values)
    if n < 2:
        return None
    mu = mean(values)
    return math.sqrt(sum((x - mu) ** 2 for x in values) / (n - 1)) / math.sqrt(n)


def perplexity(loglikelihoods: Sequence[float]) -> float:
    return math.exp(-mean(loglikelihoods))


def bootstrap_perplexity_stderr(loglikelihoods: Sequence[float], iters: int) -> float | None:
    """The harness's bootstrap standard error of `perplexity`, replicate for replicate.

    The harness draws chunk i with `random.Random(i).choices(xs, k=n)` (index floor(random() * n)).
    numpy's legacy RandomState is the same Mersenne Twister with the same 53-bit doubles, so loading
    Python's state into it yields identical indices.
    """
    n = len(loglikelihoods)
    if n < 2 or iters <= 0:
        return None
    values = np.asarray(loglikelihoods, dtype=np.float64)
    chunk = min(BOOTSTRAP_CHUNK, iters)
    replicates = [_bootstrap_chunk(values, seed, chunk) for seed in range(iters // chunk)]
    return float(np.std(np.concatenate(replicates), ddof=1))


def _bootstrap_chunk(values: np.ndarray, seed: int, replicates: int) -> np.ndarray:
    state = random.Random(seed).getstate()[1]  # 624 words of Mersenne Twister state, then the position
    generator = np.random.RandomState()
    generator.set_state(("MT19937", np.array(state[:-1], dtype=np.uint32), state[-1]))
    n = len(values)
    # Memory: one chunk holds replicates * n indices; draw a few rows at a time for large n.
    rows = max(1, min(replicates, 4_000_000 // n))
    out = []
    for first in range(0, replicates, rows):
        uniforms = generator.random_sample((min(rows, replicates - first), n))
        indices = np.floor(uniforms * n).astype(np.int64)
        out.append(np.exp(-values[indices].mean(axis=1)))
    return np.concatenate(out)


def choice_outcome(loglikelihoods: Sequence[float], choices: Sequence[str], gold: int) -> dict[str, float]:
    """acc and acc_norm of one multiple-choice example (`ConfigurableTask.process_results`)."""
    lls = np.asarray(loglikelihoods, dtype=np.float64)
    lengths = np.array([float(len(choice)) for choice in choices])
    return {
        "acc": 1.0 if int(np.argmax(lls)) == gold else 0.0,
        "acc_norm": 1.0 if int(np.argmax(lls / lengths)) == gold else 0.0,
    }


def group_mean(values: Sequence[float]) -> float:
    """A group's score: every subtask counts the same, whatever its size (weight_by_size=False)."""
    return mean(values)


def group_stderr(stderrs: Sequence[float | None]) -> float | None:
    """Stderr of an unweighted mean of k independent subtask means: sqrt(sum se_i^2) / k."""
    if not stderrs or any(se is None for se in stderrs):
        return None
    return math.sqrt(sum(se**2 for se in stderrs)) / len(stderrs)  # type: ignore[operator]


def weighted_group_mean(values: Sequence[float], sizes: Sequence[int]) -> float:
    """A group's score weighted by its subtasks' sizes (weight_by_size=True)."""
    return sum(v * n for v, n in zip(values, sizes, strict=True)) / sum(sizes)


def pooled_group_stderr(stderrs: Sequence[float | None], sizes: Sequence[int]) -> float | None:
    """The harness's `pooled_sample_stderr`: the pooled variance of the subtasks, over the total size.
    None where a subtask has none, or where the pooled variance is undefined (as many subtasks as items)."""
    if not stderrs or any(se is None for se in stderrs) or sum(sizes) <= len(sizes):
        return None
    pooled = sum((n - 1) * se**2 * n for n, se in zip(sizes, stderrs, strict=True)) / (sum(sizes) - len(sizes))  # type: ignore[operator]
    return math.sqrt(pooled / sum(sizes))
