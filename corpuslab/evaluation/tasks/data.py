"""Task documents: from the Hugging Face dataset the harness uses, or from a local file with its fields.

A local file is JSON Lines (`.jsonl`, `.json`: one JSON object per line) or Parquet (`.parquet`), each
row a document with the fields of the task's Hugging Face dataset (e.g. PIQA: goal, sol1, sol2, label).
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from corpuslab.errors import InputError
from corpuslab.evaluation.tasks.base import HFSource

LOCAL_SUFFIXES = (".jsonl", ".json", ".parquet")

# How the user gives a task a local file where the tasks are run: `{task}` is the task's name. An experiment
# reads `evaluation.task_files`; `corpuslab score` and `corpuslab.api.evaluate` set their own (`local_copy_hint`).
_LOCAL_COPY_HINT = contextvars.ContextVar("local_copy_hint", default="evaluation.task_files.{task}: PATH in the experiment config")


@contextlib.contextmanager
def local_copy_hint(hint: str) -> Iterator[None]:
    """Within the block, a task that cannot be loaded from the hub names `hint` as the way to give a local file."""
    token = _LOCAL_COPY_HINT.set(hint)
    try:
        yield
    finally:
        _LOCAL_COPY_HINT.reset(token)


def load_hf_docs(source: HFSource, task: str = "TASK") -> list[dict[str, Any]]:
    """`datasets.load_dataset(path, name, split=split)`, as the harness calls it. Under HF_HUB_OFFLINE=1, or
    when the Hub was found unreachable (asked once per process, `corpuslab.hub`), only the local cache is
    read: one failed lookup instead of huggingface_hub's five retries with backoff (~50 s) per dataset."""
    import datasets

    from corpuslab.hub import offline_unless_reachable

    offline = False
    try:
        with offline_unless_reachable() as offline:
            dataset = datasets.load_dataset(source.path, source.name, split=source.split)
    except Exception as err:  # hub unreachable, gated, renamed...: say what to do instead
        where = (f"the Hub is not reachable (or HF_HUB_OFFLINE is set) and it is not in the local cache: {err.__class__.__name__}"
                 if offline else f"{err.__class__.__name__}: {err}")
        raise InputError(
            f"hf://{source.path}" + (f"/{source.name}" if source.name else ""),
            f"could not load split '{source.split}' for task '{task}' ({where}); prefetch it on a machine with "
            f"network access, or give a local JSON Lines or Parquet copy with {_LOCAL_COPY_HINT.get().format(task=task)}",
        ) from err
    return [dict(row) for row in dataset]


def load_local_docs(path: str | Path) -> list[dict[str, Any]]:
    path = Path(path)
    if not path.is_file():
        raise InputError(str(path), "task data file not found")
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    if path.suffix not in LOCAL_SUFFIXES:
        raise InputError(str(path), f"unknown task file type; expected one of {', '.join(LOCAL_SUFFIXES)}")
    return _read_json_lines(path)


def _read_json_lines(path: Path) -> list[dict[str, Any]]:
    docs = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                doc = json.loads(line)
            except json.JSONDecodeError as err:
                raise InputError(str(path), f"not valid JSON ({err.msg})", number) from err
            if not isinstance(doc, dict):
                raise InputError(str(path), "expected one JSON object per line", number)
            docs.append(doc)
    return docs


def sample_indices(n_docs: int, n: int | None, seed: int, name: str) -> list[int]:
    """A seeded sample of n document indices, in dataset order; all of them when n is None or >= n_docs.

    The stream depends on the task name, so two tasks of the same size do not pick the same rows.
    """
    if n is None or n >= n_docs:
        return list(range(n_docs))
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    return sorted(rng.choice(n_docs, size=n, replace=False).tolist())
