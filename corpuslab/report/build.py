"""`report.json` and `summary.tsv`: what each arm removed, what it saw, and how it scored.

Built only from stage manifests and metric files, so the report is cheap to rebuild and a rerun that
reuses every stage writes the same report.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import TYPE_CHECKING, Any

from corpuslab.artifacts import read_json, write_json_atomic
from corpuslab.atomic import atomic_file
from corpuslab.report.html import write_html_report
from corpuslab.report.stats import data_equivalent_factor, flatten_metrics, mean_ci, paired_difference
from corpuslab.schema import to_dict

if TYPE_CHECKING:
    from corpuslab.experiment import ArmStages, Experiment, Prepared

SUMMARY_COLUMNS = [
    "arm", "recipe", "level", "seeds", "docs_in", "dropped", "dropped_exact", "dropped_near", "kept_tokens",
    "train_tokens_seen", "epochs", "val_loss", "val_ppl", "val_bpb", "test_loss", "test_ppl", "test_bpb",
    "canary_exact_rate", "canary_mean_exposure", "dup_precision", "dup_recall",
]
CANARY_EXAMPLES = 5


def write_report(experiment: "Experiment", prepared: "Prepared", arms: dict[str, "ArmStages"]) -> dict[str, Any]:
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
        },
        "arms": {run.name: arm_report(run, arms[run.name]) for run in cfg.runs if run.name in arms},
    }
    report["comparison"] = compare_arms(report["arms"], reference=cfg.runs[0].name)
    write_json_atomic(experiment.root / "report.json", report)
    write_summary(experiment.root / "summary.tsv", report)
    write_html_report(report, experiment.root / "report.html")
    return report


def arm_report(run, stages: "ArmStages") -> dict[str, Any]:
    replicates = [replicate_report(r) for r in stages.replicates]
    return {
        "recipe": run.recipe,
        "level": run.level,
        "curation": stages.curate.manifest()["stats"],
        "packing": _clean(stages.pack.manifest()),
        "artifacts": {"curate": str(stages.curate.path), "pack": str(stages.pack.path)},
        "replicates": replicates,
        "aggregate": aggregate(replicates),
    }


def replicate_report(replicate) -> dict[str, Any]:
    trained, evaluated = replicate.train, replicate.evaluate
    metrics = read_json(evaluated.path / "metrics.json")
    return {
        "seed": replicate.seed,
        "training": trained.manifest()["result"],
        "curve": read_json(trained.path / "curve.json"),
        "metrics": metrics,
        "canary_examples": _canary_examples(read_json(evaluated.path / "canaries.json")),
        "checkpoints": {name: str(trained.path / name) for name in ("final", "best") if (trained.path / name).exists()},
        "artifacts": {"train": str(trained.path), "evaluate": str(evaluated.path)},
    }


def aggregate(replicates: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and 95% interval across seeds of every numeric metric (and of tokens and epochs seen)."""
    per_seed = [_replicate_numbers(r) for r in replicates]
    keys = sorted({k for numbers in per_seed for k in numbers})
    return {key: mean_ci([numbers.get(key) for numbers in per_seed]) for key in keys}


def _replicate_numbers(replicate: dict[str, Any]) -> dict[str, float]:
    numbers = flatten_metrics({k: v for k, v in replicate["metrics"].items() if k != "canaries"})
    numbers.update(flatten_metrics(replicate["metrics"].get("canaries", {}).get("overall", {}), "canaries."))
    training = replicate["training"]
    numbers["training.tokens_seen"] = float(training["tokens_seen"])
    numbers["training.epochs_seen"] = float(training["epochs_seen"])
    final_val = [c["val_loss"] for c in replicate["curve"] if c.get("val_loss") is not None]
    if final_val:
        numbers["training.final_val_loss"] = float(final_val[-1])
    return numbers


COMPARED = ["val.loss", "val.bits_per_byte", "test.loss", "test.bits_per_byte", "canaries.exact_rate", "canaries.mean_exposure"]


