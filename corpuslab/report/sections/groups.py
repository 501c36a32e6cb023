"""Groups of arms (a grid's cells): pooled replicates per group, and each group against the reference group.

Shown when some group pools more than one arm; with one arm per group it would repeat the arm tables.
"""

from __future__ import annotations

import math
from html import escape
from typing import Any

import numpy as np

from corpuslab.report.page import Page, difference_cell, mean_ci_cell, table
from corpuslab.report.plots import error_bars, figure, figure_axes, shared_legend
from corpuslab.report.pooling import replicate_numbers
from corpuslab.report.sections.base import Column, Section, compared_columns, sections

PANELS_PER_ROW = 3


@sections.register
class Groups(Section):
    name = "groups"
    anchor = "groups"
    title = "Groups"
    order = 55

    def applies(self, report: dict[str, Any]) -> bool:
        return any(len(group["arms"]) > 1 for group in (report.get("groups") or {}).values())

    def render(self, page: Page) -> str:
        groups: dict[str, Any] = page.report["groups"]
        columns = compared_columns(page.report)
        header = ["group", "arms", "replicates"] + [escape(c.label or c.name) for c in columns]
        rows = [[escape(group), escape(", ".join(entry["arms"])), str(entry["replicates"])]
                + [mean_ci_cell(entry["aggregate"].get(c.key), seeds=_replicate_values(page, entry["arms"], c.key))
                   for c in columns]
                for group, entry in groups.items()]
        parts = ['<h2 id="groups">Groups</h2>',
                 '<p class="lead">Arms that share a group pool their replicates: mean ± 95% interval over every '
                 "replicate of every arm in the group; below it, the range over those replicates.</p>",
                 table(header, rows, text_columns={1}),
                 _versus_reference(page, columns)]
        if columns:
            caption = ("Each group's mean with its 95% interval over the pooled replicates; small dots: each "
                       "replicate, coloured by its arm.")
            parts.append(figure(_plot_groups(page, columns), caption))
        return "\n".join(part for part in parts if part)


def _replicate_values(page: Page, arms: list[str], key: str) -> list[float]:
    """`key` of every replicate of `arms`: the spread behind a group's pooled mean."""
    values = [replicate_numbers(r).get(key) for arm in arms for r in page.replicates(arm)]
    return [v for v in values if v is not None]


def _versus_reference(page: Page, columns: list[Column]) -> str:
    comparison = page.report.get("group_comparison") or {}
    others = comparison.get("groups", {})
    if not others:
        return ""
    names = list(others)
    header = [f"group − {escape(str(comparison.get('reference')))}"] + [escape(n) for n in names]
    rows = [["pairing"] + [escape(others[n]["pairing"]) for n in names]]
    rows += [[escape(c.label or c.name)] + [difference_cell(others[n]["differences"].get(c.key)) for n in names]
             for c in columns]
    return (f"<h3>Against the reference group</h3>\n{table(header, rows)}\n"
            '<p class="note">Paired by seed when both groups hold the same seeds equally often, otherwise Welch&#39;s '
            "unpaired interval; coloured when the 95% interval excludes 0 (green: lower).</p>")


def _plot_groups(page: Page, columns: list[Column]):
    groups: dict[str, Any] = page.report["groups"]
    names = list(groups)
    n_rows = math.ceil(len(columns) / PANELS_PER_ROW)
    n_cols = min(len(columns), PANELS_PER_ROW)
    fig, axes = figure_axes(n_cols, height=3.0 * n_rows, rows=n_rows)
    x = np.arange(len(names))
    for ax, column in zip(axes, columns):
        stats = [groups[g]["aggregate"].get(column.key) or {"mean": None, "ci95": None} for g in names]
        means = np.array([s["mean"] if s["mean"] is not None else np.nan for s in stats])
        ax.errorbar(x, means, yerr=error_bars(stats, means), fmt="o", color="#1d2330", markersize=6, capsize=3,
                    linewidth=1.2)
        for i, group in enumerate(names):
            _replicate_dots(ax, page, groups[group]["arms"], column.key, x[i] + 0.18, labelled=ax is axes[0])
        ax.set_xticks(x, names)
        ax.set_xlim(-0.6, len(names) - 0.4)
        ax.set_title(column.label or column.name)
        ax.grid(axis="x", visible=False)
    for ax in axes[len(columns):]:
        ax.set_visible(False)
    shared_legend(fig, axes[0])
    return fig


def _replicate_dots(ax, page: Page, arms: list[str], key: str, x: float, labelled: bool) -> None:
    """One dot per replicate of the group's arms, in the arm's colour (named in the legend once)."""
    for arm in arms:
        values = [replicate_numbers(r).get(key) for r in page.replicates(arm)]
        values = [v for v in values if v is not None]
        if values:
            ax.scatter([x] * len(values), values, s=16, color=page.colors[arm], edgecolors="white", linewidths=0.5,
                       zorder=3, label=arm if labelled else None)
