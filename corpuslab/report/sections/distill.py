"""Corpus distillation (the `minipile` and `semdedup` arms): how much of the full corpus's quality each
distilled subset keeps, whether it beats the random subset of the same size, and the clusters it was
drawn from, as cards a person can scan to choose exclusions.

R = (L_untrained - L_subset) / (L_untrained - L_full), the share of the full-data arm's val-loss improvement
the subset keeps, per seed (paired with the full arm's replicate of the same seed), mean and 95% interval
over seeds. L_untrained is ln(vocabulary size), the loss of a uniform next-token guess, which a freshly
initialised model's loss is within a few percent of (corpuslab does not evaluate step 0).
"""

from __future__ import annotations

import math
from html import escape
from typing import Any

import numpy as np

from corpuslab.report.page import Page, difference_cell, fmt, mean_ci_cell, missing, table
from corpuslab.report.plots import figure, figure_axes
from corpuslab.report.pooling import replicate_numbers
from corpuslab.report.sections.base import ArmEntry, Column, Section, recipe_name, round_number, sections
from corpuslab.report.stats import mean_ci, paired_difference

LOSS = "val.loss"


def _curation(arm: ArmEntry) -> dict[str, Any]:
    return arm.get("curation", {})


def _config(arm: ArmEntry) -> dict[str, Any]:
    """The distillation recipe's settings (sampler, target, exclusions; eps, keep), as its stats record them."""
    return _curation(arm).get("settings", {})


def _kept_share(arm: ArmEntry) -> float | None:
    stats = _curation(arm)
    return stats["kept"] / stats["input"] if stats.get("input") else None


def _per_seed(arm: ArmEntry, key: str = LOSS) -> dict[int, float]:
    out = {}
    for replicate in arm.get("replicates", []):
        value = replicate_numbers(replicate).get(key)
        if value is not None:
            out[int(replicate["seed"])] = value
    return out


def full_arm(report: dict[str, Any]) -> str | None:
    """The full-data arm: the first arm that keeps everything (recipe `none`)."""
    return next((n for n, a in report.get("arms", {}).items() if recipe_name(a) == "none"), None)


def random_arm(report: dict[str, Any]) -> str | None:
    return next((n for n, a in report.get("arms", {}).items()
                 if recipe_name(a) == "minipile" and _config(a).get("sampler") == "random"), None)


def retained(report: dict[str, Any], name: str, key: str = LOSS) -> dict[str, Any]:
    """R per seed against the full arm, then mean and 95% interval over seeds."""
    arms, full = report["arms"], full_arm(report)
    vocab = report.get("corpus", {}).get("tokens", {}).get("vocab_size")
    if full is None or not vocab:
        return mean_ci([])
    untrained = math.log(vocab)
    mine, reference = _per_seed(arms[name], key), _per_seed(arms[full], key)
    values = [(untrained - mine[s]) / (untrained - reference[s]) for s in sorted(set(mine) & set(reference))
              if untrained - reference[s] > 0]
    return mean_ci(values)


def _token_share(report: dict[str, Any], name: str) -> float | None:
    full = full_arm(report)
    if full is None:
        return None
    mine = report["arms"][name].get("packing", {}).get("tokens_kept")
    total = report["arms"][full].get("packing", {}).get("tokens_kept")
    return mine / total if mine is not None and total else None


def _is_distilled(arm: ArmEntry) -> bool:
    return "clusters" in _curation(arm)


