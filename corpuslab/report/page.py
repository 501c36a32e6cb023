"""The HTML page's skeleton: CSS, the `Page` every section reads, tables and number formatting.

Nothing here knows what a section shows; sections (`report.sections`) fill the page in their order.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Sequence
from html import escape
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from corpuslab.report.sections.base import Section

# Colour-blind-safe (Okabe-Ito, black last); an arm keeps its colour in every plot and table.
ARM_COLORS = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"]

CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; color: #1d2330;
       background: #fff; margin: 0; }
main { max-width: 1180px; margin: 0 auto; padding: 24px 32px 64px; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 19px; margin: 40px 0 8px; padding-bottom: 4px; border-bottom: 1px solid #dde1e8; }
h3 { font-size: 15px; margin: 20px 0 6px; }
p.lead { color: #4a5365; margin: 0 0 12px; }
p.note, figcaption, .method { color: #5b6475; font-size: 12.5px; }
nav { font-size: 13px; margin: 8px 0 0; }
nav a { color: #1f5fae; text-decoration: none; margin-right: 14px; white-space: nowrap; }
ul.glance { margin: 8px 0; padding-left: 20px; }
table { border-collapse: collapse; margin: 8px 0 4px; font-size: 13px; }
th, td { padding: 4px 10px; border-bottom: 1px solid #e6e9ef; text-align: right; vertical-align: top; }
th { background: #f4f6f9; font-weight: 600; vertical-align: bottom; max-width: 11em; }
th:first-child, td:first-child { text-align: left; }
td { font-variant-numeric: tabular-nums; white-space: nowrap; }
td.text, th.text { text-align: left; white-space: normal; }
tbody tr:nth-child(even) { background: #fafbfc; }
.ci { color: #6b7385; font-size: 12px; }
.best { font-weight: 700; }
.better { color: #0a7a3d; font-weight: 700; }
.worse { color: #b3261e; font-weight: 700; }
.muted { color: #8a92a3; }
.swatch { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 6px;
          vertical-align: baseline; }
code, pre, .mono { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, "DejaVu Sans Mono", monospace;
                   font-size: 12.5px; }
code.gen { background: #f4f6f9; padding: 1px 4px; border-radius: 3px; white-space: pre; }
details { margin: 8px 0; }
summary { cursor: pointer; color: #1f5fae; }
pre.config { background: #f7f8fa; border: 1px solid #e6e9ef; padding: 10px 14px; max-height: 480px; overflow: auto; }
figure { margin: 12px 0 4px; max-width: 100%; }
figure svg { max-width: 100%; height: auto; display: block; }
.scroll { overflow-x: auto; max-width: 100%; -webkit-overflow-scrolling: touch; }
.scroll > table { margin: 0; }
h1, h2, h3, p, li, figcaption, summary { overflow-wrap: anywhere; }
.warnings { border: 1px solid #e0b252; background: #fff8e6; border-radius: 6px; padding: 8px 14px; margin: 12px 0; }
.warnings h2 { font-size: 16px; margin: 0 0 4px; border: 0; padding: 0; }
.warnings ul { margin: 4px 0; padding-left: 20px; }
.untested { color: #8a5a00; font-size: 12px; }
/* Phone width: the page never scrolls sideways; wide tables scroll inside their own .scroll box. */
@media (max-width: 640px) {
  main { padding: 12px 12px 48px; }
  h1 { font-size: 21px; }
  th, td { padding: 3px 6px; }
}
"""


class Page:
    """The report plus what every section needs: arm order, colours, the reference arm, the sections shown."""

    def __init__(self, report: dict[str, Any], sections: Sequence[Section] = ()):
        self.report = report
        self.arms: dict[str, Any] = report.get("arms", {})
        self.names = list(self.arms)
        self.colors = {name: ARM_COLORS[i % len(ARM_COLORS)] for i, name in enumerate(self.names)}
        self.comparison = report.get("comparison") or {}
        self.reference = self.comparison.get("reference", self.names[0] if self.names else None)
        self.sections = list(sections)

    def replicates(self, name: str) -> list[dict[str, Any]]:
        return self.arms[name].get("replicates", [])

    def aggregate(self, name: str, key: str) -> dict[str, Any] | None:
        return self.arms[name].get("aggregate", {}).get(key)

    def arm_label(self, name: str) -> str:
        return f'<span class="swatch" style="background:{self.colors[name]}"></span>{escape(name)}'


