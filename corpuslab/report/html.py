"""`report.html`: one page that compares the arms, for a researcher to read.

Self-contained: inline CSS, plots as inline SVG drawn by matplotlib, no scripts and no network, so the
file opens offline and reads the same wherever it is copied. It is built from the report dict alone
(what `report.json` holds), so `write_html_report(read_json(".../report.json"), path)` rebuilds it, and
it carries no timestamps: an identical rerun writes an identical page.

Every section renders what the report has and says so when a part is missing (an older evaluation
without the per-position loss, a run without downstream tasks).
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Callable, Collection, Iterable, Sequence
from html import escape
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from corpuslab.atomic import write_text_atomic
from corpuslab.report.stats import mean_ci

# Colour-blind-safe (Okabe-Ito, black last); an arm keeps its colour in every plot and table.
ARM_COLORS = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"]

# Headline rows of the metric table: (aggregate key, label, True when lower is better / None: no ranking).
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
COMPARED_LABELS = {
    "val.loss": "val loss", "val.bits_per_byte": "val bits per byte", "test.loss": "test loss",
    "test.bits_per_byte": "test bits per byte", "canaries.exact_rate": "canary exact rate",
    "canaries.mean_exposure": "canary mean exposure",
}
EXAMPLES_PER_ARM = 3

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
figure { margin: 12px 0 4px; }
figure svg { max-width: 100%; height: auto; display: block; }
.scroll { overflow-x: auto; }
"""


def write_html_report(report: dict[str, Any], path: Path) -> Path:
    """Render `report` (the dict of report.json) to a self-contained HTML file at `path`."""
    path = Path(path)
    write_text_atomic(path, render_html(report))
    return path


def render_html(report: dict[str, Any]) -> str:
    page = _Page(report)
    body = "\n".join(part for part in (section(page) for section in SECTIONS) if part)
    title = f"corpuslab · {report.get('experiment', '')}"
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n<title>{escape(title)}</title>\n'
            f"<style>{CSS}</style>\n</head>\n<body>\n<main>\n{body}\n</main>\n</body>\n</html>\n")


class _Page:
    """The report plus what every section needs: arm order, colours, the reference arm."""

    def __init__(self, report: dict[str, Any]):
        self.report = report
        self.arms: dict[str, Any] = report.get("arms", {})
        self.names = list(self.arms)
        self.colors = {name: ARM_COLORS[i % len(ARM_COLORS)] for i, name in enumerate(self.names)}
        self.comparison = report.get("comparison") or {}
        self.reference = self.comparison.get("reference", self.names[0] if self.names else None)

    def replicates(self, name: str) -> list[dict[str, Any]]:
        return self.arms[name].get("replicates", [])

    def arm_label(self, name: str) -> str:
        return f'<span class="swatch" style="background:{self.colors[name]}"></span>{escape(name)}'


# ---------------------------------------------------------------------------------------------- sections


def _header(page: _Page) -> str:
    report, names = page.report, page.names
    seeds = sorted({r["seed"] for name in names for r in page.replicates(name)})
    source = report.get("corpus", {}).get("ingest", {}).get("source", "")
    lead = (f"{len(names)} arm{'s' if len(names) != 1 else ''} × {len(seeds)} seed{'s' if len(seeds) != 1 else ''} "
            f"({', '.join(map(str, seeds))}) · reference arm <b>{escape(str(page.reference))}</b> · {escape(source)}")
    links = [("glance", "At a glance"), ("config", "Config"), ("corpus", "Corpus"), ("curation", "Curation"), ("detection", "Detection"),
             ("metrics", "Metrics"), ("comparison", "vs reference"), ("curves", "Loss curves"),
             ("in-context", "In-context"), ("categories", "Categories"), ("canaries", "Canaries"), ("tasks", "Tasks")]
    nav = "".join(f'<a href="#{anchor}">{label}</a>' for anchor, label in links)
    return (f"<h1>corpuslab report: {escape(str(report.get('experiment', '')))}</h1>\n"
            f'<p class="lead">{lead}</p>\n<nav>{nav}</nav>\n{_glance(page)}')


def _glance(page: _Page) -> str:
    """A few sentences a reader checks first; every number is also in a table below."""
    items = []
    ranked = [(page.arms[n]["aggregate"].get("val.bits_per_byte", {}).get("mean"), n) for n in page.names]
    ranked = sorted((v, n) for v, n in ranked if v is not None)
    if ranked:
        order = " < ".join(f"{escape(n)} ({v:.4f})" for v, n in ranked)
        items.append(f"Validation bits per byte, mean over seeds, best first: {order}.")
    for name, arm in page.comparison.get("arms", {}).items():
        significant = [COMPARED_LABELS.get(k, k) for k, d in arm.get("differences", {}).items() if d.get("significant")]
        factor = arm.get("data_equivalent_factor", {})
        text = (f"significant differences on {', '.join(significant)}" if significant
                else "no difference is significant at 95%")
        if factor.get("mean") is not None:
            text += f"; data-equivalent factor {factor['mean']:.2f}×"
        items.append(f"{escape(name)} vs {escape(str(page.reference))}: {escape(text)}.")
    seeds = {len(page.replicates(n)) for n in page.names}
    if seeds == {1}:
        items.append("One seed per arm: no intervals; differences between arms may be noise.")
    body = "".join(f"<li>{item}</li>" for item in items)
    return f'<h2 id="glance">At a glance</h2>\n<ul class="glance">{body}</ul>' if items else ""


