"""Uncertainty across seeds, arm-vs-reference differences, and the data-equivalent factor.

Methods (stated in the report too):
- mean and 95% confidence interval across seeds: Student t with n-1 degrees of freedom (no interval for n=1);
- difference to the reference arm: paired by seed (replicates of different arms with the same seed share
  initialisation and data order), mean difference with its t interval; significant when the interval
  excludes zero;
- difference between groups of arms (a grid's pooled replicates) to the reference group: paired by seed
  as above when both groups hold the same seeds equally often (the k-th replicate of a seed in one group
  pairs with the k-th of that seed in the other, in arm order); otherwise Welch's unequal-variance t
  interval, with the Welch-Satterthwaite degrees of freedom rounded down;
- data-equivalent factor: how many times the arm's training tokens the reference arm would need to reach
  the arm's final validation loss, read off the reference's validation curve by interpolating loss
  linearly in log(tokens); beyond the end of the curve, a power law loss = a * tokens^b fitted to the
  second half of the curve extrapolates (marked `extrapolated`);
- a "best" arm on a metric: the arm with the best mean whose paired difference (by seed) to every other
  arm with a number is significant in its favour; otherwise no arm is best.
A difference without an interval (fewer than 2 pairs, or fewer than 2 replicates on a side of an unpaired
comparison) is not tested: it has `significant: null` and `not_tested` says why, and the report says so
instead of calling it not significant.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

# Two-sided 95% Student t quantiles by degrees of freedom; above 30 the normal 1.96 is within 2%.
_T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
         12: 2.179, 15: 2.131, 20: 2.086, 25: 2.060, 30: 2.042}


def t_quantile(df: int) -> float:
    if df <= 0:
        return math.nan
    known = [d for d in _T975 if d <= df]
    return _T975[max(known)] if df <= 30 else 1.96


def mean_ci(values: Sequence[float]) -> dict[str, Any]:
    """Mean, 95% interval and n of the finite values."""
    data = np.array([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if len(data) == 0:
        return {"mean": None, "ci95": None, "n": 0}
    mean = float(data.mean())
    if len(data) < 2:
        return {"mean": mean, "ci95": None, "n": 1}
    half = t_quantile(len(data) - 1) * float(data.std(ddof=1)) / math.sqrt(len(data))
    return {"mean": mean, "ci95": [mean - half, mean + half], "n": int(len(data))}


def paired_difference(arm: dict[int, float], reference: dict[int, float]) -> dict[str, Any]:
    """arm - reference over the seeds both have; significant when the 95% interval excludes 0."""
    seeds = sorted(set(arm) & set(reference))
    out = difference_of_pairs([(arm[s], reference[s]) for s in seeds])
    if out["significant"] is None:
        out["not_tested"] = untested_pairs_reason(len(arm), len(reference), len(seeds))
    return out


def untested_pairs_reason(arm_seeds: int, reference_seeds: int, shared_seeds: int) -> str:
    """Why a paired difference has no test: the words the report shows after "not tested: "."""
    if max(arm_seeds, reference_seeds) <= 1:
        return "one seed per arm"
    if shared_seeds == 0:
        return "no seed in common with the reference"
    if shared_seeds == 1:
        return "one seed in common with the reference"
    return "fewer than 2 seeds have this number on both sides"


def difference_of_pairs(pairs: Sequence[tuple[float | None, float | None]]) -> dict[str, Any]:
    """Mean of (value - reference) over the pairs where both are numbers, its t interval, and whether the
    interval excludes 0."""
    summary = mean_ci([value - ref for value, ref in pairs if value is not None and ref is not None])
    summary = _with_significance(summary)
    if summary["significant"] is None:
        summary["not_tested"] = "fewer than 2 pairs" if summary["n"] else "no pairs"
    return summary


def welch_difference(sample: Sequence[float | None], reference: Sequence[float | None]) -> dict[str, Any]:
    """mean(sample) - mean(reference) with Welch's 95% interval (unequal variances, unpaired). `n` and
    `n_reference` count the finite values; no interval unless both have two."""
    a = np.array([v for v in sample if v is not None and math.isfinite(v)], dtype=float)
    b = np.array([v for v in reference if v is not None and math.isfinite(v)], dtype=float)
    if len(a) == 0 or len(b) == 0:
        return {"mean": None, "ci95": None, "n": len(a), "n_reference": len(b), "significant": None}
    diff = float(a.mean() - b.mean())
    out: dict[str, Any] = {"mean": diff, "ci95": None, "n": len(a), "n_reference": len(b)}
    if len(a) < 2 or len(b) < 2:
        out = _with_significance(out)
        out["not_tested"] = ("one replicate per group" if max(len(a), len(b)) < 2
                             else "fewer than 2 replicates on one side of an unpaired comparison")
        return out
    var_a, var_b = float(a.var(ddof=1)) / len(a), float(b.var(ddof=1)) / len(b)
    if var_a + var_b == 0:  # no spread on either side: the difference is exact, degrees of freedom undefined
        out.update(ci95=[diff, diff], df=float(len(a) + len(b) - 2))
        return _with_significance(out)
    df = (var_a + var_b) ** 2 / (var_a**2 / (len(a) - 1) + var_b**2 / (len(b) - 1))
    half = t_quantile(math.floor(df)) * math.sqrt(var_a + var_b)
    out.update(ci95=[diff - half, diff + half], df=df)
    return _with_significance(out)


def _with_significance(summary: dict[str, Any]) -> dict[str, Any]:
    interval = summary["ci95"]
    summary["significant"] = None if interval is None else bool(interval[0] > 0 or interval[1] < 0)
    return summary


def data_equivalent_factor(reference_curve: list[dict[str, Any]], target_loss: float, arm_tokens: int) -> dict[str, Any]:
    """Tokens the reference needs to reach `target_loss`, divided by `arm_tokens` (method: module docstring)."""
    points = [(c["tokens"], c["val_loss"]) for c in reference_curve if c.get("val_loss") is not None and c["tokens"] > 0]
    if len(points) < 2 or target_loss is None or arm_tokens <= 0:
        return {"factor": None, "method": "not enough validation points"}
    tokens = np.array([p[0] for p in points], dtype=float)
    losses = np.array([p[1] for p in points], dtype=float)
    for i in range(1, len(points)):
        high, low = losses[i - 1], losses[i]
        if low <= target_loss <= high and high > low:
            frac = (high - target_loss) / (high - low)
            needed = math.exp(math.log(tokens[i - 1]) + frac * (math.log(tokens[i]) - math.log(tokens[i - 1])))
            return {"factor": needed / arm_tokens, "method": "interpolated", "reference_tokens": needed}
    if target_loss > losses[0]:
        return {"factor": None, "method": "arm is worse than the reference's first evaluation"}
    half = tokens >= tokens[len(tokens) // 2]
    if half.sum() < 2:
        return {"factor": None, "method": "too few validation points to extrapolate"}
    slope, intercept = np.polyfit(np.log(tokens[half]), np.log(losses[half]), 1)
    if slope >= 0:
        return {"factor": None, "method": "reference curve no longer improves; cannot extrapolate"}
    needed = math.exp((math.log(target_loss) - intercept) / slope)
    return {"factor": needed / arm_tokens, "method": "extrapolated (power law on the second half of the curve)",
            "reference_tokens": needed}


def best_arm(by_arm: dict[str, dict[int, float]], lower_is_better: bool) -> dict[str, Any]:
    """The arm with the best mean on one metric ({arm: {seed: value}}) when its paired difference to every
    other arm with a number is significant in its favour; {"arm": None, "reason": ...} otherwise."""
    means = {name: float(np.mean(list(values.values()))) for name, values in by_arm.items() if values}
    if len(means) < 2:
        return {"arm": None, "reason": "fewer than 2 arms have this number"}
    sign = 1.0 if lower_is_better else -1.0
    leader = min(means, key=lambda name: sign * means[name])
    for other in means:
        if other == leader:
            continue
        difference = paired_difference(by_arm[leader], by_arm[other])
        if difference["significant"] is None:
            return {"arm": None, "reason": f"not tested: {difference['not_tested']}"}
        if not difference["significant"] or sign * difference["mean"] >= 0:
            return {"arm": None, "reason": f"{leader}'s lead over {other} is not significant at 95%"}
    return {"arm": leader, "reason": "significantly better than every other arm (paired by seed, 95%)"}


def flatten_metrics(metrics: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """{'val': {'loss': 1.2}} -> {'val.loss': 1.2}; numbers only, lists skipped."""
    flat: dict[str, float] = {}
    for key, value in metrics.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten_metrics(value, path + "."))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            flat[path] = float(value)
    return flat
