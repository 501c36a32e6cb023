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
the same inputs always give the same documents in the same order with the same ids. Which files a path
contributes, and what happens to links, loops, FIFOs and files of other formats, is in
`corpuslab.sources.files`; with ``format: txt``, files without an extension are read too (Usenet and
mail corpora).

Text is UTF-8, or UTF-16/UTF-32 when the file starts with that byte order mark (`corpuslab.sources.text`).
Binary data is never a document: a document whose text is more than 1% NUL or 10% U+FFFD characters is
skipped as ``binary_content`` (see `corpuslab.sources.badinput`); so is a whole line-based file (txt
lines, JSON lines, CSV) whose first 8 KiB are, counted once instead of once per line of garbage.

`LocalSource.identity()` lists every input file with its size, modification time and content hash (a remote
file: what its listing reports, size, checksum such as the S3 ETag, and time; nothing is downloaded), so
editing, adding or deleting a file changes the ingest fingerprint (`corpuslab.sources.identity`).

Ids are the ``id_field`` value when one is configured, else ``<path>:<line>`` (``<path>:<row>`` for
Parquet, ``<path>`` for a whole .txt file), where ``<path>`` is relative to the deepest folder holding
every input file, so ids do not change when the corpus moves to another disk.

Bad input follows ``on_bad_input`` (see `corpuslab.sources.badinput`). A Parquet or CSV file without the
configured columns is ``wrong_schema``: skipped and counted under "skip", unless no file at all had
them, which is a config mistake (a misspelled ``text_field``) and raises.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import json
import logging
import os
import re
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import zstandard

from corpuslab.documents import Document
from corpuslab.errors import ConfigError, InputError
from corpuslab.paths import check_url, is_url, origin_of
from corpuslab.sources import hints
from corpuslab.sources.badinput import (
    DEFAULT_MAX_DOC_CHARS,
    BadInputLog,
    FieldSpec,
    RecordPlace,
    binary_content,
    check_choice,
    check_names,
    check_record_fields,
    document_from_record,
    handle_bad_input,
    usable_document,
)
from corpuslab.sources.base import Source, sources
from corpuslab.sources.files import file_format, local_spec_files, remote_input_files, resolve_files
from corpuslab.sources.identity import describe_changes, file_identity, remote_file_identity
from corpuslab.sources.text import (
    MAX_MARK_BYTES,
    UTF8,
    Repair,
    decode,
    decode_document,
    detect_encoding,
    newline_bytes,
    parse_encoding,
    split_lines,
)

logger = logging.getLogger(__name__)

FORMATS: tuple[str, ...] = ("auto", "txt", "jsonl", "parquet", "csv")
TXT_MODES: tuple[str, ...] = ("file", "line")
CATEGORY_SOURCES: tuple[str, ...] = ("field", "parent_dir")

_READ_BYTES = 1 << 18
_PARQUET_BATCH_ROWS = 1024
# csv's default field limit is 128 KiB, far below a long document; 2**31 - 1 is the largest value a C
# long takes on every platform (sys.maxsize overflows on Windows).
_CSV_FIELD_LIMIT = 2**31 - 1
_MAX_BYTES_PER_CHAR = 4  # in UTF-8, UTF-16 and UTF-32 alike
# How much of a line-based file is checked for binary content before any line is read: git's heuristic
# (a NUL in the first 8000 bytes means binary), with the shares of `binary_content`.
_SNIFF_BYTES = 8192
# A shorter file is judged record by record instead: in a few lines, one damaged word is a large share.
_SNIFF_MIN_CHARS = 512
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
    # Codec of text files without a byte order mark (txt, jsonl, csv), or a list tried in order per record:
    # "utf-8,cp1252" decodes what is not valid UTF-8 as Windows-1252. See `corpuslab.sources.text`.
    encoding: str = UTF8

    def validate(self, prefix: str = "dataset.local") -> None:
        self._validate_paths(prefix)
        try:
            parse_encoding(self.encoding)
        except (LookupError, TypeError, AttributeError):
            raise ConfigError(f"{prefix}.encoding", self.encoding, "a Python codec name (utf-8, cp1252, latin-1, "
                              "utf-16-le, ...) or a comma-separated list tried in order, e.g. 'utf-8,cp1252'") from None
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
        for path in self.paths:  # a URL's protocol must be known and its package installed (s3fs for s3://)
            check_url(f"{prefix}.paths", path)

    def _validate_csv_columns(self, prefix: str) -> None:
        key = f"{prefix}.csv_column_names"
        check_names(key, self.csv_column_names)
        missing = [name for name in self.field_spec().required_columns() if name not in self.csv_column_names]
        if missing:
            raise ConfigError(key, self.csv_column_names, f"a list that includes {missing}")


