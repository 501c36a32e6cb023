"""Text normalization: what "the same text" means for exact and near-duplicate detection.

`normalize(text, cfg)` is the definition. With the defaults it applies, in this order:

1. Unicode normalization (`unicode_form`, default NFKC): compatibility characters fold together, so
   "ﬁ" == "fi", full-width "Ａ" == "A" and a no-break space becomes a space.
2. `lowercase`: Python's `str.lower()`.
3. `strip_punctuation` (off by default): every character in Unicode categories P* (punctuation) and
   S* (symbols) becomes a space, so "end.Start" still splits into two words.
4. `collapse_whitespace`: `" ".join(text.split())`, i.e. runs of whitespace (Python's definition,
   which includes the Unicode spaces) become one space and the ends are trimmed.

Exact dedup compares the normalized text; near dedup shingles it. A text that normalizes to "" is
empty and never matched by either.

`normalize_utf8` is the batch form used by the engine: it takes a whole batch as one UTF-8 buffer plus
offsets (as Arrow stores a string column) and returns the normalized buffer. It gives byte-for-byte
the result of `normalize` on every document (tests check this), but handles pure-ASCII documents --
the vast majority in web text -- in one numba pass without creating Python strings, because for ASCII
steps 1-3 reduce to byte lookups. Only non-ASCII documents go through Python's `unicodedata`.
"""

from __future__ import annotations

import functools
import re
import sys
import unicodedata

import numpy as np
from numba import njit

from corpuslab.curation.dedup.config import UNICODE_FORMS, NormalizeConfig  # noqa: F401  (re-exported)

COPY, LOWER, TABLE = 0, 1, 2  # how the kernel maps ASCII bytes (LOWER is arithmetic, so it vectorizes)


def normalize(text: str, cfg: NormalizeConfig) -> str:
    """The normalized form of one text: the reference that the batch path must reproduce."""
    return (
        collapse_whitespace(_normalize_characters(text, cfg))
        if cfg.collapse_whitespace
        else (_normalize_characters(text, cfg))
    )


def collapse_whitespace(text: str) -> str:
    return " ".join(text.split())


def _normalize_characters(text: str, cfg: NormalizeConfig) -> str:
    """Steps 1-3, the ones that need Unicode tables."""
    if cfg.unicode_form is not None:
        text = unicodedata.normalize(cfg.unicode_form, text)
    if cfg.lowercase:
        text = text.lower()
    if cfg.strip_punctuation:
        text = _punctuation_pattern().sub(" ", text)
    return text


@functools.cache
def _punctuation_pattern() -> re.Pattern[str]:
    """A character class of every P* and S* code point, built once on first use (~0.3 s)."""
    ranges, start, previous = [], None, None
    for code in range(sys.maxunicode + 1):
        if unicodedata.category(chr(code))[0] in "PS":
            if start is None:
                start = code
            elif code != previous + 1:
                ranges.append((start, previous))
                start = code
            previous = code
    ranges.append((start, previous))
    body = "".join(
        re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b in ranges
    )
    return re.compile(f"[{body}]")


@functools.cache
def _ascii_table(lowercase: bool, strip_punctuation: bool) -> np.ndarray:
    """What steps 1-3 do to each ASCII byte (NFKC is the identity on ASCII)."""
    table = np.arange(256, dtype=np.uint8)
    for code in range(128):
        char = chr(code)
        if lowercase:
            char = char.lower()
        if strip_punctuation and unicodedata.category(char)[0] in "PS":
            char = " "
        table[code] = ord(char)
    return table


