"""Canary memorization by copy count (the `canaries` metric), with example generations."""

from __future__ import annotations

import math
from html import escape
from typing import Any

import numpy as np

from corpuslab.report.page import MISSING, Page, fmt, table
from corpuslab.report.plots import figure, figure_axes, seed_dots, shared_legend
from corpuslab.report.sections.base import MetricSection, sections
from corpuslab.report.sections.overview import canary_share_text
from corpuslab.report.stats import mean_ci

EXAMPLES_PER_ARM = 3


@sections.register
class Canaries(MetricSection):
    name = "canaries"
    metric = "canaries"
    anchor = "canaries"
    title = "Canaries"
    order = 90

    def render(self, page: Page) -> str:
        if not any(r["metrics"].get("canaries", {}).get("by_copies") for n in page.names for r in page.replicates(n)):
            return ""
        candidates = page.report.get("config", {}).get("canaries", {}).get("num_candidates")
        caption = ("Canaries: random secrets inserted into the training data a given number of times. Exact: greedy "
                   "decoding from the prefix reproduces the secret. Exposure: log2(candidates + 1) − log2(rank of the "
                   "secret among random candidates); about 1.44 bits is chance"
                   + (f", {math.log2(candidates + 1):.2f} bits the maximum" if candidates else "")
                   + ". Bars: mean over seeds; black dots: each seed.")
        share = canary_share_text(page.report.get("corpus", {}))
        if share:
            caption += f" The canaries{share.replace(':', ' are', 1)}."
        return (f'<h2 id="canaries">Canary memorization by copy count</h2>\n'
                f"{figure(_plot_canaries(page, candidates), caption)}\n<h3>Example generations</h3>\n"
                f"{_examples(page)}")


def _examples(page: Page) -> str:
    header = ["arm", "seed", "canary", "copies", "secret", "greedy generation", "exact", "rank", "exposure"]
    rows = []
    for name in page.names:
        replicates = page.replicates(name)
        if not replicates:
            continue
        first = replicates[0]
        for example in first.get("canary_examples", [])[:EXAMPLES_PER_ARM]:
            rows.append([page.arm_label(name), str(first["seed"]), escape(str(example.get("id"))),
                         fmt(example.get("copies")), _generation(example.get("secret")),
                         _generation(example.get("generation")), "✓" if example.get("exact") else "✗",
                         f"{example.get('rank')} / {example.get('num_candidates')}", fmt(example.get("exposure"))])
    note = (f'<p class="note">The {EXAMPLES_PER_ARM} most-copied canaries of each arm&#39;s first seed; '
            "the full list is in each evaluation folder&#39;s canaries.json.</p>")
    return f'{table(header, rows, text_columns={2, 4, 5})}\n{note}'


def _generation(text: Any) -> str:
    if text is None:
        return MISSING
    text = str(text)
    if not text.strip():
        return f'<span class="muted">({len(text)} whitespace characters)</span>'
    return f'<code class="gen">{escape(text)}</code>'


def _by_copies(page: Page, name: str) -> dict[int, dict[str, dict[str, Any]]]:
    """{copies: {exact_rate: mean_ci + seeds, mean_exposure: mean_ci + seeds}} over the arm's seeds."""
    values: dict[int, dict[str, list[float]]] = {}
    for replicate in page.replicates(name):
        for row in replicate["metrics"].get("canaries", {}).get("by_copies", []):
            slot = values.setdefault(int(row["copies"]), {"exact_rate": [], "mean_exposure": []})
            for key in slot:
                if row.get(key) is not None:
                    slot[key].append(float(row[key]))
    return {copies: {key: {**mean_ci(v), "seeds": v} for key, v in slot.items()}
            for copies, slot in sorted(values.items())}


def _plot_canaries(page: Page, candidates: int | None):
    fig, axes = figure_axes(2, height=3.4)
    by_arm = {name: _by_copies(page, name) for name in page.names}
    copies = sorted({c for rows in by_arm.values() for c in rows})
    x = np.arange(len(copies))
    width = 0.8 / max(len(page.names), 1)
    panels = (("exact_rate", "extracted exactly (fraction)"), ("mean_exposure", "mean exposure (bits)"))
    for ax, (key, label) in zip(axes, panels):
        for i, name in enumerate(page.names):
            stats = [by_arm[name].get(c, {}).get(key, {"mean": None, "seeds": []}) for c in copies]
            means = np.array([s["mean"] if s["mean"] is not None else np.nan for s in stats])
            offsets = x + (i - (len(page.names) - 1) / 2) * width
            ax.bar(offsets, np.nan_to_num(means), width * 0.92, color=page.colors[name], label=name)
            seed_dots(ax, offsets, stats)
        ax.set_xticks(x, [f"{c} cop{'y' if c == 1 else 'ies'}" for c in copies])
        ax.set_ylabel(label)
        ax.grid(axis="x", visible=False)
    axes[0].set_ylim(0, 1.05)
    if all((by_arm[n].get(c, {}).get("exact_rate", {}).get("mean") or 0) == 0 for n in page.names for c in copies):
        axes[0].text(0.5, 0.5, "no canary extracted exactly\nby any arm or seed", transform=axes[0].transAxes,
                     ha="center", va="center", color="#5b6475", fontsize=10)
    if candidates:
        axes[1].axhline(math.log2(candidates + 1), color="#5b6475", linestyle="--", linewidth=0.8)
        axes[1].axhline(math.log2(math.e), color="#5b6475", linestyle=":", linewidth=0.8)
        axes[1].text(1.0, math.log2(candidates + 1), " max", transform=axes[1].get_yaxis_transform(),
                     va="center", ha="left", fontsize=8, color="#5b6475")
        axes[1].text(1.0, math.log2(math.e), " chance", transform=axes[1].get_yaxis_transform(),
                     va="center", ha="left", fontsize=8, color="#5b6475")
        axes[1].set_ylim(0, math.log2(candidates + 1) * 1.08)
    shared_legend(fig, axes[0])
    return fig
