"""Task documents: from the Hugging Face dataset the harness uses, or from a local file with its fields.

A local file is JSON Lines (`.jsonl`, `.json`: one JSON object per line) or Parquet (`.parquet`), each
row a document with the fields of the task's Hugging Face dataset (e.g. PIQA: goal, sol1, sol2, label).
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from corpuslab.errors import InputError
from corpuslab.evaluation.tasks.base import HFSource

LOCAL_SUFFIXES = (".jsonl", ".json", ".parquet")


def load_hf_docs(source: HFSource) -> list[dict[str, Any]]:
    """`datasets.load_dataset(path, name, split=split)`, as the harness calls it."""
    import datasets

    try:
        dataset = datasets.load_dataset(source.path, source.name, split=source.split)
    except Exception as err:  # hub unreachable, gated, renamed...: say what to do instead
        raise InputError(
            f"hf://{source.path}" + (f"/{source.name}" if source.name else ""),
            f"could not load split '{source.split}' ({err.__class__.__name__}: {err}); "
            "prefetch it or give a local copy in tasks.data_files",
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
