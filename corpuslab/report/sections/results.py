"""The headline numbers (the `lm` metric's section), the comparison with the reference arm, training curves."""

from __future__ import annotations

from html import escape
from typing import Any

from corpuslab.report.page import Page, difference_cell, mean_ci_cell, seed_range, table
from corpuslab.report.plots import curve_points, figure, figure_axes, seed_band, seed_mean, shared_legend, tokens_formatter
from corpuslab.report.pooling import seed_values, significant_best
from corpuslab.report.sections.base import ArmEntry, Column, MetricSection, Section, compared_columns, mean_of, sections

# Rows of the headline table: (aggregate key, label, True when lower is better / None: no ranking).
HEADLINE = [
    ("val.loss", "val loss (nats/token)", True),
    ("val.bits_per_byte", "val bits per byte", True),
    ("val.perplexity", "val perplexity", True),
    ("test.loss", "test loss (nats/token)", True),
    ("test.bits_per_byte", "test bits per byte", True),
    ("canaries.exact_rate", "canaries extracted exactly", True),
    ("canaries.mean_exposure", "canary mean exposure (bits)", True),
    ("training.tokens_seen", "training tokens seen", None),
    ("training.epochs_seen", "epochs over the kept data", None),
]


@sections.register
class Metrics(MetricSection):
    """The headline numbers of every arm, mean ± interval over seeds, and every aggregated number."""

    name = "metrics"
    metric = "lm"
    anchor = "metrics"
    title = "Metrics"
    order = 40

    def applies(self, report: dict[str, Any]) -> bool:
        return bool(report.get("arms"))

    def render(self, page: Page) -> str:
        header = ["metric (mean ± 95% CI half-width over seeds)"] + [page.arm_label(n) for n in page.names]
        rows, unranked = [], []
        for key, label, lower_is_better in HEADLINE:
            stats = [page.aggregate(n, key) for n in page.names]
            if all(s is None for s in stats):
                continue
            best = significant_best(page.arms, key, lower_is_better)["arm"] if lower_is_better is not None else None
            if lower_is_better is not None and best is None and len(page.names) > 1:
                unranked.append(label)
            rows.append([escape(label)] + [mean_ci_cell(s, bold=(n == best), seeds=list(seed_values(page.arms[n], key).values()))
                                           for n, s in zip(page.names, stats)])
        keys = sorted({k for n in page.names for k in page.arms[n]["aggregate"]})
        full = [[escape(k)] + [mean_ci_cell(page.aggregate(n, k)) for n in page.names] for k in keys]
        note = ("Bold: an arm that is better than every other arm on that row with a paired difference (by seed) whose "
                "95% interval excludes 0; lower is better on every ranked row. The interval is Student t over seeds "
                "(none with one seed); below it, the range over seeds.")
        if unranked:
            note += f" No arm is marked best on {len(unranked)} of the ranked rows: no arm's lead there is significant"
            note += " (not tested: one seed per arm)." if all(len(page.replicates(n)) < 2 for n in page.names) else "."
        return ('<h2 id="metrics">Metrics</h2>\n'
                f"{table(header, rows)}\n"
                f'<p class="note">{escape(note)}</p>\n'
                f"<details><summary>Every aggregated number ({len(keys)})</summary>\n"
                f"{table(['key'] + [page.arm_label(n) for n in page.names], full)}</details>")


@sections.register
class Comparison(Section):
    """Each arm minus the reference arm, paired by seed, and the data-equivalent factor."""

    name = "comparison"
    anchor = "comparison"
    title = "vs reference"
    order = 50

    def applies(self, report: dict[str, Any]) -> bool:
        return bool((report.get("comparison") or {}).get("arms"))

    def render(self, page: Page) -> str:
        arms = page.comparison["arms"]
        names = [n for n in page.names if n in arms]
        labels = {c.key: c.label for c in compared_columns(page.report)}
        keys = list(dict.fromkeys(k for n in names for k in arms[n].get("differences", {})))
        header = [f"arm − {escape(str(page.reference))} (paired by seed)"] + [page.arm_label(n) for n in names]
        rows = [[escape(labels.get(k, k))] + [difference_cell(arms[n]["differences"].get(k)) + seed_range(
                    paired_differences(page, n, k)) for n in names] for k in keys]
        rows.append(["data-equivalent factor"] + [factor_cell(arms[n].get("data_equivalent_factor", {})) for n in names])
        return ('<h2 id="comparison">Comparison with the reference arm</h2>\n'
                f"{table(header, rows)}\n"
                '<p class="note"><span class="better">green</span> / <span class="worse">red</span>: the 95% interval of '
                "the difference excludes 0 (lower is better for every row); below, the range of the per-seed differences. "
                "A difference over fewer than 2 paired seeds is not tested, and says so. Data-equivalent factor: how many times the "
                "arm's training tokens the reference needs to reach the arm's final validation loss; above 1 the arm's "
                "data is worth more per token.</p>\n"
                f'<details><summary>Method</summary><p class="method">{escape(page.comparison.get("method", ""))}</p>'
                "</details>")


def paired_differences(page: Page, name: str, key: str) -> list[float]:
    """arm − reference on `key`, one per seed both have: the spread behind a mean difference."""
    arm, reference = seed_values(page.arms[name], key), seed_values(page.arms[page.reference], key)
    return [arm[seed] - reference[seed] for seed in sorted(arm) if seed in reference]


