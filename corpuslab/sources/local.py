"""Read documents from local files: plain text, JSON lines, Parquet and CSV.

Formats (picked from the extension when ``format: auto``, case-insensitive):

- ``.txt``: one document per file (``txt_mode: file``) or one per non-blank line (``txt_mode: line``).
- ``.jsonl`` / ``.json`` / ``.ndjson``: one JSON object per line.
- ``.csv``: a header row (or ``csv_column_names`` for header-less files such as AG News), RFC 4180 quoting,
  fields of any length.
- ``.parquet``: read one row batch at a time.

Text formats may be compressed: ``.gz`` or ``.zst``/``.zstd``, decompressed as a stream.

Reading streams: one line, or one Parquet batch, in memory at a time. Files are read in the order of
``paths``; the files of a folder or glob are read in sorted order (hidden files and folders skipped), so
the same inputs always give the same documents in the same order with the same ids.

Ids are the ``id_field`` value when one is configured, else ``<path>:<line>`` (``<path>:<row>`` for
Parquet, ``<path>`` for a whole .txt file), where ``<path>`` is relative to the deepest folder holding
every input file, so ids do not change when the corpus moves to another disk.

Bad input follows ``on_bad_input`` (see `corpuslab.sources.badinput`). A Parquet or CSV file without the
configured columns is ``wrong_schema``: skipped and counted under "skip", unless no file at all had
them, which is a config mistake (a misspelled ``text_field``) and raises.
"""

from __future__ import annotations

import csv
import fnmatch
import glob
import gzip
import json
import logging
import os
import re
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import zstandard

from corpuslab.documents import Document
from corpuslab.errors import ConfigError, InputError
from corpuslab.sources.badinput import (
    DEFAULT_MAX_DOC_CHARS,
    BadInputLog,
    FieldSpec,
    RecordPlace,
    check_choice,
    check_names,
    check_record_fields,
    document_from_record,
    handle_bad_input,
    usable_text,
)

logger = logging.getLogger(__name__)

FORMATS: tuple[str, ...] = ("auto", "txt", "jsonl", "parquet", "csv")
TXT_MODES: tuple[str, ...] = ("file", "line")
CATEGORY_SOURCES: tuple[str, ...] = ("field", "parent_dir")

_SUFFIX_FORMATS = {".txt": "txt", ".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl",
                   ".csv": "csv", ".parquet": "parquet"}
_COMPRESSIONS = {".gz": "gzip", ".zst": "zstd", ".zstd": "zstd"}
_READ_BYTES = 1 << 18
_PARQUET_BATCH_ROWS = 1024
# csv's default field limit is 128 KiB, far below a long document; 2**31 - 1 is the largest value a C
# long takes on every platform (sys.maxsize overflows on Windows).
_CSV_FIELD_LIMIT = 2**31 - 1
_UTF8_MAX_BYTES_PER_CHAR = 4
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


