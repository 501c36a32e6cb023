"""Per-shard completion records: a killed curation step resumes without redoing its finished shards.

A stage's work folder is temporary (see artifacts.py), so what a stage's executor tasks finished would die
with it. `ShardLog` wraps the stage's executor and records each task the moment it finishes, whatever
the executor (local pool, Ray):

    <stages>/.<stage folder>.shards/<key>.pkl    the task's result, written atomically
    <stages>/.<stage folder>.shards/<key>.done   written after it: the task counts as finished

`key` is a hash of the function and the work item (shard path, settings, rows), so a rerun of the same
stage (same fingerprint, same folder) finds the tasks it already did and runs only the rest. The folder
is removed once the stage is complete. Results go through the driver: workers never write here.
"""

from __future__ import annotations

import contextlib
import hashlib
import pickle
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from corpuslab.atomic import atomic_file, write_json_atomic

Item = TypeVar("Item")
Result = TypeVar("Result")


def task_key(fn: Callable, item: Any) -> str:
    """Same function, same work item -> same key, in any process (pickle of frozen dataclasses, paths, arrays)."""
    blob = pickle.dumps((getattr(fn, "__module__", ""), getattr(fn, "__qualname__", repr(fn)), item), protocol=5)
    return hashlib.sha256(blob).hexdigest()[:32]


@dataclass(frozen=True)
class _Recorded:
    """A result recorded by an earlier run, not yet read back."""

    key: str


class ShardLog:
    """An executor that runs through `executor` only the tasks not recorded as done in `folder`.

    `resumed` and `ran` count the tasks taken from an earlier run's records and the tasks run, over every
    `map`; `reused` counts tasks this run had already recorded in an earlier `map` (decontamination probes
    val and test with the same task when both splits index nothing, for instance): read back, not resumed."""

    def __init__(self, executor: Any, folder: Path, log: Callable[[str], None] | None = None):
        self.executor = executor
        self.folder = Path(folder)
        self.log = log
        self.resumed = 0
        self.ran = 0
        self.reused = 0
        self._recorded_now: set[str] = set()  # keys this instance saved: found again, they are no earlier run's

    def map(self, fn: Callable[[Item], Result], items: Iterable[Item]) -> Iterator[Result]:
        items = list(items)
        keys = [task_key(fn, item) for item in items]
        results: dict[int, Any] = {}
        for i, key in enumerate(keys):
            if (self.folder / f"{key}.done").exists():
                results[i] = _Recorded(key)  # read back when its turn comes: one recorded result in memory at a time
        todo = [i for i in range(len(items)) if i not in results]
        reused = sum(1 for i in results if keys[i] in self._recorded_now)
        self.resumed += len(results) - reused
        self.reused += reused
        self.ran += len(todo)
        if len(results) > reused and self.log is not None:
            self.log(f"  resumed: {len(results) - reused} of {len(items)} {getattr(fn, '__name__', 'task')} tasks were finished by an "
                     "earlier run")
        finished = self._run(fn, [items[i] for i in todo]) if todo else iter(())
        return self._in_order(finished, todo, keys, results, len(items), fn)

    def _run(self, fn: Callable, items: list) -> Iterator[tuple[int, Any]]:
        completed = getattr(self.executor, "completed", None)
        return completed(fn, items) if completed is not None else enumerate(self.executor.map(fn, items))

    def _in_order(self, finished: Iterator[tuple[int, Any]], todo: list[int], keys: list[str], results: dict[int, Any],
                  total: int, fn: Callable) -> Iterator[Any]:
        """Record each task as it finishes (in any order), and yield results in input order."""
        following = 0
        for position, result in finished:
            index = todo[position]
            self._save(keys[index], result, fn)
            results[index] = result
            while following in results:
                yield self._take(results, following)
                following += 1
        while following < total:
            yield self._take(results, following)
            following += 1

    def _take(self, results: dict[int, Any], index: int) -> Any:
        result = results.pop(index)
        return self._load(result.key) if isinstance(result, _Recorded) else result

    def _save(self, key: str, result: Any, fn: Callable) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        with atomic_file(self.folder / f"{key}.pkl", "wb") as handle:
            pickle.dump(result, handle, protocol=5)
        write_json_atomic(self.folder / f"{key}.done", {"task": getattr(fn, "__qualname__", repr(fn)), "finished": time.time()})
        self._recorded_now.add(key)

    def _load(self, key: str) -> Any:
        with open(self.folder / f"{key}.pkl", "rb") as handle:
            return pickle.load(handle)

    @property
    def unrecorded(self) -> Any:
        """The wrapped executor, for work that records its own progress (a stage of its own, like embed)."""
        return self.executor

    def finished(self) -> int:
        """Tasks recorded as done in the folder."""
        return len(list(self.folder.glob("*.done"))) if self.folder.exists() else 0

    def discard(self) -> None:
        """Remove the records: the stage they served is complete."""
        shutil.rmtree(self.folder, ignore_errors=True)

    def close(self, interrupted: bool = False) -> None:
        """The wrapped executor belongs to the caller, which closes it."""


def stage_shard_folder(stage: Any) -> Path:
    """Where a stage's shard records live: next to its folder, hidden, named after it."""
    return stage.root / f".{stage.path.name}.shards"


@contextlib.contextmanager
def shard_log(executor: Any, stage: Any, log: Callable[[str], None] | None = None) -> Iterator[ShardLog]:
    """A ShardLog for building `stage`; its records are removed when the block ends without an error."""
    records = ShardLog(executor, stage_shard_folder(stage), log)
    yield records
    if records.resumed and log is not None:
        log(f"  {records.resumed} shard tasks resumed from an earlier run, {records.ran} run now")
    records.discard()

