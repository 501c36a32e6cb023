"""What counts as bad input, what happens to it, and the count of everything that happened.

Both sources (local files and Hugging Face datasets) share one policy, `on_bad_input`:

- ``"skip"`` (default): a bad record is left out, counted by reason in a `BadInputLog`, and reading
  goes on. The log keeps the first few examples (file and line) of each reason and a count for all,
  and the caller writes it as JSON next to the corpus, so an ablation can say what was dropped.
- ``"stop"``: the first bad record raises `InputError` naming the file, the line and what was
  expected.

Some outcomes do not depend on the policy, because they are not malformed input:

- empty or whitespace-only documents, and documents longer than ``max_doc_chars``, are valid input that
  cannot be used; they are always skipped and counted (``empty_document``, ``document_too_long``).
  Long documents are skipped, not truncated: a cut document is a new, partial text that would distort
  exact and near-duplicate statistics.
- an empty file is a warning (``empty_file``), never an error.
- a missing file, or a glob that matches nothing, always raises: that is a config mistake, not data.

Invalid UTF-8 is repaired rather than dropped under "skip": the line is decoded with U+FFFD replacement
characters, kept, and counted as ``non_utf8_replaced`` (one stray byte in a long web page should not
cost the page). Under "stop" it raises. Files that start with a UTF-16 or UTF-32 byte order mark are
decoded as such; invalid data in them is ``undecodable_replaced``.

Text that is not text is never trained on: a document in which more than `MAX_NUL_SHARE` of the
characters are NUL, or more than `MAX_REPLACEMENT_SHARE` are U+FFFD replacement characters, is binary
data (a PDF or image named .txt), or text in another encoding, and is ``binary_content``: skipped and
counted under "skip", raised under "stop". It is counted under that reason only, not also as a repair.

Files that cannot be read safely are never opened: dangling symbolic links, symbolic-link loops and
special files (FIFOs, sockets, devices) inside an input folder follow the policy as ``dangling_symlink``,
``symlink_loop`` and ``special_file``. Files whose extension names another format are
``other_format_file``, a warning that says how to read them.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from corpuslab.atomic import write_json_atomic
from corpuslab.documents import Document
from corpuslab.errors import ConfigError, InputError

logger = logging.getLogger(__name__)

Policy = Literal["skip", "stop"]
POLICIES: tuple[str, ...] = ("skip", "stop")
DEFAULT_MAX_DOC_CHARS = 1_000_000
# Above these shares of a document's characters it is binary data, not text. Real text has no NULs, and
# even a Latin-1 file read as UTF-8 loses under 10% of its characters (the accented ones) to U+FFFD.
MAX_NUL_SHARE = 0.01
MAX_REPLACEMENT_SHARE = 0.10
# Text that reads as UTF-16 without a byte order mark is about half NULs (ASCII letters are XX 00).
_UTF16_LIKE_NUL_SHARE = 0.3

# What each reason did to the data. Written into the JSON so that a reader of the log can tell lost
# records from repaired ones without reading this file.
REASON_EFFECTS: dict[str, str] = {
    "malformed_json": "record skipped",
    "not_a_json_object": "record skipped",
    "not_json_lines": "file skipped",
    "missing_text_field": "record skipped",
    "text_not_string": "record skipped",
    "missing_id_field": "record skipped",
    "missing_category_field": "record skipped",
    "malformed_csv_row": "record skipped",
    "empty_document": "record skipped",
    "document_too_long": "record skipped",
    "binary_content": "record skipped (the whole file, when its first 8 KiB are binary)",
    "non_utf8_replaced": "record kept, invalid bytes replaced by U+FFFD",
    "undecodable_replaced": "record kept, data invalid in the file's encoding replaced by U+FFFD",
    "decoded_with_fallback": "record kept, decoded with the next codec of the source's encoding list",
    "empty_file": "warning only",
    "other_format_file": "warning only, file not read (its extension names another format)",
    "dangling_symlink": "file not read",
    "symlink_loop": "link not followed",
    "special_file": "file not read (never opened)",
    "truncated_archive": "rest of file lost, records before the cut kept",
    "corrupt_file": "rest of file lost, records before the error kept",
    "wrong_schema": "file skipped",
}
# Reasons that lose no data; everything else is a skipped record or a lost part of a file.
_NOT_DROPPED = frozenset({"non_utf8_replaced", "undecodable_replaced", "decoded_with_fallback", "empty_file",
                          "other_format_file"})


@dataclass
class BadInputLog:
    """Counts of bad input by reason, with the first `max_examples` places (file, line) of each."""

    max_examples: int = 20
    counts: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    replaced_chars: int = 0  # U+FFFD characters put in by decoding repairs of kept records

    def record(self, reason: str, path: str, line: int | None, detail: str) -> None:
        if reason not in self.counts:
            # Warn once per reason so a "skip" run is never silent, without one line per bad record.
            logger.warning("bad input (%s, counting further cases): %s%s: %s", reason, path,
                           f":{line}" if line is not None else "", detail)
        self.counts[reason] += 1
        kept = self.examples.setdefault(reason, [])
        if len(kept) < self.max_examples:
            kept.append({"file": path, "line": line, "detail": detail})

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def dropped(self) -> int:
        """Events that lost data: skipped records, skipped files, cut archives."""
        return sum(n for reason, n in self.counts.items() if reason not in _NOT_DROPPED)

    def merge(self, other: BadInputLog) -> None:
        """Fold in the log of another shard or worker."""
        self.replaced_chars += other.replaced_chars
        for reason, count in other.counts.items():
            self.counts[reason] += count
            kept = self.examples.setdefault(reason, [])
            kept.extend(other.examples.get(reason, [])[: self.max_examples - len(kept)])

    def to_dict(self) -> dict[str, Any]:
        reasons = sorted(self.counts)
        return {
            "total": self.total,
            "dropped": self.dropped,
            "counts": {reason: self.counts[reason] for reason in reasons},
            "replaced_chars": self.replaced_chars,
            "effects": {reason: REASON_EFFECTS.get(reason, "record skipped") for reason in reasons},
            "max_examples_per_reason": self.max_examples,
            "examples": {reason: self.examples.get(reason, []) for reason in reasons},
        }

    def summary(self) -> dict[str, Any]:
        """The JSON-ready record a stage writes as bad_input.json (same as `to_dict`)."""
        return self.to_dict()

    def write_json(self, path: str | os.PathLike[str]) -> None:
        """Write atomically: a crash never leaves a half-written log that looks complete."""
        write_json_atomic(path, self.to_dict())


def handle_bad_input(log: BadInputLog, policy: str, reason: str, path: str, line: int | None,
                     problem: str) -> None:
    """Apply `on_bad_input`: raise under "stop", count under "skip". `problem` says what was expected."""
    if policy == "stop":
        raise InputError(path, f"{problem} [{reason}; on_bad_input is 'stop', use 'skip' to count and "
                               "skip such input]", line)
    log.record(reason, path, line, problem)


@dataclass(frozen=True)
class FieldSpec:
    """Which record fields make a Document, shared by every record-shaped format (JSONL, CSV, Parquet, HF)."""

    text_field: str = "text"
    id_field: str | None = None
    category_field: str | None = None
    metadata_fields: tuple[str, ...] = ()
    max_doc_chars: int = DEFAULT_MAX_DOC_CHARS

    def required_columns(self) -> list[str]:
        optional = [self.id_field, self.category_field]
        return [self.text_field, *(name for name in optional if name is not None), *self.metadata_fields]


@dataclass(frozen=True)
class RecordPlace:
    """Where a record came from: used in ids, in metadata and in every error message."""

    path: str  # file path, or a dataset description for HF
    line: int | None  # 1-based line (text formats) or 0-based row (tables, HF); None for a whole file
    default_id: str
    position: Mapping[str, Any]  # source metadata, e.g. {"source_file": ..., "source_line": ...}


def usable_text(text: str, max_doc_chars: int, place: RecordPlace, log: BadInputLog) -> bool:
    """Empty and over-long texts are valid input that cannot be used: skipped under either policy."""
    if not text.strip():
        log.record("empty_document", place.path, place.line, "document is empty or whitespace only")
        return False
    if len(text) > max_doc_chars:
        log.record("document_too_long", place.path, place.line,
                   f"document has {len(text)} characters, more than max_doc_chars={max_doc_chars}")
        return False
    return True


def binary_content(text: str) -> str | None:
    """Why `text` is binary data rather than text (the problem, for the log), or None if it is text."""
    nuls = text.count("\x00")
    if nuls > MAX_NUL_SHARE * len(text):
        hint = (" (about every other character: UTF-16 text without a byte order mark? re-encode it as UTF-8)"
                if nuls >= _UTF16_LIKE_NUL_SHARE * len(text) else "")
        return (f"{nuls} of {len(text)} characters are NUL, over {MAX_NUL_SHARE:.0%}{hint}; expected text, not "
                "binary data")
    replaced = text.count("\ufffd")
    if replaced > MAX_REPLACEMENT_SHARE * len(text):
        return (f"{replaced} of {len(text)} characters are U+FFFD replacement characters, over "
                f"{MAX_REPLACEMENT_SHARE:.0%}: binary data, or text in a legacy encoding such as Latin-1 "
                "(re-encode it as UTF-8); expected text")
    return None


def usable_document(text: str, max_doc_chars: int, place: RecordPlace, policy: str, log: BadInputLog) -> bool:
    """`usable_text`, then binary content, which is bad input: counted under "skip", raised under "stop"."""
    if not usable_text(text, max_doc_chars, place, log):
        return False
    problem = binary_content(text)
    if problem is not None:
        handle_bad_input(log, policy, "binary_content", place.path, place.line, problem)
        return False
    return True


def document_from_record(record: Mapping[str, Any], spec: FieldSpec, place: RecordPlace, policy: str,
                         log: BadInputLog) -> Document | None:
    """Build a Document from one record, or None (after counting why) if the record cannot be used."""
    text = record.get(spec.text_field)
    if text is None:
        handle_bad_input(log, policy, "missing_text_field", place.path, place.line,
                         f"record has no '{spec.text_field}' value; expected the text in field "
                         f"'{spec.text_field}' (fields present: {_field_names(record)})")
        return None
    if not isinstance(text, str):
        # Never str() a number or a list into a "document": it means the wrong field was named.
        handle_bad_input(log, policy, "text_not_string", place.path, place.line,
                         f"field '{spec.text_field}' holds a {type(text).__name__}, expected a string")
        return None
    # One reason per record: stop at the first problem so no record is counted twice.
    doc_id = _optional_field(record, spec.id_field, "missing_id_field", place, policy, log)
    if doc_id is _MISSING:
        return None
    category = _optional_field(record, spec.category_field, "missing_category_field", place, policy, log)
    if category is _MISSING or not usable_document(text, spec.max_doc_chars, place, policy, log):
        return None
    metadata: dict[str, Any] = dict(place.position)
    if category is not None:
        metadata["category"] = category
    for name in spec.metadata_fields:
        metadata[name] = record.get(name)
    return Document(id=doc_id if doc_id is not None else place.default_id, text=text, metadata=metadata)


_MISSING = object()


def _optional_field(record: Mapping[str, Any], name: str | None, reason: str, place: RecordPlace,
                    policy: str, log: BadInputLog) -> Any:
    """A configured id/category field as a string, None when not configured, _MISSING when absent."""
    if name is None:
        return None
    value = record.get(name)
    # An empty id or label is as useless as none: ids must be unique and labels must name a class.
    if value is None or value == "":
        handle_bad_input(log, policy, reason, place.path, place.line,
                         f"record has no '{name}' value (fields present: {_field_names(record)})")
        return _MISSING
    return str(value)


def _field_names(record: Mapping[str, Any]) -> list[str]:
    return [name for name, value in record.items() if value is not None][:20]


# Config checks shared by the sources: each raises ConfigError naming the full dotted key.


def check_choice(key: str, value: object, choices: tuple[str, ...]) -> None:
    if not isinstance(value, str) or value not in choices:
        raise ConfigError(key, value, "one of " + ", ".join(repr(choice) for choice in choices))


def check_name(key: str, value: object, optional: bool = False) -> None:
    if optional and value is None:
        return
    if not isinstance(value, str) or not value:
        raise ConfigError(key, value, "a non-empty string" + (" or null" if optional else ""))


def check_names(key: str, value: object) -> None:
    # A bare string is iterable too: "text" would silently become five one-letter names.
    if not isinstance(value, (list, tuple)) or not all(isinstance(item, str) and item for item in value):
        raise ConfigError(key, value, "a list of non-empty strings")


def check_positive_int(key: str, value: object, optional: bool = False) -> None:
    if optional and value is None:
        return
    # bool is an int subclass; `max_docs: true` is a typo, not 1.
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(key, value, "a positive integer" + (" or null" if optional else ""))


def check_bool(key: str, value: object) -> None:
    if not isinstance(value, bool):
        raise ConfigError(key, value, "true or false")


def check_record_fields(prefix: str, cfg: Any) -> None:
    """The checks every source shares: which record fields hold text, id, category and metadata, the bad-input
    policy and the size limits."""
    check_name(f"{prefix}.text_field", cfg.text_field)
    check_name(f"{prefix}.id_field", cfg.id_field, optional=True)
    check_name(f"{prefix}.category_field", cfg.category_field, optional=True)
    check_names(f"{prefix}.metadata_fields", cfg.metadata_fields)
    check_choice(f"{prefix}.on_bad_input", cfg.on_bad_input, POLICIES)
    check_positive_int(f"{prefix}.max_doc_chars", cfg.max_doc_chars)
    check_positive_int(f"{prefix}.max_docs", cfg.max_docs, optional=True)