@dataclass(frozen=True)
class LocalConfig:
    """Where local documents are and which fields make a Document."""

    paths: list[str]  # files, folders (read recursively) or globs ("data/**/*.jsonl.zst")
    format: str = "auto"  # auto | txt | jsonl | parquet | csv
    text_field: str = "text"
    id_field: str | None = None  # None: ids are "<relative path>:<line or row>"
    category_field: str | None = None
    category_from: str = "field"  # field: category_field | parent_dir: the file's folder name (BBC News)
    txt_mode: str = "file"  # file: a .txt file is one document | line: one document per non-blank line
    csv_column_names: list[str] | None = None  # for CSV files without a header row
    metadata_fields: list[str] = field(default_factory=list)  # record fields copied into metadata
    exclude: list[str] = field(default_factory=list)  # glob patterns on file names or paths
    on_bad_input: str = "skip"  # skip | stop
    max_doc_chars: int = DEFAULT_MAX_DOC_CHARS  # longer documents are skipped and counted
    max_docs: int | None = None

    def validate(self, prefix: str = "dataset.local") -> None:
        self._validate_paths(prefix)
        check_choice(f"{prefix}.format", self.format, FORMATS)
        check_choice(f"{prefix}.txt_mode", self.txt_mode, TXT_MODES)
        check_choice(f"{prefix}.category_from", self.category_from, CATEGORY_SOURCES)
        check_record_fields(prefix, self)
        check_names(f"{prefix}.exclude", self.exclude)
        if self.category_from == "parent_dir" and self.category_field is not None:
            raise ConfigError(f"{prefix}.category_field", self.category_field,
                              "null when category_from is 'parent_dir' (the folder name is the category)")
        if self.csv_column_names is not None:
            self._validate_csv_columns(prefix)

    def field_spec(self) -> FieldSpec:
        category_field = self.category_field if self.category_from == "field" else None
        return FieldSpec(self.text_field, self.id_field, category_field, tuple(self.metadata_fields),
                         self.max_doc_chars)

    def _validate_paths(self, prefix: str) -> None:
        check_names(f"{prefix}.paths", self.paths)
        if not self.paths:
            raise ConfigError(f"{prefix}.paths", self.paths, "at least one file, folder or glob")
        for path in self.paths:
            if "://" in path:
                raise ConfigError(f"{prefix}.paths", path, "a local path; for remote files use dataset.hf "
                                  "with name 'json' or 'parquet' and data_files (fsspec URLs work there)")

    def _validate_csv_columns(self, prefix: str) -> None:
        key = f"{prefix}.csv_column_names"
        check_names(key, self.csv_column_names)
        missing = [name for name in self.field_spec().required_columns() if name not in self.csv_column_names]
        if missing:
            raise ConfigError(key, self.csv_column_names, f"a list that includes {missing}")


def read_local(cfg: LocalConfig, log: BadInputLog) -> Iterator[Document]:
    """Stream the documents of `cfg.paths`. Config and path errors raise here, before the first document."""
    cfg.validate()
    return _read_files(cfg, resolve_files(cfg), log)


# Finding the files.


def resolve_files(cfg: LocalConfig) -> list[Path]:
    """Every input file, in reading order, each once. A path that finds no file raises InputError."""
    files: list[Path] = []
    seen: set[Path] = set()
    for spec in cfg.paths:
        for path in _expand(spec, cfg):
            if path not in seen:
                _file_format(path, cfg)  # an unreadable extension raises now, not mid-run
                seen.add(path)
                files.append(path)
    return files


def _expand(spec: str, cfg: LocalConfig) -> list[Path]:
    expanded = os.path.expanduser(spec)
    if glob.has_magic(expanded):
        matches = sorted(glob.glob(expanded, recursive=True))
        if not matches:
            raise InputError(spec, "the glob matches no file; expected at least one input file")
        found = [file for match in matches for file in _files_under(Path(match), cfg)]
    elif os.path.isdir(expanded):
        found = _files_under(Path(expanded), cfg)
    elif os.path.isfile(expanded):
        found = [Path(expanded)] if not _excluded(Path(expanded), cfg) else []
    else:
        raise InputError(spec, "no such file or folder")
    if not found:
        raise InputError(spec, f"no readable file here (format {cfg.format!r}, exclude {cfg.exclude}); "
                               f"expected files ending in {', '.join(_suffixes_for(cfg.format))}")
    return found


def _files_under(root: Path, cfg: LocalConfig) -> list[Path]:
    """Supported files below a folder, sorted, hidden ones skipped; or a glob match that is a file."""
    if root.is_file():
        # A file the user's glob names is read as the configured format whatever its extension; under
        # "auto" only files with a known extension are (so "data/*" passes over a README.md).
        readable = cfg.format != "auto" or _suffix_format(root)[0] is not None
        return [root] if readable and not _excluded(root, cfg) else []
    # Hidden entries are editor, git and cache droppings (.ipynb_checkpoints, .cache), never corpus.
    candidates = sorted(path for path in root.rglob("*")
                        if path.is_file() and not any(part.startswith(".")
                                                      for part in path.relative_to(root).parts))
    chosen = [path for path in candidates if _suffix_format(path)[0] in _formats_for(cfg.format)
              and not _excluded(path, cfg)]
    if len(chosen) < len(candidates):
        logger.info("%s: reading %d of %d files (others are not %s files or are excluded)", root,
                    len(chosen), len(candidates), cfg.format)
    _warn_about_uncategorised_files(root, chosen, cfg)
    formats = sorted({_suffix_format(path)[0] or "" for path in chosen})
    if len(formats) > 1:
        # A README.txt or SOURCE.txt next to data.jsonl would otherwise become a document unnoticed.
        logger.warning("%s holds files of several formats (%s); all are read. Set format or exclude to read "
                       "only the data files", root, ", ".join(formats))
    return chosen


