"""`report.json`, `summary.tsv` (and `groups.tsv`): what each arm removed, what it saw, and how it scored.

Built only from stage manifests and metric files, so the report is cheap to rebuild and a rerun that
reuses every stage writes the same report. The experiment hands its stages over as plain objects that
fit the protocols below; the report never imports the experiment.

summary.tsv has one row per arm and the columns of the report sections that apply (`report.sections`):
the base columns, curation, training, every metric's own, and detection's for dedup arms. Where arms
share a `group` (the cells of a grid), groups.tsv has one row per group, pooling their replicates.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from corpuslab.artifacts import read_json, write_json_atomic
from corpuslab.atomic import FileSet, atomic_file
from corpuslab.paths import relocate
from corpuslab.report.caveats import comparison_warnings
from corpuslab.report.html import write_html_report
from corpuslab.report.pooling import (
    aggregate,
    compare_groups,
    group_of,
    pool_groups,
    replicate_numbers,
    seed_values,
    significant_best,
)
from corpuslab.report.sections import Column, compared_columns, round_number, summary_columns
from corpuslab.report.sections.results import HEADLINE
from corpuslab.report.stats import data_equivalent_factor, mean_ci, paired_difference
from corpuslab.schema import to_dict

CANARY_EXAMPLES = 5


class StageLike(Protocol):
    """A finished stage: its folder and its manifest (`artifacts.Stage`)."""

    @property
    def path(self) -> Path: ...

    def manifest(self) -> dict[str, Any]: ...


class ReplicateStages(Protocol):
    seed: int
    train: StageLike
    evaluate: StageLike


class ArmStagesLike(Protocol):
    curate: StageLike
    pack: StageLike
    replicates: Sequence[ReplicateStages]


class PreparedLike(Protocol):
    ingest: StageLike
    split: StageLike
    decontaminate: StageLike
    tokens: StageLike
    canaries: StageLike


class ExperimentLike(Protocol):
    """What the report reads of an experiment: its config (`experiment`, `runs`) and its output folder."""

    cfg: Any
    root: Path


def write_report(
    experiment: ExperimentLike, prepared: PreparedLike, arms: dict[str, ArmStagesLike], files: FileSet
) -> dict[str, Any]:
    """Build the report and write its outputs into `files`, which the caller commits with the config."""
    cfg = experiment.cfg
    report: dict[str, Any] = {
        "experiment": cfg.experiment,
        "config": to_dict(cfg),
        "corpus": {
            "ingest": _clean(prepared.ingest.manifest()),
            "split": _clean(prepared.split.manifest()),
            "decontamination": _clean(prepared.decontaminate.manifest()),
            "tokens": _clean(prepared.tokens.manifest()),
            "canaries": _clean(prepared.canaries.manifest()),
            "canary_share": canary_tokens(prepared.tokens.path),
        },
        "arms": {run.name: arm_report(run, arms[run.name]) for run in cfg.runs if run.name in arms},
    }
    baselines = checkpoint_metrics(experiment.root)
    if baselines:  # pretrained models scored on this experiment's data (`evaluate --checkpoint`), for reference
        report["baselines"] = baselines
    add_comparisons(report, reference_arm=cfg.runs[0].name)
    locations = getattr(experiment, "artifact_locations", None)  # a URL output_dir: list where things went
    if locations is not None:
        report = relocate(report, locations())
    write_outputs(report, files)
    return report


def checkpoint_metrics(root: Path) -> dict[str, Any]:
    """{checkpoint: its metrics.json} for every checkpoint `corpuslab evaluate --checkpoint` scored in this
    experiment (`<root>/checkpoints/<name>/metrics.json`), by the name it was given."""
    out = {}
    for path in sorted((Path(root) / "checkpoints").glob("*/metrics.json")):
        metrics = read_json(path)
        out[str(metrics.get("checkpoint", path.parent.name))] = metrics
    return out


def add_comparisons(report: dict[str, Any], reference_arm: str) -> None:
    """Arms against the reference arm, and groups (pooled replicates) against the reference arm's group."""
    arms = report["arms"]
    report["comparison"] = compare_arms(arms, reference=reference_arm)
    report["groups"] = pool_groups(arms)
    reference_group = group_of(reference_arm, arms[reference_arm]) if reference_arm in arms else ""
    keys = [c.key for c in compared_columns(report) if c.key]
    report["group_comparison"] = compare_groups(arms, reference_group, keys)
    report["best"] = best_arms(arms)
    report["warnings"] = comparison_warnings(report)