def _config(page: _Page) -> str:
    config = page.report.get("config")
    if not config:
        return ""
    text = yaml.safe_dump(config, sort_keys=False, default_flow_style=None, width=100)
    return ('<h2 id="config">Config</h2>\n<details><summary>Resolved config (YAML), as saved next to the results'
            f'</summary>\n<pre class="config">{escape(text)}</pre></details>')


def _corpus(page: _Page) -> str:
    corpus = page.report.get("corpus", {})
    if not corpus:
        return ""
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
        rows.append([name, _fmt(split.get("documents", {}).get(name)), removed_text,
                     _fmt(tokens.get(name, {}).get("documents")), _fmt(tokens.get(name, {}).get("tokens")),
                     _fmt(tokens.get(name, {}).get("bytes")), _category_list(categories)])
    table = _table(["split", "documents", "removed by decontamination", "documents tokenized", "tokens", "bytes",
                    "categories (documents)"], rows, text_columns={2, 6})
    ingest, canaries = corpus.get("ingest", {}), corpus.get("canaries", {})
    notes = [f"Ingest: {_fmt(ingest.get('documents'))} documents, {_fmt(ingest.get('bytes'))} bytes."]
    bad = ingest.get("bad_input", {})
    if bad.get("total"):
        notes.append(f"Bad input: {bad['total']} records ({escape(str(bad.get('counts')))}).")
    if canaries:
        notes.append(f"Canaries: {canaries.get('canaries')} secrets in {canaries.get('documents')} training documents, "
                     f"inserted {escape(str(canaries.get('placement', '')).replace('_', ' '))} "
                     "(the tokenized train split includes them).")
    if decon:
        notes.append(f"Val and test documents that duplicate training documents are removed "
                     f"(mode <code>{escape(str(decon.get('mode')))}</code>) before anything is scored on them.")
    return (f'<h2 id="corpus">Corpus</h2>\n<p class="lead">Shared by every arm.</p>\n{table}\n'
            f'<p class="note">{" ".join(notes)}</p>')


def _category_list(categories: dict[str, int]) -> str:
    return ", ".join(f"{escape(k)} {v}" for k, v in sorted(categories.items(), key=lambda kv: -kv[1]))


def _curation(page: _Page) -> str:
    if not page.names:
        return ""
    reasons = sorted({r for n in page.names for r in page.arms[n]["curation"].get("dropped_by_reason", {})})
    has_truth = any("ground_truth" in page.arms[n]["curation"] for n in page.names)
    header = ["arm", "recipe", "level", "in"] + [f"dropped: {r.replace('_', ' ')}" for r in reasons]
    header += ["kept", "kept %", "tokens in training windows", "epochs seen"]
    header += ["dup precision", "dup recall"] if has_truth else []
    rows = [_curation_row(page, name, reasons, has_truth) for name in page.names]
    caption = ("Counts are documents for doc-level arms and training windows for chunk-level arms. "
               "Every arm trains on the same token budget, so an arm that keeps less sees its data more often.")
    if has_truth:
        caption += (" Precision and recall score the removals against the duplicates planted in the synthetic corpus "
                    "(recall counts planted duplicates above the similarity threshold).")
    table = _table(header, rows, text_columns={1, 2})
    figure = _figure(_plot_funnel(page, reasons), "Where each arm&#39;s input went.")
    return (f'<h2 id="curation">Curation funnel</h2>\n<div class="scroll">{table}</div>\n'
            f'<p class="note">{caption}</p>\n{figure}')