def _warn_about_uncategorised_files(root: Path, chosen: list[Path], cfg: LocalConfig) -> None:
    """With category_from: parent_dir, a README next to the category folders would become a category."""
    at_root = [path.name for path in chosen if path.parent == root]
    if cfg.category_from == "parent_dir" and 0 < len(at_root) < len(chosen):
        logger.warning("%s: %d file(s) sit directly in the folder, not in a category subfolder (%s); "
                       "they are read with category '%s'. Exclude them, or list the category folders",
                       root, len(at_root), ", ".join(at_root[:5]), root.name)


def _excluded(path: Path, cfg: LocalConfig) -> bool:
    return any(fnmatch.fnmatch(path.name, pattern) or fnmatch.fnmatch(str(path), pattern)
               for pattern in cfg.exclude)


def _formats_for(fmt: str) -> set[str]:
    return set(_SUFFIX_FORMATS.values()) if fmt == "auto" else {fmt}


def _suffixes_for(fmt: str) -> list[str]:
    return [suffix for suffix, suffix_fmt in _SUFFIX_FORMATS.items() if suffix_fmt in _formats_for(fmt)]


def _suffix_format(path: Path) -> tuple[str | None, str | None]:
    """(format from the extension, compression) for names like 'part-0001.jsonl.zst'."""
    name = path.name.lower()
    compression = None
    for suffix, kind in _COMPRESSIONS.items():
        if name.endswith(suffix):
            name, compression = name[: -len(suffix)], kind
            break
    return _SUFFIX_FORMATS.get(os.path.splitext(name)[1]), compression


def _file_format(path: Path, cfg: LocalConfig) -> tuple[str, str | None]:
    suffix_fmt, compression = _suffix_format(path)
    fmt = suffix_fmt if cfg.format == "auto" else cfg.format
    if fmt is None:
        raise InputError(str(path), "cannot tell the format from the file extension; expected one of "
                                    f"{', '.join(_SUFFIX_FORMATS)} (optionally .gz/.zst), or set format")
    if fmt == "parquet" and compression is not None:
        raise InputError(str(path), "a compressed Parquet file; expected plain .parquet (Parquet compresses "
                                    "its pages itself)")
    return fmt, compression


# Reading the files.


@dataclass(frozen=True)
class _FileContext:
    path: Path
    shown: str  # the path as found, for errors and metadata
    relative: str  # the path relative to the common input folder, for ids
    fmt: str
    compression: str | None
    cfg: LocalConfig
    spec: FieldSpec
    log: BadInputLog

    def place(self, number: int, key: str = "source_line") -> RecordPlace:
        return RecordPlace(self.shown, number, f"{self.relative}:{number}",
                           {"source_file": self.shown, key: number})

    def bad(self, reason: str, line: int | None, problem: str) -> None:
        handle_bad_input(self.log, self.cfg.on_bad_input, reason, self.shown, line, problem)


class _FileProblem(Exception):
    """A problem that ends the reading of one file; the documents read before it are kept."""

    def __init__(self, reason: str, problem: str, line: int | None = None):
        super().__init__(problem)
        self.reason, self.problem, self.line = reason, problem, line


@dataclass
class _RunState:
    yielded: int = 0
    first_wrong_schema: tuple[str, str] | None = None  # (file, problem)


def _read_files(cfg: LocalConfig, files: list[Path], log: BadInputLog) -> Iterator[Document]:
    base = os.path.commonpath([os.path.dirname(os.path.abspath(path)) for path in files])
    spec, state = cfg.field_spec(), _RunState()
    for path in files:
        fmt, compression = _file_format(path, cfg)
        relative = Path(os.path.relpath(os.path.abspath(path), base)).as_posix()
        ctx = _FileContext(path, str(path), relative, fmt, compression, cfg, spec, log)
        for doc in _read_file(ctx, state):
            if cfg.category_from == "parent_dir":
                doc.metadata["category"] = path.parent.name
            yield doc
            state.yielded += 1
            if cfg.max_docs is not None and state.yielded >= cfg.max_docs:
                return
    if state.yielded == 0 and state.first_wrong_schema is not None:
        path, problem = state.first_wrong_schema
        raise InputError(path, f"no input file has the configured fields, so no document was read; check "
                               f"text_field / id_field / category_field. This file: {problem}")


