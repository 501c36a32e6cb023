"""What each arm's curation kept and dropped (the funnel), and how its duplicates were found (detection)."""

from __future__ import annotations

from html import escape
from typing import Any

import numpy as np

from corpuslab.report.page import Page, fmt, table
from corpuslab.report.plots import figure, figure_axes, shared_legend
from corpuslab.report.sections.base import ArmEntry, Column, Section, recipe_name, round_number, sections


def _stats(arm: ArmEntry) -> dict[str, Any]:
    return arm.get("curation", {})


def _dropped_by(reason: str):
    return lambda name, arm: _stats(arm).get("dropped_by_reason", {}).get(reason, 0)


def _truth(field: str):
    return lambda name, arm: round_number(_stats(arm).get("ground_truth", {}).get(field))


@sections.register
class Funnel(Section):
    """Per arm: documents (or windows) in, dropped per reason, kept; the tokens its training windows hold."""

    name = "curation"
    anchor = "curation"
    title = "Curation"
    order = 30
    columns = (
        Column("docs_in", 10, lambda name, arm: _stats(arm).get("input")),
        Column("dropped", 11, lambda name, arm: _stats(arm).get("dropped", 0)),
        Column("kept_tokens", 20, lambda name, arm: arm.get("packing", {}).get("tokens_in_windows")),
    )

    def render(self, page: Page) -> str:
        reasons = sorted({r for n in page.names for r in _stats(page.arms[n]).get("dropped_by_reason", {})})
        header = ["arm", "recipe", "level", "in"] + [f"dropped: {r.replace('_', ' ')}" for r in reasons]
        header += ["kept", "kept %", "tokens in training windows", "epochs seen"]
        rows = [_funnel_row(page, name, reasons) for name in page.names]
        caption = ("Counts are documents for doc-level arms and training windows for chunk-level arms. "
                   "Every arm trains on the same token budget, so an arm that keeps less sees its data more often.")
        plot = figure(_plot_funnel(page, reasons), "Where each arm&#39;s input went.")
        return (f'<h2 id="curation">Curation funnel</h2>\n{table(header, rows, text_columns={1, 2})}'
                f'\n<p class="note">{caption}</p>\n{plot}')


def _funnel_row(page: Page, name: str, reasons: list[str]) -> list[str]:
    arm = page.arms[name]
    stats, packing = _stats(arm), arm.get("packing", {})
    by_reason = stats.get("dropped_by_reason", {})
    total = stats.get("input") or 0
    kept = stats.get("kept", total - stats.get("dropped", 0))
    row = [page.arm_label(name), escape(str(recipe_name(arm))), escape(str(arm.get("level"))), fmt(total)]
    row += [fmt(by_reason.get(r, 0)) for r in reasons]
    row += [fmt(kept), f"{100 * kept / total:.1f}%" if total else "–", fmt(packing.get("tokens_in_windows")),
            fmt(arm["aggregate"].get("training.epochs_seen", {}).get("mean"))]
    return row


def _plot_funnel(page: Page, reasons: list[str]):
    fig, (ax,) = figure_axes(1, height=0.55 * len(page.names) + 1.3, width=9.0)
    names = page.names[::-1]  # first arm on top
    y = np.arange(len(names))
    left = np.zeros(len(names))
    kept = np.array([float(_stats(page.arms[n]).get("kept", 0)) for n in names])
    segments = [("kept", kept, "#4C9A6A")]
    greys = ["#C9CED8", "#9AA3B2", "#E3A18A", "#D9C27A", "#B59BC9", "#7FA7C9"]
    for i, reason in enumerate(reasons):
        counts = np.array([float(_stats(page.arms[n]).get("dropped_by_reason", {}).get(reason, 0)) for n in names])
        segments.append((f"dropped: {reason.replace('_', ' ')}", counts, greys[i % len(greys)]))
    for label, counts, color in segments:
        ax.barh(y, counts, left=left, color=color, label=label, height=0.6, edgecolor="white", linewidth=0.5)
        left += counts
    for yi, n, k in zip(y, names, kept):
        total = _stats(page.arms[n]).get("input") or 0
        if total:
            ax.text(k / 2, yi, f"{k:,.0f} kept ({100 * k / total:.0f}%)", ha="center", va="center", color="white",
                    fontsize=8.5, fontweight="bold")
    ax.set_yticks(y, names)
    ax.set_xlabel("documents (windows for chunk-level arms)")
    ax.set_xlim(0, max(left.max(), 1) * 1.02)
    ax.grid(axis="y", visible=False)
    shared_legend(fig, ax)
    return fig