def _detection(page: _Page) -> str:
    """LSH candidates, verification and the largest clusters of each dedup arm, so a user can inspect them."""
    engines = {n: page.arms[n]["curation"].get("engine") for n in page.names if page.arms[n]["curation"].get("engine")}
    if not engines:
        return ""
    header = ["arm", "method", "settings", "candidate pairs", "rejected by verification", "verified pairs",
              "clusters", "cluster sizes (size×count)"]
    rows = []
    for name, engine in engines.items():
        sizes = ", ".join(f"{size}×{count}" for size, count in sorted(engine.get("cluster_size_histogram", {}).items(),
                                                                      key=lambda kv: int(kv[0]))[:8])
        rows.append([page.arm_label(name), escape(str(engine.get("method", ""))), escape(str(engine.get("minhash", "–"))),
                     _fmt(engine.get("candidate_pairs")), _fmt(engine.get("candidates_rejected_by_verification")),
                     _fmt(engine.get("verified_pairs")), _fmt(engine.get("clusters")), escape(sizes)])
    parts = [f'<h2 id="detection">Duplicate detection</h2>\n<div class="scroll">{_table(header, rows, text_columns={1, 2, 7})}</div>',
             '<p class="note">LSH proposes candidate pairs; each is verified by the true Jaccard of its shingle sets, '
             "and only verified pairs join clusters. Each cluster keeps its earliest document.</p>"]
    for name, engine in engines.items():
        clusters = engine.get("largest_clusters", [])[:5]
        if not clusters:
            continue
        cluster_rows = [[escape(str(c.get("cluster_id"))), _fmt(c.get("size")),
                         f'<span class="gen">{escape(str(c.get("excerpt", ""))[:160])}</span>'] for c in clusters]
        parts.append(f"<h3>Largest clusters: {page.arm_label(name)}</h3>\n"
                     f'{_table(["kept document", "size", "its text (start)"], cluster_rows, text_columns={0, 2})}')
    return "\n".join(parts)


def _curation_row(page: _Page, name: str, reasons: list[str], has_truth: bool) -> list[str]:
    arm = page.arms[name]
    stats, packing = arm["curation"], arm.get("packing", {})
    by_reason = stats.get("dropped_by_reason", {})
    total = stats.get("input") or 0
    kept = stats.get("kept", total - stats.get("dropped", 0))
    row = [page.arm_label(name), escape(str(arm.get("recipe"))), escape(str(arm.get("level"))), _fmt(total)]
    row += [_fmt(by_reason.get(r, 0)) for r in reasons]
    row += [_fmt(kept), f"{100 * kept / total:.1f}%" if total else "–", _fmt(packing.get("tokens_in_windows")),
            _fmt(arm["aggregate"].get("training.epochs_seen", {}).get("mean"))]
    if has_truth:
        truth = stats.get("ground_truth", {})
        row += [_fmt(truth.get("precision")), _fmt(truth.get("recall"))]
    return row


def _metrics(page: _Page) -> str:
    if not page.names:
        return ""
    header = ["metric (mean ± 95% CI half-width over seeds)"] + [page.arm_label(n) for n in page.names]
    rows = []
    for key, label, lower_is_better in HEADLINE:
        stats = [page.arms[n]["aggregate"].get(key) for n in page.names]
        if all(s is None for s in stats):
            continue
        best = _best_index([s.get("mean") if s else None for s in stats], lower_is_better)
        rows.append([escape(label)] + [_mean_ci_cell(s, bold=(i == best)) for i, s in enumerate(stats)])
    keys = sorted({k for n in page.names for k in page.arms[n]["aggregate"]})
    full = [[escape(k)] + [_mean_ci_cell(page.arms[n]["aggregate"].get(k)) for n in page.names] for k in keys]
    return ('<h2 id="metrics">Metrics</h2>\n'
            f"{_table(header, rows)}\n"
            '<p class="note">Bold: the best arm on that row (lower is better for every ranked row). '
            "The interval is Student t over seeds; with one seed there is none.</p>\n"
            f"<details><summary>Every aggregated number ({len(keys)})</summary>\n<div class=\"scroll\">"
            f"{_table(['key'] + [page.arm_label(n) for n in page.names], full)}</div></details>")


def _comparison(page: _Page) -> str:
    arms = page.comparison.get("arms", {})
    if not arms:
        return ""
    names = [n for n in page.names if n in arms]
    keys = [k for k in COMPARED_LABELS if any(k in arms[n].get("differences", {}) for n in names)]
    header = [f"arm − {escape(str(page.reference))} (paired by seed)"] + [page.arm_label(n) for n in names]
    rows = [[escape(COMPARED_LABELS[k])] + [_difference_cell(arms[n]["differences"].get(k)) for n in names]
            for k in keys]
    rows.append(["data-equivalent factor"] + [_factor_cell(arms[n].get("data_equivalent_factor", {})) for n in names])
    return ('<h2 id="comparison">Comparison with the reference arm</h2>\n'
            f"{_table(header, rows)}\n"
            '<p class="note"><span class="better">green</span> / <span class="worse">red</span>: the 95% interval of '
            "the difference excludes 0 (lower is better for every row). Data-equivalent factor: how many times the "
            "arm's training tokens the reference needs to reach the arm's final validation loss; above 1 the arm's "
            "data is worth more per token.</p>\n"
            f'<details><summary>Method</summary><p class="method">{escape(page.comparison.get("method", ""))}</p>'
            "</details>")


