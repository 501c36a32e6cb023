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
steps 1-3 reduce to byte lookups. Non-ASCII documents whose every character normalizes on its own to
one character (curly quotes, dashes, accented letters, no-break spaces: most of real web text) go
through a second numba pass with a per-code-point table built from `unicodedata` (`_simple_map`);
only the rest (combining marks, characters that compose with a neighbour, ligatures that expand,
final sigma, invalid UTF-8) go through Python's `unicodedata`. The table also spells out the characters
whose normal form is a few ASCII characters (the ellipsis "…" -> "...", "™", ligatures such as "ﬁ").
"""

from __future__ import annotations

import functools
import os
import re
import sys
import unicodedata
from pathlib import Path

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
    if _has_simple_path(cfg) and _needs_unicode_tables(cfg):
        return _table_path(data, offsets, cfg, collapse)
    python_docs = _non_ascii_docs(data, offsets) if _needs_unicode_tables(cfg) else np.empty(0, np.int64)
    replacement, replacement_offsets, slot = _python_replacements(data, offsets, python_docs, cfg)
    table = _ascii_table(cfg.lowercase, cfg.strip_punctuation)
    mode = TABLE if cfg.strip_punctuation else (LOWER if cfg.lowercase else COPY)
    return _normalize_kernel(data, offsets, replacement, replacement_offsets, slot, table, mode, collapse)


def _has_simple_path(cfg: NormalizeConfig) -> bool:
    """The per-code-point table covers composing forms and lowercasing; punctuation stripping and the
    decomposing forms (whose output reorders marks) stay in Python."""
    return not cfg.strip_punctuation and cfg.unicode_form in (None, "NFC", "NFKC")


def _table_path(data: np.ndarray, offsets: np.ndarray, cfg: NormalizeConfig, collapse: bool) -> tuple[np.ndarray, np.ndarray]:
    """Every document in one numba pass (ASCII bytes and table characters mapped, whitespace collapsed), then
    Python's `unicodedata` for the documents with a character the table does not cover, spliced in."""
    out, out_offsets, failed = _table_kernel(data, offsets, _simple_map(cfg.unicode_form, cfg.lowercase),
                                             _ascii_table(cfg.lowercase, False), LOWER if cfg.lowercase else COPY, collapse)
    rest = np.flatnonzero(failed)
    if not len(rest):
        return out, out_offsets
    encoded = []
    for d in rest.tolist():
        text = _normalize_characters(data[offsets[d] : offsets[d + 1]].tobytes().decode("utf-8", "replace"), cfg)
        encoded.append((collapse_whitespace(text) if collapse else text).encode())
    lengths = np.diff(out_offsets)
    lengths[rest] = [len(e) for e in encoded]
    pieces, previous = [], 0
    for d, replacement in zip(rest.tolist(), encoded):
        pieces += [out[out_offsets[previous] : out_offsets[d]], np.frombuffer(replacement, dtype=np.uint8)]
        previous = d + 1
    pieces.append(out[out_offsets[previous] :])
    spliced_offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=spliced_offsets[1:])
    return np.concatenate(pieces), spliced_offsets


SIMPLE_MAP_VERSION = 2  # bump when `_build_simple_map` changes, so a cached table is not reused


def _table_cache_path(unicode_form: str | None, lowercase: bool) -> Path:
    name = f"simple-map-v{SIMPLE_MAP_VERSION}-{unicodedata.unidata_version}-{unicode_form}-{int(lowercase)}.npy"
    return Path(__file__).resolve().parent / "__pycache__" / name


