"""Bytes to text for the local text formats: the encoding a byte order mark announces, line splitting
that is correct in UTF-16 and UTF-32, and decoding that says what it repaired instead of recording it.

Files are UTF-8 unless they start with a byte order mark: Windows tools ("Unicode text" from Notepad or
Excel) write UTF-16 with one, and read as UTF-8 such a file is every other character NUL. A source's
`encoding` names another codec for files without a mark (`cp1252`), or a list tried in order per record
(`utf-8,cp1252`: a line or file that is not valid UTF-8 is decoded as cp1252, counted as
`decoded_with_fallback`). Bytes invalid in the last codec become U+FFFD; the record is kept, counted,
and the number of replaced characters is added up (`replaced_chars` in bad_input.json). A repair is
returned, not counted, so a caller counts it only for a record it keeps: a line that is dropped for
another reason (binary content, malformed JSON) is counted once, under that reason.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from corpuslab.sources import hints

UTF8 = "utf-8"
# UTF-32 LE before UTF-16 LE: its mark (FF FE 00 00) starts with the UTF-16 LE mark (FF FE).
_BYTE_ORDER_MARKS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, UTF8),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_NEWLINES = {codec: "\n".encode(codec) for _, codec in _BYTE_ORDER_MARKS}
_LABELS = {UTF8: "UTF-8", "utf-16-le": "UTF-16 (little-endian)", "utf-16-be": "UTF-16 (big-endian)",
           "utf-32-le": "UTF-32 (little-endian)", "utf-32-be": "UTF-32 (big-endian)"}
MAX_MARK_BYTES = 4


@dataclass(frozen=True)
class Repair:
    """Bytes that were not valid in the file's encoding and became U+FFFD: counted if the record is kept."""

    reason: str  # non_utf8_replaced (UTF-8) | undecodable_replaced (other codecs) | decoded_with_fallback
    line: int | None
    problem: str
    chars: int = 0  # U+FFFD characters the replacement put in


def parse_encoding(value: str | None) -> tuple[str, ...]:
    """'utf-8,cp1252' -> ('utf-8', 'cp1252') as canonical codec names; raises LookupError naming a bad one."""
    names = [part.strip() for part in (UTF8 if value is None else value).split(",") if part.strip()]
    if not names:
        raise LookupError("no codec named")
    canonical = []
    for name in names:
        codec = codecs.lookup(name).name
        canonical.append(UTF8 if codec == "utf-8" else codec)
    return tuple(canonical)


def newline_bytes(codec: str) -> bytes:
    """The bytes of a line feed in `codec` (b"\n" in every ASCII-compatible one)."""
    return _NEWLINES.get(codec) or "\n".encode(codec)


def detect_encoding(head: bytes, default: str = UTF8) -> tuple[str, int]:
    """(codec, length of the byte order mark) from a file's first bytes; `default` without a mark."""
    for mark, codec in _BYTE_ORDER_MARKS:
        if head.startswith(mark):
            return codec, len(mark)
    return default, 0


def split_lines(chunks: Iterable[bytes], codec: str) -> Iterator[bytes]:
    """Lines with their line ending. In UTF-16/32 a newline counts only at a code-unit boundary: the byte
    0x0A also occurs inside other characters (U+010A is 0A 01 in UTF-16 LE)."""
    newline = newline_bytes(codec)
    unit = len(newline)
    buffer = bytearray()
    search = 0
    for chunk in chunks:
        buffer += chunk
        start = 0
        while (end := buffer.find(newline, search)) != -1:
            if (end - start) % unit:  # inside a code unit
                search = end + 1
                continue
            yield bytes(buffer[start : end + unit])
            start = search = end + unit
        del buffer[:start]
        # A newline may straddle this chunk and the next: search again from its possible first byte.
        search = max(0, len(buffer) - unit + 1)
    # A partial last line is yielded only when the stream ended cleanly; a cut archive raised before.
    if buffer:
        yield bytes(buffer)


def decode(raw: bytes, codec: str, line: int | None, fallbacks: tuple[str, ...] = ()) -> tuple[str, Repair | None]:
    """The text, with invalid bytes replaced by U+FFFD, and the repair if there was one. Where `codec` fails,
    each of `fallbacks` is tried in turn; the last one decodes with replacement."""
    try:
        return raw.decode(codec), None
    except UnicodeDecodeError as err:
        if fallbacks:
            text, repair = decode(raw, fallbacks[0], line, fallbacks[1:])
            return text, repair or _fell_back(err, codec, fallbacks[0], line)
        text = raw.decode(codec, errors="replace")
        return text, _repair(raw, err, codec, line, chars=_replaced(text, raw, codec))


def decode_document(data: bytes, codec: str, fallbacks: tuple[str, ...] = ()) -> tuple[str, Repair | None]:
    """A whole file (mark already removed); the repair names the line of the first invalid byte."""
    try:
        return data.decode(codec), None
    except UnicodeDecodeError as err:
        line = data[: err.start].decode(codec, errors="replace").count("\n") + 1
        if fallbacks:
            text, repair = decode_document(data, fallbacks[0], fallbacks[1:])
            return text, repair or _fell_back(err, codec, fallbacks[0], line)
        text = data.decode(codec, errors="replace")
        return text, _repair(data, err, codec, line, whole_file=True, chars=_replaced(text, data, codec))


def _replaced(text: str, raw: bytes, codec: str) -> int:
    """U+FFFD characters the replacement added (those the bytes already encoded do not count)."""
    try:
        already = raw.count("\ufffd".encode(codec))
    except UnicodeEncodeError:  # the codec has no U+FFFD, so the bytes held none
        already = 0
    return text.count("\ufffd") - already


def _fell_back(err: UnicodeDecodeError, codec: str, fallback: str, line: int | None) -> Repair:
    bad = err.object[err.start : err.start + 1]
    return Repair("decoded_with_fallback", line, f"invalid {_LABELS.get(codec, codec)} byte {bad!r}; decoded as {fallback}")


def _repair(raw: bytes, err: UnicodeDecodeError, codec: str, line: int | None, whole_file: bool = False,
            chars: int = 0) -> Repair:
    label = _LABELS.get(codec, codec)
    bad = raw[err.start : err.start + 1]
    if codec == UTF8:
        where = "" if whole_file else f" at column {err.start + 1}"
        return Repair("non_utf8_replaced", line, f"invalid UTF-8 byte {bad!r}{where}; expected UTF-8 text "
                                                 f"({hints.name('encoding_hint')})", chars)
    said = "the file's byte order mark says" if codec in _LABELS else "the configured encoding is"
    return Repair("undecodable_replaced", line, f"invalid {label} data ({err.reason}); {said} {label}", chars)