def _curves(page: _Page) -> str:
    if not any(r.get("curve") for n in page.names for r in page.replicates(n)):
        return ""
    caption = ("Training loss (mean over the steps since the previous point) and validation loss against training "
               "tokens; thick: mean over seeds, thin: each seed. Right: each arm's mean validation loss minus the "
               "reference arm's, which shows differences the absolute curves hide.")
    return f'<h2 id="curves">Loss curves</h2>\n{_figure(_plot_curves(page), caption)}'


def _in_context(page: _Page) -> str:
    if not any(r["metrics"].get("val_by_position") for n in page.names for r in page.replicates(n)):
        return ('<h2 id="in-context">In-context learning curve</h2>\n<p class="note">Not in this report: its '
                "evaluations predate the per-position loss (metrics.val_by_position).</p>")
    caption = ("Validation loss of a token by how many tokens of context precede it within its evaluation window "
               "(log scale); a drop from left to right is what the model gains from context. Mean over seeds; thin: "
               "each position; thick: positions pooled in doubling bins (1, 2, 3–4, 5–8, …).")
    return f'<h2 id="in-context">In-context learning curve</h2>\n{_figure(_plot_in_context(page), caption)}'


def _categories(page: _Page) -> str:
    categories = _category_names(page)
    if not categories:
        return ""
    header = ["category"] + [page.arm_label(n) for n in page.names] + ["val tokens"]
    rows = []
    for category in categories:
        stats = [page.arms[n]["aggregate"].get(f"val_by_category.{category}.loss") for n in page.names]
        best = _best_index([s.get("mean") if s else None for s in stats], True)
        tokens = next((page.arms[n]["aggregate"].get(f"val_by_category.{category}.tokens", {}).get("mean")
                       for n in page.names if f"val_by_category.{category}.tokens" in page.arms[n]["aggregate"]), None)
        rows.append([escape(category)] + [_mean_ci_cell(s, bold=(i == best)) for i, s in enumerate(stats)]
                    + [_fmt(tokens)])
    caption = ("Validation loss (nats per token) of each category's documents, mean and 95% interval over seeds. "
               "Small categories have few tokens: read their differences with care.")
    return (f'<h2 id="categories">Validation loss by category</h2>\n{_table(header, rows)}\n'
            f'{_figure(_plot_categories(page, categories), caption)}')


def _canaries(page: _Page) -> str:
    if not any(r["metrics"].get("canaries", {}).get("by_copies") for n in page.names for r in page.replicates(n)):
        return ""
    candidates = page.report.get("config", {}).get("canaries", {}).get("num_candidates")
    caption = ("Canaries: random secrets inserted into the training data a given number of times. Exact: greedy "
               "decoding from the prefix reproduces the secret. Exposure: log2(candidates + 1) − log2(rank of the "
               "secret among random candidates); about 1.44 bits is chance"
               + (f", {math.log2(candidates + 1):.2f} bits the maximum" if candidates else "")
               + ". Bars: mean over seeds; black dots: each seed.")
    return (f'<h2 id="canaries">Canary memorization by copy count</h2>\n'
            f"{_figure(_plot_canaries(page, candidates), caption)}\n<h3>Example generations</h3>\n"
            f"{_canary_examples(page)}")


def _canary_examples(page: _Page) -> str:
    header = ["arm", "seed", "canary", "copies", "secret", "greedy generation", "exact", "rank", "exposure"]
    rows = []
    for name in page.names:
        replicates = page.replicates(name)
        if not replicates:
            continue
        first = replicates[0]
        for example in first.get("canary_examples", [])[:EXAMPLES_PER_ARM]:
            rows.append([page.arm_label(name), str(first["seed"]), escape(str(example.get("id"))),
                         _fmt(example.get("copies")), _generation(example.get("secret")),
                         _generation(example.get("generation")), "✓" if example.get("exact") else "✗",
                         f"{example.get('rank')} / {example.get('num_candidates')}", _fmt(example.get("exposure"))])
    note = (f'<p class="note">The {EXAMPLES_PER_ARM} most-copied canaries of each arm&#39;s first seed; '
            "the full list is in each evaluation folder&#39;s canaries.json.</p>")
    return f'<div class="scroll">{_table(header, rows, text_columns={2, 4, 5})}</div>\n{note}'


def _generation(text: Any) -> str:
    if text is None:
        return '<span class="muted">–</span>'
    text = str(text)
    if not text.strip():
        return f'<span class="muted">({len(text)} whitespace characters)</span>'
    return f'<code class="gen">{escape(text)}</code>'


