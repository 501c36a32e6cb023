"""`report.html`: one page that compares the arms, for a researcher to read.

Self-contained: inline CSS, plots as inline SVG drawn by matplotlib, no scripts and no network, so the
file opens offline and reads the same wherever it is copied. It is built from the report dict alone
(what `report.json` holds), so `write_html_report(read_json(".../report.json"), path)` rebuilds it, and
it carries no timestamps: an identical rerun writes an identical page.

The page is the registered sections (`report.sections`) that apply to the report, in their order; each
renders what the report has and says so when a part is missing (an older evaluation without the
per-position loss, a run without downstream tasks). `page` holds the skeleton and table formatting,
`plots` the matplotlib helpers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from corpuslab.atomic import write_text_atomic
from corpuslab.report.page import Page, render_page
from corpuslab.report.sections import page_sections


def write_html_report(report: dict[str, Any], path: Path) -> Path:
    """Render `report` (the dict of report.json) to a self-contained HTML file at `path`."""
    path = Path(path)
    write_text_atomic(path, render_html(report))
    return path


def render_html(report: dict[str, Any]) -> str:
    return render_page(Page(report, page_sections(report)))
