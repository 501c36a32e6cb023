"""The dedup ablation's recipes: `none`, `exact` and `near` (exact, then MinHash LSH with verified Jaccard).

Which copy is kept: always the earliest in corpus order (see `curation/dedup/clusters.py`). Each recipe
grades its removals against ground truth when the items carry it (the synthetic corpus's planted
duplicates): precision, and recall of the duplicates a detector at `truth_threshold` should find.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from corpuslab.curation.decisions import Decision
from corpuslab.curation.dedup.config import MinHashConfig, NormalizeConfig
from corpuslab.curation.recipes.base import CurationContext, Recipe, recipes
from corpuslab.errors import ConfigError
from corpuslab.schema import require
from corpuslab.shards import read_documents

if TYPE_CHECKING:  # the numba kernels load when a recipe runs, not when a config names it
    from corpuslab.curation.dedup.clusters import DedupResult


class DedupRecipe(Recipe):
    """Shared by the dedup recipes: engine stats, the largest clusters' text, ground-truth grading."""

    def decide(self, items: list[Path], inputs: dict[str, Path], context: CurationContext) -> Iterable[Decision]:
        result = self.find(items, context)
        if result is None:
            return []
        context.stats["engine"] = result.stats
        _add_cluster_excerpts(result.stats.get("largest_clusters", []), items)
        reasons = result.stats.get("dropped_by_reason", {})
        dropped = sum(reasons.values())
        by_reason = ", ".join(f"{reason} {count:,}" for reason, count in sorted(reasons.items(), key=lambda kv: -kv[1]))
        context.log(f"  {self.name}: dropped {dropped:,} of {result.stats.get('docs_in', 0):,}"
                    + (f" ({by_reason})" if by_reason else "") + self._detail(result))
        return result.decisions

    def find(self, items: list[Path], context: CurationContext) -> DedupResult | None:
        return None

    def _detail(self, result: DedupResult) -> str:
        return ""

    def grade(self, items: list[Path], dropped: set[str]) -> dict[str, Any] | None:
        from corpuslab.sources.synthetic import score_removals, truth_records

        rows = [(d.id, d.metadata) for d in read_documents(items, columns=["id", "meta"])]
        if next(truth_records(rows), None) is None:
            return None
        return score_removals(dropped, rows, threshold=self.config.truth_threshold)


@recipes.register
class KeepAll(DedupRecipe):
    """Keep every item: the reference arm."""

    name = "none"

    @dataclass(frozen=True)
    class Config:
        truth_threshold: float = 0.85  # for grading only: near duplicates at or above it count toward recall

        def validate(self, prefix: str) -> None:
            require(0 < self.truth_threshold <= 1, f"{prefix}.truth_threshold", self.truth_threshold, "a number in (0, 1]")


@recipes.register
class ExactDedup(DedupRecipe):
    """Drop all but the earliest copy of identical normalized text."""

    name = "exact"

    @dataclass(frozen=True)
    class Config:
        normalize: NormalizeConfig = field(default_factory=NormalizeConfig)
        truth_threshold: float = 0.85

        def validate(self, prefix: str) -> None:
            require(0 < self.truth_threshold <= 1, f"{prefix}.truth_threshold", self.truth_threshold, "a number in (0, 1]")

    def find(self, items: list[Path], context: CurationContext) -> DedupResult:
        from corpuslab.curation.dedup.exact import find_exact_duplicates

        return find_exact_duplicates(items, self.config.normalize, context.executor)


@recipes.register
class NearDedup(DedupRecipe):
    """Exact dedup, then MinHash LSH on the survivors; every candidate verified by its true Jaccard."""

    name = "near"

    @dataclass(frozen=True)
    class Config:
        normalize: NormalizeConfig = field(default_factory=NormalizeConfig)
        minhash: MinHashConfig = field(default_factory=MinHashConfig)

        @property
        def truth_threshold(self) -> float:
            return self.minhash.threshold

    def find(self, items: list[Path], context: CurationContext) -> DedupResult:
        from corpuslab.curation.dedup.near import find_exact_and_near_duplicates

        return find_exact_and_near_duplicates(items, self.config.minhash, self.config.normalize, context.executor,
                                              spill_dir=_spill_folder(context.spill_dir))

    def _detail(self, result: DedupResult) -> str:
        return (f"; minhash {self.config.minhash}: {result.stats.get('candidate_pairs', 0):,} candidate pairs, "
                f"{result.stats.get('candidates_rejected_by_verification', 0):,} rejected by verification")


def _spill_folder(folder: Path | None) -> Path | None:
    """`curation.spill_dir`, made if missing (the engine spills into a temporary folder under it)."""
    if folder is None:
        return None
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError("curation.spill_dir", str(folder), f"a folder corpuslab can create and write ({err.strerror})") from err
    return Path(folder)


def _add_cluster_excerpts(clusters: list[dict[str, Any]], shards: list[Path], chars: int = 200) -> None:
    """Put the start of each large cluster's kept document next to it, so the report can show what it is."""
    wanted = {c["cluster_id"]: c for c in clusters}
    if not wanted:
        return
    for doc in read_documents(shards, columns=["id", "text"]):
        if doc.id in wanted:
            wanted[doc.id]["excerpt"] = " ".join(doc.text[:chars].split())