def _tasks(page: _Page) -> str:
    everything = _task_table(page)
    if not everything:
        return ""
    names = {task for task, _ in everything}
    # A grouped task reports `<task>_<group>` subtasks (BLiMP's 67 paradigms) next to their mean `<task>`:
    # the plot and the main table show the tasks, the subtasks fold away.
    subtasks = {task for task in names if any(task.startswith(f"{other}_") for other in names if other != task)}
    tasks = {key: value for key, value in everything.items() if key[0] not in subtasks}
    header = ["task", "metric"] + [page.arm_label(n) for n in page.names]

    def rows(selection: dict) -> list[list[str]]:
        return [[escape(task), escape(metric)] + [_task_cell(by_arm.get(n)) for n in page.names]
                for (task, metric), by_arm in selection.items()]

    folded = {key: value for key, value in everything.items() if key[0] in subtasks}
    details = (f"<details><summary>Subtasks ({len(subtasks)})</summary>\n<div class=\"scroll\">"
               f"{_table(header, rows(folded))}</div></details>\n" if folded else "")
    caption = ("Downstream tasks: mean over seeds ± 1.96 × the task's standard error (the benchmark's sampling "
               "error; the 95% interval over seeds where a task reports no standard error). Small dots: each seed. "
               "Perplexity-like metrics spanning orders of magnitude are on a log axis.")
    return (f'<h2 id="tasks">Downstream tasks</h2>\n<div class="scroll">{_table(header, rows(tasks))}</div>\n'
            f"{details}{_figure(_plot_tasks(page, tasks), caption)}")


SECTIONS: list[Callable[[_Page], str]] = [
    _header, _config, _corpus, _curation, _detection, _metrics, _comparison, _curves, _in_context, _categories, _canaries, _tasks,
]


# ---------------------------------------------------------------------------------------------- data


def _category_names(page: _Page) -> list[str]:
    prefix = "val_by_category."
    return sorted({k[len(prefix):-len(".loss")] for n in page.names for k in page.arms[n]["aggregate"]
                   if k.startswith(prefix) and k.endswith(".loss")})


def _category_stat(page: _Page, name: str, category: str) -> dict[str, Any] | None:
    stat = page.arms[name]["aggregate"].get(f"val_by_category.{category}.loss")
    if stat is None:
        return None
    seeds = [r["metrics"].get("val_by_category", {}).get(category, {}).get("loss") for r in page.replicates(name)]
    return {**stat, "seeds": [v for v in seeds if v is not None]}


def _seed_mean(curves: Sequence[Sequence[tuple[float, float]]]) -> tuple[np.ndarray, np.ndarray]:
    """Mean over seeds at the x values every seed has (seeds of one arm log at the same steps)."""
    common = set.intersection(*({x for x, _ in c} for c in curves)) if curves else set()
    xs = np.array(sorted(common), dtype=float)
    ys = np.array([np.mean([dict(c)[x] for c in curves]) for x in xs], dtype=float)
    return xs, ys


def _curve_points(replicate: dict[str, Any], field: str) -> list[tuple[float, float]]:
    return [(float(c["tokens"]), float(c[field])) for c in replicate.get("curve", [])
            if c.get(field) is not None and math.isfinite(c[field])]


def _by_copies(page: _Page, name: str) -> dict[int, dict[str, dict[str, Any]]]:
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


def _task_table(page: _Page) -> dict[tuple[str, str], dict[str, dict[str, Any]]]:
    """{(task, metric): {arm: {mean, half, n_examples}}} from metrics["tasks"] of every replicate."""
    collected: dict[tuple[str, str], dict[str, list[tuple[float, float | None, Any]]]] = {}
    for name in page.names:
        for replicate in page.replicates(name):
            for task, scores in (replicate["metrics"].get("tasks") or {}).items():
                for metric, value in scores.items():
                    if metric == "n" or metric.endswith("_stderr") or not _is_number(value):
                        continue
                    stderr = scores.get(f"{metric}_stderr")
                    entry = (float(value), float(stderr) if _is_number(stderr) else None, scores.get("n"))
                    collected.setdefault((task, metric), {}).setdefault(name, []).append(entry)
    return {key: {name: _task_summary(entries) for name, entries in by_arm.items()}
            for key, by_arm in sorted(collected.items())}


def _task_summary(entries: list[tuple[float, float | None, Any]]) -> dict[str, Any]:
    """Mean over seeds; half-width 1.96 x the mean per-seed standard error (the benchmark's sampling error),
    or, without standard errors, the 95% interval over seeds."""
    values = [value for value, _, _ in entries]
    stderrs = [stderr for _, stderr, _ in entries if stderr is not None]
    summary = mean_ci(values)
    if stderrs:
        half, source = 1.96 * float(np.mean(stderrs)), "stderr"
    elif summary["ci95"] is not None:
        half, source = (summary["ci95"][1] - summary["ci95"][0]) / 2, "seeds"
    else:
        half, source = None, None
    return {"mean": summary["mean"], "half": half, "half_from": source, "seeds": values, "examples": entries[0][2]}


# ---------------------------------------------------------------------------------------------- plots


