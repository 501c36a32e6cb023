"""Category-diversity scaling (`category_subset` arms): loss against K, split seen / unseen, a heatmap of arm x
category, in-context curves per K (with a pretrained baseline when one was scored), and the sentence the
numbers support. The numbers come from `report.diversity`."""

from __future__ import annotations

from html import escape
from typing import Any

import numpy as np

from corpuslab.report.diversity import CURVE_KEY, diversity_summary, is_diversity_arm, replicate_rows
from corpuslab.report.page import Page, mean_ci_cell, table
from corpuslab.report.plots import error_bars, figure, figure_axes, plain_formatter, shared_legend
from corpuslab.report.sections.base import Column, Section, round_number, sections
from corpuslab.report.sections.breakdowns import doubling_bins

K_COLORS = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"]


def _arm_mean(kind: str):
    def read(name: str, arm: dict[str, Any]) -> Any:
        if not is_diversity_arm(arm):
            return None
        values = [r[kind] for r in replicate_rows({"arms": {name: arm}}) if r[kind] is not None]
        return round_number(float(np.mean(values))) if values else None

    return read


@sections.register
class Diversity(Section):
    name = "diversity"
    anchor = "diversity"
    title = "Diversity"
    order = 54
    columns = (Column("seen_loss", 58, _arm_mean("seen")), Column("unseen_loss", 59, _arm_mean("unseen_loss")))

    def applies(self, report: dict[str, Any]) -> bool:
        return any(is_diversity_arm(arm) for arm in report.get("arms", {}).values())

    def render(self, page: Page) -> str:
        summary = diversity_summary(page.report)
        if not summary:
            return ""
        split = summary["split"]
        parts = [f'<h2 id="diversity">Category diversity: {split} loss against K</h2>',
                 f'<p class="lead">{escape(summary["sentence"])}</p>', _table(summary)]
        parts.append(figure(_plot_loss_vs_k(summary),
                            f"{split.capitalize()} loss (nats per token; each category weighs the same) of the "
                            "categories each arm trained on (seen) and of the others (unseen), mean and 95% interval "
                            "over seeds; small dots: each trained model."))
        parts.append(figure(_plot_heatmap(summary, replicate_rows(page.report, distinct=False)),
                            f"{split.capitalize()} loss of each arm (row) on each category (column), mean over its "
                            "training seeds; outlined in orange: the categories the arm trained on."))
        baselines = _baseline_curves(page.report, split)
        curves = [e for e in summary["by_k"] if e["seen_curve"] or e["unseen_curve"]]
        if curves:
            note = (" Dashed black: " + ", ".join(escape(n) for n in baselines) + ", scored with its own tokenizer "
                    "(`corpuslab evaluate --checkpoint`): compare shapes, and levels only when the tokenizers "
                    "match.") if baselines else ""
            parts.append(figure(_plot_curves(curves, baselines),
                                f"In-context curves: mean {split} loss of a token by its position in its document "
                                "(how many of the document's tokens the model sees before it, + 1; `category_context` "
                                f"metric), per K, seen and unseen categories apart; pooled in doubling bins.{note}"))
        else:
            parts.append('<p class="note">No in-context curves: add <code>category_context</code> to '
                         "<code>evaluation.metrics</code>.</p>")
        return "\n".join(parts)


def _table(summary: dict[str, Any]) -> str:
    header = ["K", "arms", "models", "epochs seen", "seen loss", "unseen loss", "all categories"]
    rows = [[f"{e['k']} of {e['n']}", escape(", ".join(e["arms"])), str(e["models"]), mean_ci_cell(e["epochs"]),
             mean_ci_cell(e["seen"]), mean_ci_cell(e["unseen"]), mean_ci_cell(e["all"])] for e in summary["by_k"]]
    note = ('<p class="note">Every arm trains for the same token budget; an arm whose categories hold fewer tokens '
            "repeats them (epochs seen). Models: distinct trained models pooled (arms that keep every category "
            "share one). Mean ± 95% interval half-width over them.</p>")
    return f'<div class="scroll">{table(header, rows, text_columns={1})}</div>\n{note}'


