"""A shared stage cache: finished stage folders mirrored at a URL (`cache.url: s3://bucket/prefix`), keyed by the
same `<name>-<fingerprint>` names as the local stage folders.

Before a stage is built, the runner looks in the cache: a stage whose manifest is there is downloaded into the
local stage folder instead of being rebuilt. After a stage is built, its files are uploaded and its manifest
last, so a half-uploaded stage (a killed upload) has no manifest and never counts as complete; the next run
that needs it builds it again and uploads it over the debris. Local stage folders stay as they are: the cache
is a mirror, and a run without it behaves exactly as before.

A remote `output_dir` (`s3://bucket/runs`) implies a cache at `<output_dir>/<experiment>/stages` when
`cache.url` is not set, so its stages land next to its report as they would locally.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from corpuslab.errors import ConfigError, CorpuslabError
from corpuslab.paths import access_error, check_url, filesystem, join, missing_bucket, strip_file_scheme

if TYPE_CHECKING:
    from corpuslab.artifacts import Stage

MANIFEST = "manifest.json"  # as in corpuslab.artifacts (not imported: artifacts imports this module)
EMPTY_DIRS = ".corpuslab-empty-dirs.json"  # in the cache only: the stage's empty folders


@dataclass(frozen=True)
class CacheConfig:
    """url: where finished stages are shared between runs and machines (`s3://bucket/prefix`, `gs://...`,
    `memory://...`, or a local folder such as a network mount); null = no shared cache (or, with a URL
    `output_dir`, `<output_dir>/<experiment>/stages`). Never part of a fingerprint: turning it on rebuilds nothing.
    """

    url: str | None = None

    def validate(self, prefix: str = "cache") -> None:
        if self.url is not None:
            if not str(self.url).strip():
                raise ConfigError(f"{prefix}.url", self.url, "a URL or folder, or null for no shared cache")
            check_url(f"{prefix}.url", self.url)


class StageCache:
    """Stage folders at `url`: `<url>/<stage>-<fingerprint>/...`, complete when `manifest.json` is there."""

    def __init__(self, url: str, key: str = "cache.url"):
        self.url = strip_file_scheme(str(url)).rstrip("/")
        self.key = key
        self.fs, self.root = filesystem(self.url, key) if "://" in self.url else _local_fs(self.url)

    def describe(self) -> str:
        return self.url

    def check(self) -> None:
        """Reach the cache once before any stage runs, so wrong credentials or a missing bucket stop the run
        in seconds, naming the setting, not after the first stage was built."""
        try:
            self.fs.invalidate_cache()
            self.fs.ls(self.root, detail=False)
        except FileNotFoundError as err:
            if missing_bucket(err):
                raise access_error(err, self.key, self.url, "opening the cache") from None
            # an empty cache: its prefix appears with the first upload
        except Exception as err:
            raise access_error(err, self.key, self.url, "opening the cache") from None

    def _remote(self, stage: Stage) -> str:
        return join(self.root, stage.path.name)

    def has(self, stage: Stage) -> bool:
        try:
            self.fs.invalidate_cache(self._remote(stage))  # another machine may have uploaded it since we listed
            return bool(self.fs.exists(join(self._remote(stage), MANIFEST)))
        except Exception as err:
            raise access_error(err, self.key, self.url, f"looking up {stage.path.name}") from None

    def download(self, stage: Stage, replace: bool = True) -> dict[str, Any] | None:
        """Copy a complete cached stage into `stage.path` (through a temporary folder, moved into place whole);
        None when the cache does not hold it complete. `replace=False` (a torchrun rank other than 0, which may
        share the folder with rank 0) never removes what is at `stage.path`: a complete stage placed there
        meanwhile wins, and debris stays for rank 0 to clear."""
        if not self.has(stage):
            return None
        remote = self._remote(stage)
        tmp = stage.root / f".{stage.path.name}.tmp-{os.getpid()}-download"
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            listing = self.fs.find(remote, detail=True)
            files = {path: info for path, info in listing.items() if info.get("type", "file") != "directory"}
            rpaths = sorted(files, key=lambda p: p.endswith("/" + MANIFEST))  # the manifest last, as uploaded
            lpaths = [str(tmp / path[len(remote):].lstrip("/")) for path in rpaths]
            for local in lpaths:
                Path(local).parent.mkdir(parents=True, exist_ok=True)
            self.fs.get(rpaths, lpaths)
        except CorpuslabError:
            raise
        except Exception as err:
            shutil.rmtree(tmp, ignore_errors=True)
            raise access_error(err, self.key, self.url, f"downloading {stage.path.name}") from None
        short = [lp for rp, lp in zip(rpaths, lpaths) if files[rp].get("size") is not None and os.path.getsize(lp) != files[rp]["size"]]
        _restore_empty_dirs(tmp)
        manifest = _read_manifest(tmp / MANIFEST)
        if short or manifest is None or manifest.get("fingerprint") != stage.fingerprint:
            shutil.rmtree(tmp, ignore_errors=True)
            return None  # a torn copy or a foreign folder under our name: build it instead
        if not replace:
            return _place_unless_there(tmp, stage, manifest)
        if stage.path.exists():  # debris without a manifest (the runner checked)
            shutil.rmtree(stage.path)
        os.replace(tmp, stage.path)
        return manifest

    def upload(self, stage: Stage) -> int:
        """Upload a finished local stage: every file, then the manifest, so the cache never shows it complete
        before all its files are there. Returns the number of files (0 when another run uploaded it meanwhile)."""
        if self.has(stage):
            return 0
        files = sorted(p for p in stage.path.rglob("*") if p.is_file() and p != stage.path / MANIFEST)
        remote = self._remote(stage)
        empty = sorted(p.relative_to(stage.path).as_posix() for p in stage.path.rglob("*") if p.is_dir() and not any(p.iterdir()))
        try:
            if self.fs.exists(remote):  # debris of a killed upload: files the new copy may not have must go
                self.fs.rm(remote, recursive=True)
            if empty:  # object stores hold no empty folders: list them, so a download recreates the same tree
                self.fs.pipe_file(join(remote, EMPTY_DIRS), json.dumps(empty).encode())
            if files:
                self.fs.put([str(p) for p in files], [join(remote, p.relative_to(stage.path).as_posix()) for p in files])
            self.fs.put_file(str(stage.path / MANIFEST), join(remote, MANIFEST))
        except Exception as err:
            raise access_error(err, self.key, self.url, f"uploading {stage.path.name}") from None
        return len(files) + 1


def _restore_empty_dirs(folder: Path) -> None:
    listing = folder / EMPTY_DIRS
    if listing.exists():
        for name in json.loads(listing.read_text()):
            (folder / name).mkdir(parents=True, exist_ok=True)
        listing.unlink()


def _read_manifest(path: Path) -> dict[str, Any] | None:
    try:
        with open(path) as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def _local_fs(folder: str) -> tuple[Any, str]:
    from fsspec.implementations.local import LocalFileSystem

    return LocalFileSystem(auto_mkdir=True), os.path.abspath(os.path.expanduser(folder))


def _place_unless_there(tmp: Path, stage: Stage, manifest: dict[str, Any]) -> dict[str, Any] | None:
    """Move a downloaded stage into place unless a folder is there (a non-empty one makes the rename fail)."""
    try:
        if not stage.path.exists():
            os.replace(tmp, stage.path)
            return manifest
    except OSError:
        pass
    shutil.rmtree(tmp, ignore_errors=True)
    return _read_manifest(stage.path / MANIFEST)


def open_cache(url: str | None, output_dir: str, experiment: str) -> StageCache | None:
    """The experiment's shared stage cache: `cache.url`, else `<output_dir>/<experiment>/stages` for a URL
    output_dir, else none. Checked once here (credentials, bucket)."""
    from corpuslab.paths import is_url

    if url:
        cache = StageCache(url, "cache.url")
    elif is_url(output_dir):
        cache = StageCache(join(output_dir, experiment, "stages"), "output_dir")
    else:
        return None
    cache.check()
    return cache

