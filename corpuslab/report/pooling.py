"""Numbers across replicates: per arm (mean and interval over its seeds) and per group of arms (a grid's cells).

An arm's replicates are its training seeds. A group pools the replicates of every arm in it (arms of a
grid that differ in a knob the comparison averages over), and is compared with the reference group,
the first arm's, by `stats.difference_of_pairs` when the replicates pair up by seed and by
`stats.welch_difference` otherwise; which one is recorded next to every comparison.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from corpuslab.report.stats import best_arm, difference_of_pairs, flatten_metrics, mean_ci, welch_difference

PAIRED = "paired by seed"
UNPAIRED = "unpaired (Welch)"


def replicate_numbers(replicate: Mapping[str, Any]) -> dict[str, float]:
    """Every number of one replicate, flattened with dots: its metrics, and tokens and epochs seen.

    A metric entry that separates an `overall` summary from its breakdowns (`canaries`: overall, by_copies)
    is flattened from the overall part, so its headline keys are `canaries.exact_rate`, not
    `canaries.overall.exact_rate`."""
    numbers: dict[str, float] = {}
    for key, value in replicate["metrics"].items():
        if isinstance(value, dict) and isinstance(value.get("overall"), dict):
            numbers.update(flatten_metrics(value["overall"], f"{key}."))
        else:
            numbers.update(flatten_metrics({key: value}))
    training = replicate["training"]
    numbers["training.tokens_seen"] = float(training["tokens_seen"])
    numbers["training.epochs_seen"] = float(training["epochs_seen"])
    final_val = [c["val_loss"] for c in replicate.get("curve", []) if c.get("val_loss") is not None]
    if final_val:
        numbers["training.final_val_loss"] = float(final_val[-1])
    return numbers


def aggregate(replicates: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Mean and 95% interval across replicates of every numeric metric (and of tokens and epochs seen)."""
    per_replicate = [replicate_numbers(r) for r in replicates]
    keys = sorted({k for numbers in per_replicate for k in numbers})
    return {key: mean_ci([numbers.get(key) for numbers in per_replicate]) for key in keys}


def seed_values(arm: Mapping[str, Any], key: str) -> dict[int, float]:
    """{seed: value} of one aggregate key over an arm's replicates (those that have it)."""
    values = {r["seed"]: replicate_numbers(r).get(key) for r in arm.get("replicates", [])}
    return {seed: value for seed, value in values.items() if value is not None}


def significant_best(arms: Mapping[str, Mapping[str, Any]], key: str, lower_is_better: bool) -> dict[str, Any]:
    """{arm, reason}: the arm best on `key` when significantly better than every other (`stats.best_arm`)."""
    by_arm = {name: seed_values(arm, key) for name, arm in arms.items()}
    return best_arm({name: values for name, values in by_arm.items() if values}, lower_is_better)


def group_of(name: str, arm: Mapping[str, Any]) -> str:
    """The group an arm pools into: its `group`, or the arm itself."""
    return str(arm.get("group") or name)


def group_members(arms: Mapping[str, Mapping[str, Any]]) -> dict[str, list[str]]:
    """{group: its arms}, groups and arms in the order the arms come; an arm without `group` is its own group."""
    members: dict[str, list[str]] = {}
    for name, arm in arms.items():
        members.setdefault(group_of(name, arm), []).append(name)
    return members


def distinct_replicates(arms: Mapping[str, Mapping[str, Any]], names: Sequence[str]) -> list[Mapping[str, Any]]:
    """Every replicate of `names`, each trained model once: arms whose settings give the same stages (a
    category draw of `k: all` under three seeds) share one model, and counting it three times would pool
    three identical values into a zero-width interval."""
    seen: set[str] = set()
    out = []
    for name in names:
        for replicate in arms[name]["replicates"]:
            model = (replicate.get("artifacts") or {}).get("train")
            if model is not None and model in seen:
                continue
            if model is not None:
                seen.add(model)
            out.append(replicate)
    return out


def pool_groups(arms: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """{group: {arms, replicates, aggregate}}: the aggregate is over every distinct trained model of the
    group's arms (`distinct_replicates`)."""
    groups = {}
    for group, names in group_members(arms).items():
        pooled = distinct_replicates(arms, names)
        groups[group] = {"arms": names, "replicates": len(pooled), "aggregate": aggregate(pooled)}
    return groups


def compare_groups(arms: Mapping[str, Mapping[str, Any]], reference: str, keys: Sequence[str]) -> dict[str, Any]:
    """Each group minus the reference group on `keys`: paired by seed when every replicate of both groups
    has a partner of the same seed, Welch otherwise (`pairing` says which)."""
    members = group_members(arms)
    if reference not in members:
        return {}
    ref = _seeded_numbers(arms, members[reference])
    out: dict[str, Any] = {"reference": reference, "method": _method_doc(), "groups": {}}
    for group, names in members.items():
        if group == reference:
            continue
        mine = _seeded_numbers(arms, names)
        paired = Counter(seed for seed, _ in mine) == Counter(seed for seed, _ in ref)
        differences = {key: _difference(mine, ref, key, paired) for key in keys}
        out["groups"][group] = {"pairing": PAIRED if paired else UNPAIRED, "differences": differences}
    return out


def _seeded_numbers(arms: Mapping[str, Mapping[str, Any]], names: Sequence[str]) -> list[tuple[int, dict[str, float]]]:
    """(seed, numbers) of every replicate of `names`, by seed and, within a seed, in arm order."""
    pooled = [(r["seed"], replicate_numbers(r)) for r in distinct_replicates(arms, names)]
    return sorted(pooled, key=lambda pair: pair[0])  # stable: arm order within a seed


def _difference(mine: list[tuple[int, dict[str, float]]], ref: list[tuple[int, dict[str, float]]], key: str,
                paired: bool) -> dict[str, Any]:
    if paired:
        return difference_of_pairs([(a.get(key), b.get(key)) for (_, a), (_, b) in zip(mine, ref)])
    return welch_difference([n.get(key) for _, n in mine], [n.get(key) for _, n in ref])


def _method_doc() -> str:
    from corpuslab.report import stats

    return " ".join((stats.__doc__ or "").split())
