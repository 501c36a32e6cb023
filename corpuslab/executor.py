"""Where per-shard work runs: in this process, or in a pool of local processes.

Curation steps hand an executor a top-level function and a list of picklable work items (usually one
per Parquet shard) and get the results back in input order. That is the whole contract, so a cluster
engine (Ray, Slurm) can plug in by implementing `map` the same way: same code, same results.

    with LocalExecutor(processes=2) as executor:
        signatures = list(executor.map(signature_task, shard_tasks))

An executor may also offer `completed(fn, items)`, yielding `(index, result)` as tasks finish in any
order: `ShardLog` (shard_log.py) records each shard the moment it is done, so a killed job resumes
without redoing it. Which executor an experiment uses is a registered plug-in chosen by
`curation.executor` (`local`, `ray`, or your own), built by `build_executor`.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import signal
import sys
from abc import abstractmethod
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, runtime_checkable

from corpuslab.errors import ConfigError
from corpuslab.registry import Plugin, Registry

Item = TypeVar("Item")
Result = TypeVar("Result")


@runtime_checkable
class Executor(Protocol):
    """Runs `fn` over `items`, yielding results in input order.

    `fn` must be a module-level function and items and results must pickle, because an
    implementation may run them in other processes or on other machines.
    """

    def map(self, fn: Callable[[Item], Result], items: Iterable[Item]) -> Iterator[Result]: ...


class SerialExecutor:
    """Runs everything in the calling process: for tests, debugging and tiny inputs."""

    def map(self, fn: Callable[[Item], Result], items: Iterable[Item]) -> Iterator[Result]:
        return map(fn, items)

    def completed(self, fn: Callable[[Item], Result], items: Iterable[Item]) -> Iterator[tuple[int, Result]]:
        return enumerate(map(fn, items))

    def close(self, interrupted: bool = False) -> None:
        """Nothing to release; present so callers can treat every executor alike."""

    def __enter__(self) -> SerialExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LocalExecutor:
    """A process pool on this machine, created on first use and reused until `close()`.

    Processes, not threads: tokenizing and normalizing text holds the GIL for part of the work.
    The pool uses 'fork' where the platform has it, so workers inherit already-imported modules and
    compiled numba kernels instead of re-importing them (seconds per worker under 'spawn'); a function
    must then exist before the pool starts (any module-level function of an imported module does).
    A worker that dies raises `BrokenProcessPool` in the caller instead of hanging it.
    """

    def __init__(self, processes: int | None = None, start_method: str | None = None):
        if processes is not None and processes < 1:
            raise ConfigError("executor.processes", processes, "an integer >= 1, or None for all cores")
        methods = multiprocessing.get_all_start_methods()
        if start_method is not None and start_method not in methods:
            raise ConfigError("executor.start_method", start_method, f"one of {methods}")
        self.processes = processes or os.cpu_count() or 1
        self.start_method = start_method or _default_start_method(methods)
        self._pool: ProcessPoolExecutor | None = None

    def map(self, fn: Callable[[Item], Result], items: Iterable[Item]) -> Iterator[Result]:
        # One item per message: items are whole shards, so the overhead is negligible and
        # unequal shards still balance across the workers.
        if self._pool is not None:
            return self._pool.map(fn, items)
        return self._start().map(fn, items)

    def completed(self, fn: Callable[[Item], Result], items: Iterable[Item]) -> Iterator[tuple[int, Result]]:
        """(index, result) in the order the tasks finish; every task is submitted before the first yield."""
        pool = self._pool or self._start()
        futures = {pool.submit(fn, item): index for index, item in enumerate(items)}

        def finished() -> Iterator[tuple[int, Result]]:
            try:
                for future in as_completed(futures):
                    yield futures[future], future.result()
            finally:
                for future in futures:
                    future.cancel()

        return finished()

    def _start(self) -> ProcessPoolExecutor:
        context = multiprocessing.get_context(self.start_method)
        self._pool = ProcessPoolExecutor(self.processes, mp_context=context, initializer=_ignore_interrupts)
        # Under 'fork' the workers start at the first submit and share the parent's memory pages.
        # A garbage-collector pass writes to every object's header, copying those pages (~30 MB
        # per process measured), so objects that exist now stay out of collection until `close()`.
        gc.freeze()
        return self._pool

    def close(self, interrupted: bool = False) -> None:
        """Stop the worker processes; a later `map` starts a fresh pool. After Ctrl-C the workers are
        terminated rather than waited for: their half-done shards are worthless."""
        if self._pool is not None:
            if interrupted:
                for process in list(getattr(self._pool, "_processes", {}).values()):
                    process.terminate()
            self._pool.shutdown(wait=not interrupted, cancel_futures=True)
            self._pool = None
            gc.unfreeze()

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self.close(interrupted=exc_type is KeyboardInterrupt)


def _ignore_interrupts() -> None:
    """Workers leave Ctrl-C to the parent, which stops them: otherwise every worker prints its own
    KeyboardInterrupt traceback before the parent's one-line message."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _default_start_method(available: list[str]) -> str:
    """'fork' on Linux (fast start, shared imports); 'spawn' elsewhere (macOS fork is unsafe)."""
    return "fork" if sys.platform.startswith("linux") and "fork" in available else "spawn"


class ExecutorKind(Plugin):
    """A registered kind of executor (`curation.executor`): its typed config, and how to build one.

    `build(workers, key)` returns an executor with `map` and `close(interrupted=...)`; `workers` is
    `curation.workers`, `key` the config key errors should name (`curation.ray` for the `ray` kind)."""

    @abstractmethod
    def build(self, workers: int | None, key: str) -> Any:
        """The executor, built from this kind's config."""


executors: Registry[ExecutorKind] = Registry("executor", ExecutorKind)


@dataclass(frozen=True)
class LocalPoolConfig:
    """start_method: how pool workers start (`fork` on Linux by default, else `spawn`)."""

    start_method: str | None = None


@executors.register
class LocalPool(ExecutorKind):
    """A process pool on this machine with `curation.workers` processes (default: all cores)."""

    name = "local"
    Config = LocalPoolConfig

    def build(self, workers: int | None, key: str) -> LocalExecutor:
        return LocalExecutor(workers, self.config.start_method)


def build_executor(spec: str | dict[str, Any], sections: dict[str, Any], workers: int | None, key: str = "curation") -> Any:
    """The executor `spec` names (`local`, `ray`, `{name: ray, address: auto}`), with the parameters of its
    own section (`curation.ray`) under those given inline. Errors name `<key>.executor` or `<key>.<kind>`."""
    import corpuslab.ray_executor  # noqa: F401  (registers `ray`; ray itself is imported only when used)
    from corpuslab.registry import split_spec
    from corpuslab.schema import to_dict

    name, params = split_spec(spec, f"{key}.executor")
    section = sections.get(name)
    kind = executors.build({"name": name, **params}, f"{key}.executor",
                           defaults=to_dict(section) if section is not None else None)
    return kind.build(workers, f"{key}.executor" if params else f"{key}.{name}")