def read_local(cfg: LocalConfig, log: BadInputLog) -> Iterator[Document]:
    """Stream the documents of `cfg.paths`. Config and path errors raise here, before the first document."""
    cfg.validate()
    return _read_files(cfg, resolve_files(cfg, log), log)


@sources.register
class LocalSource(Source):
    """Local files (`dataset.source: local`, `dataset.local: {paths: [...]}`)."""

    name = "local"
    Config = LocalConfig

    def __init__(self, config: LocalConfig, seed: int = 0):
        super().__init__(config, seed)
        self._files: list[Path] | None = None

    def files(self) -> list[Path]:
        """Resolved once, so `identity` describes exactly the files `documents` reads, and a dangling link
        or a FIFO is counted once."""
        if self._files is None:
            self.config.validate()
            self._files = resolve_files(self.config, self.bad_input)
        return self._files

    def documents(self) -> Iterator[Document]:
        return _read_files(self.config, self.files(), self.bad_input)

    def identity(self) -> dict[str, Any]:
        return {"source": self.name, "version": self.version, "files": self._file_entries(hash_content=True)}

    def changed_during_read(self, identity: dict[str, Any]) -> list[str]:
        """Files whose size or modification time (or remote checksum) moved since `identity`: stat and listing
        only, no hashing."""
        return describe_changes({"files": identity.get("files", [])}, {"files": self._file_entries(hash_content=False)})

    def _file_entries(self, hash_content: bool) -> list[dict[str, Any]]:
        """One identity entry per input file. A remote file (a URL in paths) is described from its listing
        (URL, size, checksum, time: `remote_file_identity`), so the identity, and the ingest fingerprint, are the
        same on every machine and taking them downloads nothing; a local file by `file_identity`."""
        if not any(is_url(spec) for spec in self.config.paths):
            return [entry for path in self.files() if (entry := _local_entry(path, hash_content)) is not None]
        self.config.validate()
        entries: dict[str, dict[str, Any]] = {}
        for spec in self.config.paths:
            if is_url(spec):
                found = [remote_file_identity(url, info) for url, info in remote_input_files(spec, self.config)]
            else:
                found = [entry for path in local_spec_files(spec, self.config)
                         if (entry := _local_entry(path, hash_content)) is not None]
            for entry in found:
                entries.setdefault(entry["path"], entry)  # a file named twice is read once
        return list(entries.values())

    def description(self) -> str:
        return f"local files {list(self.config.paths)}"


def _local_entry(path: Path, hash_content: bool) -> dict[str, Any] | None:
    """`file_identity` of a local file; None for one gone since it was listed when only checking for changes
    (it is reported as deleted)."""
    try:
        return file_identity(path, origin_of(path), hash_content=hash_content)
    except InputError:
        if hash_content:
            raise
        return None


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

    def repaired(self, repair: Repair | None) -> None:
        """Count a repair of a record that is kept (under "stop", raise; a fallback the user asked for does not)."""
        if repair is None:
            return
        if repair.reason == "decoded_with_fallback":
            self.log.record(repair.reason, self.shown, repair.line, repair.problem)
            return
        self.bad(repair.reason, repair.line, repair.problem)
        self.log.replaced_chars += repair.chars

    def codecs(self, head: bytes) -> tuple[str, int, tuple[str, ...]]:
        """(codec, byte order mark length, fallback codecs) for a file starting with `head`."""
        configured = parse_encoding(self.cfg.encoding)
        codec, mark = detect_encoding(head[:MAX_MARK_BYTES], configured[0])
        return codec, mark, configured[1:] if not mark else ()

    def usable(self, text: str, place: RecordPlace) -> bool:
        return usable_document(text, self.cfg.max_doc_chars, place, self.cfg.on_bad_input, self.log)


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
        fmt, compression = file_format(path, cfg)
        relative = Path(os.path.relpath(os.path.abspath(path), base)).as_posix()
        ctx = _FileContext(path, origin_of(path), relative, fmt, compression, cfg, spec, log)
        for doc in _read_file(ctx, state):
            if cfg.category_from == "parent_dir":
                doc.metadata["category"] = path.parent.name
            yield doc
            state.yielded += 1
            if cfg.max_docs is not None and state.yielded >= cfg.max_docs:
                return
    if state.yielded == 0 and state.first_wrong_schema is not None:
        path, problem = state.first_wrong_schema
        names = " / ".join(filter(None, (hints.name(key) for key in ("text_field", "id_field", "category_field"))))
        raise InputError(path, f"no input file has the configured fields, so no document was read; check {names}. This file: {problem}")


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