@functools.cache
def _simple_map(unicode_form: str | None, lowercase: bool) -> np.ndarray:
    """int32 per BMP code point: the one character that steps 1-2 make of it in any context, its 2-4 ASCII
    characters (values <= EXPANSION, see `_ascii_expansions`), or -1.

    A character qualifies when its normal form is one character, it neither starts nor ends a canonical
    composition with a neighbour (no combining class, not the second of a composition pair, and neither
    is its normal form or the first character of its decomposition), and lowercasing maps that to one
    character outside Greek capital sigma (whose lowercase depends on the next letter). A string of such
    characters is then normalized and lowercased character by character. Built from `unicodedata` once
    per Unicode version and settings (~0.3 s) and kept next to the module where it can be written.
    """
    path = _table_cache_path(unicode_form, lowercase)
    try:
        return np.load(path)
    except (OSError, ValueError):
        pass
    table = _build_simple_map(unicode_form, lowercase)
    try:
        path.parent.mkdir(exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as stream:
            np.save(stream, table)
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only install builds the table once per process instead
    return table


def _build_simple_map(unicode_form: str | None, lowercase: bool) -> np.ndarray:
    seconds = set()  # characters that can compose with the character before them
    for code in range(0x20000):
        decomposition = unicodedata.decomposition(chr(code))
        if decomposition and not decomposition.startswith("<"):
            parts = decomposition.split()
            if len(parts) == 2:
                seconds.add(int(parts[1], 16))
    seconds.update(range(0x1100, 0x1200))  # Hangul jamo compose algorithmically
    seconds.update(range(0xAC00, 0xD7A4))
    table = np.full(0x10000, -1, dtype=np.int32)
    for code in range(0x80, 0x10000):
        if 0xD800 <= code < 0xE000 or code in seconds:
            continue
        char = chr(code)
        formed = unicodedata.normalize(unicode_form, char) if unicode_form else char
        if len(formed) != 1 or formed == "\u03a3" or ord(formed) in seconds or unicodedata.combining(formed):
            continue
        decomposed = unicodedata.normalize("NFKD", char)
        if ord(decomposed[0]) in seconds or unicodedata.combining(decomposed[0]) or unicodedata.combining(char):
            continue
        lowered = formed.lower() if lowercase else formed
        if len(lowered) == 1 and lowered != "\u03a3" and ord(lowered) < 0x10000:
            table[code] = ord(lowered)
    for code, expansion in _ascii_expansions(unicode_form, lowercase, seconds).items():
        table[code] = EXPANSION - sum(byte << (7 * k) for k, byte in enumerate(expansion))
    return table


EXPANSION = -2  # table values <= EXPANSION: EXPANSION - (up to 4 ASCII bytes, 7 bits each, first lowest)


def _ascii_expansions(unicode_form: str | None, lowercase: bool, seconds: set[int]) -> dict[int, bytes]:
    """BMP characters whose normal form is 2-4 ASCII characters ("…" -> "...", "ﬁ" -> "fi", "™" -> "tm"), which
    then no longer send their document to Python: ASCII neither composes with a neighbour nor depends on one
    when lowercased, so the character normalizes the same in any context (if it is no combining mark and not
    the second of a composition itself). The expansion fits the kernel's room: at most 1.5x the UTF-8 bytes."""
    expansions = {}
    for code in range(0x80, 0x10000):
        char = chr(code)
        if 0xD800 <= code < 0xE000 or code in seconds or unicodedata.combining(char) or not unicode_form:
            continue
        formed = unicodedata.normalize(unicode_form, char)
        if not 2 <= len(formed) <= 4 or not formed.isascii():
            continue
        lowered = (formed.lower() if lowercase else formed).encode()
        size = len(char.encode())
        if len(lowered) <= size + size // 2 and 0 not in lowered:
            expansions[code] = lowered
    return expansions


@njit(cache=True, nogil=True)
def _is_space_code(code):
    """Python's `str.isspace()` for a code point >= 0x80 (the ASCII ones are in SPACE_CLASS)."""
    return (code == 0x85 or code == 0xA0 or code == 0x1680 or (code >= 0x2000 and code <= 0x200A) or code == 0x2028
            or code == 0x2029 or code == 0x202F or code == 0x205F or code == 0x3000)


@njit(cache=True, nogil=True)
def _table_kernel(data, offsets, simple, ascii_table, mode, collapse):
    """Each document mapped character by character -- ASCII bytes through `ascii_table`, other characters through
    `simple` -- with whitespace runs collapsed as it goes (`collapse`); a document with a character outside the
    table (or invalid UTF-8) is left empty and flagged, for Python to normalize. Without collapsing, an ASCII
    document is copied by the vectorized loop of `_copy_doc` (`mode`: LOWER or COPY) instead."""
    n = len(offsets) - 1
    total = offsets[n] - offsets[0]
    out = np.empty(total + total // 2 + 1, dtype=np.uint8)  # a character grows by at most 1.5x (the table's bound)
    out_offsets = np.zeros(n + 1, dtype=np.int64)
    failed = np.zeros(n, dtype=np.bool_)
    mapped, kinds = np.empty(128, dtype=np.uint8), np.empty(128, dtype=np.uint8)
    for b in range(128):
        kinds[b] = SPACE_CLASS[ascii_table[b]] if collapse else NOT_SPACE
        mapped[b] = np.uint8(32) if kinds[b] == ASCII_SPACE else ascii_table[b]
    pos = 0
    for d in range(n):
        write, previous, i, end, ok = pos, np.uint8(1), offsets[d], offsets[d + 1], True
        if not collapse:
            doc = data[i:end]  # a slice, so LLVM sees a plain counted loop
            bits = np.uint8(0)
            for k in range(len(doc)):  # no early exit: an OR reduction vectorizes
                bits |= doc[k]
            if bits < 0x80:
                pos = _copy_doc(data, i, end, ascii_table, mode, out, pos)
                out_offsets[d + 1] = pos
                continue
        while i < end:
            b = data[i]
            if b < 0x80:
                kind = kinds[b]
                out[write] = mapped[b]
                write += 1 - (kind & previous)
                previous = kind
                i += 1
                continue
            if b >= 0xC2 and b < 0xE0 and i + 1 < end and (data[i + 1] & 0xC0) == 0x80:
                code = ((b & 0x1F) << 6) | (data[i + 1] & 0x3F)
                i += 2
            elif (b >= 0xE0 and b < 0xF0 and i + 2 < end and (data[i + 1] & 0xC0) == 0x80
                  and (data[i + 2] & 0xC0) == 0x80):
                code = ((b & 0x0F) << 12) | ((data[i + 1] & 0x3F) << 6) | (data[i + 2] & 0x3F)
                i += 3
                if code < 0x800 or (code >= 0xD800 and code < 0xE000):  # overlong or a surrogate
                    ok = False
                    break
            else:  # 4-byte (outside the table) or invalid UTF-8
                ok = False
                break
            m = simple[code]
            if m <= EXPANSION:  # 2-4 ASCII characters
                packed = EXPANSION - m
                while packed:
                    c = packed & 0x7F
                    kind = kinds[c]
                    out[write] = mapped[c]
                    write += 1 - (kind & previous)
                    previous = kind
                    packed >>= 7
                continue
            if m < 0:
                ok = False
                break
            if m < 0x80:
                kind = kinds[m]
                out[write] = mapped[m]
                write += 1 - (kind & previous)
                previous = kind
            elif collapse and _is_space_code(m):
                out[write] = 32
                write += 1 - previous
                previous = np.uint8(1)
            elif m < 0x800:
                out[write] = 0xC0 | (m >> 6)
                out[write + 1] = 0x80 | (m & 0x3F)
                write += 2
                previous = np.uint8(0)
            else:
                out[write] = 0xE0 | (m >> 12)
                out[write + 1] = 0x80 | ((m >> 6) & 0x3F)
                out[write + 2] = 0x80 | (m & 0x3F)
                write += 3
                previous = np.uint8(0)
        if not ok:
            failed[d] = True
            write = pos
        elif previous and write > pos and collapse:  # a trailing space
            write -= 1
        pos = write
        out_offsets[d + 1] = pos
    return out[:pos], out_offsets, failed


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
    # With collapsing, one pass per doc through two 256-entry tables: the byte written and its space class.
    mapped, kinds = np.empty((2, 256), dtype=np.uint8), np.empty((2, 256), dtype=np.uint8)
    for b in range(256):
        for k in range(2):  # 0: the docs' own bytes through `table` (unless COPY), 1: replacements as they are
            t = table[b] if k == 0 and mode != COPY else np.uint8(b)
            kinds[k, b] = SPACE_CLASS[t]
            mapped[k, b] = np.uint8(32) if kinds[k, b] == ASCII_SPACE else t
    pos = 0
    for d in range(n):
        if slot[d] >= 0:
            start, end = replacement_offsets[slot[d]], replacement_offsets[slot[d] + 1]
            if collapse:
                pos = _map_collapse(replacement, start, end, mapped[1], kinds[1], out, pos)
            else:
                pos = _copy_doc(replacement, start, end, table, COPY, out, pos)
        elif collapse:
            pos = _map_collapse(data, offsets[d], offsets[d + 1], mapped[0], kinds[0], out, pos)
        else:
            pos = _copy_doc(data, offsets[d], offsets[d + 1], table, mode, out, pos)
        out_offsets[d + 1] = pos
    return out[:pos], out_offsets


@njit(cache=True, nogil=True)
def _copy_doc(src, start, end, table, mode, out, pos):
    """Copy src[start:end] to out[pos:], mapping bytes as `mode` says (no collapsing); returns the new end."""
    length = end - start
    if mode == COPY:
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
    return pos + length


@njit(cache=True, nogil=True)
def _map_collapse(src, start, end, mapped, kinds, out, pos):
    """Write src[start:end] with each byte through `mapped` and whitespace runs (`kinds`: SPACE_CLASS of the mapped
    byte) as one space, none at either end; returns the new end. One pass, and the common bytes take no branch on
    their class: a space is written wherever it falls and the end moves past it only after a non-space."""
    write, previous, i = pos, np.uint8(1), start  # previous: the last byte was a space (or nothing was written)
    while i < end:
        b = src[i]
        kind = kinds[b]
        if kind == MAYBE_SPACE:  # the lead byte of a non-ASCII space, or of another character
            width = multibyte_space_width(src, i, end)
            if width == 0:
                out[write] = b
                write += 1
                previous = np.uint8(0)
                i += 1
                continue
            out[write] = 32
            write += 1 - previous
            previous = np.uint8(1)
            i += width
            continue
        out[write] = mapped[b]
        write += 1 - (kind & previous)
        previous = kind
        i += 1
    if previous and write > pos:  # a trailing space
        write -= 1
    return write