def best_arms(arms: dict[str, Any]) -> dict[str, Any]:
    """{key: {arm, reason}} for the ranked headline rows: an arm is best only when significantly so (`stats.best_arm`)."""
    out = {}
    for key, _label, lower_is_better in HEADLINE:
        if lower_is_better is not None and any(seed_values(arm, key) for arm in arms.values()):
            out[key] = significant_best(arms, key, lower_is_better)
    return out


def canary_tokens(tokens_stage: Path) -> dict[str, Any] | None:
    """Canary documents, tokens and bytes in the tokenized train split, and their shares, read from the tokens
    stage's document table (`canary` column) and offsets; None for a stage that predates the column."""
    import numpy as np
    import pyarrow.parquet as pq

    table_path, offsets_path = tokens_stage / "train.docs.parquet", tokens_stage / "train.idx.npy"
    if not table_path.exists() or not offsets_path.exists():
        return None
    table = pq.read_table(table_path)
    if "canary" not in table.column_names:
        return None
    canary = np.asarray(table.column("canary").to_numpy(zero_copy_only=False), dtype=bool)
    lengths = np.diff(np.load(offsets_path))
    if len(lengths) != len(canary):
        return None
    byte_counts = np.asarray(table.column("bytes").to_numpy(), dtype=np.int64)
    tokens, total = int(lengths[canary].sum()), int(lengths.sum())
    return {"documents": int(canary.sum()), "train_documents": len(canary), "tokens": tokens, "train_tokens": total,
            "token_share": tokens / total if total else None, "bytes": int(byte_counts[canary].sum()),
            "train_bytes": int(byte_counts.sum())}


def write_outputs(report: dict[str, Any], files: FileSet) -> None:
    """summary.tsv, groups.tsv (only when some group pools several arms), report.html and report.json,
    staged in `files`: they replace the previous run's outputs together or not at all."""
    write_summary(files.path("summary.tsv"), report)
    if has_pooled_groups(report):
        write_groups(files.path("groups.tsv"), report)
    else:  # a rerun without groups must not leave an earlier run's table looking current
        files.remove("groups.tsv")
    write_html_report(report, files.path("report.html"))
    write_json_atomic(files.path("report.json"), report)


def arm_report(run: Any, stages: ArmStagesLike) -> dict[str, Any]:
    replicates = [replicate_report(r) for r in stages.replicates]
    return {
        "recipe": _recipe(run.recipe),
        "level": run.level,
        "group": getattr(run, "group", None) or run.name,
        "curation": stages.curate.manifest()["stats"],
        "packing": _clean(stages.pack.manifest()),
        "artifacts": {"curate": str(stages.curate.path), "pack": str(stages.pack.path)},
        "replicates": replicates,
        "aggregate": aggregate(replicates),
    }


def _recipe(recipe: Any) -> Any:
    """The recipe as report.json holds it: its name, or a plug-in's description {name, version, config}."""
    describe = getattr(recipe, "describe", None)
    return describe() if callable(describe) else to_dict(recipe)


def replicate_report(replicate: ReplicateStages) -> dict[str, Any]:
    trained, evaluated = replicate.train, replicate.evaluate
    canaries = evaluated.path / "canaries.json"  # written by the `canaries` metric, when it ran
    return {
        "seed": replicate.seed,
        "training": trained.manifest()["result"],
        "curve": read_json(trained.path / "curve.json"),
        "metrics": read_json(evaluated.path / "metrics.json"),
        "canary_examples": _canary_examples(read_json(canaries)) if canaries.exists() else [],
        "checkpoints": {name: str(trained.path / name) for name in ("final", "best") if (trained.path / name).exists()},
        "artifacts": {"train": str(trained.path), "evaluate": str(evaluated.path)},
    }


