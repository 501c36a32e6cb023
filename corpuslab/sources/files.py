"""Finding the local input files: files, folders (read recursively) and globs, each file once, in a stable
order (the order of `paths`; sorted within a folder or glob).

Everything found is classified with `stat` before anything is opened:

- a regular file is read when its extension names the configured format. A file named in `paths` (or by
  a glob) is read as the configured format whatever its name. With ``format: txt``, files without an
  extension are read too (Usenet and mail corpora: `alt.atheism/49960`, `maildir/inbox/1.`); not with the
  record formats, whose folders often hold a LICENSE or a Spark `_SUCCESS` marker that is not data.
- a file whose extension names another format is counted as ``other_format_file`` (warning only), with
  how to read it.
- dangling symbolic links (``dangling_symlink``), symbolic-link loops (``symlink_loop``) and special files,
  FIFOs, sockets and devices (``special_file``), follow ``on_bad_input``: named and counted under
  "skip", raised under "stop". They are never opened: opening a FIFO blocks until something writes to it,
  which may be never. Named directly in `paths` they always raise, like a missing file.
- hidden files and folders (`.git`, `.ipynb_checkpoints`, `.cache`) are passed over: editor, git and cache
  droppings, never corpus.

Symbolic links to folders are followed (a corpus folder often links to shards on another disk), except a
link back to a folder that contains it, which would be read again and again.
"""

from __future__ import annotations

import errno
import fnmatch
import glob
import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from corpuslab.errors import InputError
from corpuslab.paths import is_url, list_inputs, mirror_inputs, origin_of, strip_file_scheme
from corpuslab.sources.badinput import BadInputLog, handle_bad_input

if TYPE_CHECKING:
    from corpuslab.sources.local import LocalConfig

logger = logging.getLogger(__name__)

SUFFIX_FORMATS = {".txt": "txt", ".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl",
                  ".csv": "csv", ".parquet": "parquet"}
COMPRESSIONS = {".gz": "gzip", ".zst": "zstd", ".zstd": "zstd"}
FORMAT_HINT = "set dataset.local.format: txt to read files without an extension"
# The format whose files commonly have no extension: numbered Usenet postings, maildir messages.
EXTENSIONLESS_FORMAT = "txt"
_UNREADABLE = ("dangling_symlink", "symlink_loop", "special_file")
_SPECIAL_KINDS = ((stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISSOCK, "a socket"),
                  (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))


def resolve_files(cfg: LocalConfig, log: BadInputLog) -> list[Path]:
    """Every input file, in reading order, each once. A path that finds no file raises InputError; what
    cannot or should not be read is counted in `log` (see the module docstring)."""
    files: list[Path] = []
    seen: set[Path] = set()
    for spec in cfg.paths:
        for path in _expand(spec, cfg, log):
            if path not in seen:
                file_format(path, cfg)  # an unreadable extension raises now, not mid-run
                seen.add(path)
                files.append(path)
    return files


def remote_input_files(spec: str, cfg: LocalConfig) -> list[tuple[str, dict]]:
    """(URL, filesystem info) of each file a URL spec contributes, chosen from one listing as `_expand` chooses
    among the downloaded copies (hidden files, `exclude`, the format of a folder's or glob's files), without
    downloading any: the ingest fingerprint of remote inputs comes from this."""
    listing = list_inputs(spec, "dataset.local.paths")
    chosen = []
    for path, (local, info) in listing.files.items():
        if _excluded(local, cfg):
            continue
        if listing.kind == "folder" and not _readable_in_folder(local, cfg):
            continue
        if listing.kind == "glob" and cfg.format == "auto" and suffix_format(local)[0] is None:
            continue
        chosen.append((listing.url(path), info))
    return chosen


def local_spec_files(spec: str, cfg: LocalConfig) -> list[Path]:
    """The files one local spec contributes (what `resolve_files` reads of it); bad input is not counted here."""
    return _expand(spec, cfg, BadInputLog())


def file_format(path: Path, cfg: LocalConfig) -> tuple[str, str | None]:
    """(format, compression) the file is read with."""
    suffix_fmt, compression = suffix_format(path)
    fmt = suffix_fmt if cfg.format == "auto" else cfg.format
    if fmt is None:
        raise InputError(origin_of(path), "cannot tell the format from the file extension; expected one of "
                                    f"{', '.join(SUFFIX_FORMATS)} (optionally .gz/.zst), or set "
                                    "dataset.local.format: txt (or jsonl, csv, parquet)")
    if fmt == "parquet" and compression is not None:
        raise InputError(origin_of(path), "a compressed Parquet file; expected plain .parquet (Parquet compresses "
                                    "its pages itself)")
    return fmt, compression


def suffix_format(path: Path) -> tuple[str | None, str | None]:
    """(format from the extension, compression) for names like 'part-0001.jsonl.zst'."""
    name, compression = _without_compression(path.name.lower())
    return SUFFIX_FORMATS.get(os.path.splitext(name)[1]), compression