def _plot_funnel(page: _Page, reasons: list[str]):
    fig, (ax,) = _figure_axes(1, height=0.55 * len(page.names) + 1.3, width=9.0)
    names = page.names[::-1]  # first arm on top
    y = np.arange(len(names))
    left = np.zeros(len(names))
    kept = np.array([float(page.arms[n]["curation"].get("kept", 0)) for n in names])
    segments = [("kept", kept, "#4C9A6A")]
    greys = ["#C9CED8", "#9AA3B2", "#E3A18A", "#D9C27A", "#B59BC9", "#7FA7C9"]
    for i, reason in enumerate(reasons):
        counts = np.array([float(page.arms[n]["curation"].get("dropped_by_reason", {}).get(reason, 0)) for n in names])
        segments.append((f"dropped: {reason.replace('_', ' ')}", counts, greys[i % len(greys)]))
    for label, counts, color in segments:
        ax.barh(y, counts, left=left, color=color, label=label, height=0.6, edgecolor="white", linewidth=0.5)
        left += counts
    for yi, n, k in zip(y, names, kept):
        total = page.arms[n]["curation"].get("input") or 0
        if total:
            ax.text(k / 2, yi, f"{k:,.0f} kept ({100 * k / total:.0f}%)", ha="center", va="center", color="white",
                    fontsize=8.5, fontweight="bold")
    ax.set_yticks(y, names)
    ax.set_xlabel("documents (windows for chunk-level arms)")
    ax.set_xlim(0, max(left.max(), 1) * 1.02)
    ax.grid(axis="y", visible=False)
    _shared_legend(fig, ax)
    return fig


def _plot_curves(page: _Page):
    fig, axes = _figure_axes(3, height=3.4)
    for ax, field, title in zip(axes, ("loss", "val_loss"), ("training loss", "validation loss")):
        for name in page.names:
            curves = [_curve_points(r, field) for r in page.replicates(name)]
            curves = [c for c in curves if c]
            if not curves:
                continue
            color = page.colors[name]
            if len(curves) > 1:
                for curve in curves:
                    ax.plot(*zip(*curve), color=color, alpha=0.3, linewidth=0.8)
            xs, ys = _seed_mean(curves)
            ax.plot(xs, ys, color=color, linewidth=2.0, label=name, marker="o" if len(xs) < 12 else None,
                    markersize=3)
        ax.set_title(title)
        ax.set_xlabel("training tokens")
        ax.set_ylabel("nats per token")
        ax.xaxis.set_major_formatter(_tokens_formatter())
    _plot_val_gap(page, axes[2])
    _shared_legend(fig, axes[0])
    return fig


def _plot_val_gap(page: _Page, ax) -> None:
    """Each arm's mean validation curve minus the reference's, where both have a point: arms whose curves
    overlap on the absolute plot come apart here."""
    def mean_val(name: str) -> dict[float, float]:
        curves = [c for c in (_curve_points(r, "val_loss") for r in page.replicates(name)) if c]
        return dict(zip(*_seed_mean(curves))) if curves else {}

    reference = mean_val(page.reference) if page.reference in page.arms else {}
    for name in page.names:
        arm = mean_val(name)
        xs = sorted(set(arm) & set(reference))
        if xs:
            ax.plot(xs, [arm[x] - reference[x] for x in xs], color=page.colors[name], linewidth=2.0,
                    marker="o" if len(xs) < 12 else None, markersize=3)
    ax.axhline(0, color="#5b6475", linewidth=0.8)
    ax.set_title(f"validation loss − {page.reference}")
    ax.set_xlabel("training tokens")
    ax.set_ylabel("nats per token (below 0: better)")
    ax.xaxis.set_major_formatter(_tokens_formatter())


def _plot_in_context(page: _Page):
    """Thin: the mean loss at every position (noisy: each holds 1/context of the tokens). Thick: the
    positions pooled in doubling bins (1, 2, 3-4, 5-8, ...), which is what the eye needs on a log axis."""
    fig, (ax,) = _figure_axes(1, height=3.6, width=8.5)
    for name in page.names:
        curves = [r["metrics"].get("val_by_position") for r in page.replicates(name)]
        curves = [[(p + 1.0, v) for p, v in enumerate(c) if v is not None] for c in curves if c]
        if not curves:
            continue
        xs, ys = _seed_mean(curves)
        ax.plot(xs, ys, color=page.colors[name], alpha=0.35, linewidth=0.8)
        ax.plot(*_doubling_bins(xs, ys), color=page.colors[name], linewidth=2.0, marker="o", markersize=4, label=name)
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_formatter(_plain_formatter())
    ax.set_xlabel("tokens of context (position in the window + 1)")
    ax.set_ylabel("val loss (nats per token)")
    _shared_legend(fig, ax)
    return fig


