"""The top of the page: title and navigation, a few sentences at a glance, the config, the shared corpus."""

from __future__ import annotations

from html import escape
from typing import Any

import yaml

from corpuslab.report.caveats import canary_shares, comparison_warnings
from corpuslab.report.page import Page, fmt, table, untested_reason
from corpuslab.report.sections.base import Section, compared_columns, sections


@sections.register
class Header(Section):
    """Title, what was compared, links to every section on the page, and the glance list."""

    name = "header"
    anchor = "glance"
    title = "At a glance"
    order = 0

    def applies(self, report: dict[str, Any]) -> bool:
        return True

    def render(self, page: Page) -> str:
        report, names = page.report, page.names
        seeds = sorted({r["seed"] for name in names for r in page.replicates(name)})
        source = report.get("corpus", {}).get("ingest", {}).get("source", "")
        lead = (f"{len(names)} arm{'s' if len(names) != 1 else ''} × {len(seeds)} seed{'s' if len(seeds) != 1 else ''} "
                f"({', '.join(map(str, seeds))}) · reference arm <b>{escape(str(page.reference))}</b> · {escape(source)}")
        nav = "".join(f'<a href="#{s.anchor}">{escape(s.title)}</a>' for s in page.sections if s.title and s.anchor)
        return (f"<h1>corpuslab report: {escape(str(report.get('experiment', '')))}</h1>\n"
                f'<p class="lead">{lead}</p>\n<nav>{nav}</nav>\n{warning_box(page)}{glance(page)}')


def warning_box(page: Page) -> str:
    """The box at the top of the page: what makes this comparison weak (`report.caveats`), each with its figure.
    A report.json written before it recorded warnings gets them computed from its numbers."""
    warnings = page.report.get("warnings")
    if warnings is None:
        warnings = comparison_warnings(page.report)
    if not warnings:
        return ""
    items = "".join(f'<li data-kind="{escape(str(w.get("kind")))}">{escape(str(w.get("message")))}</li>' for w in warnings)
    return (f'<div class="warnings" role="note" id="warnings"><h2>Read with care: {len(warnings)} '
            f'warning{"s" if len(warnings) != 1 else ""}</h2><ul>{items}</ul></div>\n')


def glance(page: Page) -> str:
    """A few sentences a reader checks first; every number is also in a table below."""
    items = []
    ranked = [(page.arms[n]["aggregate"].get("val.bits_per_byte", {}).get("mean"), n) for n in page.names]
    ranked = sorted((v, n) for v, n in ranked if v is not None)
    if ranked:
        order = " &lt; ".join(f"{escape(n)} ({v:.4f})" for v, n in ranked)
        items.append(f"Validation bits per byte, mean over seeds, lowest first: {order} (an order of means; "
                     "which differences are significant is below).")
    labels = {c.key: c.label for c in compared_columns(page.report)}
    for name, arm in page.comparison.get("arms", {}).items():
        items.append(f"{escape(name)} vs {escape(str(page.reference))}: {escape(significance_sentence(arm, labels))}.")
    body = "".join(f"<li>{item}</li>" for item in items)
    return f'<h2 id="glance">At a glance</h2>\n<ul class="glance">{body}</ul>' if items else ""


def significance_sentence(arm: dict[str, Any], labels: dict[str, str]) -> str:
    """What the paired comparison of one arm with the reference found, never claiming a test it could not run."""
    differences = {k: d for k, d in arm.get("differences", {}).items() if d and d.get("mean") is not None}
    tested = {k: d for k, d in differences.items() if d.get("significant") is not None}
    significant = [labels.get(k, k) for k, d in tested.items() if d["significant"]]
    if not differences:
        text = "no metric to compare"
    elif not tested:
        reasons = list(dict.fromkeys(untested_reason(d) for d in differences.values()))
        text = f"not tested: {'; '.join(reasons)}"
    elif significant:
        text = f"significant differences on {', '.join(significant)} (95%, paired by seed)"
    else:
        pairs = max(d.get("n", 0) for d in tested.values())
        text = f"no difference is significant at 95% (paired by seed, {pairs} seeds)"
    untested = [labels.get(k, k) for k in differences if k not in tested]
    if tested and untested:
        text += f"; not tested on {', '.join(untested)}"
    factor = arm.get("data_equivalent_factor", {})
    if factor.get("mean") is not None:
        text += f"; data-equivalent factor {factor['mean']:.2f}×"
    elif factor.get("unavailable"):
        text += f"; data-equivalent factor not available: {factor['unavailable']}"
    return text


