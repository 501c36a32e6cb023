"""`corpuslab score CHECKPOINT --tasks ...`: zero-shot scores of any causal LM, no experiment needed.

The model is a checkpoint folder (corpuslab's `final/`, or any `save_pretrained` folder), a train stage
folder (its `final/`), an experiment's output folder with `--arm NAME[:SEED]` (that arm's final checkpoint,
from its report.json), or a Hugging Face model name; tasks are built and scored exactly as `corpuslab evaluate` scores them (lm-evaluation-harness
0.4.13), from the hub or from local files (`--task-file piqa=piqa.jsonl`). Prints the harness's table and,
with `--output FILE`, writes the results as JSON.

Data-parallel: under `torchrun --nproc_per_node N -m corpuslab.cli score ...` every rank joins the group
torchrun describes (gloo on CPU, NCCL on CUDA with cuda:LOCAL_RANK) and scores every N-th batch of requests;
`--processes N` starts N such ranks on this machine's CPU cores without a launcher (`tools/ranks.py`). Every
rank gets every log-likelihood, so the results are those of one process; rank 0 alone prints and writes them.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

# What every rank would import before scoring: imported once, before the ranks are forked (`ranks.spawn`).
RANK_IMPORTS = ("torch", "torch.distributed", "transformers", "corpuslab.evaluation.lm", "corpuslab.training.model",
                "corpuslab.evaluation.tasks.runner", "corpuslab.evaluation.tasks.scoring", "corpuslab.cli")
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
    parser.add_argument("--processes", type=int, metavar="N",
                        help="score data-parallel in N local CPU ranks (gloo), each on cores/N torch threads; the same "
                             "results as one process. On GPUs launch with torchrun --nproc_per_node N instead")


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
    from corpuslab.tools import ranks

    tasks, data_files = parse_tasks(args.tasks, args.task_file)
    check_device(args.device)
    args.output = check_output(args.output)
    processes = ranks.check_processes(getattr(args, "processes", None), args.device)
    args.checkpoint = resolve_checkpoint(args.checkpoint, args.arm)
    cfg = task_config(tasks, data_files, args.batch_size)
    if processes > 1:
        return ranks.spawn(processes, _local_rank, (args, tasks, cfg), preload=RANK_IMPORTS)
    return run(args, tasks, cfg)


DEVICE_PATTERN = r"auto|cpu|mps|cuda(:[0-9]+)?"
DEVICES = "auto, cpu, cuda, cuda:N or mps"


def check_device(device: str) -> None:
    """A ConfigError naming --device for a name torch would not take, or a GPU this machine does not have (checked
    before anything else looks at the device, so every path says the same)."""
    import re

    from corpuslab.errors import ConfigError

    if not re.fullmatch(DEVICE_PATTERN, device):
        raise ConfigError("--device", device, f"one of {DEVICES}")
    if device.startswith("cuda"):
        import torch

        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = int(device.partition(":")[2] or 0)
        if index >= count:
            have = f"{count} CUDA device{'s' if count != 1 else ''} (cuda:0 to cuda:{count - 1})" if count else "no CUDA device"
            raise ConfigError("--device", device, f"'cpu' or 'auto' ({have} available here)")
    if device == "mps":
        import torch

        if not torch.backends.mps.is_available():
            raise ConfigError("--device", device, "'cpu' or 'auto' (no MPS device is available here)")


def check_output(output: str | None) -> str | None:
    """--output before any scoring: not a folder; its folder is created (as the harness's --output_path does)."""
    from pathlib import Path

    from corpuslab.errors import ConfigError

    if output is None:
        return None
    path = Path(output)
    if path.is_dir() or output.endswith(("/", "\\")):
        raise ConfigError("--output", output, "a file name for the results' JSON (e.g. scores.json), not a folder")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError("--output", output, f"a file in a folder that can be created ({type(err).__name__}: "
                          f"{err.strerror or err})") from None
    return output


def task_config(tasks: dict[str, int | None], data_files: dict[str, str], batch_size: int):
    """The TaskConfig the options give, its errors naming the option the user typed (--tasks NAME, --task-file
    NAME=..., --batch-size), not the config key that holds it."""
    from corpuslab.errors import ConfigError
    from corpuslab.evaluation.tasks import TaskConfig
    from corpuslab.schema import from_dict

    try:
        cfg = from_dict(TaskConfig, {"tasks": tasks, "data_files": data_files, "batch_size": batch_size}, "score")
        return cfg.validate("score")
    except ConfigError as err:
        raise ConfigError(flag_name(err.key), err.value, err.expected) from None


def flag_name(key: str) -> str:
    """The option of `corpuslab score` that sets config key `key` (score.tasks.NAME -> --tasks NAME)."""
    head, _, name = key.removeprefix("score.").partition(".")
    if head == "tasks":
        return f"--tasks {name}" if name else "--tasks"
    if head == "data_files":
        return f"--task-file {name}=..." if name else "--task-file"
    if head == "batch_size":
        return "--batch-size"
    return key


def run(args: argparse.Namespace, tasks: dict[str, int | None], cfg) -> int:
    """Score in this process, as one rank of a group when a launcher started it; rank 0 prints and writes."""
    from corpuslab.cli import _quiet_libraries
    from corpuslab.tools import ranks
    from corpuslab.training import distributed

    _quiet_libraries()
    with ranks.process_group(args.device) as device:
        if not distributed.is_main():  # notices (the Hub's, transformers') once, from rank 0
            ranks.quiet_rank()
        results = score(args.checkpoint, cfg, device, args.seed)
    if not distributed.is_main():
        return 0
    print(harness_table(results), flush=True)
    if args.output:
        from corpuslab.atomic import write_json_atomic

        write_json_atomic(args.output, {"checkpoint": args.checkpoint, "tasks": tasks, "seed": args.seed,
                                        "results": results})
    return 0


def _local_rank(args: argparse.Namespace, tasks: dict[str, int | None], cfg) -> int:
    """One rank started by `--processes`: `run`, with a user error printed once (by rank 0) as the CLI prints it."""
    from corpuslab.errors import CorpuslabError
    from corpuslab.tools import ranks
    from corpuslab.training import distributed

    try:
        ranks.refuse_gpu(distributed.world_size(), args.device)
        return run(args, tasks, cfg)
    except CorpuslabError as err:
        if distributed.is_main():
            print(f"corpuslab: error: {err}", file=sys.stderr, flush=True)
        return 2


def score(checkpoint: str, cfg, device: str, seed: int) -> dict[str, dict[str, Any]]:
    import time

    from corpuslab.evaluation.lm import load_any_checkpoint
    from corpuslab.evaluation.tasks import evaluate_tasks
    from corpuslab.evaluation.tasks.data import local_copy_hint
    from corpuslab.training import distributed

    started = time.perf_counter()
    model, tokenizer, torch_device = load_any_checkpoint(checkpoint, device, "--device")
    with local_copy_hint("--task-file {task}=PATH"):
        results = evaluate_tasks(model, tokenizer, cfg, torch_device, seed=seed)
    if distributed.is_main():
        world = distributed.world_size()
        where = f"{world} ranks, {torch_device} each" if world > 1 else str(torch_device)
        print(f"corpuslab score: {checkpoint} on {', '.join(cfg.tasks)} ({time.perf_counter() - started:.1f} s, {where})",
              file=sys.stderr, flush=True)
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
    right = {1, 4, 6}
    # at least one dash in every rule cell (`|:|` is no Markdown table rule): a right-aligned column is 2 wide or more
    widths = [max([len(row[k]) for row in rows] + [2 if k in right else 1]) for k in range(len(rows[0]))]

    def line(row: tuple[str, ...]) -> str:
        cells = [cell.rjust(w) if k in right else cell.ljust(w) for k, (cell, w) in enumerate(zip(row, widths))]
        return "|" + "|".join(cells) + "|"

    rule = "|" + "|".join(("-" * (w - 1) + ":") if k in right else "-" * w for k, w in enumerate(widths)) + "|"
    return "\n".join([line(rows[0]), rule, *(line(row) for row in rows[1:])])
