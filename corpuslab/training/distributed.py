"""Training under `torchrun`: which process this is, and the few collectives the pipeline needs.

    torchrun --nproc_per_node 4 -m corpuslab.cli run --config exp.yaml
    torchrun --nnodes 2 --nproc_per_node 8 --rdzv_backend c10d --rdzv_endpoint HOST:29500 -m corpuslab.cli train ...

torchrun sets RANK, LOCAL_RANK and WORLD_SIZE in every process it starts; without them (a plain
`corpuslab run`) this is one process of a world of one and every function here is a no-op, so one
process is the same code path as N.

The division of work (`experiment.py` reads it from here):
- rank 0 builds every shared and per-arm stage before training (prepare, curate, pack), holds the
  experiment's lock, writes every checkpoint and manifest, evaluates and reports;
- every other rank builds nothing: it waits for each stage's manifest (`FollowerStageRunner`) in the
  output folder it shares with rank 0, or, on a node with a folder of its own, downloads the stage from
  the shared stage cache once rank 0 has uploaded it; then it joins rank 0 in the train stage (unless
  rank 0 says the stage is done: `LeaderStageRunner`), where each rank reads its share of every global
  batch and DDP averages the gradients (`training.trainer`).

Rank-0 work goes by RANK (global), the device by LOCAL_RANK (per node): on a second node the first process
has LOCAL_RANK 0 and RANK nproc_per_node.

The process group is created lazily, when the first train stage starts, so ranks that wait hours for
rank 0 to prepare a corpus are not inside a collective that could time out meanwhile.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from corpuslab.artifacts import Stage, StageRunner
from corpuslab.errors import ConfigError

if TYPE_CHECKING:
    from corpuslab.stage_cache import StageCache

# Collectives wait this long for a slow rank (rank 0 evaluating an arm while the others already wait
# in the next arm's train stage); CORPUSLAB_DIST_TIMEOUT_MINUTES overrides it.
DEFAULT_TIMEOUT_MINUTES = 120
POLL_SECONDS = 2.0


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def rank_log(line: str) -> None:
    """What a rank other than 0 says (rank 0 keeps the run log): to stderr, named by rank."""
    print(f"[rank {rank()}] {line}", file=sys.stderr, flush=True)


def is_distributed() -> bool:
    return world_size() > 1


def is_main() -> bool:
    return rank() == 0


def init() -> bool:
    """Join the process group torchrun described (once; NCCL on CUDA, gloo on CPU). False when there is
    only one process."""
    if not is_distributed():
        return False
    import torch
    import torch.distributed as dist

    if dist.is_initialized():
        return True
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(local_rank())
    minutes = float(os.environ.get("CORPUSLAB_DIST_TIMEOUT_MINUTES", DEFAULT_TIMEOUT_MINUTES))
    dist.init_process_group("nccl" if cuda else "gloo", timeout=timedelta(minutes=minutes))
    return True


def barrier() -> None:
    if init():
        import torch.distributed as dist

        dist.barrier()


def broadcast(value: Any) -> Any:
    """Rank 0's `value` (any picklable object), on every rank."""
    if not init():
        return value
    import torch.distributed as dist

    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def check_batch(batch_size: int, micro_batch_size: int | None, prefix: str = "training") -> tuple[int, int]:
    """(windows per rank per step, micro-batches per rank per step) for this world size, or a ConfigError
    that says what to change. The global batch is `batch_size` whatever the number of processes: each
    rank reads batch_size / world_size windows of it, in micro-batches of `micro_batch_size`."""
    world = world_size()
    if batch_size % world:
        divisors = [n for n in range(1, batch_size + 1) if batch_size % n == 0]
        raise ConfigError(f"{prefix}.batch_size", batch_size,
                          f"a multiple of the torchrun world size ({world} processes: each reads an equal share of "
                          f"every global batch); launch with a world size among {divisors}, or set "
                          f"{prefix}.batch_size to a multiple of {world}")
    share = batch_size // world
    micro = micro_batch_size or share
    if share % micro:
        raise ConfigError(f"{prefix}.micro_batch_size", micro_batch_size,
                          f"a divisor of the {share} windows each of the {world} processes reads per step "
                          f"(batch_size {batch_size} / world size {world})")
    return share, share // micro


