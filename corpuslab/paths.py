"""Paths that may be fsspec URLs: `s3://`, `gs://`, `hf://`, `memory://`, or plain local paths.

corpuslab reads and writes local folders; a URL is met at the edges. Input files are mirrored into a local
folder before they are read (`mirror_inputs`), a remote `output_dir` is a local staging folder whose finished
files are uploaded (`publish`), and the shared stage cache (`corpuslab.stage_cache`) mirrors stage folders.
Credentials and endpoints come from where the storage's own tools look (`AWS_*` variables or
`~/.aws`, `GOOGLE_APPLICATION_CREDENTIALS`, `HF_TOKEN`) or from fsspec's config (`FSSPEC_S3_ENDPOINT_URL`...).

The local copies live under `local_cache_dir()`: `$CORPUSLAB_CACHE_DIR`, else `$XDG_CACHE_HOME/corpuslab`,
else `~/.cache/corpuslab`.
"""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from corpuslab.errors import ConfigError, CorpuslabError, InputError

# protocol -> (the package that implements it, the corpuslab extra that installs it or None)
BACKENDS: dict[str, tuple[str, str | None]] = {
    "s3": ("s3fs", "s3"), "s3a": ("s3fs", "s3"),
    "gs": ("gcsfs", "gcs"), "gcs": ("gcsfs", "gcs"),
    "hf": ("huggingface_hub", None),
    "az": ("adlfs", None), "abfs": ("adlfs", None),
}
CREDENTIALS_HELP = {
    "s3": "set AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or AWS_PROFILE), and AWS_ENDPOINT_URL for an S3-compatible "
          "server, then rerun",
    "gs": "set GOOGLE_APPLICATION_CREDENTIALS to a service-account key file (or run `gcloud auth application-default "
          "login`), then rerun",
    "hf": "set HF_TOKEN to a token that can read (and, for a cache or output_dir, write) the repository, then rerun",
}


def is_url(path: str | os.PathLike[str] | None) -> bool:
    """A path with a protocol other than `file://` (which is read as the local path it names)."""
    return path is not None and "://" in str(path) and not str(path).startswith("file://")


def protocol_of(url: str) -> str:
    return str(url).split("://", 1)[0].lower()


def strip_file_scheme(path: str) -> str:
    return path[len("file://"):] if str(path).startswith("file://") else path


def check_url(key: str, url: str) -> None:
    """Stop at config load when `url`'s protocol is unknown or its package is missing, naming the extra."""
    if not is_url(url):
        return
    import fsspec

    protocol = protocol_of(url)
    package, extra = BACKENDS.get(protocol, (None, None))
    if package is not None:
        try:
            importlib.import_module(package)
        except ImportError:
            how = f"pip install 'corpuslab[{extra}]'" if extra else f"pip install {package}"
            raise ConfigError(key, url, f"the '{package}' package for {protocol}:// URLs, which is not installed: {how}") from None
    try:
        fsspec.get_filesystem_class(protocol)
    except (ValueError, ImportError) as err:
        raise ConfigError(key, url, f"a local path or an fsspec URL whose protocol fsspec knows (s3://, gs://, hf://, "
                          f"memory://, ...): {err}") from None


def filesystem(url: str, key: str) -> tuple[Any, str]:
    """(fsspec filesystem, path inside it) for `url`; `key` is the setting that named it, for errors."""
    import fsspec

    check_url(key, url)
    try:
        return fsspec.core.url_to_fs(url)
    except Exception as err:  # a malformed URL, a backend that refuses its options
        raise ConfigError(key, url, f"a URL fsspec can open ({type(err).__name__}: {err})") from None


def access_error(err: BaseException, key: str, url: str, doing: str) -> CorpuslabError:
    """A ConfigError naming `key` for a storage error met while `doing` (e.g. 'listing'): credentials,
    permissions and unreachable endpoints each say what to do."""
    name = type(err).__name__
    text = str(err)
    creds = credentials_help(url)
    if credentials_refused(err):
        return ConfigError(key, url, f"storage that these credentials may use; {doing} failed with {name}: "
                           f"{_short(text)}. {creds[0].upper() + creds[1:]}")
    if isinstance(err, FileNotFoundError) and missing_bucket(err):
        return ConfigError(key, url, f"an existing bucket; {doing} failed: {_short(text)}. Create the bucket or fix the URL")
    return ConfigError(key, url, f"storage corpuslab can reach; {doing} failed with {name}: {_short(text)}. Check the URL, "
                       f"the network and the endpoint (AWS_ENDPOINT_URL for S3-compatible servers), then rerun")


