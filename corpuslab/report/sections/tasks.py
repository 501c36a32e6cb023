"""Zero-shot downstream tasks (the `tasks` metric): a table per task and metric, subtasks folded away, a dot plot."""

from __future__ import annotations

from html import escape
from typing import Any

import numpy as np

from corpuslab.report.page import Page, fmt, is_number, missing, seed_range, table
from corpuslab.report.plots import dot_plot, figure, figure_axes, shared_legend, value_axis
from corpuslab.report.sections.base import MetricSection, sections
from corpuslab.report.stats import mean_ci

TaskTable = dict[tuple[str, str], dict[str, dict[str, Any]]]  # (task, metric) -> arm -> summary


@sections.register
class Tasks(MetricSection):
    name = "tasks"
    metric = "tasks"
    anchor = "tasks"
    title = "Tasks"
    order = 100

    def applies(self, report: dict[str, Any]) -> bool:
        return any(r.get("metrics", {}).get("tasks") for arm in report.get("arms", {}).values()
                   for r in arm.get("replicates", []))

    def render(self, page: Page) -> str:
        everything = task_table(page)
        if not everything:
            return ""
        names = {task for task, _ in everything}
        # A grouped task reports `<task>_<group>` subtasks (BLiMP's 67 paradigms) next to their mean `<task>`:
        # the plot and the main table show the tasks, the subtasks fold away.
        subtasks = {task for task in names if any(task.startswith(f"{other}_") for other in names if other != task)}
        tasks = {key: value for key, value in everything.items() if key[0] not in subtasks}
        header = ["task", "metric"] + [page.arm_label(n) for n in page.names]

        def rows(selection: TaskTable) -> list[list[str]]:
            return [[escape(task), escape(metric)] + [_task_cell(by_arm.get(n)) for n in page.names]
                    for (task, metric), by_arm in selection.items()]

        folded = {key: value for key, value in everything.items() if key[0] in subtasks}
        details = (f"<details><summary>Subtasks ({len(subtasks)})</summary>\n"
                   f"{table(header, rows(folded))}</details>\n" if folded else "")
        caption = ("Downstream tasks: mean over seeds ± 1.96 × the task's standard error (the benchmark's sampling "
                   "error; the 95% interval over seeds where a task reports no standard error). Small dots: each seed. "
                   "A metric whose values span a factor of 10 or more is on a log axis; otherwise the axis is linear.")
        return (f'<h2 id="tasks">Downstream tasks</h2>\n{table(header, rows(tasks))}\n'
                f"{details}{figure(_plot_tasks(page, tasks), caption)}")


def _task_cell(summary: dict[str, Any] | None) -> str:
    if summary is None or summary["mean"] is None:
        return missing("not scored for this arm")
    text = fmt(summary["mean"])
    if summary["half"] is not None:
        text += f' <span class="ci">± {fmt(summary["half"])}</span>'
    if summary.get("examples") is not None:
        text += f' <span class="ci">(n={fmt(summary["examples"])})</span>'
    return text + seed_range(summary.get("seeds") or [])


def task_table(page: Page) -> TaskTable:
    """{(task, metric): {arm: {mean, half, n_examples}}} from metrics["tasks"] of every replicate."""
    collected: dict[tuple[str, str], dict[str, list[tuple[float, float | None, Any]]]] = {}
    for name in page.names:
        for replicate in page.replicates(name):
            for task, scores in (replicate["metrics"].get("tasks") or {}).items():
                for metric, value in scores.items():
                    if metric == "n" or metric.endswith("_stderr") or not is_number(value):
                        continue
                    stderr = scores.get(f"{metric}_stderr")
                    entry = (float(value), float(stderr) if is_number(stderr) else None, scores.get("n"))
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


def _as_mean_ci(summary: dict[str, Any] | None) -> dict[str, Any] | None:
    if summary is None or summary["mean"] is None:
        return None
    half = summary["half"]
    interval = None if half is None else [summary["mean"] - half, summary["mean"] + half]
    return {"mean": summary["mean"], "ci95": interval, "seeds": summary["seeds"]}


def _plot_tasks(page: Page, tasks: TaskTable):
    metrics = sorted({metric for _, metric in tasks})
    fig, axes = figure_axes(len(metrics), height=3.4)
    for ax, metric in zip(axes, metrics):
        names = [task for task, m in tasks if m == metric]
        dot_plot(ax, page, names, lambda name, task, metric=metric: _as_mean_ci(tasks[(task, metric)].get(name)))
        # The plotted points (means and each seed) decide the scale; on a log axis whiskers below 0 are clipped.
        points = [v for (_, m), by_arm in tasks.items() if m == metric for s in by_arm.values()
                  for v in [s["mean"], *s["seeds"]] if v is not None]
        value_axis(ax, points)
        ax.set_title(metric)
    shared_legend(fig, axes[0])
    return fig