def render_page(page: Page) -> str:
    """The whole document: each section's HTML in order, the ones with nothing to show left out."""
    body = "\n".join(part for part in (section.render(page) for section in page.sections) if part)
    title = f"corpuslab · {page.report.get('experiment', '')}"
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n<title>{escape(title)}</title>\n'
            f"<style>{CSS}</style>\n</head>\n<body>\n<main>\n{body}\n</main>\n</body>\n</html>\n")


# ---------------------------------------------------------------------------------------------- tables and cells


def table(header: Sequence[str], rows: Iterable[Sequence[str]], text_columns: Collection[int] = ()) -> str:
    head = "".join(f'<th class="text">{h}</th>' if i in text_columns else f"<th>{h}</th>" for i, h in enumerate(header))
    body = "".join(
        "<tr>" + "".join(f'<td class="text">{c}</td>' if i in text_columns else f"<td>{c}</td>"
                         for i, c in enumerate(row)) + "</tr>"
        for row in rows)
    # Every table scrolls sideways inside its own box, so a wide one never widens the page (phone width).
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


MISSING = '<span class="muted">–</span>'


def missing(reason: str) -> str:
    """A missing figure that says why, in the cell itself (a hover title is invisible on a phone)."""
    return f'<span class="muted">– ({escape(reason)})</span>'


def mean_ci_cell(stats: dict[str, Any] | None, bold: bool = False, seeds: Sequence[float] = ()) -> str:
    """Mean ± 95% half-width; with `seeds` (each seed's value, 2 or more) their range below it."""
    if not stats or stats.get("mean") is None:
        return MISSING
    mean, interval = stats["mean"], stats.get("ci95")
    text = fmt(mean)
    if interval is not None and interval[1] > interval[0]:
        text += f' <span class="ci">± {fmt((interval[1] - interval[0]) / 2)}</span>'
    if bold:
        text = f'<span class="best">{text}</span>'
    return text + seed_range(seeds)


def seed_range(seeds: Sequence[float]) -> str:
    """'seeds 1.23–1.31' (min–max over seeds) under a cell, when there are 2 or more seeds."""
    values = [v for v in seeds if is_number(v)]
    if len(values) < 2:
        return ""
    return f'<br><span class="ci" title="each seed: {", ".join(fmt(v) for v in values)}">seeds {fmt(min(values))}–{fmt(max(values))}</span>'


def difference_cell(stats: dict[str, Any] | None) -> str:
    if not stats:
        return MISSING
    if stats.get("mean") is None:
        return '<span class="muted">not available: no seed has this number on both sides</span>'
    mean, interval = stats["mean"], stats.get("ci95")
    text = fmt_signed(mean)
    if interval is not None:
        text += f' <span class="ci">[{fmt_signed(interval[0])}, {fmt_signed(interval[1])}]</span>'
    if stats.get("significant"):
        return f'<span class="{"better" if mean < 0 else "worse"}" title="95% interval excludes 0">{text}</span>'
    if stats.get("significant") is None:
        return f'{text}<br><span class="untested">not tested: {escape(untested_reason(stats))}</span>'
    return text


def untested_reason(stats: dict[str, Any]) -> str:
    """Why a difference has no test (`stats` records it; reports written before it did: from its n)."""
    if stats.get("not_tested"):
        return str(stats["not_tested"])
    return "one seed per arm" if stats.get("n", 0) <= 1 else "no interval"


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def fmt(value: Any) -> str:
    """Numbers for a table: integers with thousands separators, others to 4 decimals (losses differ in the
    third), huge ones (a perplexity of 1e17) in scientific notation, '–' for missing."""
    if value is None:
        return MISSING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer() and abs(value) < 1e12):
        return f"{int(value):,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value == 0:
            return "0"
        if abs(value) >= 1e6:
            return f"{value:.4g}"
        if abs(value) >= 10000:
            return f"{value:,.0f}"
        if abs(value) >= 100:
            return f"{value:.1f}"
        return f"{value:.4f}" if abs(value) >= 0.001 else f"{value:.2e}"
    return escape(str(value))


def fmt_signed(value: float) -> str:
    return ("+" if value > 0 else "−" if value < 0 else "") + fmt(abs(value))