def _read_file(ctx: _FileContext, state: _RunState) -> Iterator[Document]:
    try:
        if ctx.path.stat().st_size == 0:
            ctx.log.record("empty_file", ctx.shown, None, "file is empty")
            return
        yield from _READERS[ctx.fmt](ctx)
    except _FileProblem as problem:
        if problem.reason == "wrong_schema" and state.first_wrong_schema is None:
            state.first_wrong_schema = (ctx.shown, problem.problem)
        ctx.bad(problem.reason, problem.line, problem.problem)
    except OSError as err:  # permission denied, file vanished, disk error: not a data problem to skip
        raise InputError(ctx.shown, f"cannot read the file: {err.strerror or err}") from err


# Bytes and lines, shared by the text formats.


def _chunks(ctx: _FileContext) -> Iterator[bytes]:
    if ctx.compression == "gzip":
        return _gzip_chunks(ctx.path)
    if ctx.compression == "zstd":
        return _zstd_chunks(ctx.path)
    return _plain_chunks(ctx.path)


def _plain_chunks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as stream:
        while chunk := stream.read(_READ_BYTES):
            yield chunk


def _gzip_chunks(path: Path) -> Iterator[bytes]:
    try:
        with gzip.open(path, "rb") as stream:
            # read1, not read: read(n) waits to fill n bytes and loses them all when the stream is cut.
            while chunk := stream.read1(_READ_BYTES):
                yield chunk
    except EOFError as err:
        raise _FileProblem("truncated_archive", "the gzip stream ends early (file cut short by an "
                                                "interrupted download or copy?); expected a complete .gz "
                                                "file") from err
    except (gzip.BadGzipFile, zlib.error) as err:
        raise _FileProblem("corrupt_file", f"not a valid gzip file ({err})") from err


def _zstd_chunks(path: Path) -> Iterator[bytes]:
    # zstandard's stream_reader returns silently at a truncated frame, so track frame ends ourselves.
    decompressor = zstandard.ZstdDecompressor()
    with open(path, "rb") as stream:
        frame, mid_frame = decompressor.decompressobj(), False
        while compressed := stream.read(_READ_BYTES):
            while compressed:
                try:
                    out = frame.decompress(compressed)
                except zstandard.ZstdError as err:
                    raise _FileProblem("corrupt_file", f"not a valid zstd file ({err})") from err
                mid_frame = not frame.eof
                if out:
                    yield out
                # A file may hold several frames (zstd -T, concatenated shards): start a new one.
                compressed = frame.unused_data if frame.eof else b""
                if frame.eof:
                    frame = decompressor.decompressobj()
    if mid_frame:
        raise _FileProblem("truncated_archive", "the zstd stream ends inside a frame (file cut short by "
                                                "an interrupted download or copy?); expected a complete "
                                                ".zst file")


def _split_lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    pending: list[bytes] = []
    for chunk in chunks:
        start = 0
        while (end := chunk.find(b"\n", start)) != -1:
            pending.append(chunk[start : end + 1])
            yield b"".join(pending)
            pending, start = [], end + 1
        if start < len(chunk):
            pending.append(chunk[start:])
    # A partial last line is yielded only when the stream ended cleanly; a cut archive raised above.
    if pending:
        yield b"".join(pending)


def _byte_lines(ctx: _FileContext) -> Iterator[bytes]:
    if ctx.compression is None:
        with open(ctx.path, "rb") as stream:
            yield from stream  # C-level line splitting: the fast path for plain files
    else:
        yield from _split_lines(_chunks(ctx))


def _text_lines(ctx: _FileContext) -> Iterator[tuple[int, str]]:
    """(1-based line number, decoded line with its line ending)."""
    line_number = 0
    try:
        for line_number, raw in enumerate(_byte_lines(ctx), start=1):
            if line_number == 1:
                raw = raw.removeprefix(b"\xef\xbb\xbf")  # a UTF-8 byte order mark is not text
            yield line_number, _decode_line(raw, ctx, line_number)
    except _FileProblem as problem:
        problem.line = problem.line if problem.line is not None else line_number + 1
        raise