def _doubling_bins(xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean of ys over x in (2^(k-1), 2^k], placed at the bin's geometric centre."""
    bins = np.ceil(np.log2(xs)).astype(int)
    centres, means = [], []
    for k in np.unique(bins):
        in_bin = bins == k
        centres.append(float(np.exp(np.log(xs[in_bin]).mean())))
        means.append(float(ys[in_bin].mean()))
    return np.array(centres), np.array(means)


def _plot_categories(page: _Page, categories: list[str]):
    fig, (ax,) = _figure_axes(1, height=3.4, width=min(2.0 + 1.1 * len(categories) * max(len(page.names), 2) / 2, 11))
    _dot_plot(ax, page, categories, lambda name, category: _category_stat(page, name, category))
    ax.set_ylabel("val loss (nats per token)")
    _shared_legend(fig, ax)
    return fig


def _plot_canaries(page: _Page, candidates: int | None):
    fig, axes = _figure_axes(2, height=3.4)
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
            _seed_dots(ax, offsets, stats)
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
    _shared_legend(fig, axes[0])
    return fig


def _plot_tasks(page: _Page, tasks: dict[tuple[str, str], dict[str, dict[str, Any]]]):
    metrics = sorted({metric for _, metric in tasks})
    fig, axes = _figure_axes(len(metrics), height=3.4)
    for ax, metric in zip(axes, metrics):
        names = [task for task, m in tasks if m == metric]
        _dot_plot(ax, page, names, lambda name, task, metric=metric: _as_mean_ci(tasks[(task, metric)].get(name)))
        means = [s["mean"] for (_, m), by_arm in tasks.items() if m == metric for s in by_arm.values()
                 if s["mean"] is not None]
        if means and min(means) > 0 and ("perplexity" in metric or max(means) / min(means) > 100):
            ax.set_yscale("log")  # whiskers that reach below 0 are clipped at the axis
        ax.set_title(metric)
    _shared_legend(fig, axes[0])
    return fig


def _dot_plot(ax, page: _Page, groups: list[str], stat: Callable[[str, str], dict[str, Any] | None]) -> None:
    """Mean with its interval per (group, arm), arms side by side: close values stay readable, unlike bars from 0."""
    x = np.arange(len(groups))
    spread = 0.6 / max(len(page.names), 1)
    for i, name in enumerate(page.names):
        stats = [stat(name, g) or {"mean": None, "ci95": None} for g in groups]
        means = np.array([s["mean"] if s["mean"] is not None else np.nan for s in stats])
        offsets = x + (i - (len(page.names) - 1) / 2) * spread
        ax.errorbar(offsets, means, yerr=_error_bars(stats, means), fmt="o", color=page.colors[name], label=name,
                    markersize=6, capsize=3, linewidth=1.2)
        _seed_dots(ax, offsets + spread * 0.22, stats, color=page.colors[name])
    crowded = len(groups) * max((len(g) for g in groups), default=0) > 36  # the labels would run into each other
    ax.set_xticks(x, groups, rotation=25 if crowded else 0, ha="right" if crowded else "center",
                  rotation_mode="anchor")
    ax.set_xlim(-0.6, len(groups) - 0.4)
    ax.grid(axis="x", visible=False)


def _seed_dots(ax, offsets: np.ndarray, stats: list[dict[str, Any]], color: str = "#1d2330") -> None:
    """Each seed's value as a small dot, so a reader sees the spread behind a mean of few seeds."""
    points = [(x, v) for x, s in zip(offsets, stats) if len(s.get("seeds") or []) > 1 for v in s["seeds"]]
    if points:
        ax.scatter(*zip(*points), s=16, color=color, edgecolors="white", linewidths=0.5, zorder=3)


def _error_bars(stats: list[dict[str, Any]], means: np.ndarray) -> np.ndarray:
    """2 x n asymmetric whiskers from each stat's ci95 (0 where there is none)."""
    lower = [m - s["ci95"][0] if s.get("ci95") else 0.0 for s, m in zip(stats, means)]
    upper = [s["ci95"][1] - m if s.get("ci95") else 0.0 for s, m in zip(stats, means)]
    return np.nan_to_num(np.array([lower, upper], dtype=float))


def _as_mean_ci(summary: dict[str, Any] | None) -> dict[str, Any] | None:
    if summary is None or summary["mean"] is None:
        return None
    half = summary["half"]
    interval = None if half is None else [summary["mean"] - half, summary["mean"] + half]
    return {"mean": summary["mean"], "ci95": interval, "seeds": summary["seeds"]}


def _figure_axes(columns: int, height: float, width: float = 11.0):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    axes = fig.subplots(1, columns, squeeze=False)[0]
    for ax in axes:
        ax.spines[["top", "right"]].set_visible(False)
        ax.grid(True, color="#e3e6ec", linewidth=0.7)
        ax.set_axisbelow(True)
    return fig, list(axes)


def _shared_legend(fig, ax) -> None:
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside upper center", ncol=min(len(labels), 8), frameon=False)


def _tokens_formatter():
    from matplotlib.ticker import FuncFormatter

    def short(value: float, _position: int) -> str:
        for scale, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
            if abs(value) >= scale:
                return f"{value / scale:g}{suffix}"
        return f"{value:g}"

    return FuncFormatter(short)


def _plain_formatter():
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(lambda value, _position: f"{value:g}")


def _figure(fig, caption: str) -> str:
    return f"<figure>\n{_svg(fig)}\n<figcaption>{caption}</figcaption>\n</figure>"


def _svg(fig) -> str:
    """The figure as inline SVG: text kept as text, no XML prolog, namespaces or metadata (none of which
    inline SVG in HTML needs), and a fixed id salt so an identical report gives an identical page."""
    import matplotlib

    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "corpuslab", "font.size": 9.5,
                                "font.family": ["DejaVu Sans", "sans-serif"], "axes.titlesize": 10.5}):
        fig.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None, "Format": None, "Type": None})
    text = buffer.getvalue()
    text = text[text.index("<svg"):]
    text = re.sub(r"<metadata>.*?</metadata>\s*", "", text, flags=re.DOTALL)
    text = re.sub(r'\s+xmlns(:\w+)?="[^"]*"', "", text)
    return text.replace("xlink:href", "href")