def credentials_refused(err: BaseException) -> bool:
    """Whether a storage error means missing, wrong or insufficient credentials."""
    return isinstance(err, PermissionError) or type(err).__name__ in ("NoCredentialsError", "PartialCredentialsError", "ClientError") \
        or bool(re.search(r"AccessDenied|InvalidAccessKeyId|SignatureDoesNotMatch|credential|Forbidden|403", str(err)))


def credentials_help(url: str) -> str:
    """How to give the credentials of the storage `url` is on."""
    protocol = protocol_of(url) if is_url(url) else "file"
    return CREDENTIALS_HELP.get("s3" if protocol == "s3a" else "gs" if protocol == "gcs" else protocol,
                                "check the storage's credentials, then rerun")


def missing_bucket(err: BaseException) -> bool:
    return bool(re.search(r"NoSuchBucket|bucket does not exist", str(err), re.IGNORECASE))


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "..."


def local_cache_dir() -> Path:
    if os.environ.get("CORPUSLAB_CACHE_DIR"):
        return Path(os.environ["CORPUSLAB_CACHE_DIR"])
    base = Path(os.environ["XDG_CACHE_HOME"]) if os.environ.get("XDG_CACHE_HOME") else Path.home() / ".cache"
    return base / "corpuslab"


def local_mirror(url: str, kind: str) -> Path:
    """Where the local copy of `url` lives: `<local cache>/<kind>/<protocol>/<path>`, so one URL always maps to
    one folder and relative names (document ids, stage names) are the same on every machine."""
    protocol = protocol_of(url)
    rest = str(url).split("://", 1)[1].strip("/")
    safe = "/".join(_safe_part(part) for part in rest.split("/") if part not in ("", ".", ".."))
    return local_cache_dir() / kind / protocol / safe


def _safe_part(part: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=+@-]", "_", part) or "_"


def local_output_dir(output_dir: str) -> Path:
    """The local folder an experiment works in: `output_dir` itself, or the staging copy of a URL."""
    return local_mirror(output_dir, "outputs") if is_url(output_dir) else Path(strip_file_scheme(output_dir))


def join(url: str, *parts: str) -> str:
    return "/".join([str(url).rstrip("/"), *(p.strip("/") for p in parts)])


# ---------------------------------------------------------------- output_dir on a URL


def publish(folder: Path, names: Iterable[str], url: str, key: str = "output_dir") -> list[str]:
    """Upload `folder/<name>` (files, or folders with their files) to `url/<name>`; returns the URLs written.
    Used for a remote output_dir: the run works in a local staging folder and its finished files go up."""
    fs, root = filesystem(url, key)
    local, remote = [], []
    for name in names:
        path = folder / name
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else []
        for file in files:
            local.append(str(file))
            remote.append(join(root, file.relative_to(folder).as_posix()))
    if not local:
        return []
    try:
        fs.put(local, remote)
    except Exception as err:
        raise access_error(err, key, url, f"uploading {len(local)} result files") from None
    return [join(url, Path(path).relative_to(folder).as_posix()) for path in local]


def staged_locations(root: Path, output_dir: str, experiment: str, stages_root: Path, cache: Any) -> dict[str, str]:
    """{local folder: URL} for an experiment whose `output_dir` is a URL: its stages (under `stages_root`) live in
    the stage cache, its other files under `<output_dir>/<experiment>`; {} for a local output_dir."""
    if not is_url(output_dir):
        return {}
    moves = {str(root): join(output_dir, experiment)}
    if cache is not None:
        moves[str(stages_root)] = cache.describe()
    return moves


def relocate(value: Any, moves: dict[str, str]) -> Any:
    """`value` (JSON-like: dicts, lists, strings) with every string that names a path under a local folder of
    `moves` ({local folder: URL}) rewritten to where that folder went: a remote output_dir's report lists the
    URLs of its stages and files, not the staging folder they were built in. The deepest folder wins."""
    if not moves:
        return value
    if isinstance(value, dict):
        return {key: relocate(item, moves) for key, item in value.items()}
    if isinstance(value, list):
        return [relocate(item, moves) for item in value]
    if isinstance(value, str):
        for local in sorted(moves, key=len, reverse=True):
            if value == local or value.startswith(local.rstrip("/") + "/"):
                return join(moves[local], value[len(local):]) if value != local else moves[local]
    return value


# ---------------------------------------------------------------- input files on a URL


_ORIGIN: dict[str, str] = {}  # local mirror path -> the URL it was copied from (for ids, errors and identity)


def origin_of(path: str | os.PathLike[str]) -> str:
    """The URL a mirrored input file came from, or the path itself for a local file."""
    return _ORIGIN.get(os.path.abspath(path), str(path))