def training_device(name: str) -> str:
    """Under torchrun on CUDA each process trains on its own GPU (cuda:LOCAL_RANK), whatever
    training.device says about the index."""
    if not is_distributed() or name == "cpu":
        return name
    import torch

    if name == "auto" and not torch.cuda.is_available():
        return "cpu"
    return f"cuda:{local_rank()}"


def stage_runner(root: Path, log: Callable[[str], None], cache: StageCache | None) -> StageRunner:
    """This process's stage runner: rank 0 builds (and fills the shared cache), every other rank waits."""
    if not is_main():
        return FollowerStageRunner(root, rank_log, cache)
    return LeaderStageRunner(root, log, cache) if is_distributed() else StageRunner(root, log, cache)


class LeaderStageRunner(StageRunner):
    """Rank 0's stage runner under torchrun: before a train stage it tells every rank whether it will train
    (the stage may be complete in rank 0's folder or in the shared cache, which another node's ranks may not
    see): all ranks take the same branch, or DDP would wait for a rank that never comes."""

    def run(self, stage: Stage, build: Callable[[Path], dict[str, Any]], label: str | None = None,
            resumable: bool = False) -> dict[str, Any]:
        if stage.name == "train":
            broadcast(self._ready_to_skip_training(stage, label or stage.name))
        return super().run(stage, build, label=label, resumable=resumable)

    def _ready_to_skip_training(self, stage: Stage, label: str) -> bool:
        """Whether the train stage is complete here, or was downloaded from the shared cache now."""
        if stage.is_complete():
            return True
        if self.cache is None or self.cache.download(stage) is None:
            return False
        shutil.rmtree(stage.partial_path, ignore_errors=True)  # an interrupted attempt here is superseded, as StageRunner does
        self.log(f"[{label}] downloaded {stage.path.name} from {self.cache.describe()}")
        return True


class FollowerStageRunner(StageRunner):
    """The stage runner of a rank other than 0: it builds nothing, it waits for rank 0's stage, in the
    folder it shares with rank 0 or, on a node that does not share it (a node-local `output_dir`, or a URL
    one: each node stages it locally), in the shared stage cache (`cache.url`), from which it downloads it.
    The train stage is the exception: its `build` runs on every rank (it is the distributed training; only
    rank 0 writes) unless rank 0 says the stage is done, and its folder becomes complete only after every
    rank has trained."""

    def __init__(self, root: Path, log: Callable[[str], None], cache: StageCache | None = None):
        self.root, self.log = root, log
        self.cache = cache  # read only: rank 0 alone builds stages and fills the cache
        root.mkdir(parents=True, exist_ok=True)  # rank 0 makes it, unless this node has a folder of its own

    def run(self, stage: Stage, build: Callable[[Path], dict[str, Any]], label: str | None = None,
            resumable: bool = False) -> dict[str, Any]:
        if stage.name == "train":
            if broadcast(stage.is_complete()):  # rank 0's answer (this rank's own without torchrun)
                return stage.manifest() if stage.is_complete() else {}
            build(stage.partial_path)
            return {}
        waited = False
        while not stage.is_complete():
            if self.cache is not None and (manifest := self.cache.download(stage, replace=False)) is not None:
                self.log(f"[{label or stage.name}] rank {rank()} downloaded {stage.path.name} from {self.cache.describe()}")
                return manifest
            if not waited:
                self.log(f"[{label or stage.name}] rank {rank()} waits for rank 0 to build {stage.path.name}")
                waited = True
            time.sleep(POLL_SECONDS)
        return stage.manifest()