def has_no_extension(path: Path) -> bool:
    """'49960', '1.' (Enron maildir) or '49960.gz': a name with nothing after its last dot."""
    name, _ = _without_compression(path.name)
    return os.path.splitext(name)[1] in ("", ".")


def _without_compression(name: str) -> tuple[str, str | None]:
    for suffix, kind in COMPRESSIONS.items():
        if name.lower().endswith(suffix):
            return name[: -len(suffix)], kind
    return name, None


# Paths, globs and folders.


def _expand(spec: str, cfg: LocalConfig, log: BadInputLog) -> list[Path]:
    # A URL (s3://, gs://, hf://, memory://) is copied into the local mirror first, then read like a local path.
    expanded = mirror_inputs(spec, "dataset.local.paths") if is_url(spec) else os.path.expanduser(strip_file_scheme(spec))
    if glob.has_magic(expanded):
        found = _glob_files(spec, expanded, cfg, log)
    else:
        found = _named_files(spec, Path(expanded), cfg, log)
    if not found:
        raise InputError(spec, f"no readable file here (format {cfg.format!r}, exclude {cfg.exclude}); expected "
                               f"files ending in {', '.join(_suffixes_for(cfg.format))}"
                               + (f"; {FORMAT_HINT}" if cfg.format == "auto" else ""))
    return found


def _named_files(spec: str, path: Path, cfg: LocalConfig, log: BadInputLog) -> list[Path]:
    """A path named in the config: anything but a file or folder is a config mistake and raises."""
    kind, problem = _classify(path)
    if kind == "missing":
        raise InputError(spec, "no such file or folder")
    if kind in _UNREADABLE:
        raise InputError(spec, f"{problem}; expected a file or folder")
    if kind == "folder":
        return _files_under(path, cfg, log)
    return [] if _excluded(path, cfg) else [path]


def _glob_files(spec: str, pattern: str, cfg: LocalConfig, log: BadInputLog) -> list[Path]:
    matches = sorted(glob.glob(pattern, recursive=True))
    if not matches:
        raise InputError(spec, "the glob matches no file; expected at least one input file")
    found: list[Path] = []
    realpaths: dict[str, str] = {}
    loops: set[str] = set()
    for match in matches:
        # "**" follows symbolic links, so a link back to a parent folder yields every file again at each
        # level (40 levels deep before the OS gives up): report the link once, skip what lies beyond it.
        loop = _symlink_loop_on(Path(match), realpaths)
        if loop is not None:
            if loop not in loops:
                loops.add(loop)
                _bad(log, cfg, "symlink_loop", loop, "a symbolic link back to a folder that contains it; not followed")
            continue
        found += _matched_files(Path(match), cfg, log)
    return found


def _matched_files(path: Path, cfg: LocalConfig, log: BadInputLog) -> list[Path]:
    kind, problem = _classify(path)
    if kind in _UNREADABLE:
        _bad(log, cfg, kind, str(path), problem)
        return []
    if kind == "folder":
        return _files_under(path, cfg, log)
    if kind == "missing" or _excluded(path, cfg):  # vanished since the glob listed it, or excluded
        return []
    # A file the user's glob names is read as the configured format whatever its extension; under
    # "auto" only files with a known extension are (so "data/*" passes over a README.md).
    if cfg.format == "auto" and suffix_format(path)[0] is None:
        log.record("other_format_file", origin_of(path), None, _other_format_problem(path, cfg))
        return []
    return [path]


def _files_under(root: Path, cfg: LocalConfig, log: BadInputLog) -> list[Path]:
    """The files of the configured format below a folder, sorted; the others counted."""
    chosen: list[Path] = []
    for path in _walk(root, _ancestor_folders(root), cfg, log):
        if _excluded(path, cfg):
            continue
        if _readable_in_folder(path, cfg):
            chosen.append(path)
        else:
            log.record("other_format_file", origin_of(path), None, _other_format_problem(path, cfg))
    _warn_about_uncategorised_files(root, chosen, cfg)
    formats = sorted({suffix_format(path)[0] or "" for path in chosen})
    if len(formats) > 1:
        # A README.txt or SOURCE.txt next to data.jsonl would otherwise become a document unnoticed.
        logger.warning("%s holds files of several formats (%s); all are read. Set format or exclude to read "
                       "only the data files", root, ", ".join(formats))
    return chosen


def _walk(folder: Path, ancestors: frozenset[tuple[int, int]], cfg: LocalConfig, log: BadInputLog) -> Iterator[Path]:
    """Regular files below `folder` in sorted path order (a preorder walk with each folder's names sorted
    is the order of sorting all paths), hidden entries passed over, unreadable entries counted."""
    try:
        with os.scandir(folder) as entries:
            names = sorted(entry.name for entry in entries if not entry.name.startswith("."))
    except OSError as err:
        raise InputError(str(folder), f"cannot list the folder: {err.strerror or err}") from err
    for name in names:
        path = folder / name
        kind, problem = _classify(path)
        if kind == "file":
            yield path
        elif kind == "folder":
            key = _folder_key(path)
            if key in ancestors:
                target = repr(os.readlink(path)) if os.path.islink(path) else "a folder"  # or a bind mount
                _bad(log, cfg, "symlink_loop", str(path), f"a link to {target}, a folder that contains it; not followed")
            else:
                yield from _walk(path, ancestors | {key}, cfg, log)
        elif kind in _UNREADABLE:
            _bad(log, cfg, kind, str(path), problem)
        # "missing": removed between listing and stat; nothing to read