def _chunks(ctx: _FileContext, skip: int = 0) -> Iterator[bytes]:
    """The file's (decompressed) bytes in chunks, without its first `skip` bytes (a byte order mark)."""
    if ctx.compression is None:
        return _plain_chunks(ctx.path, skip)
    chunks = _gzip_chunks(ctx.path) if ctx.compression == "gzip" else _zstd_chunks(ctx.path)
    return _drop_prefix(chunks, skip) if skip else chunks


def _plain_chunks(path: Path, skip: int = 0) -> Iterator[bytes]:
    with open(path, "rb") as stream:
        stream.seek(skip)
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


def _drop_prefix(chunks: Iterator[bytes], count: int) -> Iterator[bytes]:
    for chunk in chunks:
        if count >= len(chunk):
            count -= len(chunk)
            continue
        yield chunk[count:]
        count = 0


def _head(ctx: _FileContext, size: int) -> bytes:
    """The first `size` (decompressed) bytes; the stream is read again from the start afterwards."""
    if ctx.compression is None:
        with open(ctx.path, "rb") as stream:
            return stream.read(size)
    head = bytearray()
    try:
        with contextlib.closing(_chunks(ctx)) as chunks:  # closing: the rest of the archive is not read here
            for chunk in chunks:
                head += chunk
                if len(head) >= size:
                    break
    except _FileProblem:
        pass  # a cut or corrupt archive: raised again, at its line, by the read that follows
    return bytes(head[:size])


def _byte_lines(ctx: _FileContext, codec: str, mark: int) -> Iterator[bytes]:
    if ctx.compression is None and newline_bytes(codec) == b"\n":
        with open(ctx.path, "rb") as stream:
            stream.seek(mark)
            yield from stream  # C-level line splitting: the fast path for plain UTF-8 files
    else:
        yield from split_lines(_chunks(ctx, mark), codec)


def _text_lines(ctx: _FileContext) -> Iterator[tuple[int, str, Repair | None]]:
    """(1-based line number, decoded line with its line ending, the repair of invalid bytes if any).

    The encoding comes from the byte order mark; a file whose first 8 KiB are binary is not read at all.
    """
    line_number = 0
    try:
        head = _head(ctx, _SNIFF_BYTES)
        codec, mark, fallbacks = ctx.codecs(head)
        _check_not_binary(head[mark:], codec)
        for line_number, raw in enumerate(_byte_lines(ctx, codec, mark), start=1):
            text, repair = decode(raw, codec, line_number, fallbacks)
            yield line_number, text, repair
    except _FileProblem as problem:
        problem.line = problem.line if problem.line is not None else line_number + 1
        raise


def _check_not_binary(head: bytes, codec: str) -> None:
    # The cut at 8 KiB may split one character: at most one U+FFFD, far below the limit.
    text = head.decode(codec, errors="replace")
    problem = binary_content(text) if len(text) >= _SNIFF_MIN_CHARS else None
    if problem is not None:
        raise _FileProblem("binary_content", f"the file's first {len(head)} bytes are not text: {problem}; the "
                                             "whole file is skipped")


# The formats.


def _read_txt(ctx: _FileContext) -> Iterator[Document]:
    return _read_txt_lines(ctx) if ctx.cfg.txt_mode == "line" else _read_txt_file(ctx)


def _read_txt_lines(ctx: _FileContext) -> Iterator[Document]:
    for line_number, line, repair in _text_lines(ctx):
        text = line.rstrip("\r\n")
        if not text.strip():
            continue  # blank lines separate documents in line mode; they are not documents
        place = ctx.place(line_number)
        if ctx.usable(text, place):
            ctx.repaired(repair)
            yield Document(place.default_id, text, dict(place.position))