def compare_arms(arms: dict[str, Any], reference: str) -> dict[str, Any]:
    """Each arm against the reference arm on every compared metric column: paired differences by seed and
    the data-equivalent factor."""
    if reference not in arms:
        return {}
    keys = [c.key for c in compared_columns({"arms": arms}) if c.key]
    ref = arms[reference]
    ref_by_seed = {r["seed"]: replicate_numbers(r) for r in ref["replicates"]}
    out: dict[str, Any] = {"reference": reference, "method": stats_module_doc(), "arms": {}}
    for name, arm in arms.items():
        if name == reference:
            continue
        by_seed = {r["seed"]: replicate_numbers(r) for r in arm["replicates"]}
        differences = {
            key: paired_difference({s: n.get(key) for s, n in by_seed.items()}, {s: n.get(key) for s, n in ref_by_seed.items()})
            for key in keys
        }
        factors = []
        for replicate in arm["replicates"]:
            ref_replicate = next((r for r in ref["replicates"] if r["seed"] == replicate["seed"]), None)
            numbers = replicate_numbers(replicate)
            if ref_replicate is not None and "training.final_val_loss" in numbers:
                factors.append(data_equivalent_factor(ref_replicate["curve"], numbers["training.final_val_loss"],
                                                      int(numbers["training.tokens_seen"])))
        values = [f["factor"] for f in factors if f.get("factor") is not None]
        factor = {**mean_ci(values), "per_seed": factors}
        if factor["mean"] is None:
            factor["unavailable"] = factor_unavailable(factors, arm, ref)
        out["arms"][name] = {"differences": differences, "data_equivalent_factor": factor}
    return out


def factor_unavailable(factors: list[dict[str, Any]], arm: dict[str, Any], reference: dict[str, Any]) -> str:
    """Why an arm has no data-equivalent factor, in words the report shows after "not available: "."""
    if factors:
        return "; ".join(dict.fromkeys(str(f.get("method")) for f in factors))
    if not {r["seed"] for r in arm["replicates"]} & {r["seed"] for r in reference["replicates"]}:
        return "no seed in common with the reference arm"
    return "the arm has no validation loss (training.eval_interval longer than the run?)"


def stats_module_doc() -> str:
    from corpuslab.report import stats

    return " ".join((stats.__doc__ or "").split())