def factor_cell(factor: dict[str, Any]) -> str:
    if factor.get("mean") is None:
        reason = factor.get("unavailable") or "; ".join(dict.fromkeys(str(f.get("method")) for f in factor.get("per_seed", [])))
        return f'<span class="muted">not available: {escape(reason or "no seed pairs with the reference arm")}</span>'
    text = f"{factor['mean']:.3g}×"
    if factor.get("ci95"):
        low, high = factor["ci95"]
        text += f' <span class="ci">[{low:.3g}, {high:.3g}]</span>'
    methods = [str(f.get("method", "")).split(" (")[0] for f in factor.get("per_seed", [])]
    counts = {m: methods.count(m) for m in dict.fromkeys(methods)}
    how = ", ".join(f"{m} ×{c}" if c > 1 else m for m, c in counts.items())
    return f'{text}<br><span class="ci">{escape(how)}</span>' if how else text


def _tokens_seen(_name: str, arm: ArmEntry) -> Any:
    mean = arm.get("aggregate", {}).get("training.tokens_seen", {}).get("mean")
    return None if mean is None else int(mean)


@sections.register
class Curves(Section):
    """Training and validation loss against tokens, per arm (mean over seeds and each seed)."""

    name = "curves"
    anchor = "curves"
    title = "Loss curves"
    order = 60
    columns = (
        Column("train_tokens_seen", 21, _tokens_seen, key="training.tokens_seen", label="training tokens seen"),
        Column("epochs", 22, mean_of("training.epochs_seen"), key="training.epochs_seen",
               label="epochs over the kept data"),
    )

    def render(self, page: Page) -> str:
        if not any(r.get("curve") for n in page.names for r in page.replicates(n)):
            return ""
        caption = ("Training loss (mean over the steps since the previous point) and validation loss against training "
                   "tokens; thick: mean over seeds, thin: each seed, shaded: the range (min–max) over seeds. Right: each "
                   "arm's mean validation loss minus the reference arm's, which shows differences the absolute curves "
                   "hide; shaded: the range over seeds of the difference, paired by seed.")
        return f'<h2 id="curves">Loss curves</h2>\n{figure(_plot_curves(page), caption)}'


def _plot_curves(page: Page):
    fig, axes = figure_axes(3, height=3.4)
    for ax, field, title in zip(axes, ("loss", "val_loss"), ("training loss", "validation loss")):
        for name in page.names:
            curves = [c for c in (curve_points(r, field) for r in page.replicates(name)) if c]
            if not curves:
                continue
            color = page.colors[name]
            if len(curves) > 1:
                for curve in curves:
                    ax.plot(*zip(*curve), color=color, alpha=0.45, linewidth=0.8)
                band_x, low, high = seed_band(curves)
                if len(band_x):
                    ax.fill_between(band_x, low, high, color=color, alpha=0.18, linewidth=0)
            xs, ys = seed_mean(curves)
            ax.plot(xs, ys, color=color, linewidth=2.0, label=name, marker="o" if len(xs) < 12 else None,
                    markersize=3)
        ax.set_title(title)
        ax.set_xlabel("training tokens")
        ax.set_ylabel("nats per token")
        ax.xaxis.set_major_formatter(tokens_formatter())
    _plot_val_gap(page, axes[2])
    shared_legend(fig, axes[0])
    return fig


def _plot_val_gap(page: Page, ax) -> None:
    """Each arm's mean validation curve minus the reference's, where both have a point: arms whose curves
    overlap on the absolute plot come apart here."""
    def mean_val(name: str) -> dict[float, float]:
        curves = [c for c in (curve_points(r, "val_loss") for r in page.replicates(name)) if c]
        return dict(zip(*seed_mean(curves))) if curves else {}

    def by_seed(name: str) -> dict[int, dict[float, float]]:
        return {r["seed"]: dict(curve_points(r, "val_loss")) for r in page.replicates(name)}

    reference = mean_val(page.reference) if page.reference in page.arms else {}
    reference_seeds = by_seed(page.reference) if page.reference in page.arms else {}
    for name in page.names:
        arm = mean_val(name)
        xs = sorted(set(arm) & set(reference))
        if xs:
            ax.plot(xs, [arm[x] - reference[x] for x in xs], color=page.colors[name], linewidth=2.0,
                    marker="o" if len(xs) < 12 else None, markersize=3)
        paired = [[(x, curve[x] - reference_seeds[seed][x]) for x in sorted(curve) if x in reference_seeds[seed]]
                  for seed, curve in by_seed(name).items() if seed in reference_seeds and name != page.reference]
        paired = [c for c in paired if c]
        if len(paired) > 1:
            band_x, low, high = seed_band(paired)
            if len(band_x):
                ax.fill_between(band_x, low, high, color=page.colors[name], alpha=0.18, linewidth=0)
    ax.axhline(0, color="#5b6475", linewidth=0.8)
    ax.set_title(f"validation loss − {page.reference}")
    ax.set_xlabel("training tokens")
    ax.set_ylabel("nats per token (below 0: better)")
    ax.xaxis.set_major_formatter(tokens_formatter())

