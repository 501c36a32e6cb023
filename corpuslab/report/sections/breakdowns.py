"""Where the validation loss comes from: by position in the window (`in_context`), by category (`categories`)."""

from __future__ import annotations

from html import escape
from typing import Any

import numpy as np

from corpuslab.report.page import Page, fmt, mean_ci_cell, table
from corpuslab.report.plots import dot_plot, figure, figure_axes, plain_formatter, seed_mean, shared_legend
from corpuslab.report.pooling import seed_values, significant_best
from corpuslab.report.sections.base import MetricSection, sections

CATEGORY_PREFIX = "val_by_category."


@sections.register
class InContext(MetricSection):
    """The in-context learning curve; explains its absence for evaluations that predate it."""

    name = "in_context"
    metric = "in_context"
    anchor = "in-context"
    title = "In-context"
    order = 70

    def applies(self, report: dict[str, Any]) -> bool:
        return bool(report.get("arms"))

    def render(self, page: Page) -> str:
        if not any(r["metrics"].get("val_by_position") for n in page.names for r in page.replicates(n)):
            return ('<h2 id="in-context">In-context learning curve</h2>\n<p class="note">Not in this report: its '
                    "evaluations predate the per-position loss (metrics.val_by_position).</p>")
        caption = ("Validation loss of a token by how many tokens of context precede it within its evaluation window "
                   "(log scale); a drop from left to right is what the model gains from context. Mean over seeds; thin: "
                   "each position; thick: positions pooled in doubling bins (1, 2, 3–4, 5–8, …).")
        return f'<h2 id="in-context">In-context learning curve</h2>\n{figure(_plot_in_context(page), caption)}'


def _plot_in_context(page: Page):
    """Thin: the mean loss at every position (noisy: each holds 1/context of the tokens). Thick: the
    positions pooled in doubling bins (1, 2, 3-4, 5-8, ...), which is what the eye needs on a log axis."""
    fig, (ax,) = figure_axes(1, height=3.6, width=8.5)
    for name in page.names:
        curves = [r["metrics"].get("val_by_position") for r in page.replicates(name)]
        curves = [[(p + 1.0, v) for p, v in enumerate(c) if v is not None] for c in curves if c]
        if not curves:
            continue
        xs, ys = seed_mean(curves)
        ax.plot(xs, ys, color=page.colors[name], alpha=0.35, linewidth=0.8)
        ax.plot(*doubling_bins(xs, ys), color=page.colors[name], linewidth=2.0, marker="o", markersize=4, label=name)
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_formatter(plain_formatter())
    ax.set_xlabel("tokens of context (position in the window + 1)")
    ax.set_ylabel("val loss (nats per token)")
    shared_legend(fig, ax)
    return fig


def doubling_bins(xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean of ys over x in (2^(k-1), 2^k], placed at the bin's geometric centre."""
    bins = np.ceil(np.log2(xs)).astype(int)
    centres, means = [], []
    for k in np.unique(bins):
        in_bin = bins == k
        centres.append(float(np.exp(np.log(xs[in_bin]).mean())))
        means.append(float(ys[in_bin].mean()))
    return np.array(centres), np.array(means)


@sections.register
class Categories(MetricSection):
    """Validation loss of each category's documents per arm: table and dot plot."""

    name = "categories"
    metric = "categories"
    anchor = "categories"
    title = "Categories"
    order = 80

    def applies(self, report: dict[str, Any]) -> bool:
        return any(k.startswith(CATEGORY_PREFIX) for arm in report.get("arms", {}).values()
                   for k in arm.get("aggregate", {}))

    def render(self, page: Page) -> str:
        categories = category_names(page)
        if not categories:
            return ""
        header = ["category"] + [page.arm_label(n) for n in page.names] + ["val tokens"]
        rows = []
        for category in categories:
            key = f"{CATEGORY_PREFIX}{category}.loss"
            stats = [page.aggregate(n, key) for n in page.names]
            best = significant_best(page.arms, key, lower_is_better=True)["arm"]
            tokens = next((page.aggregate(n, f"{CATEGORY_PREFIX}{category}.tokens")["mean"] for n in page.names
                           if page.aggregate(n, f"{CATEGORY_PREFIX}{category}.tokens")), None)
            rows.append([escape(category)] + [mean_ci_cell(s, bold=(n == best), seeds=list(seed_values(page.arms[n], key).values()))
                                              for n, s in zip(page.names, stats)]
                        + [fmt(tokens)])
        caption = ("Validation loss (nats per token) of each category's documents, mean and 95% interval over seeds, "
                   "and the range over seeds; bold: an arm significantly better than every other (paired by seed). "
                   "Small categories have few tokens: read their differences with care.")
        return (f'<h2 id="categories">Validation loss by category</h2>\n{table(header, rows)}\n'
                f'{figure(_plot_categories(page, categories), caption)}')


def category_names(page: Page) -> list[str]:
    return sorted({k[len(CATEGORY_PREFIX):-len(".loss")] for n in page.names for k in page.arms[n]["aggregate"]
                   if k.startswith(CATEGORY_PREFIX) and k.endswith(".loss")})


def _category_stat(page: Page, name: str, category: str) -> dict[str, Any] | None:
    stat = page.aggregate(name, f"{CATEGORY_PREFIX}{category}.loss")
    if stat is None:
        return None
    seeds = [r["metrics"].get("val_by_category", {}).get(category, {}).get("loss") for r in page.replicates(name)]
    return {**stat, "seeds": [v for v in seeds if v is not None]}


def _plot_categories(page: Page, categories: list[str]):
    fig, (ax,) = figure_axes(1, height=3.4, width=min(2.0 + 1.1 * len(categories) * max(len(page.names), 2) / 2, 11))
    dot_plot(ax, page, categories, lambda name, category: _category_stat(page, name, category))
    ax.set_ylabel("val loss (nats per token)")
    shared_legend(fig, ax)
    return fig
