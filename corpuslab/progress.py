"""Progress for long loops and the run log: bars on a terminal, rate lines in logs and CI."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")


def progress(items: Iterable[T], desc: str, unit: str = "it", total: int | None = None) -> Iterator[T]:
    """A tqdm bar on stderr; when stderr is not a terminal it prints a rate line every 10 seconds instead."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    interactive = sys.stderr.isatty()
    return iter(
        tqdm(items, desc=desc, unit=unit, total=total, leave=False, dynamic_ncols=True,
             mininterval=0.5 if interactive else 10.0, disable=None if interactive else False, file=sys.stderr)
    )


class RunLog:
    """Prints timestamped lines to stderr and appends them to a log file once the output folder is known."""

    def __init__(self) -> None:
        self.start = time.time()
        self.path: Path | None = None

    def attach(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path

    def __call__(self, message: str) -> None:
        line = f"[{time.time() - self.start:7.1f}s] {message}"
        print(line, file=sys.stderr, flush=True)
        if self.path is not None:
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(line + "\n")