def normalize_utf8(
    data: np.ndarray, offsets: np.ndarray, cfg: NormalizeConfig, collapse: bool | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Normalize a batch given as UTF-8 bytes and int64 offsets; returns the same layout.

    `collapse=False` skips whitespace collapsing even when the config asks for it: callers that split
    on whitespace anyway (word shingles) get identical tokens for less work.
    """
    collapse = cfg.collapse_whitespace if collapse is None else collapse
    python_docs = _non_ascii_docs(data, offsets) if _needs_unicode_tables(cfg) else np.empty(0, np.int64)
    replacement, replacement_offsets, slot = _python_replacements(data, offsets, python_docs, cfg)
    table = _ascii_table(cfg.lowercase, cfg.strip_punctuation)
    mode = TABLE if cfg.strip_punctuation else (LOWER if cfg.lowercase else COPY)
    return _normalize_kernel(data, offsets, replacement, replacement_offsets, slot, table, mode, collapse)


def _needs_unicode_tables(cfg: NormalizeConfig) -> bool:
    return cfg.unicode_form is not None or cfg.lowercase or cfg.strip_punctuation


def _non_ascii_docs(data: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    return np.flatnonzero(_non_ascii_flags(data, offsets))


def _python_replacements(
    data: np.ndarray, offsets: np.ndarray, docs: np.ndarray, cfg: NormalizeConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Steps 1-3 in Python for the given (non-ASCII) docs, packed as one buffer plus a slot per doc."""
    slot = np.full(len(offsets) - 1, -1, dtype=np.int64)
    encoded = [
        _normalize_characters(
            data[offsets[d] : offsets[d + 1]].tobytes().decode("utf-8", "replace"), cfg
        ).encode()
        for d in docs
    ]
    slot[docs] = np.arange(len(docs))
    lengths = np.fromiter((len(e) for e in encoded), dtype=np.int64, count=len(encoded))
    replacement_offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum(lengths, out=replacement_offsets[1:])
    return np.frombuffer(b"".join(encoded), dtype=np.uint8), replacement_offsets, slot


@njit(cache=True, nogil=True)
def _non_ascii_flags(data: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    flags = np.zeros(len(offsets) - 1, dtype=np.bool_)
    for d in range(len(offsets) - 1):
        doc = data[offsets[d] : offsets[d + 1]]  # a slice, so LLVM sees a plain counted loop
        bits = np.uint8(0)
        for i in range(len(doc)):  # no early exit: an OR reduction vectorizes
            bits |= doc[i]
        flags[d] = bits >= 128
    return flags


# Whitespace is exactly what Python's `str.isspace()` accepts, so splitting here matches `str.split()`:
# ASCII 9-13 and 28-32, and U+0085, U+00A0, U+1680, U+2000-U+200A, U+2028, U+2029, U+202F, U+205F,
# U+3000. Hot loops look each byte up in SPACE_CLASS and call `multibyte_space_width` only at the four
# UTF-8 lead bytes of the non-ASCII ones: a per-byte numba call that takes an array costs a
# reference-count round trip, which made tokenizing 10x slower.
NOT_SPACE, ASCII_SPACE, MAYBE_SPACE = 0, 1, 2
SPACE_CLASS = np.zeros(256, dtype=np.uint8)
SPACE_CLASS[[9, 10, 11, 12, 13, 28, 29, 30, 31, 32]] = ASCII_SPACE
SPACE_CLASS[[0xC2, 0xE1, 0xE2, 0xE3]] = MAYBE_SPACE


@njit(cache=True, nogil=True)
def multibyte_space_width(data: np.ndarray, i: int, end: int) -> int:
    """Byte length of the non-ASCII whitespace character at data[i], or 0."""
    c = data[i]
    if c == 0xC2:
        return 2 if i + 1 < end and (data[i + 1] == 0x85 or data[i + 1] == 0xA0) else 0
    if i + 2 >= end:
        return 0
    c1, c2 = data[i + 1], data[i + 2]
    if c == 0xE1:
        return 3 if c1 == 0x9A and c2 == 0x80 else 0
    if c == 0xE3:
        return 3 if c1 == 0x80 and c2 == 0x80 else 0
    if c1 == 0x80:
        return 3 if c2 <= 0x8A or c2 == 0xA8 or c2 == 0xA9 or c2 == 0xAF else 0
    return 3 if c1 == 0x81 and c2 == 0x9F else 0


@njit(cache=True, nogil=True)
def _normalize_kernel(data, offsets, replacement, replacement_offsets, slot, table, mode, collapse):
    """Map ASCII docs' bytes (`mode`, `table`), splice in the Python-normalized docs, collapse whitespace."""
    n = len(offsets) - 1
    size = 0
    for d in range(n):
        if slot[d] >= 0:
            size += replacement_offsets[slot[d] + 1] - replacement_offsets[slot[d]]
        else:
            size += offsets[d + 1] - offsets[d]
    out = np.empty(size, dtype=np.uint8)
    out_offsets = np.zeros(n + 1, dtype=np.int64)
    pos = 0
    for d in range(n):
        if slot[d] >= 0:
            pos = _copy_doc(
                replacement,
                replacement_offsets[slot[d]],
                replacement_offsets[slot[d] + 1],
                table,
                COPY,
                collapse,
                out,
                pos,
            )
        else:
            pos = _copy_doc(data, offsets[d], offsets[d + 1], table, mode, collapse, out, pos)
        out_offsets[d + 1] = pos
    return out[:pos], out_offsets


@njit(cache=True, nogil=True)
def _copy_doc(src, start, end, table, mode, collapse, out, pos):
    """Copy src[start:end] to out[pos:], mapping bytes as `mode` says; returns the new end."""
    length = end - start
    if mode == COPY:
        if collapse:
            return _collapse(src, start, end, out, pos)
        out[pos : pos + length] = src[start:end]
        return pos + length
    doc, target = src[start:end], out[pos : pos + length]  # slices: the loops below vectorize
    if mode == LOWER:
        for i in range(length):
            c = doc[i]
            target[i] = c + np.uint8(32) if c >= 65 and c <= 90 else c
    else:
        for i in range(length):
            target[i] = table[doc[i]]
    return _collapse(out, pos, pos + length, out, pos) if collapse else pos + length


@njit(cache=True, nogil=True)
def _collapse(src, start, end, out, pos):
    """Write src[start:end] with whitespace runs as one space and no space at either end.

    Safe in place (src is out, start == pos): it never writes past the byte it has read.
    """
    write, pending_space, i = pos, False, start
    while i < end:
        kind = SPACE_CLASS[src[i]]
        width = 0 if kind == NOT_SPACE else (1 if kind == ASCII_SPACE else multibyte_space_width(src, i, end))
        if width:
            pending_space = write > pos
            i += width
            continue
        if pending_space:
            out[write] = 32
            write += 1
            pending_space = False
        out[write] = src[i]
        write += 1
        i += 1
    return write
