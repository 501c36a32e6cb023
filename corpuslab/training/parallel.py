"""Arms in parallel: `corpuslab run --jobs N` trains N arms at once, each in a process of its own.

The shared stages and every arm's curate and pack stages are built first, in the calling process (they
are what the arms read); then each (arm, seed) whose train stage is missing becomes one task of a
`concurrent.futures.ProcessPoolExecutor` (spawned processes: a forked one would inherit torch's thread
pools). A task runs the same `Experiment.train` a sequential run does, in the stage's own folder, so its
result is the sequential one; the caller then walks the pipeline as usual and finds them complete.

Devices: with several GPUs each worker process holds one for its whole life (cuda:0, cuda:1, ...; with
more workers than GPUs, they share them in turn); on the CPU each process gets an equal share of the cores
unless training.num_threads says otherwise. Neither setting is part of a
train stage's fingerprint. Float reductions on the CPU depend on the thread count: set training.num_threads
for results identical to the bit between a sequential and a parallel run.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import TYPE_CHECKING, Any

from corpuslab.errors import ConfigError, StageError
from corpuslab.training import distributed

if TYPE_CHECKING:
    from corpuslab.config import ExperimentConfig
    from corpuslab.experiment import Experiment, Prepared


def train_arms(experiment: Experiment, prepared: Prepared, arms: list[int], jobs: int) -> None:
    """Build every arm's curate and pack stages, then train the missing (arm, seed) runs `jobs` at a time."""
    check_jobs(jobs)
    cfg = experiment.cfg
    tasks: dict[tuple, tuple[int, int]] = {}  # arms that share a train stage train it once
    for index in arms:
        curate = experiment.curate(prepared, index)
        pack = experiment.pack(prepared, index, curate)
        for seed in cfg.replicate_seeds:
            key = (pack.fingerprint, seed, cfg.arm_procedure(index).fingerprint())
            tasks.setdefault(key, (index, seed))
    todo = list(tasks.values())
    if len(todo) < 2:
        return  # nothing to run side by side: the sequential walk trains it
    workers = min(jobs, len(todo))
    devices = _devices(cfg)
    experiment.log(f"training {len(todo)} runs, {workers} at a time on {', '.join(devices)}")
    context = multiprocessing.get_context("spawn")
    # Each worker process takes one device for its whole life (in turn: with as many workers as GPUs, one each).
    claims = context.Queue()
    for n in range(workers):
        claims.put(devices[n % len(devices)])
    with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_claim_device,
                             initargs=(claims,)) as pool:
        plugins = _plugin_entries(cfg)
        futures = {pool.submit(_train_one, cfg, index, seed, plugins, jobs): (index, seed) for index, seed in todo}
        failures = []
        for future in as_completed(futures):
            index, seed = futures[future]
            try:
                experiment.log(f"[train {cfg.runs[index].name} seed {seed}] done in {future.result()}")
            except Exception as err:  # noqa: BLE001 - every arm's failure is reported, not just the first
                failures.append(f"{cfg.runs[index].name} seed {seed}: {err}")
    if failures:
        raise StageError("train", f"{len(failures)} of {len(todo)} parallel runs failed ({'; '.join(failures)}); "
                         "the others are complete and a rerun reuses them")


def check_jobs(jobs: int) -> None:
    if not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1:
        raise ConfigError("--jobs", jobs, "a positive number of arms to train at once")
    if jobs > 1 and distributed.is_distributed():
        raise ConfigError("--jobs", jobs, "1 under torchrun (its processes already share each arm's training); "
                          "use torchrun or --jobs, not both")


def _devices(cfg: ExperimentConfig) -> list[str]:
    """One entry per GPU when training uses CUDA and there are several; else the configured device."""
    name = cfg.training.device
    if name in ("auto", "cuda"):
        import torch

        if torch.cuda.is_available() and torch.cuda.device_count() > 1:
            return [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    return [name]


def _on_device(cfg: ExperimentConfig, device: str, jobs: int) -> ExperimentConfig:
    threads = cfg.training.num_threads
    if threads is None and not device.startswith("cuda"):
        threads = max(1, (os.cpu_count() or 1) // jobs)
    return dataclasses.replace(cfg, training=dataclasses.replace(cfg.training, device=device, num_threads=threads))


def _plugin_entries(cfg: ExperimentConfig) -> list[str]:
    """The users' plug-in modules as a spawned process can import them: files by their resolved path."""
    from corpuslab.plugins import _LOADED

    return [*_LOADED, *(entry for entry in cfg.plugins if not (entry.endswith(".py") or "/" in entry))]


_device: str | None = None  # the device this worker process trains on (`_claim_device`)


def _claim_device(claims: Any) -> None:
    global _device
    _device = claims.get()


def _train_one(cfg: ExperimentConfig, index: int, seed: int, plugins: list[str], jobs: int) -> Any:
    """One task: the arm's train stage, built exactly as a sequential run builds it (its inputs are complete)."""
    from corpuslab.cli import _quiet_libraries
    from corpuslab.config import load_plugins
    from corpuslab.errors import CorpuslabError
    from corpuslab.experiment import Experiment

    load_plugins(plugins)
    _quiet_libraries()
    cfg = _on_device(cfg, _device or cfg.training.device, jobs)
    name = cfg.runs[index].name

    def log(line: str) -> None:
        if "] reused " not in line:  # the stages this process reads were built by the caller
            print(f"[{name} seed {seed}] {line}", file=sys.stderr, flush=True)

    experiment = Experiment(cfg, log)
    try:
        prepared = experiment.prepare()
        pack = experiment.pack(prepared, index, experiment.curate(prepared, index))
        return experiment.train(prepared, index, pack, seed).path.name
    except CorpuslabError as err:  # its own exception types need not unpickle in the caller: the message does
        raise RuntimeError(str(err)) from None
    finally:
        experiment.close()