@sections.register
class Detection(Section):
    """Dedup arms: removals scored against planted duplicates (synthetic corpus), LSH candidates, verification
    and the largest clusters, so a user can inspect what was found."""

    name = "detection"
    anchor = "detection"
    title = "Detection"
    order = 35
    # Earlier releases' summary.tsv places: dropped_exact/near after `dropped`, precision/recall last.
    columns = (
        Column("dropped_exact", 12, _dropped_by("exact_duplicate")),
        Column("dropped_near", 13, _dropped_by("near_duplicate")),
        Column("dup_precision", 90, _truth("precision")),
        Column("dup_recall", 91, _truth("recall")),
    )

    def applies(self, report: dict[str, Any]) -> bool:
        return any("ground_truth" in _stats(arm) or _stats(arm).get("engine")
                   for arm in report.get("arms", {}).values())

    def render(self, page: Page) -> str:
        parts = ['<h2 id="detection">Duplicate detection</h2>', _ground_truth(page), _engines(page)]
        return "\n".join(part for part in parts if part)


def _ground_truth(page: Page) -> str:
    names = [n for n in page.names if "ground_truth" in _stats(page.arms[n])]
    if not names:
        return ""
    rows = [[page.arm_label(n), escape(str(recipe_name(page.arms[n]))),
             _precision_cell(_stats(page.arms[n])),
             fmt(_stats(page.arms[n])["ground_truth"].get("recall"))] for n in names]
    return (f'{table(["arm", "recipe", "dup precision", "dup recall"], rows, text_columns={1})}\n'
            '<p class="note">Precision and recall score the removals against the duplicates planted in the synthetic '
            "corpus (recall counts planted duplicates above the similarity threshold).</p>")


def _precision_cell(stats: dict[str, Any]) -> str:
    """Precision of the removals, or why there is none (an arm that removed nothing has no precision)."""
    precision = stats["ground_truth"].get("precision")
    if precision is None and not stats.get("dropped"):
        return '<span class="muted">not available: nothing dropped</span>'
    return fmt(precision)


def _engines(page: Page) -> str:
    engines = {n: _stats(page.arms[n])["engine"] for n in page.names if _stats(page.arms[n]).get("engine")}
    if not engines:
        return ""
    header = ["arm", "method", "settings", "candidate pairs", "rejected by verification", "verified pairs",
              "clusters", "cluster sizes (size×count)"]
    rows = []
    for name, engine in engines.items():
        sizes = ", ".join(f"{size}×{count}" for size, count in sorted(engine.get("cluster_size_histogram", {}).items(),
                                                                      key=lambda kv: int(kv[0]))[:8])
        rows.append([page.arm_label(name), escape(str(engine.get("method", ""))), escape(str(engine.get("minhash", "–"))),
                     fmt(engine.get("candidate_pairs")), fmt(engine.get("candidates_rejected_by_verification")),
                     fmt(engine.get("verified_pairs")), fmt(engine.get("clusters")), escape(sizes)])
    parts = [table(header, rows, text_columns={1, 2, 7}),
             '<p class="note">LSH proposes candidate pairs; each is verified by the true Jaccard of its shingle sets, '
             "and only verified pairs join clusters. Each cluster keeps its earliest document.</p>"]
    for name, engine in engines.items():
        clusters = engine.get("largest_clusters", [])[:5]
        if not clusters:
            continue
        cluster_rows = [[escape(str(c.get("cluster_id"))), fmt(c.get("size")),
                         f'<span class="gen">{escape(str(c.get("excerpt", ""))[:160])}</span>'] for c in clusters]
        parts.append(f"<h3>Largest clusters: {page.arm_label(name)}</h3>\n"
                     f'{table(["kept document", "size", "its text (start)"], cluster_rows, text_columns={0, 2})}')
    return "\n".join(parts)