@dataclass(frozen=True)
class RemoteListing:
    """What a remote input spec names, without downloading anything: `files` maps each file's path inside the
    filesystem to (the local mirror path it is copied to, the filesystem's `info` for it: size, ETag...).
    `kind` is how the spec named them (`file`, `folder` or `glob`); `local_spec` names the copies."""

    fs: Any
    protocol: str
    kind: str
    local_spec: Path
    files: dict[str, tuple[Path, dict[str, Any]]]

    def url(self, path: str) -> str:
        return f"{self.protocol}://{path}"


def list_inputs(spec: str, key: str) -> RemoteListing:
    """List the files that `spec` (a file, folder or glob URL) names, as `mirror_inputs` would copy them: one
    listing request per folder or glob, no file read (the input's identity comes from it, see
    `corpuslab.sources.identity.remote_file_identity`)."""
    fs, remote = filesystem(spec, key)
    protocol = protocol_of(spec)
    try:
        fs.invalidate_cache()  # fsspec keeps listings per filesystem instance: read what is there now
        if any(ch in remote for ch in "*?["):
            listing, kind = fs.glob(remote, detail=True), "glob"
            anchor = remote.split("*")[0].split("?")[0].split("[")[0].rsplit("/", 1)[0]
            local_spec = local_mirror(f"{protocol}://{anchor}", "inputs") / remote[len(anchor):].lstrip("/")
        elif fs.isdir(remote):
            listing, kind = fs.find(remote, detail=True), "folder"
            anchor, local_spec = remote.rstrip("/"), local_mirror(spec, "inputs")
        elif fs.isfile(remote):
            listing, kind = {remote: fs.info(remote)}, "file"
            anchor, local_spec = remote.rsplit("/", 1)[0], local_mirror(spec, "inputs")
        else:
            raise InputError(spec, f"no such file, folder or glob match ({key})")
    except CorpuslabError:
        raise
    except Exception as err:
        raise access_error(err, key, spec, "listing the input files") from None
    target_root = local_mirror(f"{protocol}://{anchor}", "inputs")
    files = {path: (target_root / path[len(anchor):].lstrip("/"), info) for path, info in sorted(listing.items())
             if info.get("type", "file") == "file" and not _hidden(path[len(anchor):])}
    return RemoteListing(fs, protocol, kind, local_spec, files)


def mirror_inputs(spec: str, key: str) -> str:
    """Copy the files that `spec` (a file, folder or glob URL) names into the local mirror and return the local
    spec that names the copies. A file whose copy matches the remote size and version is not downloaded again;
    the others are fetched together (concurrently on object stores)."""
    listing = list_inputs(spec, key)
    fetched = {}
    for path, (local, info) in listing.files.items():
        _ORIGIN[os.path.abspath(local)] = listing.url(path)
        fetched[os.path.abspath(local)] = (path, info)
    try:
        _fetch_files(listing.fs, [(path, Path(local), info) for local, (path, info) in fetched.items()])
    except Exception as err:
        raise access_error(err, key, spec, "reading the input files") from None
    _prune(listing.local_spec, set(fetched))
    return str(listing.local_spec)


def _prune(local_spec: Path, fetched: set[str]) -> None:
    """Remove mirrored copies of files the remote no longer has, so the local spec finds exactly its files."""
    import glob

    if local_spec.is_dir():
        candidates = [str(p) for p in local_spec.rglob("*")]
    else:
        candidates = glob.glob(str(local_spec), recursive=True)
    for path in candidates:
        if os.path.isfile(path) and not os.path.basename(path).startswith(".") and os.path.abspath(path) not in fetched:
            os.unlink(path)
            Path(path).with_name(f".{os.path.basename(path)}.remote").unlink(missing_ok=True)


def _hidden(relative: str) -> bool:
    return any(part.startswith(".") for part in relative.split("/") if part)


def _fetch_files(fs: Any, files: list[tuple[str, Path, dict[str, Any]]]) -> None:
    """Download (remote, local, info) files whose local copy is missing or older than the remote version."""
    stale = []
    for remote, local, info in files:
        version = repr({"size": info.get("size"), "etag": info.get("ETag") or info.get("etag"),
                        "mtime": str(info.get("LastModified") or info.get("mtime") or info.get("last_commit") or "")})
        marker = local.with_name(f".{local.name}.remote")
        if not (local.exists() and marker.exists() and marker.read_text() == version):
            local.parent.mkdir(parents=True, exist_ok=True)
            stale.append((remote, local, info, marker, version, local.with_name(f".tmp-{os.getpid()}-{local.name}")))
    if not stale:
        return
    fs.get([s[0] for s in stale], [str(s[5]) for s in stale])
    for _, local, info, marker, version, tmp in stale:
        modified = info.get("LastModified")
        if hasattr(modified, "timestamp"):  # the remote's time, so an unhashed large file keeps one identity
            os.utime(tmp, (modified.timestamp(), modified.timestamp()))
        os.replace(tmp, local)
        marker.write_text(version)
