"""`corpuslab score CHECKPOINT --tasks ...`: zero-shot scores of any causal LM, no experiment needed.

The model is a checkpoint folder (corpuslab's `final/`, or any `save_pretrained` folder), a train stage
folder (its `final/`), an experiment's output folder with `--arm NAME[:SEED]` (that arm's final checkpoint,
from its report.json), or a Hugging Face model name; tasks are built and scored exactly as `corpuslab evaluate` scores them (lm-evaluation-harness
0.4.13), from the hub or from local files (`--task-file piqa=piqa.jsonl`). Prints the harness's table and,
with `--output FILE`, writes the results as JSON.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

LOWER_IS_BETTER = ("perplexity", "word_perplexity", "byte_perplexity", "bits_per_byte")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", metavar="CHECKPOINT",
                        help="a checkpoint folder, a train stage folder, an experiment's output folder (with --arm), "
                             "or a Hugging Face model name")
    parser.add_argument("--arm", metavar="NAME[:SEED]",
                        help="with an experiment's output folder (outputs/default): score this arm's final checkpoint "
                             "(its first seed unless :SEED is given)")
    parser.add_argument("--tasks", required=True, metavar="TASK[:N],...",
                        help="comma-separated task names, each optionally with a sample size: piqa,lambada_openai:500,"
                             "blimp_anaphor_gender_agreement (all documents when N is not given)")
    parser.add_argument("--task-file", action="append", default=[], metavar="TASK=PATH",
                        help="read a task's documents from a local JSON Lines or Parquet file with the hub dataset's fields")
    parser.add_argument("--batch-size", type=int, default=32, help="requests per forward pass (default 32)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sampled documents (default 0)")
    parser.add_argument("--output", metavar="FILE", help="also write the results as JSON")


def parse_tasks(spec: str, files: list[str]) -> tuple[dict[str, int | None], dict[str, str]]:
    from corpuslab.errors import ConfigError

    tasks: dict[str, int | None] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, _, count = item.partition(":")
        if count and not count.isdigit():
            raise ConfigError("--tasks", item, "TASK or TASK:N with N a positive integer")
        tasks[name] = int(count) if count else None
    if not tasks:
        raise ConfigError("--tasks", spec, "at least one task name")
    data_files = {}
    for item in files:
        name, sep, path = item.partition("=")
        if not sep or not path:
            raise ConfigError("--task-file", item, "TASK=PATH")
        data_files[name] = path
    return tasks, data_files


def resolve_checkpoint(checkpoint: str, arm: str | None) -> str:
    """The checkpoint folder CHECKPOINT (and --arm) name: an experiment's output folder and an arm -> that
    arm's final checkpoint from report.json; a train stage folder -> its final/; anything else as given."""
    import json
    from pathlib import Path

    from corpuslab.errors import ConfigError, InputError

    folder = Path(checkpoint)
    if arm is None:
        if (folder / "report.json").is_file():
            arms = sorted(json.loads((folder / "report.json").read_text(encoding="utf-8")).get("arms", {}))
            raise ConfigError("--arm", None, f"an arm of the experiment in {checkpoint}: one of {', '.join(arms)}")
        if not (folder / "config.json").is_file() and (folder / "final" / "config.json").is_file():
            return str(folder / "final")  # a train stage folder
        return checkpoint
    report_path = folder / "report.json"
    if not report_path.is_file():
        raise InputError(str(report_path), "--arm needs an experiment's output folder holding its report.json "
                         "(e.g. outputs/default after `corpuslab run`)")
    arms = json.loads(report_path.read_text(encoding="utf-8")).get("arms", {})
    name, _, seed = arm.partition(":")
    if name not in arms:
        raise ConfigError("--arm", arm, f"an arm of {report_path}: one of {', '.join(sorted(arms))}")
    replicates = arms[name].get("replicates", [])
    chosen = [r for r in replicates if not seed or str(r.get("seed")) == seed]
    if not chosen or "final" not in chosen[0].get("checkpoints", {}):
        raise ConfigError("--arm", arm, f"an arm and seed with a final checkpoint; seeds of '{name}': "
                          f"{', '.join(str(r.get('seed')) for r in replicates) or 'none'}")
    final = Path(chosen[0]["checkpoints"]["final"])
    moved = folder / "stages" / final.parent.name / final.name  # the output folder may have moved since the run
    return str(moved if moved.is_dir() else final)


def main(args: argparse.Namespace) -> int:
    from corpuslab.evaluation.tasks import TaskConfig
    from corpuslab.schema import from_dict

    tasks, data_files = parse_tasks(args.tasks, args.task_file)
    args.checkpoint = resolve_checkpoint(args.checkpoint, args.arm)
    cfg = from_dict(TaskConfig, {"tasks": tasks, "data_files": data_files, "batch_size": args.batch_size}, "score")
    cfg.validate("score")
    from corpuslab.cli import _quiet_libraries

    _quiet_libraries()
    results = score(args.checkpoint, cfg, args.device, args.seed)
    print(harness_table(results))
    if args.output:
        from corpuslab.atomic import write_json_atomic

        write_json_atomic(args.output, {"checkpoint": args.checkpoint, "tasks": tasks, "seed": args.seed,
                                        "results": results})
    return 0


def score(checkpoint: str, cfg, device: str, seed: int) -> dict[str, dict[str, Any]]:
    import time

    from corpuslab.evaluation.lm import load_any_checkpoint
    from corpuslab.evaluation.tasks import evaluate_tasks
    from corpuslab.evaluation.tasks.data import local_copy_hint

    started = time.perf_counter()
    model, tokenizer, torch_device = load_any_checkpoint(checkpoint, device)
    with local_copy_hint("--task-file {task}=PATH"):
        results = evaluate_tasks(model, tokenizer, cfg, torch_device, seed=seed)
    print(f"corpuslab score: {checkpoint} on {', '.join(cfg.tasks)} ({time.perf_counter() - started:.1f} s, "
          f"{torch_device})", file=sys.stderr)
    return results


def harness_table(results: dict[str, dict[str, Any]]) -> str:
    """The table lm-evaluation-harness prints: task, n, metric, direction, value and standard error."""
    rows = [("Tasks", "n", "Metric", "", "Value", "", "Stderr")]
    for task, metrics in results.items():
        first = True
        for name, value in metrics.items():
            if name == "n" or name.endswith("_stderr") or not isinstance(value, (int, float)):
                continue
            stderr = metrics.get(f"{name}_stderr")
            arrow = "↓" if name in LOWER_IS_BETTER else "↑"
            rows.append((task if first else "", str(metrics.get("n", "")) if first else "", name, arrow,
                         f"{value:.4f}", "±" if stderr is not None else "", f"{stderr:.4f}" if stderr is not None else "N/A"))
            first = False
    widths = [max(len(row[k]) for row in rows) for k in range(len(rows[0]))]
    right = {1, 4, 6}

    def line(row: tuple[str, ...]) -> str:
        cells = [cell.rjust(w) if k in right else cell.ljust(w) for k, (cell, w) in enumerate(zip(row, widths))]
        return "|" + "|".join(cells) + "|"

    rule = "|" + "|".join(("-" * (w - 1) + ":") if k in right else "-" * w for k, w in enumerate(widths)) + "|"
    return "\n".join([line(rows[0]), rule, *(line(row) for row in rows[1:])])
