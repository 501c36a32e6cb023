"""Report sections as plug-ins: each renders one part of report.html and declares its summary.tsv columns.

A section says whether it has something to show for a report (`applies`), renders it (`render`), and
lists the summary columns it contributes (`summary_columns`): summary.tsv holds the base columns plus
the columns of every section that applies, placed by each column's `order`. So an experiment whose arms
have no duplicate detection gets no dedup columns, and a new kind of arm brings its own.

A metric (`corpuslab.evaluation.metrics`) names the section that renders it; its `SummaryColumn`s become
that section's columns. A metric whose section is not registered gets `MetricTable`, a generic table of
its columns, so a new metric shows up in the report and in summary.tsv with no report code at all.

Register a section from any module (a user's, listed under `plugins`):

    from corpuslab.report.sections import Column, Section, sections

    @sections.register
    class Throughput(Section):
        name, title, order = "throughput", "Throughput", 65
        columns = (Column("tokens_per_second", 60, lambda name, arm: ...),)

        def render(self, page):
            return f'<h2 id="{self.anchor}">{self.title}</h2>...'
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from corpuslab.evaluation.metrics import Metric, SummaryColumn, metrics
from corpuslab.registry import Plugin, Registry
from corpuslab.report.page import Page

ArmEntry = Mapping[str, Any]  # one arm of report.json: recipe, curation, packing, replicates, aggregate, ...


@dataclass(frozen=True)
class Column:
    """A summary.tsv column: its name, its place (`order`, lower first) and how to read it from an arm.

    key: the aggregate key whose mean over seeds the column is, when it is one; groups.tsv pools those
    over a group's replicates, and `label`/`compare` say how tables name it and whether arms are compared on it.
    """

    name: str
    order: float
    read: Callable[[str, ArmEntry], Any]
    key: str | None = None
    label: str = ""
    compare: bool = False


def recipe_name(arm: ArmEntry) -> Any:
    """The arm's recipe by name, whether report.json holds a name or a plug-in description {name, version, config}."""
    recipe = arm.get("recipe")
    return recipe.get("name") if isinstance(recipe, Mapping) else recipe


def mean_of(key: str, digits: int = 4) -> Callable[[str, ArmEntry], Any]:
    """A reader of the mean over seeds of aggregate `key`, rounded: what summary.tsv holds."""

    def read(_name: str, arm: ArmEntry) -> Any:
        return round_number(arm.get("aggregate", {}).get(key, {}).get("mean"), digits)

    return read


def round_number(value: Any, digits: int = 4) -> Any:
    return round(float(value), digits) if isinstance(value, (int, float)) and not isinstance(value, bool) else value


def metric_column(column: SummaryColumn) -> Column:
    return Column(column.name, column.order, mean_of(column.key), column.key, column.label, column.compare)


# The first columns of every summary.tsv row.
BASE_COLUMNS = (
    Column("arm", 0, lambda name, arm: name),
    Column("recipe", 1, lambda name, arm: recipe_name(arm)),
    Column("level", 2, lambda name, arm: arm.get("level")),
    Column("seeds", 3, lambda name, arm: len(arm.get("replicates", []))),
)


class Section(Plugin, abc.ABC):
    """One part of the page. `order` places it on the page; `anchor` and `title` make its link in the
    page's navigation (no title: no link)."""

    title: ClassVar[str] = ""
    anchor: ClassVar[str] = ""
    order: ClassVar[float] = 150.0
    columns: ClassVar[tuple[Column, ...]] = ()

    def applies(self, report: dict[str, Any]) -> bool:
        """Whether this section has anything to show (and its columns a place in summary.tsv)."""
        return bool(report.get("arms"))

    def summary_columns(self) -> Sequence[Column]:
        return self.columns

    @abc.abstractmethod
    def render(self, page: Page) -> str:
        """The section's HTML; "" leaves it out of the page."""


sections: Registry[Section] = Registry("section", Section)


class MetricSection(Section):
    """A section that renders one metric: its summary columns are the metric's."""

    metric: ClassVar[str] = ""

    def summary_columns(self) -> Sequence[Column]:
        declared = metrics.get(self.metric, "report").columns if self.metric in metrics else ()
        return (*self.columns, *(metric_column(c) for c in declared))

    def applies(self, report: dict[str, Any]) -> bool:
        return any_aggregate(report, {c.key for c in self.summary_columns() if c.key})


class MetricTable(Section):
    """The generic section of a metric without a registered one: mean ± 95% interval of its columns per arm."""

    order = 200.0

    def __init__(self, metric: type[Metric]):
        super().__init__()
        self.metric = metric

    @property
    def title(self) -> str:  # type: ignore[override]
        return self.metric.name.replace("_", " ")

    @property
    def anchor(self) -> str:  # type: ignore[override]
        return f"metric-{self.metric.name}"

    def summary_columns(self) -> Sequence[Column]:
        return tuple(metric_column(c) for c in self.metric.columns)

    def applies(self, report: dict[str, Any]) -> bool:
        return any_aggregate(report, {c.key for c in self.metric.columns})

    def render(self, page: Page) -> str:
        from html import escape

        from corpuslab.report.page import mean_ci_cell, table

        header = ["metric (mean ± 95% CI half-width over seeds)"] + [page.arm_label(n) for n in page.names]
        from corpuslab.report.pooling import seed_values

        rows = [[escape(c.label or c.name)] + [mean_ci_cell(page.aggregate(n, c.key),
                                                            seeds=list(seed_values(page.arms[n], c.key).values()))
                                               for n in page.names] for c in self.metric.columns]
        doc = " ".join((self.metric.__doc__ or "").split())
        note = f'<p class="note">{escape(doc)}</p>' if doc else ""
        return f'<h2 id="{self.anchor}">{escape(self.title)}</h2>\n{table(header, rows)}\n{note}'


def any_aggregate(report: dict[str, Any], keys: set[str]) -> bool:
    """Whether any arm has a number for any of `keys`."""
    return any(key in arm.get("aggregate", {}) for arm in report.get("arms", {}).values() for key in keys)


def page_sections(report: dict[str, Any]) -> list[Section]:
    """The sections that apply to `report`, in page order: every registered one, and a `MetricTable` for
    each metric whose own section is not registered."""
    candidates: list[Section] = [cls() for cls in sections]
    candidates += [MetricTable(metric) for metric in metrics if metric.section not in sections]
    return sorted((s for s in candidates if s.applies(report)), key=lambda s: (s.order, s.name or s.anchor))


def summary_columns(report: dict[str, Any], shown: Sequence[Section] | None = None) -> list[Column]:
    """summary.tsv's columns for `report`: the base ones, then those of the sections that apply, by `order`.
    Two sections declaring one column name is an error: the table would silently show only one of them."""
    columns = list(BASE_COLUMNS)
    for section in page_sections(report) if shown is None else shown:
        columns += section.summary_columns()
    seen: dict[str, Column] = {}
    for column in columns:
        if column.name in seen and seen[column.name] is not column:
            raise ValueError(f"summary column '{column.name}' is declared twice")
        seen[column.name] = column
    return sorted(seen.values(), key=lambda c: c.order)


def compared_columns(report: dict[str, Any]) -> list[Column]:
    """The metric columns arms and groups are compared on, in summary order, that some arm has a number for."""
    return [c for c in summary_columns(report) if c.compare and c.key and any_aggregate(report, {c.key})]
