"""Atomic writes: every file and folder corpuslab writes appears whole or not at all.

One mechanism for all writers (JSON, TSV, HTML, token streams, checkpoints): write under a temporary
name in the same folder, flush, then rename over the target. A crash leaves the old file or a
`.tmp-<pid>-*` leftover that no reader mistakes for the real thing.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


def temp_path(path: str | os.PathLike[str]) -> Path:
    """A sibling name for `path` under construction. The pid keeps two writers apart; the suffix is kept
    because some writers (np.save) append one to names that lack it."""
    path = Path(path)
    return path.with_name(f".tmp-{os.getpid()}-{path.name}")


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike[str], mode: str = "w", **open_kwargs: Any) -> Iterator[IO]:
    """Open a temporary sibling of `path` for writing; on a clean exit it replaces `path`, on an error it
    is removed and `path` is untouched. An OSError without a file name (a write or flush that meets a full
    disk names none) is given `path`, so the message says which file could not be written."""
    path = Path(path)
    tmp = temp_path(path)
    try:
        with open(tmp, mode, **open_kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as err:
        if err.filename is None:
            err.filename = str(path)
        raise
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    with atomic_file(path, "w", encoding="utf-8") as handle:
        handle.write(text)


def write_json_atomic(path: str | os.PathLike[str], data: Any) -> None:
    """JSON (indented, keys in insertion order); readers see the old file or the new one."""
    with atomic_file(path, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2, sort_keys=False, default=str, ensure_ascii=False)
        handle.write("\n")


def replace_dir(tmp: Path, target: Path) -> None:
    """Move the finished folder `tmp` to `target`. The old target is moved aside first, so at every instant
    a complete copy exists as `target` or `target.old` (readers that resume accept either)."""
    old = target.with_name(target.name + ".old")
    if target.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
    # When `target` is missing (a crash between the two renames), `old` is the only complete copy:
    # it is removed only after `tmp` has taken its place.
    os.replace(tmp, target)
    shutil.rmtree(old, ignore_errors=True)


class FileSet:
    """Files that must change together (a report and the config it describes). Each is written under a
    temporary name; only when every one is written are they renamed into place, in the order written.
    A failure while writing (a full disk) leaves the previous set whole, not half old and half new."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self._staged: list[tuple[Path, Path]] = []
        self._removed: list[Path] = []

    def path(self, name: str) -> Path:
        """Where to write `name` now; it becomes `folder/name` when the set is committed."""
        target = self.folder / name
        tmp = self.folder / f".tmp-{os.getpid()}-set-{name}"
        self._staged.append((tmp, target))
        return tmp

    def remove(self, name: str) -> None:
        """`folder/name` must not outlive this set (an output the new run does not produce)."""
        self._removed.append(self.folder / name)

    def commit(self) -> None:
        for target in self._removed:
            target.unlink(missing_ok=True)
        for tmp, target in self._staged:
            os.replace(tmp, target)
        self._staged.clear()

    def discard(self) -> None:
        for tmp, _ in self._staged:
            tmp.unlink(missing_ok=True)
        self._staged.clear()


@contextlib.contextmanager
def file_set(folder: str | os.PathLike[str]) -> Iterator[FileSet]:
    files = FileSet(Path(folder))
    try:
        yield files
        files.commit()
    except OSError as err:  # name the file the user knows, not its staged name
        staged = {str(tmp): str(target) for tmp, target in files._staged}
        if err.filename in staged:
            err.filename = staged[err.filename]
        raise
    finally:
        files.discard()