@sections.register
class Distillation(Section):
    """Per arm: share of documents and tokens kept, R, val loss, paired differences against the full and
    random arms; quality against share kept; cluster cards; junk removal against ground truth."""

    name = "distillation"
    anchor = "distillation"
    title = "Distillation"
    order = 35
    columns = (
        Column("docs_kept_share", 12, lambda name, arm: round_number(_kept_share(arm))),
    )

    def applies(self, report: dict[str, Any]) -> bool:
        return any(_is_distilled(a) for a in report.get("arms", {}).values())

    def render(self, page: Page) -> str:
        parts = [f'<h2 id="{self.anchor}">Distillation: quality kept per share of data</h2>', self._table(page),
                 self._plot(page), self._by_category(page), self._junk(page), self._cards(page)]
        return "\n".join(p for p in parts if p)

    def _table(self, page: Page) -> str:
        report, full, rand = page.report, full_arm(page.report), random_arm(page.report)
        header = ["arm", "recipe", "docs kept", "tokens kept", "val loss", "R (quality kept)"]
        header += [f"val loss − {escape(full)}" if full else "", f"val loss − {escape(rand)}" if rand else ""]
        rows = []
        for name in page.names:
            arm = page.arms[name]
            share, tokens = _kept_share(arm), _token_share(report, name)
            row = [page.arm_label(name), escape(_describe(arm)), _percent(share), _percent(tokens),
                   mean_ci_cell(page.aggregate(name, LOSS)), mean_ci_cell(retained(report, name))]
            for ref in (full, rand):
                row.append(_versus(arm, page.arms[ref]) if ref and ref != name else "–")
            rows.append(row)
        header = [h for h in header if h]
        rows = [r[: len(header)] for r in rows]
        note = ("R = (L_untrained − L_subset) / (L_untrained − L_full) on val loss, paired by seed with the full-data arm; "
                "L_untrained = ln(vocabulary size). Differences are paired by seed, mean [95% interval]; coloured when "
                "the interval excludes 0 (green: lower loss than the reference).")
        return f'<div class="scroll">{table(header, rows, text_columns={1})}</div>\n<p class="note">{escape(note)}</p>'

    def _plot(self, page: Page) -> str:
        report = page.report
        points = [(n, _kept_share(page.arms[n]), retained(report, n)) for n in page.names]
        points = [(n, s, r) for n, s, r in points if s is not None and r.get("mean") is not None]
        if not points:
            return ""
        fig, (ax,) = figure_axes(1, height=3.2, width=6.5)
        for name, share, r in points:
            low, high = r["ci95"] if r.get("ci95") else (r["mean"], r["mean"])
            ax.errorbar([100 * share], [r["mean"]], yerr=[[r["mean"] - low], [high - r["mean"]]], fmt="o", capsize=3)
            ax.annotate(name, (100 * share, r["mean"]), textcoords="offset points", xytext=(5, 4), fontsize=8)
        ax.set_xlabel("documents kept (%)")
        ax.set_ylabel("R: share of full-data improvement kept")
        ax.axhline(1.0, color="#999", linewidth=0.8, linestyle="--")
        return figure(fig, "Quality kept against share of data kept (mean and 95% interval over seeds).")

    def _by_category(self, page: Page) -> str:
        """R per category of the val split (the `categories` metric's per-category val loss)."""
        prefix = "val_by_category."
        categories = sorted({k[len(prefix):-len(".loss")] for n in page.names for k in page.arms[n].get("aggregate", {})
                             if k.startswith(prefix) and k.endswith(".loss")})
        if not categories:
            return ""
        rows = [[page.arm_label(n)] + [mean_ci_cell(retained(page.report, n, f"{prefix}{c}.loss")) for c in categories]
                for n in page.names]
        return ("<h3>R per category (val)</h3>\n" + table(["arm", *map(escape, categories)], rows)
                + '\n<p class="note">The share of the full-data arm&#39;s improvement kept on each category&#39;s val documents, '
                "mean ± 95% interval over seeds.</p>")

    def _junk(self, page: Page) -> str:
        names = [n for n in page.names if "junk_removal" in _curation(page.arms[n])]
        if not names:
            return ""
        kinds = sorted({kind for n in names for kind in _curation(page.arms[n])["junk_removal"].get("by_kind", {})})
        rows = []
        for n in names:
            junk = _curation(page.arms[n])["junk_removal"]
            by_kind = junk.get("by_kind", {})
            rows.append([page.arm_label(n), fmt(junk["junk_documents"]), fmt(junk["excluded_documents"]),
                         fmt(junk.get("excluded_without_truth", 0)),
                         fmt(junk.get("precision")), fmt(junk.get("recall"))]
                        + [fmt(by_kind[k]["recall"]) if k in by_kind else missing("none of this kind") for k in kinds])
        header = ["arm", "junk documents (truth)", "documents excluded", "excluded without truth", "precision", "recall",
                  *(f"recall: {escape(k.removeprefix('junk_'))}" for k in kinds)]
        return ("<h3>Cluster exclusion against ground truth</h3>\n" + table(header, rows)
                + '\n<p class="note">Junk: the synthetic corpus&#39;s boilerplate documents and, when its <code>junk</code> knob '
                "is on, its navigation-bar pages, product-specification lists, entity lists and near-duplicate farms: what a "
                "person would exclude. Precision: share of the excluded documents that are junk; recall: share of the junk "
                "excluded (per kind in the last columns). Documents the experiment adds (canaries) have no ground truth: "
                "they are counted apart, not in precision.</p>")

    def _cards(self, page: Page) -> str:
        distilled = [n for n in page.names if _is_distilled(page.arms[n])]
        if not distilled:
            return ""
        first = _curation(page.arms[distilled[0]])
        clustering = first.get("clustering", {})
        excluded_by: dict[int, list[str]] = {}
        for n in distilled:
            for c in _curation(page.arms[n])["clusters"]:
                if c.get("excluded"):
                    excluded_by.setdefault(c["cluster"], []).append(f"{n} ({c['excluded']})")
        purity = clustering.get("purity")
        head = (f"<h3>Clusters ({clustering.get('k')}, from {escape(str(clustering.get('cluster')))})</h3>\n"
                + (f'<p class="note">Purity against the corpus categories {purity:.3f}, NMI {clustering.get("nmi"):.3f}. '
                   if purity is not None else '<p class="note">')
                + "Run <code>corpuslab clusters</code> to print these cards in the terminal.</p>")
        cards = [_card(c, excluded_by.get(c["cluster"], [])) for c in first["clusters"]]
        return head + '\n<div class="scroll">' + "\n".join(cards) + "</div>"