def _canary_examples(canaries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The most-copied canaries first, so the examples show memorization where it is likeliest."""
    ranked = sorted(canaries, key=lambda c: (-c.get("copies", 0), -c.get("exposure", 0.0)))
    return ranked[:CANARY_EXAMPLES]


# ---------------------------------------------------------------------------------------------- tables


def summary_rows(report: dict[str, Any]) -> tuple[list[str], list[dict[str, Any]]]:
    """(columns, one row per arm) of summary.tsv; metrics are means over seeds (the report holds their intervals)."""
    columns = summary_columns(report)
    rows = [{c.name: c.read(name, arm) for c in columns} for name, arm in report["arms"].items()]
    return [c.name for c in columns], rows


def write_summary(path: Path, report: dict[str, Any]) -> None:
    columns, rows = summary_rows(report)
    _write_tsv(path, columns, rows)


def has_pooled_groups(report: dict[str, Any]) -> bool:
    return any(len(group["arms"]) > 1 for group in (report.get("groups") or {}).values())


def group_rows(report: dict[str, Any]) -> tuple[list[str], list[dict[str, Any]]]:
    """(columns, one row per group) of groups.tsv: the pooled mean and 95% half-width of every summary column
    that is a mean over seeds, and for compared ones the difference to the reference group."""
    pooled = [c for c in summary_columns(report) if c.key]
    comparison = report.get("group_comparison") or {}
    columns = ["group", "arms", "replicates", "vs_reference"]
    for column in pooled:
        columns += [column.name, f"{column.name}_ci95"]
        if column.compare:
            columns += [f"{column.name}_diff", f"{column.name}_diff_ci95"]
    rows = []
    for group, entry in report["groups"].items():
        versus = comparison.get("groups", {}).get(group)
        row: dict[str, Any] = {"group": group, "arms": ",".join(entry["arms"]), "replicates": entry["replicates"],
                               "vs_reference": "reference" if versus is None else versus["pairing"]}
        for column in pooled:
            row.update(_pooled_cells(column, entry["aggregate"].get(column.key), versus))
        rows.append(row)
    return columns, rows


def _pooled_cells(column: Column, stats: dict[str, Any] | None, versus: dict[str, Any] | None) -> dict[str, Any]:
    cells = {column.name: round_number((stats or {}).get("mean")), f"{column.name}_ci95": _half_width(stats)}
    if column.compare and versus is not None:
        difference = versus["differences"].get(column.key)
        cells[f"{column.name}_diff"] = round_number((difference or {}).get("mean"))
        cells[f"{column.name}_diff_ci95"] = _half_width(difference)
    return cells


def write_groups(path: Path, report: dict[str, Any]) -> None:
    columns, rows = group_rows(report)
    _write_tsv(path, columns, rows)


def _half_width(stats: dict[str, Any] | None) -> float | None:
    interval = (stats or {}).get("ci95")
    return round_number((interval[1] - interval[0]) / 2) if interval else None


def _write_tsv(path: Path, columns: list[str], rows: list[dict[str, Any]]) -> None:
    with atomic_file(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, delimiter="\t", extrasaction="ignore", restval="")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if v is None else v) for k, v in row.items()})


# ---------------------------------------------------------------------------------------------- reruns


def _clean(manifest: dict[str, Any]) -> dict[str, Any]:
    """Drop timing fields so reports of an identical rerun compare equal."""
    return {k: v for k, v in manifest.items() if k not in ("seconds", "made_from")}


def reproducible_part(report: dict[str, Any]) -> dict[str, Any]:
    """The report without what legitimately differs between two runs of one config: wall-clock timings, the
    output folder's paths and the stage cache's URL. Used to check that a resumed run reproduced an uninterrupted one."""
    import copy

    report = copy.deepcopy(report)
    report["config"].pop("output_dir", None)
    report["config"].pop("cache", None)  # where stages were shared changes no number
    for arm in report["arms"].values():
        arm.pop("artifacts", None)
        arm["curation"].get("engine", {}).pop("runtime", None)
        for replicate in arm["replicates"]:
            replicate.pop("artifacts", None)
            replicate.pop("checkpoints", None)
            replicate["training"].pop("tokens_per_second", None)
            replicate["training"].pop("resumed_from_step", None)
    return report


def reports_match(a: Any, b: Any, rel: float = 1e-6, path: str = "", absolute: float = 1e-5) -> list[str]:
    """Where two reports differ: exact for everything but floats, which may differ by `rel` relative or
    `absolute` (CPU float32 reductions can change in the last bits with memory alignment, so evaluation losses
    of a resumed process can move by ~1e-7 while the trained weights are identical; differences of two such
    losses need the absolute bound)."""
    if isinstance(a, dict) and isinstance(b, dict):
        if set(a) != set(b):
            return [f"{path}: keys {sorted(set(a) ^ set(b))}"]
        return [d for key in a for d in reports_match(a[key], b[key], rel, f"{path}.{key}", absolute)]
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: lengths {len(a)} != {len(b)}"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in reports_match(x, y, rel, f"{path}[{i}]", absolute)]
    if isinstance(a, float) and isinstance(b, float):
        close = a == b or abs(a - b) <= max(rel * max(abs(a), abs(b)), absolute)
        if not close and "perplexity" in path:
            # exp() of a mean log-likelihood: a last-bit change in a loss of ~40 nats (an untrained model's
            # word perplexity is ~1e17) moves the perplexity, and differences of two, by more than `rel`;
            # compare the logs instead, or the differences at the looser bound such jitter needs.
            if a > 0 and b > 0:
                close = abs(math.log(a) - math.log(b)) <= absolute
            else:
                close = abs(a - b) <= 1e-4 * max(abs(a), abs(b))
        return [] if close else [f"{path}: {a} != {b}"]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]
