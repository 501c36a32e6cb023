"""Data-parallel tools: the process group torchrun describes, or N local CPU ranks started here.

    torchrun --nproc_per_node 4 -m corpuslab.cli score CHECKPOINT --tasks ...   # one rank per GPU (or CPU process)
    corpuslab score CHECKPOINT --tasks ... --processes 4                         # 4 CPU ranks, no launcher

Both end in the same place: a process whose environment holds RANK, LOCAL_RANK and WORLD_SIZE, which joins
the group through `training.distributed.init` (gloo on CPU, NCCL on CUDA), as a training rank does. A local
rank is given the environment torchrun would give it (a rendezvous on 127.0.0.1 at a free port) and
cores // N torch threads, so N ranks never ask for more threads than the cores this process may use.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from corpuslab.errors import ConfigError
from corpuslab.training import distributed

LAUNCHER_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK")
# When a rank fails, how long the others may take to end on their own (with their own status) before they are
# terminated; the highest status is returned (a rank's own error, 2 for a user error, over a peer's 1).
FAILURE_GRACE_SECONDS = 2.0


def launched_by_torchrun() -> bool:
    """Whether a launcher (torchrun, or these local ranks) started this process as one rank of a group."""
    return all(name in os.environ for name in LAUNCHER_VARIABLES)


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity: a container's or `taskset`'s limit), not the machine's."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def check_processes(processes: int | None, device: str, option: str = "--processes") -> int:
    """The number of local ranks to start (1: score in this process), or a ConfigError naming `option`.

    Local ranks are CPU ranks: on GPUs torchrun already starts one rank per device (`cuda:LOCAL_RANK`), and a
    second launcher here would only duplicate it, so a CUDA or MPS device is refused with the torchrun line
    (here when named, by the ranks for `auto`)."""
    if processes is None:
        return 1
    if launched_by_torchrun():
        raise ConfigError(option, processes, "no --processes under torchrun (or another launcher that sets RANK and "
                          "WORLD_SIZE): its --nproc_per_node already sets the number of ranks")
    cores = usable_cores()
    if processes < 1:
        raise ConfigError(option, processes, f"a number of local CPU ranks from 1 to {cores} (the cores this process may use)")
    if processes > cores:
        raise ConfigError(option, processes, f"at most {cores}, the cores this process may use: each rank scores on a core "
                          "of its own with one torch thread, and more ranks than cores only take turns on them")
    if processes > 1 and device != "auto":
        refuse_gpu(processes, device, option)
    return processes


def refuse_gpu(processes: int, device: str, option: str = "--processes") -> None:
    """A ConfigError when local CPU ranks were asked for on a GPU device (`auto` where a GPU is available: a
    rank calls this once torch is imported, which this process avoids)."""
    gpu = device.startswith(("cuda", "mps"))
    if device == "auto":
        import torch

        gpu = torch.cuda.is_available() or torch.backends.mps.is_available()
    if gpu:
        raise ConfigError(option, processes, f"CPU ranks, but --device {device} is a GPU here: score on N GPUs with "
                          "`torchrun --nproc_per_node N -m corpuslab.cli score ...` (one GPU per rank), "
                          "or add --device cpu")


def quiet_rank() -> None:
    """Ranks other than 0: no notices (corpuslab's log, transformers' and huggingface_hub's warnings), errors only;
    rank 0 prints them once for the group."""
    import logging
    import warnings

    for name in ("corpuslab", "transformers", "huggingface_hub", "datasets"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")


@contextmanager
def process_group(device: str) -> Iterator[str]:
    """Join the group the launcher described, if any, for the duration; yields this rank's device (cuda:LOCAL_RANK
    on CUDA, as training places its ranks). Without a launcher: no group, the device as given."""
    joined = distributed.init()
    try:
        yield distributed.training_device(device) if joined and (device == "auto" or device.startswith("cuda")) else device
    finally:
        if joined:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()


def spawn(processes: int, target: Callable[..., int], args: tuple[Any, ...], preload: tuple[str, ...] = ()) -> int:
    """Run `target(*args)` in `processes` new local ranks, each with the environment torchrun would give it, a
    gloo group and cores // processes torch threads; the highest exit status of the failed ranks (0 when all return 0).

    On Linux the ranks are forked from this process once it has imported `preload` (torch, transformers, the
    model code): each rank would otherwise spend its first seconds importing them again, as many CPU-seconds
    per rank as a small scoring run takes. Nothing has run a torch operation or started its thread pool
    before the fork (as with DataLoader workers, forked after the same imports). Elsewhere (macOS, Windows,
    where fork is unsafe or absent) each rank is a fresh interpreter. A rank that fails ends the others,
    which would wait for it in a collective forever."""
    import importlib
    import multiprocessing
    import sys
    from multiprocessing.connection import wait

    fork = sys.platform.startswith("linux")
    context = multiprocessing.get_context("fork" if fork else "spawn")
    if fork:
        for module in preload:
            importlib.import_module(module)
    threads = max(1, usable_cores() // processes)
    port = _free_port()
    ranks = [context.Process(target=_rank_main, args=(rank, processes, port, threads, target, args), name=f"rank {rank}")
             for rank in range(processes)]
    for process in ranks:
        process.start()
    running = {process.sentinel: process for process in ranks}
    failed: list[int] = []
    try:
        while running and not failed:
            for sentinel in wait(list(running)):
                failed += _ended(running.pop(sentinel))
        if failed:  # the others fail in turn (their peer left a collective): a moment to exit with their own status
            for sentinel in wait(list(running), timeout=FAILURE_GRACE_SECONDS):
                failed += _ended(running.pop(sentinel))
        return max(failed, default=0)
    finally:
        for process in running.values():
            process.terminate()
        for process in running.values():
            process.join()


def _ended(process) -> list[int]:
    """[the exit status] of a rank that failed (1 when a signal ended it), [] when it returned 0."""
    process.join()
    if not process.exitcode:
        return []
    return [process.exitcode if process.exitcode > 0 else 1]


def _rank_main(local_rank: int, world: int, port: int, threads: int, target: Callable[..., int], args: tuple[Any, ...]) -> None:
    import sys

    os.environ.update({"RANK": str(local_rank), "LOCAL_RANK": str(local_rank), "WORLD_SIZE": str(world),
                       "LOCAL_WORLD_SIZE": str(world), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
                       "OMP_NUM_THREADS": str(threads)})
    from datetime import timedelta

    import torch
    import torch.distributed as dist

    torch.set_num_threads(threads)
    # CPU ranks: gloo even where CUDA is visible (distributed.init would pick NCCL); it then finds the group joined.
    minutes = float(os.environ.get("CORPUSLAB_DIST_TIMEOUT_MINUTES", distributed.DEFAULT_TIMEOUT_MINUTES))
    dist.init_process_group("gloo", timeout=timedelta(minutes=minutes))
    try:
        code = target(*args)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    sys.stdout.flush()
    sys.stderr.flush()
    if code:
        sys.exit(code)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
