"""Report sections: the registry, and the built-in sections registered by importing their modules.

Page order: header (with the glance), config, corpus, curation funnel, duplicate detection, metrics,
comparison with the reference arm, category diversity (K of N), groups, loss curves, in-context curve, categories, canaries, tasks,
then a generic table per metric without a section of its own.
"""

from corpuslab.report.sections import breakdowns, canaries, curation, distill, diversity, groups, overview, results, tasks  # noqa: F401
from corpuslab.report.sections.base import (
    BASE_COLUMNS,
    ArmEntry,
    Column,
    MetricSection,
    MetricTable,
    Section,
    compared_columns,
    mean_of,
    page_sections,
    recipe_name,
    round_number,
    sections,
    summary_columns,
)

__all__ = [
    "BASE_COLUMNS",
    "ArmEntry",
    "Column",
    "MetricSection",
    "MetricTable",
    "Section",
    "compared_columns",
    "mean_of",
    "page_sections",
    "recipe_name",
    "round_number",
    "sections",
    "summary_columns",
]
