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
    """A tqdm bar on a terminal (cleared when done); in a log file or CI, where a bar's carriage returns
    turn into debris, a plain rate line every `LOG_EVERY` seconds and a last one when the loop took long."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    if sys.stderr.isatty():
        return iter(tqdm(items, desc=desc, unit=unit, total=total, leave=False, dynamic_ncols=True, mininterval=0.5,
                         file=sys.stderr))
    return _rate_lines(items, desc, unit, total)


LOG_EVERY = 10.0  # seconds between progress lines when stderr is not a terminal


def _rate_lines(items: Iterable[T], desc: str, unit: str, total: int | None) -> Iterator[T]:
    start = last = time.monotonic()
    count = 0
    for item in items:
        yield item
        count += 1
        now = time.monotonic()
        if now - last >= LOG_EVERY:
            last = now
            print(_rate_line(desc, unit, count, total, now - start), file=sys.stderr, flush=True)
    if last != start:  # the loop printed progress: say it finished
        print(_rate_line(desc, unit, count, total, time.monotonic() - start), file=sys.stderr, flush=True)


def _rate_line(desc: str, unit: str, count: int, total: int | None, seconds: float) -> str:
    rate = count / seconds if seconds > 0 else 0.0
    done = f"{count:,}/{total:,}" if total else f"{count:,}"
    eta = f", about {(total - count) / rate:.0f}s left" if total and rate > 0 and count < total else ""
    return f"  {desc}: {done} {unit}s ({rate:,.0f} {unit}/s{eta})"


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
