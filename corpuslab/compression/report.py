"""Compression results: runs.tsv (one row per run, like the seed's runs.csv), results.json, report.html.

The HTML page is made of report-section plug-ins (`corpuslab.report.sections`): `CompressionResults` (the
table of runs and the baselines) and `CompressionPlots` (code length and description length against dataset
size and method; test loss against non-zero parameters; each run's loss per epoch). They apply to any report
that carries a `compression` entry, and to nothing else.
"""

from __future__ import annotations

import csv
import io
import json
from html import escape
from pathlib import Path
from typing import Any

from corpuslab.atomic import write_text_atomic
from corpuslab.report.page import MISSING, Page, fmt, render_page, table
from corpuslab.report.sections import Section, sections

# runs.tsv columns: (column, how to read it from a results row)
PARAMETER_COLUMNS = ("alpha", "beta", "initial_p_value")
METRIC_COLUMNS = ("dataset_bytes", "parameters", "nonzero_params", "model_bytes", "train_bpb", "test_bpb",
                  "online_code_length_bits", "online_bpb", "description_length_bytes", "compression_ratio")


def _config(row: dict[str, Any]) -> dict[str, Any]:
    return row["procedure"]["config"]


def flat_row(row: dict[str, Any]) -> dict[str, Any]:
    """One runs.tsv row: the run's parameters and metrics."""
    config = _config(row)
    out: dict[str, Any] = {"run": row["run"], "status": row["status"], "procedure": row["procedure"]["name"],
                           "size": row["size"], "model": row["model"], "use_pretrained_model": row["use_pretrained_model"]}
    held_out = row.get("held_out") or {}
    out.update({"held_out": held_out.get("mode"), "validation": held_out.get("validation"), "test": held_out.get("test")})
    for key in PARAMETER_COLUMNS:
        out[key] = config.get(key)
    for phase in ("prelude", "main", "fine_tuning"):
        out[f"epochs_{phase}"] = config[phase]["epochs"]
        out[f"stop_epoch_at_batch_{phase}"] = config[phase]["stop_epoch_at_batch"]
        out[f"steps_per_chunk_{phase}"] = config[phase]["steps_per_chunk"]
    pruning = config["pruning"]
    out.update({"do_pruning": pruning["enabled"], "first_pruning_after": pruning["first_pruning_after"],
                "prune_every": pruning["prune_every"],
                "tolerated_relative_loss_increase": pruning["tolerated_relative_loss_increase"],
                "prunings": len(row.get("pruning") or []),
                "last_threshold": (row.get("pruning") or [{}])[-1].get("threshold"),
                "inherited_masked_params": row.get("inherited_masked_params")})
    metrics = row.get("metrics") or {}
    for key in METRIC_COLUMNS:
        out[key] = metrics.get(key)
    for name, baseline in row["baselines"].items():
        out[f"{name}_bpb"] = baseline["bits_per_byte"]
    out["tokens_per_second"] = row.get("tokens_per_second")
    out["model_path"] = row.get("model_path")
    return out


def runs_tsv(results: dict[str, Any]) -> str:
    rows = [flat_row(row) for row in results["runs"]]
    columns = list(dict.fromkeys(key for row in rows for key in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, columns, delimiter="\t", lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if v is None else round(v, 6) if isinstance(v, float) else v) for k, v in row.items()})
    return buffer.getvalue()


def write_results(root: Path, results: dict[str, Any]) -> None:
    write_text_atomic(root / "results.json", json.dumps(results, indent=2, default=str))
    write_text_atomic(root / "runs.tsv", runs_tsv(results))
    report = {"experiment": results["experiment"], "arms": {row["run"]: row for row in results["runs"]},
              "compression": True}
    page = Page(report, [CompressionResults(), CompressionPlots()])
    write_text_atomic(root / "report.html", render_page(page))


def _method(row: dict[str, Any]) -> str:
    return row["procedure"]["name"]


