"""The diversity-scaling numbers of a report: per K, test loss on seen and unseen categories, pooled over seeds.

Built from report.json alone (`diversity_summary(report)`), for the report's diversity section and for
anyone reading a finished report. An arm takes part when its recipe is `category_subset`; its curation
stats say which categories it trained on (`selected`) and which it did not (`unseen`).

Per replicate (one trained model): seen loss = the mean of the per-category test losses over its K
categories, unseen loss = the same over the other N - K (each category weighs the same, however many
test tokens it has; `categories` metric, split `test`, else `val`). Per K: mean and 95% t interval over the
distinct models of the arms with that K: replicates with the same categories, training seed and procedure
are the same model (with `k: all` every seed keeps every category, and two seeds may draw the same K
categories) and count once, so copies never narrow the interval. Curves: per K, the mean over replicates of the mean curve of its seen (unseen)
categories, from the `category_context` metric.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from corpuslab.report.stats import mean_ci, welch_difference

RECIPE = "category_subset"
CURVE_KEY = "_by_category_context"


def is_diversity_arm(arm: Mapping[str, Any]) -> bool:
    recipe = arm.get("recipe")
    name = recipe.get("name") if isinstance(recipe, Mapping) else recipe
    return name == RECIPE and "selected" in arm.get("curation", {})


def _category_losses(metrics: Mapping[str, Any]) -> tuple[str, dict[str, float]]:
    for split in ("test", "val"):
        by_category = metrics.get(f"{split}_by_category")
        if by_category:
            return split, {c: v["loss"] for c, v in by_category.items() if v.get("loss") is not None}
    return "", {}


def _mean(values: Sequence[float]) -> float | None:
    return float(np.mean(values)) if values else None


def _mean_curve(curves: Sequence[Sequence[float | None]]) -> list[float | None]:
    """Pointwise mean of curves of one length, over the curves that have a value at each point."""
    if not curves:
        return []
    out = []
    for point in zip(*curves):
        values = [v for v in point if v is not None]
        out.append(float(np.mean(values)) if values else None)
    return out


def replicate_rows(report: Mapping[str, Any], distinct: bool = True) -> list[dict[str, Any]]:
    """One row per distinct trained model of the diversity arms (every replicate of every arm with `distinct`
    false): arm, K, seed, seen/unseen/per-category loss, curves."""
    rows, seen_models = [], set()
    for name, arm in report.get("arms", {}).items():
        if not is_diversity_arm(arm):
            continue
        stats = arm["curation"]
        selected, unseen = list(stats["selected"]), list(stats["unseen"])
        for replicate in arm.get("replicates", []):
            # Same categories, training seed and procedure: the same model (training is deterministic), even
            # when two category seeds drew the same K categories; pooled once.
            procedure = json.dumps(replicate["training"].get("procedure"), sort_keys=True)
            model = (tuple(selected), replicate["seed"], procedure)
            if distinct and model in seen_models:
                continue
            seen_models.add(model)
            split, losses = _category_losses(replicate["metrics"])
            curves = (replicate["metrics"].get(f"{split}{CURVE_KEY}") or {}).get("categories", {})
            rows.append({
                "arm": name, "group": arm.get("group") or name, "k": stats["k"], "n": stats["n"],
                "seed": replicate["seed"], "split": split, "selected": selected, "unseen": unseen,
                "losses": losses, "epochs": replicate["training"]["epochs_seen"],
                "seen": _mean([losses[c] for c in selected if c in losses]),
                "unseen_loss": _mean([losses[c] for c in unseen if c in losses]),
                "all": _mean(list(losses.values())),
                "seen_curve": _mean_curve([curves[c] for c in selected if c in curves]),
                "unseen_curve": _mean_curve([curves[c] for c in unseen if c in curves]),
            })
    return rows


def diversity_summary(report: Mapping[str, Any]) -> dict[str, Any]:
    """{by_k: [{k, n, arms, models, epochs, seen, unseen, all, seen_curve, unseen_curve}], categories, split,
    rows, sentence}; empty when the report has no diversity arm."""
    rows = replicate_rows(report)
    if not rows:
        return {}
    by_k = []
    for k in sorted({r["k"] for r in rows}):
        members = [r for r in rows if r["k"] == k]
        by_k.append({
            "k": k, "n": members[0]["n"], "arms": sorted({r["arm"] for r in members}), "models": len(members),
            "epochs": mean_ci([r["epochs"] for r in members]),
            "seen": mean_ci([r["seen"] for r in members]),
            "unseen": mean_ci([r["unseen_loss"] for r in members]),
            "all": mean_ci([r["all"] for r in members]),
            "seen_values": [r["seen"] for r in members], "unseen_values": [r["unseen_loss"] for r in members],
            "seen_curve": _mean_curve([r["seen_curve"] for r in members if r["seen_curve"]]),
            "unseen_curve": _mean_curve([r["unseen_curve"] for r in members if r["unseen_curve"]]),
        })
    categories = sorted({c for r in rows for c in r["losses"]})
    summary = {"by_k": by_k, "categories": categories, "split": rows[0]["split"], "rows": rows}
    summary["sentence"] = sentence(summary)
    return summary


def _change(before: float, after: float) -> str:
    relative = (after - before) / before if before else 0.0
    if abs(relative) < 0.01:
        return f"stays at {after:.3f} (from {before:.3f}, {relative:+.1%})"
    return f"{'falls' if after < before else 'rises'} from {before:.3f} to {after:.3f} ({relative:+.1%})"


def _evidence(sample: Sequence[float | None], reference: Sequence[float | None]) -> str:
    difference = welch_difference(sample, reference)
    if difference["ci95"] is None:
        return "too few seeds for an interval"
    low, high = difference["ci95"]
    verdict = "excludes 0" if difference["significant"] else "includes 0"
    return f"95% interval of the difference [{low:+.3f}, {high:+.3f}] {verdict}"


def sentence(summary: Mapping[str, Any]) -> str:
    """What the grid shows, in words computed from the numbers: the seen and unseen loss from the smallest to
    the largest K (the largest K that leaves some category unseen, for the unseen loss), with evidence."""
    by_k = summary["by_k"]
    split = summary["split"]
    first, last = by_k[0], by_k[-1]
    parts = []
    if len(by_k) < 2:
        return f"Only K = {first['k']} was trained: the grid needs two values of K to show a trend."
    if first["seen"]["mean"] is not None and last["seen"]["mean"] is not None:
        parts.append(f"from K = {first['k']} to K = {last['k']} of {last['n']} categories, the {split} loss on the "
                     f"categories an arm trained on {_change(first['seen']['mean'], last['seen']['mean'])} nats per "
                     f"token ({_evidence(last['seen_values'], first['seen_values'])})")
    with_unseen = [entry for entry in by_k if entry["unseen"]["mean"] is not None]
    if len(with_unseen) >= 2:
        low, high = with_unseen[0], with_unseen[-1]
        parts.append(f"on the categories it did not train on it {_change(low['unseen']['mean'], high['unseen']['mean'])} "
                     f"from K = {low['k']} to K = {high['k']} "
                     f"({_evidence(high['unseen_values'], low['unseen_values'])})")
    gap = [(e["k"], e["unseen"]["mean"] - e["seen"]["mean"]) for e in with_unseen if e["seen"]["mean"] is not None]
    if gap:
        parts.append("the gap between unseen and seen categories is "
                     + ", ".join(f"{g:+.3f} at K = {k}" for k, g in gap))
    epochs = ", ".join(f"K = {e['k']}: {e['epochs']['mean']:.2f}" for e in by_k if e["epochs"]["mean"] is not None)
    text = "; ".join(parts)
    return (text[0].upper() + text[1:] + f". Under one token budget, smaller K repeats its data more "
            f"(epochs {epochs}).") if text else ""
