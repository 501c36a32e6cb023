"""`report.json` and `summary.tsv`: what each arm removed, what it saw, and how it scored.

Built only from stage manifests and metric files, so the report is cheap to rebuild and a rerun that
reuses every stage writes the same report.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import TYPE_CHECKING, Any

from corpuslab.artifacts import Stage, read_json, write_json_atomic
from corpuslab.schema import to_dict

if TYPE_CHECKING:
    from corpuslab.pipeline import Experiment, Prepared

SUMMARY_COLUMNS = [
    "arm", "recipe", "level", "docs_in", "dropped", "dropped_exact", "dropped_near", "kept_tokens",
    "train_tokens_seen", "epochs", "val_loss", "val_ppl", "val_bpb", "test_loss", "test_ppl", "test_bpb",
    "canary_exact_rate", "canary_mean_exposure", "dup_precision", "dup_recall",
]
CANARY_EXAMPLES = 5


def write_report(experiment: "Experiment", prepared: "Prepared", arms: dict[str, dict[str, Stage]]) -> dict[str, Any]:
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
        "arms": {},
    }
    for index, run in enumerate(cfg.runs):
        if run.name not in arms:
            continue
        report["arms"][run.name] = arm_report(run, arms[run.name])
    write_json_atomic(experiment.root / "report.json", report)
    write_summary(experiment.root / "summary.tsv", report)
    return report


def arm_report(run, stages: dict[str, Stage]) -> dict[str, Any]:
    curate = stages["curate"].manifest()
    pack = stages["pack"].manifest()
    trained = stages["train"].manifest()
    evaluate = stages["evaluate"]
    metrics = read_json(evaluate.path / "metrics.json")
    canaries = read_json(evaluate.path / "canaries.json")
    return {
        "recipe": run.recipe,
        "level": run.level,
        "curation": curate["stats"],
        "packing": _clean(pack),
        "training": trained["result"],
        "curve": read_json(stages["train"].path / "curve.json"),
        "metrics": metrics,
        "canary_examples": _canary_examples(canaries),
        "artifacts": {name: str(stage.path) for name, stage in stages.items()},
        "checkpoints": {name: str(stages["train"].path / name) for name in ("final", "best")
                        if (stages["train"].path / name).exists()},
    }


def _canary_examples(canaries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The most-copied canaries first, so the examples show memorization where it is likeliest."""
    ranked = sorted(canaries, key=lambda c: (-c.get("copies", 0), -c.get("exposure", 0.0)))
    return ranked[:CANARY_EXAMPLES]


def summary_row(name: str, arm: dict[str, Any]) -> dict[str, Any]:
    stats, metrics, training = arm["curation"], arm["metrics"], arm["training"]
    reasons = stats.get("dropped_by_reason", {})
    truth = stats.get("ground_truth", {})
    canaries = metrics.get("canaries", {}).get("overall", {})
    row: dict[str, Any] = {
        "arm": name,
        "recipe": arm["recipe"],
        "level": arm["level"],
        "docs_in": stats.get("input"),
        "dropped": stats.get("dropped", 0),
        "dropped_exact": reasons.get("exact_duplicate", 0),
        "dropped_near": reasons.get("near_duplicate", 0),
        "kept_tokens": arm["packing"].get("tokens_in_windows"),
        "train_tokens_seen": training.get("tokens_seen"),
        "epochs": _round(training.get("epochs_seen")),
        "canary_exact_rate": _round(canaries.get("exact_rate")),
        "canary_mean_exposure": _round(canaries.get("mean_exposure")),
        "dup_precision": _round(truth.get("precision")),
        "dup_recall": _round(truth.get("recall")),
    }
    for split in ("val", "test"):
        scores = metrics.get(split, {})
        row[f"{split}_loss"] = _round(scores.get("loss"))
        row[f"{split}_ppl"] = _round(scores.get("perplexity"))
        row[f"{split}_bpb"] = _round(scores.get("bits_per_byte"))
    return row


def write_summary(path: Path, report: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=SUMMARY_COLUMNS, delimiter="\t", extrasaction="ignore")
        writer.writeheader()
        for name, arm in report["arms"].items():
            writer.writerow({k: ("" if v is None else v) for k, v in summary_row(name, arm).items()})
    tmp.replace(path)


def _round(value: Any, digits: int = 4) -> Any:
    return round(float(value), digits) if isinstance(value, (int, float)) else value


def _clean(manifest: dict[str, Any]) -> dict[str, Any]:
    """Drop timing fields so reports of an identical rerun compare equal."""
    return {k: v for k, v in manifest.items() if k not in ("seconds",)}