def _card(c: dict[str, Any], excluded: list[str]) -> str:
    cats = ", ".join(f"{escape(str(k))} {v}" for k, v in list(c.get("categories", {}).items())[:4])
    flag = f' <b>excluded by {escape(", ".join(excluded))}</b>' if excluded else ""
    docs = "".join(f"<li><i>{label} {d['distance']:.3f}</i> {escape((d.get('text') or '')[:200])}</li>"
                   for label, group in (("closest", c["closest"]), ("farthest", c["farthest"])) for d in group)
    return (f'<details><summary>cluster {c["cluster"]}: {c["total_examples"]} docs, mean distance '
            f'{c["average_distance"]:.3f}, duplicate rate {c["duplicate_rate"]:.2f} — {escape(", ".join(c.get("top_terms", [])))}'
            f'{flag}</summary><p>categories: {cats or "–"}</p><ul>{docs}</ul></details>')


def _describe(arm: ArmEntry) -> str:
    name, cfg = recipe_name(arm), _config(arm)
    if name == "minipile" and cfg.get("sampler") == "random":
        size = f"as many as {cfg['match']}" if cfg.get("match") else str(cfg.get("target"))
        return f"minipile random ({size}, from the whole corpus)"
    if name == "minipile":
        extra = f", excluding {cfg['exclude']}" if cfg.get("exclude") else ""
        return f"minipile {cfg.get('sampler')} {cfg.get('target')}{extra}"
    if name == "semdedup":
        return f"semdedup eps {cfg.get('eps')} ({cfg.get('keep')})"
    return str(name)


def _versus(arm: ArmEntry, reference: ArmEntry) -> str:
    return difference_cell(paired_difference(_per_seed(arm), _per_seed(reference)))


def _percent(share: float | None) -> str:
    return f"{100 * share:.1f}%" if share is not None and not np.isnan(share) else "–"