def _classify(path: Path) -> tuple[str, str]:
    """(kind, problem): kind is file, folder, missing, dangling_symlink, symlink_loop or special_file.
    Only `stat` is called: nothing is opened."""
    try:
        mode = os.stat(path).st_mode
    except OSError as err:
        if err.errno == errno.ELOOP:
            return "symlink_loop", "a symbolic link that leads back to itself (a loop)"
        if err.errno in (errno.ENOENT, errno.ENOTDIR):
            if os.path.islink(path):
                return "dangling_symlink", f"a symbolic link to {os.readlink(path)!r}, which does not exist"
            return "missing", "no such file or folder"
        raise InputError(str(path), f"cannot read the file: {err.strerror or err}") from err
    if stat.S_ISREG(mode):
        return "file", ""
    if stat.S_ISDIR(mode):
        return "folder", ""
    kind = next((name for test, name in _SPECIAL_KINDS if test(mode)), "not a regular file")
    return "special_file", f"{kind}, not a regular file; never opened (reading a FIFO can block forever)"


def _folder_key(path: Path) -> tuple[int, int]:
    info = os.stat(path)
    return info.st_dev, info.st_ino


def _ancestor_folders(root: Path) -> frozenset[tuple[int, int]]:
    """The root and every folder above it: a link to any of them inside the root is a loop."""
    real = Path(os.path.realpath(root))
    return frozenset(_folder_key(folder) for folder in (real, *real.parents))


def _symlink_loop_on(match: Path, realpaths: dict[str, str]) -> str | None:
    """The first folder on `match`'s path that is a folder already passed through (the link that loops),
    as the glob wrote it; None when the path visits each folder once."""
    absolute = Path(os.path.abspath(match))
    visited: set[str] = set()
    for depth in range(1, len(absolute.parts) + 1):
        prefix = str(Path(*absolute.parts[:depth]))
        real = realpaths.get(prefix)
        if real is None:
            real = realpaths[prefix] = os.path.realpath(prefix)
        if real in visited:
            trailing = len(absolute.parts) - depth
            return str(Path(*match.parts[: len(match.parts) - trailing]))
        visited.add(real)
    return None


def _bad(log: BadInputLog, cfg: LocalConfig, reason: str, path: str, problem: str) -> None:
    handle_bad_input(log, cfg.on_bad_input, reason, origin_of(path), None, problem)


# Which files a folder contributes.


def _readable_in_folder(path: Path, cfg: LocalConfig) -> bool:
    fmt = suffix_format(path)[0]
    if cfg.format == "auto":
        return fmt is not None
    return fmt == cfg.format or (cfg.format == EXTENSIONLESS_FORMAT and fmt is None and has_no_extension(path))


def _other_format_problem(path: Path, cfg: LocalConfig) -> str:
    if cfg.format != EXTENSIONLESS_FORMAT and has_no_extension(path):
        return (f"a file without an extension is not read in a folder when format is {cfg.format!r}; {FORMAT_HINT}, "
                "or name the file (or a glob for it) in paths")
    if cfg.format == "auto":
        return (f"the extension names no known format (expected {', '.join(_suffixes_for('auto'))}); set "
                "dataset.local.format to read it, or exclude it")
    extensionless = " or without an extension" if cfg.format == EXTENSIONLESS_FORMAT else ""
    return (f"not a {cfg.format} file by its extension; with format {cfg.format!r} a folder contributes files "
            f"ending in {', '.join(_suffixes_for(cfg.format))}{extensionless}")


def _excluded(path: Path, cfg: LocalConfig) -> bool:
    return any(fnmatch.fnmatch(path.name, pattern) or fnmatch.fnmatch(str(path), pattern)
               for pattern in cfg.exclude)


def _formats_for(fmt: str) -> set[str]:
    return set(SUFFIX_FORMATS.values()) if fmt == "auto" else {fmt}


def _suffixes_for(fmt: str) -> list[str]:
    return [suffix for suffix, suffix_fmt in SUFFIX_FORMATS.items() if suffix_fmt in _formats_for(fmt)]


def _warn_about_uncategorised_files(root: Path, chosen: list[Path], cfg: LocalConfig) -> None:
    """With category_from: parent_dir, a README next to the category folders would become a category."""
    at_root = [path.name for path in chosen if path.parent == root]
    if cfg.category_from == "parent_dir" and 0 < len(at_root) < len(chosen):
        logger.warning("%s: %d file(s) sit directly in the folder, not in a category subfolder (%s); "
                       "they are read with category '%s'. Exclude them, or list the category folders",
                       root, len(at_root), ", ".join(at_root[:5]), root.name)