def _plot_loss_vs_k(summary: dict[str, Any]):
    fig, (ax,) = figure_axes(1, height=3.4, width=7.5)
    by_k = summary["by_k"]
    ks = np.array([e["k"] for e in by_k], dtype=float)
    for kind, label, color, shift in (("seen", "seen categories", "#0072B2", -0.04),
                                      ("unseen", "unseen categories", "#D55E00", 0.04)):
        stats = [e[kind] for e in by_k]
        means = np.array([s["mean"] if s["mean"] is not None else np.nan for s in stats])
        xs = ks * (1 + shift)
        ax.errorbar(xs, means, yerr=error_bars(stats, means), fmt="o-", color=color, label=label, capsize=3,
                    markersize=6, linewidth=1.4)
        dots = [(x, v) for x, e in zip(xs, by_k) for v in e[f"{kind}_values"] if v is not None]
        if dots:
            ax.scatter(*zip(*dots), s=14, color=color, alpha=0.5, edgecolors="white", linewidths=0.5, zorder=3)
    ax.set_xscale("log", base=2)
    ax.set_xticks(ks, [str(int(k)) for k in ks])
    ax.xaxis.set_minor_locator(_no_ticks())
    ax.set_xlabel("K: categories trained on")
    ax.set_ylabel(f"{summary['split']} loss (nats per token)")
    shared_legend(fig, ax)
    return fig


def _no_ticks():
    from matplotlib.ticker import NullLocator

    return NullLocator()


def _plot_heatmap(summary: dict[str, Any], every_replicate: list[dict[str, Any]]):
    from matplotlib.patches import Rectangle

    rows = sorted(every_replicate, key=lambda r: r["k"])  # arms of one K stay in config order
    arms = list(dict.fromkeys(r["arm"] for r in rows))
    categories = summary["categories"]
    grid = np.full((len(arms), len(categories)), np.nan)
    for i, arm in enumerate(arms):
        for j, category in enumerate(categories):
            values = [r["losses"][category] for r in rows if r["arm"] == arm and category in r["losses"]]
            grid[i, j] = np.mean(values) if values else np.nan
    fig, (ax,) = figure_axes(1, height=1.2 + 0.32 * len(arms), width=min(3.5 + 0.9 * len(categories), 11))
    ax.grid(False)
    image = ax.imshow(grid, aspect="auto", cmap="viridis_r")
    fig.colorbar(image, ax=ax, label="loss (nats per token)")
    selected = {r["arm"]: set(r["selected"]) for r in rows}
    for i, arm in enumerate(arms):
        for j, category in enumerate(categories):
            if category in selected[arm]:
                ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="#D55E00", linewidth=2.2))
            if np.isfinite(grid[i, j]):
                ax.text(j, i, f"{grid[i, j]:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if grid[i, j] > np.nanmean(grid) else "black")
    ax.set_xticks(range(len(categories)), categories, rotation=30, ha="right", rotation_mode="anchor")
    ax.set_yticks(range(len(arms)), arms)
    return fig


def _baseline_curves(report: dict[str, Any], split: str) -> dict[str, list[float | None]]:
    """The all-category curve of each checkpoint scored with `evaluate --checkpoint` (report.json `baselines`)."""
    out = {}
    for name, metrics in (report.get("baselines") or {}).items():
        curve = (metrics.get(f"{split}{CURVE_KEY}") or {}).get("all")
        if curve:
            out[name] = curve
    return out


def _binned(curve: list[float | None]) -> tuple[np.ndarray, np.ndarray]:
    points = [(d + 1.0, v) for d, v in enumerate(curve) if v is not None]
    if not points:
        return np.array([]), np.array([])
    xs, ys = (np.array(a, dtype=float) for a in zip(*points))
    return doubling_bins(xs, ys)


def _plot_curves(by_k: list[dict[str, Any]], baselines: dict[str, list[float | None]]):
    fig, axes = figure_axes(2, height=3.4, width=10.5)
    for ax, kind, title in ((axes[0], "seen_curve", "seen categories"), (axes[1], "unseen_curve", "unseen categories")):
        for index, entry in enumerate(by_k):
            if entry[kind]:
                ax.plot(*_binned(entry[kind]), marker="o", markersize=3.5, linewidth=1.6,
                        color=K_COLORS[index % len(K_COLORS)], label=f"K = {entry['k']}")
        for name, curve in baselines.items():
            ax.plot(*_binned(curve), color="#000000", linestyle="--", linewidth=1.4, label=name)
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_formatter(plain_formatter())
        ax.set_title(title)
        ax.set_xlabel("position in the document (tokens of it in view + 1)")
    axes[0].set_ylabel("loss (nats per token)")
    handles = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    if handles:
        fig.legend(list(handles.values()), list(handles), loc="outside upper center", ncol=min(len(handles), 8),
                   frameon=False)
    return fig