def _decode_line(raw: bytes, ctx: _FileContext, line_number: int) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        ctx.bad("non_utf8_replaced", line_number,
                f"invalid UTF-8 byte {raw[err.start:err.start + 1]!r} at column {err.start + 1}; "
                "expected UTF-8 text")
        return raw.decode("utf-8", errors="replace")


# The formats.


def _read_txt(ctx: _FileContext) -> Iterator[Document]:
    return _read_txt_lines(ctx) if ctx.cfg.txt_mode == "line" else _read_txt_file(ctx)


def _read_txt_lines(ctx: _FileContext) -> Iterator[Document]:
    for line_number, line in _text_lines(ctx):
        text = line.rstrip("\r\n")
        if not text.strip():
            continue  # blank lines separate documents in line mode; they are not documents
        place = ctx.place(line_number)
        if usable_text(text, ctx.cfg.max_doc_chars, place, ctx.log):
            yield Document(place.default_id, text, dict(place.position))


def _read_txt_file(ctx: _FileContext) -> Iterator[Document]:
    place = RecordPlace(ctx.shown, None, ctx.relative, {"source_file": ctx.shown})
    # Any file over 4 bytes per allowed character is too long whatever it holds: stop reading early
    # instead of loading a multi-gigabyte file only to skip it.
    byte_limit = _UTF8_MAX_BYTES_PER_CHAR * ctx.cfg.max_doc_chars
    data = bytearray()
    for chunk in _chunks(ctx):
        data += chunk
        if len(data) > byte_limit:
            ctx.log.record("document_too_long", ctx.shown, None,
                           f"file has over {byte_limit} bytes, so over max_doc_chars={ctx.cfg.max_doc_chars} "
                           "characters (use txt_mode: line to read one document per line)")
            return
    text = _decode_file(bytes(data).removeprefix(b"\xef\xbb\xbf"), ctx)
    if usable_text(text, ctx.cfg.max_doc_chars, place, ctx.log):
        yield Document(ctx.relative, text, dict(place.position))


def _decode_file(data: bytes, ctx: _FileContext) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        ctx.bad("non_utf8_replaced", line, f"invalid UTF-8 byte {data[err.start:err.start + 1]!r}; "
                                           "expected UTF-8 text")
        return data.decode("utf-8", errors="replace")


def _read_jsonl(ctx: _FileContext) -> Iterator[Document]:
    first_record_line = True
    for line_number, line in _text_lines(ctx):
        if not line.strip():
            continue  # blank lines (a trailing newline, separators) are not records
        record = _parse_json_line(line, line_number, first_record_line, ctx)
        first_record_line = False
        if record is None:
            continue
        doc = document_from_record(record, ctx.spec, ctx.place(line_number), ctx.cfg.on_bad_input, ctx.log)
        if doc is not None:
            yield doc


def _parse_json_line(line: str, line_number: int, first: bool, ctx: _FileContext) -> dict[str, Any] | None:
    try:
        # RecursionError: deeply nested brackets; ValueError covers JSONDecodeError and huge integers.
        record = json.loads(line)
    except (ValueError, RecursionError) as err:
        if first and line.lstrip().startswith("["):
            raise _FileProblem("not_json_lines", "the file looks like one JSON array; expected JSON "
                                                 "lines, one object per line (convert with: jq -c '.[]')",
                               line_number) from err
        ctx.bad("malformed_json", line_number, f"invalid JSON ({err}); expected one JSON object per line")
        return None
    if not isinstance(record, dict):
        ctx.bad("not_a_json_object", line_number,
                f"line holds a JSON {type(record).__name__}; expected an object with field "
                f"'{ctx.spec.text_field}'")
        return None
    if _SURROGATE_ESCAPE.search(line):
        return _without_lone_surrogates(record, line_number, ctx)
    return record


