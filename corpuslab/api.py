"""The Python API, for notebooks and scripts: the same config, stages and scores as the CLI.

    import corpuslab

    cfg = corpuslab.load_config("configs/default.yaml", overrides=["training.max_steps=50"])
    report = corpuslab.run(cfg)                      # the whole experiment; returns report.json as a dict
    corpuslab.run(cfg, until="curate", arms=["near"])  # or one stage and what it needs
    scores = corpuslab.evaluate(model, tokenizer, tasks={"lambada_openai": 500})  # any in-memory causal LM
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from corpuslab.config import ExperimentConfig
from corpuslab.config import load_config as _load_config
from corpuslab.errors import ConfigError


def load_config(*paths: str | Path, overrides: Sequence[str] = ()) -> ExperimentConfig:
    """The built-in default (no paths) or these YAML files layered in order, then `key.path=value` overrides."""
    return _load_config([str(p) for p in paths] or None, list(overrides))


@contextlib.contextmanager
def open_experiment(cfg: ExperimentConfig, log: Callable[[str], None] | None = None, label: str = "run") -> Iterator[Any]:
    """An `Experiment` with its output folder locked and its run log attached; closed (worker pool stopped)
    on exit. The CLI and `run` both go through here."""
    from corpuslab.artifacts import exclusive_lock
    from corpuslab.experiment import Experiment
    from corpuslab.progress import RunLog
    from corpuslab.training import distributed

    if not distributed.is_main():  # under torchrun: rank 0 holds the lock and keeps the run log
        yield from _follower_experiment(cfg)
        return
    run_log = RunLog() if log is None else None
    experiment = Experiment(cfg, log or run_log)
    with exclusive_lock(experiment.root):
        if run_log is not None:
            run_log.attach(experiment.root / "run.log")
        experiment.log(f"corpuslab {label}: experiment '{cfg.experiment}' -> {_destination(cfg, experiment.root)}")
        try:
            yield experiment
        except KeyboardInterrupt:
            experiment.close(interrupted=True)
            raise
        finally:
            experiment.close()


def _destination(cfg: ExperimentConfig, root: Path) -> str:
    from corpuslab.paths import is_url, join

    return f"{join(cfg.output_dir, cfg.experiment)} (working in {root})" if is_url(cfg.output_dir) else str(root)


def _follower_experiment(cfg: ExperimentConfig) -> Iterator[Any]:
    """A torchrun rank other than 0: no lock (rank 0 holds it), no run log; it only waits and trains."""
    from corpuslab.experiment import Experiment

    experiment = Experiment(cfg, lambda line: None)
    try:
        yield experiment
    finally:
        experiment.close()


def arm_indices(cfg: ExperimentConfig, names: Sequence[str] | None, key: str = "arms") -> list[int]:
    """Indices of the named arms (all when `names` is empty), refusing unknown names."""
    all_names = [run.name for run in cfg.runs]
    for name in names or ():
        if name not in all_names:
            raise ConfigError(key, name, f"one of the arms in runs: {all_names}")
    return [i for i, name in enumerate(all_names) if not names or name in names]


def run(cfg: ExperimentConfig | str | Path, until: str = "report", arms: Sequence[str] | None = None,
        log: Callable[[str], None] | None = None, jobs: int = 1) -> dict[str, Any] | None:
    """Run the experiment up to stage `until` (default: everything and the report, which is returned); `jobs`
    arms train at once, each in a process of its own."""
    if not isinstance(cfg, ExperimentConfig):
        cfg = load_config(cfg)
    with open_experiment(cfg, log, label=until) as experiment:
        return experiment.build(until, arm_indices(cfg, arms), jobs=jobs)


def evaluate(model: Any, tokenizer: Any, tasks: dict[str, int | None] | Sequence[str], device: str = "auto",
             batch_size: int = 32, seed: int = 0, task_files: dict[str, str] | None = None) -> dict[str, dict[str, float]]:
    """Score an in-memory causal LM on zero-shot tasks exactly as `corpuslab evaluate` does (requests built
    and scored as lm-evaluation-harness 0.4.13). `tasks`: names, or name -> number of examples (None = all)."""
    from corpuslab.evaluation.tasks import TaskConfig, evaluate_tasks
    from corpuslab.evaluation.tasks.data import local_copy_hint
    from corpuslab.schema import from_dict
    from corpuslab.training.model import resolve_device

    wanted = dict(tasks) if isinstance(tasks, dict) else dict.fromkeys(tasks)
    cfg = from_dict(TaskConfig, {"tasks": wanted, "data_files": task_files or {}, "batch_size": batch_size}, "tasks")
    torch_device = resolve_device(device)
    was_training = model.training
    model.to(torch_device).eval()
    try:
        with local_copy_hint("task_files={{'{task}': PATH}}"):
            return evaluate_tasks(model, tokenizer, cfg, torch_device, seed=seed)
    finally:
        model.train(was_training)