@sections.register
class Config(Section):
    name = "config"
    anchor = "config"
    title = "Config"
    order = 10

    def applies(self, report: dict[str, Any]) -> bool:
        return bool(report.get("config"))

    def render(self, page: Page) -> str:
        text = yaml.safe_dump(page.report["config"], sort_keys=False, default_flow_style=None, width=100)
        return ('<h2 id="config">Config</h2>\n<details><summary>Resolved config (YAML), as saved next to the results'
                f'</summary>\n<pre class="config">{escape(text)}</pre></details>')


@sections.register
class Corpus(Section):
    """The shared corpus: documents per split, what decontamination removed, tokens, canaries."""

    name = "corpus"
    anchor = "corpus"
    title = "Corpus"
    order = 20

    def applies(self, report: dict[str, Any]) -> bool:
        return bool(report.get("corpus"))

    def render(self, page: Page) -> str:
        corpus = page.report["corpus"]
        split = corpus.get("split", {})
        decon = corpus.get("decontamination", {})
        tokens = corpus.get("tokens", {}).get("splits", {})
        rows = []
        for name in ("train", "val", "test"):
            held_out = decon.get(name, {})
            removed = held_out.get("removed_by_reason", {})
            removed_text = ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in removed.items() if v)
            removed_text = removed_text or ("0" if held_out else "–")
            categories = split.get("categories", {}).get(name, {})
            rows.append([name, fmt(split.get("documents", {}).get(name)), removed_text,
                         fmt(tokens.get(name, {}).get("documents")), fmt(tokens.get(name, {}).get("tokens")),
                         fmt(tokens.get(name, {}).get("bytes")), _category_list(categories)])
        body = table(["split", "documents", "removed by decontamination", "documents tokenized", "tokens", "bytes",
                      "categories (documents)"], rows, text_columns={2, 6})
        return (f'<h2 id="corpus">Corpus</h2>\n<p class="lead">Shared by every arm.</p>\n{body}\n'
                f'<p class="note">{" ".join(_corpus_notes(corpus))}</p>')


def _corpus_notes(corpus: dict[str, Any]) -> list[str]:
    ingest, canaries, decon = corpus.get("ingest", {}), corpus.get("canaries", {}), corpus.get("decontamination", {})
    notes = [f"Ingest: {fmt(ingest.get('documents'))} documents, {fmt(ingest.get('bytes'))} bytes."]
    bad = ingest.get("bad_input", {})
    if bad.get("total"):
        notes.append(f"Bad input: {bad['total']} records ({escape(str(bad.get('counts')))}).")
    if canaries:
        notes.append(f"Canaries: {canaries.get('canaries')} secrets in {canaries.get('documents')} training documents, "
                     f"inserted {escape(str(canaries.get('placement', '')).replace('_', ' '))} "
                     f"(the tokenized train split includes them){canary_share_text(corpus)}.")
    if decon:
        notes.append(f"Val and test documents that duplicate training documents are removed "
                     f"(mode <code>{escape(str(decon.get('mode')))}</code>) before anything is scored on them.")
    return notes


def canary_share_text(corpus: dict[str, Any]) -> str:
    """', n% of the training split's documents (and m% of its tokens)': the shares `report.caveats` checks, and
    the requested count when the canaries stage lowered it to fit the corpus."""
    shares = {s["by"]: s for s in canary_shares({"corpus": corpus})}
    if "documents" not in shares:
        return ""
    documents = shares["documents"]
    text = (f": <b>{100 * documents['share']:.1f}% of the training split's documents</b> "
            f"({fmt(documents['canary'])} of {fmt(documents['total'])})")
    if "tokens" in shares:
        tokens = shares["tokens"]
        text += f" and <b>{100 * tokens['share']:.1f}% of its tokens</b> ({fmt(tokens['canary'])} of {fmt(tokens['total'])})"
    canaries = corpus.get("canaries", {})
    requested = canaries.get("requested")
    if requested is not None and requested != canaries.get("canaries"):
        text += (f"; canaries.count={fmt(requested)} was lowered to {fmt(canaries.get('canaries'))} so that canary "
                 f"documents stay within canaries.max_share={canaries.get('max_share')} of the training split")
    return text


def _category_list(categories: dict[str, int]) -> str:
    return ", ".join(f"{escape(k)} {v}" for k, v in sorted(categories.items(), key=lambda kv: -kv[1]))
