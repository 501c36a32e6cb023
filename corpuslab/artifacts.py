"""Stage folders: named by a fingerprint of what made them, complete only when their manifest exists.

A stage writes into a temporary folder and moves it into place only after its manifest is written, so
a killed process never leaves a folder that looks complete. Resumable stages (training) keep their
work folder between attempts so they can continue from their last saved state.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from corpuslab.atomic import write_json_atomic  # noqa: F401  (re-exported: stages write JSON)
from corpuslab.errors import ConfigError, CorpuslabError, StageError
from corpuslab.schema import to_dict

if TYPE_CHECKING:
    from corpuslab.stage_cache import StageCache

MANIFEST = "manifest.json"


def fingerprint(*parts: Any, length: int = 10) -> str:
    """A short stable hash of config slices and input fingerprints (canonical JSON, sorted keys)."""
    blob = json.dumps([to_dict(p) for p in parts], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:length]


def read_json(path: Path) -> Any:
    with open(path) as handle:
        return json.load(handle)


@dataclass(frozen=True)
class Stage:
    """One artifact folder: `<root>/<name>-<fingerprint>`."""

    root: Path
    name: str
    fingerprint: str
    key: tuple = ()  # the config slices and input fingerprints the fingerprint was made from

    @property
    def path(self) -> Path:
        return self.root / f"{self.name}-{self.fingerprint}"

    @property
    def partial_path(self) -> Path:
        return self.root / f"{self.name}-{self.fingerprint}.partial"

    def is_complete(self) -> bool:
        return (self.path / MANIFEST).exists()

    def manifest(self) -> dict[str, Any]:
        return read_json(self.path / MANIFEST)


class StageRunner:
    """Runs stages once: reuses complete ones, builds missing ones atomically, and says which it did."""

    def __init__(self, root: Path, log: Callable[[str], None], cache: StageCache | None = None):
        self.root = root
        self.log = log
        self.cache = cache  # a shared stage cache (corpuslab.stage_cache): read before building, written after
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise ConfigError("output_dir", str(root), f"a folder corpuslab can create and write ({err.strerror})") from None

    def stage(self, name: str, *key: Any) -> Stage:
        return Stage(self.root, name, fingerprint(*key), key)

    def plugin_stage(self, name: str, plugin: Any, *inputs: Any) -> Stage:
        """A stage made by a plug-in: named by the plug-in's own fingerprint of itself and its inputs."""
        return Stage(self.root, name, plugin.fingerprint(*inputs), (plugin.describe(), *inputs))

    def run(
        self,
        stage: Stage,
        build: Callable[[Path], dict[str, Any]],
        label: str | None = None,
        resumable: bool = False,
    ) -> dict[str, Any]:
        """Return the stage's manifest, building it with `build(work_dir) -> manifest` if needed.

        `resumable` stages keep `<name>-<fp>.partial` across crashes (training resumes from it);
        others start from an empty temporary folder every time.
        """
        label = label or stage.name
        if stage.is_complete():
            self.log(f"[{label}] reused {stage.path.name}")
            if self.cache is not None and not self.cache.has(stage):  # built before the cache was set, or elsewhere
                self._upload(stage, label)
            return stage.manifest()
        if self.cache is not None and (cached := self.cache.download(stage)) is not None:
            shutil.rmtree(stage.partial_path, ignore_errors=True)  # a resumable stage's attempt is superseded
            self.log(f"[{label}] downloaded {stage.path.name} from {self.cache.describe()}")
            return cached
        for debris in stage.root.glob(f".{stage.path.name}.tmp-*"):  # left by a killed run; we hold the lock
            shutil.rmtree(debris, ignore_errors=True)
        work = stage.partial_path if resumable else stage.root / f".{stage.path.name}.tmp-{os.getpid()}"
        if not resumable and work.exists():
            shutil.rmtree(work)
        if resumable and work.exists():
            self.log(f"[{label}] resuming in {work.name}")
        work.mkdir(parents=True, exist_ok=True)
        if stage.path.exists():  # a folder without manifest can only be debris from outside corpuslab
            shutil.rmtree(stage.path)
        self.log(f"[{label}] started -> {stage.path.name}")
        start = time.time()
        try:
            manifest = build(work)
            manifest = {"stage": stage.name, "fingerprint": stage.fingerprint, "seconds": round(time.time() - start, 3),
                        **manifest, "made_from": to_dict(list(stage.key))}
            # The manifest meets a full disk as the stage's files do: same message, and the folder stays temporary.
            write_json_atomic(work / MANIFEST, manifest)
            os.replace(work, stage.path)
        except OSError as err:
            raise os_error_as_stage_error(label, err, self.root) from err
        except MemoryError as err:
            raise StageError(label, "ran out of memory; lower the corpus size or batch size and rerun") from err
        self.log(f"[{label}] finished in {manifest['seconds']:.1f}s")
        if self.cache is not None:
            self._upload(stage, label)
        return manifest

    def _upload(self, stage: Stage, label: str) -> None:
        assert self.cache is not None
        files = self.cache.upload(stage)
        self.log(f"[{label}] uploaded {files} files to {self.cache.describe()}" if files
                 else f"[{label}] already in {self.cache.describe()} (another run uploaded it)")


def os_error_as_stage_error(label: str, err: OSError, folder: Path | None = None) -> CorpuslabError:
    """A StageError for an OSError met while stage `label` wrote into `folder`: it names the file when the error
    knows it (Arrow, safetensors and plain writes often do not), else the folder."""
    where = f" ({err.filename})" if err.filename is not None else f" in {folder}" if folder is not None else ""
    if err.errno == errno.ENOSPC:
        return StageError(label, f"no space left on device while writing{where}; free space and rerun, finished stages are kept")
    return StageError(label, f"{err.strerror or err}{where}")


@contextlib.contextmanager
def exclusive_lock(folder: Path) -> Iterator[None]:
    """Hold `<folder>/.lock` for the duration; a second run on the same folder stops with a clear message.
    The lock file is removed when the run ends, so a finished experiment folder holds only results."""
    lock_path = folder / ".lock"
    handle = _acquire(folder, lock_path)
    try:
        yield
    finally:
        # Unlink while still holding the lock: a process that opened the old file meanwhile sees, after it
        # gets the lock, that the path no longer names its file, and starts over (see `_acquire`).
        with contextlib.suppress(OSError):
            lock_path.unlink()
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def _acquire(folder: Path, lock_path: Path):
    while True:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            handle = open(lock_path, "a+")
        except OSError as err:
            raise ConfigError("output_dir", str(folder), f"a folder corpuslab can create and write ({err.strerror})") from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise CorpuslabError(
                f"{folder} is in use by another corpuslab run ({holder}); wait for it to finish or use another output folder"
            ) from None
        try:
            same = os.stat(lock_path).st_ino == os.fstat(handle.fileno()).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        handle.close()  # the previous holder removed the file between our open and our lock: try again
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()}")
    handle.flush()
    return handle