def _read_txt_file(ctx: _FileContext) -> Iterator[Document]:
    place = RecordPlace(ctx.shown, None, ctx.relative, {"source_file": ctx.shown})
    data = _whole_file(ctx)
    if data is None:
        return
    codec, mark, fallbacks = ctx.codecs(data)
    text, repair = decode_document(data[mark:], codec, fallbacks)
    if ctx.usable(text, place):
        ctx.repaired(repair)
        yield Document(ctx.relative, text, dict(place.position))


def _whole_file(ctx: _FileContext) -> bytes | None:
    """The file's bytes, or None (counted) when it is too long whatever it holds."""
    # Any file over 4 bytes per allowed character is too long: stop reading early instead of loading a
    # multi-gigabyte file only to skip it.
    byte_limit = _MAX_BYTES_PER_CHAR * ctx.cfg.max_doc_chars
    data = bytearray()
    for chunk in _chunks(ctx):
        data += chunk
        if len(data) > byte_limit:
            ctx.log.record("document_too_long", ctx.shown, None,
                           f"file has over {byte_limit} bytes, so over max_doc_chars={ctx.cfg.max_doc_chars} "
                           "characters (use txt_mode: line to read one document per line)")
            return None
    return bytes(data)


def _read_jsonl(ctx: _FileContext) -> Iterator[Document]:
    first_record_line = True
    for line_number, line, repair in _text_lines(ctx):
        if not line.strip():
            continue  # blank lines (a trailing newline, separators) are not records
        record = _parse_json_line(line, line_number, first_record_line, ctx)
        first_record_line = False
        if record is None:
            continue
        if _SURROGATE_ESCAPE.search(line):
            repair = _without_lone_surrogates(record, line_number, ctx) or repair
        doc = document_from_record(record, ctx.spec, ctx.place(line_number), ctx.cfg.on_bad_input, ctx.log)
        if doc is not None:
            ctx.repaired(repair)
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
    return record


def _without_lone_surrogates(record: dict[str, Any], line_number: int, ctx: _FileContext) -> Repair | None:
    """JSON escapes like "\\ud800" decode to lone surrogates, which no UTF-8 writer accepts downstream:
    replace them in place and return the repair (counted only if the record is kept)."""
    repair = None
    for name in (ctx.spec.text_field, ctx.spec.id_field, ctx.spec.category_field):
        value = record.get(name) if name is not None else None
        if isinstance(value, str) and _LONE_SURROGATE.search(value):
            repair = repair or Repair("non_utf8_replaced", line_number, f"field '{name}' holds an unpaired UTF-16 "
                                                                        "surrogate escape; expected valid Unicode")
            record[name] = _LONE_SURROGATE.sub("\ufffd", value)
    return repair


def _read_csv(ctx: _FileContext) -> Iterator[Document]:
    csv.field_size_limit(_CSV_FIELD_LIMIT)
    repairs: dict[int, Repair] = {}  # line -> repair, until the row holding the line is kept or dropped
    reader = csv.reader(_remember_repairs(_text_lines(ctx), repairs))
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
            _take_repairs(repairs, last_line)
            continue
        first_line, last_line = last_line + 1, reader.line_num
        row_repair = _take_repairs(repairs, last_line)
        if not row:
            continue  # a blank line is not a row
        if header is None:
            header = _checked_csv_header(row, ctx)
            ctx.repaired(row_repair)
            continue
        doc = _csv_row_document(row, header, first_line, ctx)
        if doc is not None:
            ctx.repaired(row_repair)
            yield doc


def _remember_repairs(lines: Iterator[tuple[int, str, Repair | None]], repairs: dict[int, Repair]) -> Iterator[str]:
    for line_number, text, repair in lines:
        if repair is not None:
            repairs[line_number] = repair
        yield text


def _take_repairs(repairs: dict[int, Repair], up_to_line: int) -> Repair | None:
    """The first repair among the lines of one row (a quoted field may span lines); one count per row."""
    lines = sorted(line for line in repairs if line <= up_to_line)
    taken = [repairs.pop(line) for line in lines]
    return taken[0] if taken else None


def _checked_csv_header(row: list[str], ctx: _FileContext) -> list[str]:
    missing = [name for name in ctx.spec.required_columns() if name not in row]
    if missing:
        raise _FileProblem("wrong_schema", f"the CSV header has columns {row[:20]}; expected column(s) "
                                           f"{missing} ({hints.name('csv_header_hint')})",
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