def _without_lone_surrogates(record: dict[str, Any], line_number: int, ctx: _FileContext) -> dict[str, Any]:
    """JSON escapes like "\\ud800" decode to lone surrogates, which no UTF-8 writer accepts downstream."""
    names = [ctx.spec.text_field, ctx.spec.id_field, ctx.spec.category_field]
    for name in names:
        value = record.get(name) if name is not None else None
        if isinstance(value, str) and _LONE_SURROGATE.search(value):
            ctx.bad("non_utf8_replaced", line_number, f"field '{name}' holds an unpaired UTF-16 surrogate "
                                                      "escape; expected valid Unicode")
            record[name] = _LONE_SURROGATE.sub("\ufffd", value)
    return record


def _read_csv(ctx: _FileContext) -> Iterator[Document]:
    csv.field_size_limit(_CSV_FIELD_LIMIT)
    reader = csv.reader(line for _, line in _text_lines(ctx))
    header = list(ctx.cfg.csv_column_names) if ctx.cfg.csv_column_names is not None else None
    last_line = 0
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as err:
            ctx.bad("malformed_csv_row", last_line + 1,
                    f"{err}; expected comma-separated, double-quoted values")
            last_line = reader.line_num
            continue
        first_line, last_line = last_line + 1, reader.line_num
        if not row:
            continue  # a blank line is not a row
        if header is None:
            header = _checked_csv_header(row, ctx)
            continue
        doc = _csv_row_document(row, header, first_line, ctx)
        if doc is not None:
            yield doc


def _checked_csv_header(row: list[str], ctx: _FileContext) -> list[str]:
    missing = [name for name in ctx.spec.required_columns() if name not in row]
    if missing:
        raise _FileProblem("wrong_schema", f"the CSV header has columns {row[:20]}; expected column(s) "
                                           f"{missing} (if the file has no header row, set csv_column_names)",
                           1)
    return row


def _csv_row_document(row: list[str], header: list[str], line_number: int,
                      ctx: _FileContext) -> Document | None:
    if len(row) != len(header):
        # A ragged row means a quoting error shifted the columns: its "text" may be another field.
        ctx.bad("malformed_csv_row", line_number,
                f"row has {len(row)} fields; expected {len(header)} as in the header")
        return None
    return document_from_record(dict(zip(header, row, strict=True)), ctx.spec, ctx.place(line_number),
                                ctx.cfg.on_bad_input, ctx.log)


def _read_parquet(ctx: _FileContext) -> Iterator[Document]:
    try:
        parquet = pq.ParquetFile(ctx.path)
    except pa.ArrowException as err:
        raise _FileProblem("corrupt_file", f"not a readable Parquet file ({err})") from err
    with parquet:
        columns = _checked_parquet_columns(parquet.schema_arrow, ctx)
        yield from _parquet_documents(parquet, columns, ctx)


def _checked_parquet_columns(schema: pa.Schema, ctx: _FileContext) -> list[str]:
    columns = list(dict.fromkeys(ctx.spec.required_columns()))
    missing = [name for name in columns if name not in schema.names]
    if missing:
        raise _FileProblem("wrong_schema", f"the Parquet file has columns {schema.names[:20]}; expected "
                                           f"column(s) {missing}")
    text_type = schema.field(ctx.spec.text_field).type
    if not (pa.types.is_string(text_type) or pa.types.is_large_string(text_type)
            or pa.types.is_string_view(text_type)):
        raise _FileProblem("wrong_schema", f"column '{ctx.spec.text_field}' has type {text_type}; expected a "
                                           "string column")
    return columns


def _parquet_documents(parquet: pq.ParquetFile, columns: list[str], ctx: _FileContext) -> Iterator[Document]:
    row = -1
    try:
        for batch in parquet.iter_batches(batch_size=_PARQUET_BATCH_ROWS, columns=columns):
            for record in batch.to_pylist():
                row += 1
                doc = document_from_record(record, ctx.spec, ctx.place(row, key="source_row"),
                                           ctx.cfg.on_bad_input, ctx.log)
                if doc is not None:
                    yield doc
    except pa.ArrowException as err:
        raise _FileProblem("corrupt_file", f"Parquet data unreadable after row {row} ({err})",
                           row + 1) from err


_READERS: dict[str, Callable[[_FileContext], Iterator[Document]]] = {
    "txt": _read_txt,
    "jsonl": _read_jsonl,
    "csv": _read_csv,
    "parquet": _read_parquet,
}