def compare_arms(arms: dict[str, Any], reference: str) -> dict[str, Any]:
    """Each arm against the reference arm: paired differences by seed and the data-equivalent factor."""
    if reference not in arms:
        return {}
    ref = arms[reference]
    ref_by_seed = {r["seed"]: _replicate_numbers(r) for r in ref["replicates"]}
    out: dict[str, Any] = {"reference": reference, "method": stats_module_doc(), "arms": {}}
    for name, arm in arms.items():
        if name == reference:
            continue
        by_seed = {r["seed"]: _replicate_numbers(r) for r in arm["replicates"]}
        differences = {
            key: paired_difference({s: n.get(key) for s, n in by_seed.items()}, {s: n.get(key) for s, n in ref_by_seed.items()})
            for key in COMPARED
        }
        factors = []
        for replicate in arm["replicates"]:
            ref_replicate = next((r for r in ref["replicates"] if r["seed"] == replicate["seed"]), None)
            numbers = _replicate_numbers(replicate)
            if ref_replicate is not None and "training.final_val_loss" in numbers:
                factors.append(data_equivalent_factor(ref_replicate["curve"], numbers["training.final_val_loss"],
                                                      int(numbers["training.tokens_seen"])))
        values = [f["factor"] for f in factors if f.get("factor") is not None]
        out["arms"][name] = {
            "differences": differences,
            "data_equivalent_factor": {**mean_ci(values), "per_seed": factors},
        }
    return out


def stats_module_doc() -> str:
    from corpuslab.report import stats

    return " ".join((stats.__doc__ or "").split())


def _canary_examples(canaries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The most-copied canaries first, so the examples show memorization where it is likeliest."""
    ranked = sorted(canaries, key=lambda c: (-c.get("copies", 0), -c.get("exposure", 0.0)))
    return ranked[:CANARY_EXAMPLES]


def summary_row(name: str, arm: dict[str, Any]) -> dict[str, Any]:
    """One row per arm; metrics are means over seeds (the report holds their intervals)."""
    stats, agg = arm["curation"], arm["aggregate"]
    reasons = stats.get("dropped_by_reason", {})
    truth = stats.get("ground_truth", {})

    def mean(key: str) -> Any:
        return _round(agg.get(key, {}).get("mean"))

    row: dict[str, Any] = {
        "arm": name,
        "recipe": arm["recipe"],
        "level": arm["level"],
        "seeds": len(arm["replicates"]),
        "docs_in": stats.get("input"),
        "dropped": stats.get("dropped", 0),
        "dropped_exact": reasons.get("exact_duplicate", 0),
        "dropped_near": reasons.get("near_duplicate", 0),
        "kept_tokens": arm["packing"].get("tokens_in_windows"),
        "train_tokens_seen": int(agg["training.tokens_seen"]["mean"]),
        "epochs": mean("training.epochs_seen"),
        "canary_exact_rate": mean("canaries.exact_rate"),
        "canary_mean_exposure": mean("canaries.mean_exposure"),
        "dup_precision": _round(truth.get("precision")),
        "dup_recall": _round(truth.get("recall")),
    }
    for split in ("val", "test"):
        row[f"{split}_loss"] = mean(f"{split}.loss")
        row[f"{split}_ppl"] = mean(f"{split}.perplexity")
        row[f"{split}_bpb"] = mean(f"{split}.bits_per_byte")
    return row


def write_summary(path: Path, report: dict[str, Any]) -> None:
    with atomic_file(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=SUMMARY_COLUMNS, delimiter="\t", extrasaction="ignore")
        writer.writeheader()
        for name, arm in report["arms"].items():
            writer.writerow({k: ("" if v is None else v) for k, v in summary_row(name, arm).items()})


def _round(value: Any, digits: int = 4) -> Any:
    return round(float(value), digits) if isinstance(value, (int, float)) else value


def _clean(manifest: dict[str, Any]) -> dict[str, Any]:
    """Drop timing fields so reports of an identical rerun compare equal."""
    return {k: v for k, v in manifest.items() if k not in ("seconds", "made_from")}


def reproducible_part(report: dict[str, Any]) -> dict[str, Any]:
    """The report without what legitimately differs between two runs of one config: wall-clock timings and the
    output folder's paths. Used to check that a resumed run reproduced an uninterrupted one."""
    import copy

    report = copy.deepcopy(report)
    report["config"].pop("output_dir", None)
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
        return [] if close else [f"{path}: {a} != {b}"]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]