# ---------------------------------------------------------------------------------------------- cells


def _table(header: Sequence[str], rows: Iterable[Sequence[str]], text_columns: Collection[int] = ()) -> str:
    head = "".join(f'<th class="text">{h}</th>' if i in text_columns else f"<th>{h}</th>" for i, h in enumerate(header))
    body = "".join(
        "<tr>" + "".join(f'<td class="text">{c}</td>' if i in text_columns else f"<td>{c}</td>"
                         for i, c in enumerate(row)) + "</tr>"
        for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _mean_ci_cell(stats: dict[str, Any] | None, bold: bool = False) -> str:
    if not stats or stats.get("mean") is None:
        return '<span class="muted">–</span>'
    mean, interval = stats["mean"], stats.get("ci95")
    text = _fmt(mean)
    if interval is not None and interval[1] > interval[0]:
        text += f' <span class="ci">± {_fmt((interval[1] - interval[0]) / 2)}</span>'
    return f'<span class="best">{text}</span>' if bold else text


def _difference_cell(stats: dict[str, Any] | None) -> str:
    if not stats or stats.get("mean") is None:
        return '<span class="muted">–</span>'
    mean, interval = stats["mean"], stats.get("ci95")
    text = _fmt_signed(mean)
    if interval is not None:
        text += f' <span class="ci">[{_fmt_signed(interval[0])}, {_fmt_signed(interval[1])}]</span>'
    if stats.get("significant"):
        return f'<span class="{"better" if mean < 0 else "worse"}" title="95% interval excludes 0">{text}</span>'
    return text


def _factor_cell(factor: dict[str, Any]) -> str:
    if factor.get("mean") is None:
        methods = {str(f.get("method")) for f in factor.get("per_seed", [])}
        return f'<span class="muted" title="{escape("; ".join(sorted(methods)))}">not available</span>'
    text = f"{factor['mean']:.3g}×"
    if factor.get("ci95"):
        low, high = factor["ci95"]
        text += f' <span class="ci">[{low:.3g}, {high:.3g}]</span>'
    methods = [str(f.get("method", "")).split(" (")[0] for f in factor.get("per_seed", [])]
    counts = {m: methods.count(m) for m in dict.fromkeys(methods)}
    how = ", ".join(f"{m} ×{c}" if c > 1 else m for m, c in counts.items())
    return f'{text}<br><span class="ci">{escape(how)}</span>' if how else text


def _task_cell(summary: dict[str, Any] | None) -> str:
    if summary is None or summary["mean"] is None:
        return '<span class="muted">–</span>'
    text = _fmt(summary["mean"])
    if summary["half"] is not None:
        text += f' <span class="ci">± {_fmt(summary["half"])}</span>'
    if summary.get("examples") is not None:
        text += f' <span class="ci">(n={_fmt(summary["examples"])})</span>'
    return text


def _best_index(means: list[float | None], lower_is_better: bool | None) -> int | None:
    ranked = [(m, i) for i, m in enumerate(means) if m is not None]
    if lower_is_better is None or len(ranked) < 2 or len({m for m, _ in ranked}) == 1:
        return None
    return (min if lower_is_better else max)(ranked)[1]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _fmt(value: Any) -> str:
    """Numbers for a table: integers with thousands separators, others to 4 decimals (losses differ in the
    third), huge ones (a perplexity of 1e17) in scientific notation, '–' for missing."""
    if value is None:
        return '<span class="muted">–</span>'
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


def _fmt_signed(value: float) -> str:
    return ("+" if value > 0 else "−" if value < 0 else "") + _fmt(abs(value))