@sections.register
class CompressionResults(Section):
    name, title, anchor, order = "compression_results", "Compression", "compression", 10.0

    def applies(self, report: dict[str, Any]) -> bool:
        return bool(report.get("compression"))

    def render(self, page: Page) -> str:
        header = ["run", "method", "status", "training bytes", "non-zero params", "model bytes", "train bpb", "test bpb",
                  "online code length (bits)", "online bpb", "description length (bytes)", "ratio"]
        rows = []
        for name in page.names:
            row = page.arms[name]
            metrics = row.get("metrics") or {}
            rows.append([page.arm_label(name), escape(_method(row)), escape(row["status"]), fmt(row["dataset_bytes"]),
                         *(fmt(metrics.get(k)) if k in metrics else MISSING for k in
                           ("nonzero_params", "model_bytes", "train_bpb", "test_bpb", "online_code_length_bits",
                            "online_bpb", "description_length_bytes", "compression_ratio"))])
        baselines = self._baselines(page)
        held_out = list(dict.fromkeys((h["mode"], h["validation"], h["test"]) for h in
                                      (page.arms[n].get("held_out") for n in page.names) if h))
        where = {"source": "the source's own splits", "stream": "the same stream as training"}
        splits = "".join(f'<p class="note">Validation and test ({where[mode]}): validation {escape(val)}; test '
                         f"{escape(test)}.</p>\n" for mode, val, test in held_out)
        note = ('<p class="note">bpb: bits per byte. Model bytes = 4 x non-zero parameters. Description length = model '
                "bytes + train loss x training bytes / (8 ln 2); ratio = training bytes / description length. The online "
                "(prequential) code length sums each batch's loss, taken before its update, over the first pass.</p>")
        return (f'<h1>corpuslab · {escape(str(page.report.get("experiment", "")))}</h1>\n'
                f'<h2 id="{self.anchor}">{self.title}</h2>\n{table(header, rows, text_columns=(0, 1, 2))}\n{note}\n{splits}{baselines}')

    def _baselines(self, page: Page) -> str:
        seen: dict[Any, dict[str, Any]] = {}
        for row in page.arms.values():
            seen.setdefault(row["dataset_bytes"], row["baselines"])
        rows = []
        for size, compared in seen.items():
            for baseline in compared.values():
                key = next((k for k in baseline if k.startswith("chunked_") and k.endswith("_bits_per_byte")), None)
                chunked, chunk = (baseline[key], key.split("_")[1]) if key else (None, "?")
                rows.append([fmt(size), escape(baseline["label"]), fmt(baseline["compressed_bytes"]),
                             fmt(baseline["bits_per_byte"]), fmt(baseline["ratio"]),
                             f'<span class="muted">{fmt(chunked)} (chunked, {chunk} B at a time)</span>'])
        header = ["training bytes", "compressor", "compressed bytes", "bpb (one stream)", "ratio", "bpb chunked as in the seed"]
        return f"<h3>Baselines on the same bytes</h3>\n{table(header, rows, text_columns=(1, 5))}"


@sections.register
class CompressionPlots(Section):
    name, title, anchor, order = "compression_plots", "Compression plots", "compression-plots", 11.0

    def applies(self, report: dict[str, Any]) -> bool:
        return bool(report.get("compression"))

    def render(self, page: Page) -> str:
        from corpuslab.report.plots import figure, figure_axes, shared_legend

        done = [n for n in page.names if page.arms[n].get("metrics")]
        if not done:
            return ""
        methods = list(dict.fromkeys(_method(page.arms[n]) for n in done))
        colors = {m: page.colors[page.names[i % len(page.names)]] for i, m in enumerate(methods)}
        fig, axes = figure_axes(3, 3.4, width=13.0)
        for method in methods:
            runs = [page.arms[n] for n in done if _method(page.arms[n]) == method]
            sizes = [r["metrics"]["dataset_bytes"] for r in runs]
            axes[0].scatter(sizes, [r["metrics"]["online_code_length_bits"] / 8 for r in runs], color=colors[method],
                            label=method, marker="o")
            axes[1].scatter(sizes, [r["metrics"]["description_length_bytes"] for r in runs], color=colors[method], marker="s")
            axes[2].scatter([r["metrics"]["nonzero_params"] for r in runs], [r["metrics"]["test_bpb"] for r in runs],
                            color=colors[method], marker="D")
        for ax, (xlabel, ylabel) in zip(axes, [("training bytes", "online code length (bytes)"),
                                               ("training bytes", "description length (bytes)"),
                                               ("non-zero parameters", "test loss (bits per byte)")]):
            ax.set_xlabel(xlabel)
            ax.set_ylabel(ylabel)
            ax.set_xscale("log")
        shared_legend(fig, axes[0])
        summary = figure(fig, "Code length and description length by dataset size and method; test loss against "
                              "non-zero parameters.")
        fig, axes = figure_axes(1, 3.2)
        for name in done:
            epochs = page.arms[name].get("epochs") or []
            axes[0].plot(range(1, len(epochs) + 1), [e["bits"] / e["tokens"] for e in epochs], marker=".",
                         color=page.colors[name], label=name)
        axes[0].set_xlabel("epoch (prelude, main, fine-tuning in order)")
        axes[0].set_ylabel("training loss before update (bits/byte)")
        shared_legend(fig, axes[0])
        curves = figure(fig, "Each run's mean pre-update training loss per epoch (the first epoch is the online code length).")
        return f'<h2 id="{self.anchor}">{self.title}</h2>\n{summary}\n{curves}'
