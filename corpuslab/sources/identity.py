"""What a source read: its `identity`, which keys the ingest stage and is written next to it as inputs.json.

Ingest used to be keyed by its config alone, so editing, adding or deleting an input file was silently
ignored: a rerun reused the documents of the old files. Every source now describes its inputs as JSON
(`Source.identity()`), and the ingest stage's fingerprint covers that description.

A local file is identified by its path, size, modification time and, up to `HASH_MAX_BYTES`, a blake2b
hash of its content. Larger files are identified by size and modification time only: hashing a corpus of
many large files on every run would cost about as much as ingesting it. The fingerprint
(`identity_fingerprint`) leaves out the modification time of hashed files, so a checkout, copy or `touch`
that does not change a file's bytes still finds the cached ingest.

A remote file (an fsspec URL: `s3://`, `gs://`, `hf://`...) is identified by what its filesystem reports in
the listing, without reading it (`remote_file_identity`): its URL, size, the store's checksum when it keeps
one (S3 `ETag`, GCS `md5Hash`/`crc32c`, a Hugging Face file's LFS `sha256` or git `blob_id`...) and its
modification time. With a checksum the fingerprint leaves the time out, as for a hashed local file. So a
second machine sharing a stage cache (`cache.url`) computes the ingest fingerprint from one listing request
and, on a cache hit, downloads the cached stage and none of the input files. (An S3 ETag is the MD5 of the
bytes for a single-part upload and a hash of the parts' MD5s for a multipart one: the same bytes uploaded
with another part size get another ETag, and the ingest is rebuilt once; it never misses a change.)
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from corpuslab.artifacts import fingerprint
from corpuslab.errors import InputError

HASH_MAX_BYTES = 64 * 2**20  # files up to 64 MiB are hashed; larger ones are identified by size and mtime
_HASH_READ_BYTES = 1 << 20
FILES = "files"  # the identity key that lists files: compared file by file in `describe_changes`
INPUTS_FILE = "inputs.json"  # the identity, as written into the ingest folder


def file_identity(path: str | os.PathLike[str], shown: str | None = None, hash_content: bool = True) -> dict[str, Any]:
    """{path, size, mtime_ns[, blake2b]} of one file; `shown` is the path as the user gave it."""
    shown = shown if shown is not None else str(path)
    try:
        stat = os.stat(path)
        entry: dict[str, Any] = {"path": shown, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
        if hash_content and stat.st_size <= HASH_MAX_BYTES:
            entry["blake2b"] = content_hash(Path(path))
    except OSError as err:  # permission denied, vanished: the run cannot say what it read
        raise InputError(shown, f"cannot read the file: {err.strerror or err}") from err
    return entry


# Where fsspec backends report a checksum of the content, in order of preference.
CHECKSUM_FIELDS = ("ETag", "etag", "md5Hash", "crc32c", "sha256", "checksum", "blob_id")
MTIME_FIELDS = ("LastModified", "mtime", "updated", "last_modified", "created")


def remote_file_identity(url: str, info: Mapping[str, Any]) -> dict[str, Any]:
    """{path, size[, checksum][, mtime]} of one remote file from its filesystem `info` (a listing entry):
    nothing is downloaded."""
    entry: dict[str, Any] = {"path": url, "size": info.get("size")}
    found = [(name, info[name]) for name in CHECKSUM_FIELDS if info.get(name)]
    lfs = info.get("lfs")
    if isinstance(lfs, Mapping) and lfs.get("sha256"):  # a Hugging Face LFS file: the hash of its bytes
        found.insert(0, ("lfs.sha256", lfs["sha256"]))
    if found:
        name, value = found[0]
        entry["checksum"] = f"{name}:{str(value).strip(chr(34))}"  # S3 ETags come quoted
    mtime = next((info[name] for name in MTIME_FIELDS if info.get(name) is not None), None)
    if mtime is None and isinstance(info.get("last_commit"), Mapping):
        mtime = info["last_commit"].get("date")
    if mtime is not None:
        entry["mtime"] = mtime.isoformat() if hasattr(mtime, "isoformat") else str(mtime)
    return entry


def content_hash(path: Path) -> str:
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as stream:
        while chunk := stream.read(_HASH_READ_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def identity_fingerprint(identity: Mapping[str, Any]) -> str:
    """A fingerprint of what the identity says about content: mtime_ns is dropped where a hash stands for it."""
    stable = dict(identity)
    if isinstance(identity.get(FILES), list):
        stable[FILES] = [_content_fields(entry) for entry in identity[FILES]]
    return fingerprint(stable, length=16)


def _content_fields(entry: Any) -> Any:
    if isinstance(entry, dict) and ("blake2b" in entry or "checksum" in entry):
        return {key: value for key, value in entry.items() if key not in ("mtime_ns", "mtime")}
    return entry


def describe_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """What differs between two identities, one line each: "changed: a.txt", "added: b.txt",
    "deleted: c.txt" for files, "changed: <key>" for anything else (a revision, a config)."""
    changes = [f"changed: {key}" for key in sorted(set(old) | set(new)) if key != FILES and old.get(key) != new.get(key)]
    old_files, new_files = _by_path(old.get(FILES)), _by_path(new.get(FILES))
    changes += [f"changed: {path}" for path, entry in new_files.items()
                if path in old_files and not same_file(old_files[path], entry)]
    changes += [f"added: {path}" for path in new_files if path not in old_files]
    changes += [f"deleted: {path}" for path in old_files if path not in new_files]
    return changes


def same_file(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """Same content by hash (or a remote store's checksum) when both sides have one, else by size and
    modification time."""
    for digest in ("blake2b", "checksum"):
        if digest in old and digest in new:
            return old[digest] == new[digest] and old.get("size") == new.get("size")
    return all(old.get(key) == new.get(key) for key in ("size", "mtime_ns", "mtime"))


def _by_path(entries: Iterable[Any] | None) -> dict[str, Mapping[str, Any]]:
    if not isinstance(entries, list):
        return {}
    return {str(entry.get("path")): entry for entry in entries if isinstance(entry, Mapping)}


@dataclass(frozen=True)
class InputChanges:
    """How the inputs differ from those of an earlier stage folder."""

    previous: str  # the folder compared against
    changes: list[str]

    def summary(self, limit: int = 10) -> str:
        more = len(self.changes) - limit
        return "; ".join(self.changes[:limit]) + (f"; and {more} more" if more > 0 else "")

    def to_dict(self, limit: int = 100) -> dict[str, Any]:
        return {"since": self.previous, "count": len(self.changes), "first": self.changes[:limit]}


def changes_since_newest(stages_root: Path, stage: str, identity: Mapping[str, Any]) -> InputChanges | None:
    """Changes against the newest complete `stage` folder whose inputs.json describes the same kind of
    source; None when there is none. Best effort: an unreadable inputs.json is passed over."""
    candidates = [folder / INPUTS_FILE for folder in stages_root.glob(f"{stage}-*")
                  if not folder.name.endswith(".partial") and (folder / INPUTS_FILE).is_file()]
    for path in sorted(candidates, key=_mtime_ns, reverse=True):
        try:
            previous = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(previous, dict) and previous.get("source") == identity.get("source"):
            return InputChanges(path.parent.name, describe_changes(previous, identity))
    return None


def _mtime_ns(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return 0
