"""corpuslab.sources.text and the binary-content check: files in UTF-16/32 by their byte order mark decode
correctly; binary data and NUL-heavy text are skipped with a reason of their own, never trained on."""

from __future__ import annotations

import codecs
import gzip
import json
import random
from pathlib import Path

import pytest

from corpuslab.documents import Document
from corpuslab.errors import InputError
from corpuslab.sources.badinput import BadInputLog
from corpuslab.sources.local import LocalConfig, read_local
from corpuslab.sources.text import detect_encoding, split_lines

TEXT = "Grüße aus Köln\nnaïve café — ĊĠ 😀\nthird line"  # Ċ is U+010A: its UTF-16 LE bytes hold 0x0A
ENCODINGS = [("utf-16-le", codecs.BOM_UTF16_LE), ("utf-16-be", codecs.BOM_UTF16_BE),
             ("utf-32-le", codecs.BOM_UTF32_LE), ("utf-32-be", codecs.BOM_UTF32_BE), ("utf-8", codecs.BOM_UTF8)]


def read(paths: list[Path], **options: object) -> tuple[list[Document], BadInputLog]:
    log = BadInputLog()
    return list(read_local(LocalConfig(paths=[str(path) for path in paths], **options), log)), log


@pytest.mark.parametrize(("codec", "mark"), ENCODINGS)
def test_byte_order_mark_picks_the_encoding_for_every_text_format(tmp_path: Path, codec: str, mark: bytes) -> None:
    (tmp_path / "a.txt").write_bytes(mark + TEXT.encode(codec))
    docs, log = read([tmp_path / "a.txt"])
    assert [doc.text for doc in docs] == [TEXT] and log.total == 0

    docs, log = read([tmp_path / "a.txt"], txt_mode="line")
    assert [doc.text for doc in docs] == TEXT.split("\n") and log.total == 0

    records = "".join(json.dumps({"text": line}, ensure_ascii=False) + "\r\n" for line in TEXT.split("\n"))
    (tmp_path / "b.jsonl.gz").write_bytes(gzip.compress(mark + records.encode(codec)))
    docs, log = read([tmp_path / "b.jsonl.gz"])
    assert [doc.text for doc in docs] == TEXT.split("\n") and log.total == 0

    (tmp_path / "c.csv").write_bytes(mark + f'id,text\n1,"{TEXT}"\n2,plain\n'.encode(codec))
    docs, log = read([tmp_path / "c.csv"], id_field="id")
    assert [(doc.id, doc.text) for doc in docs] == [("1", TEXT), ("2", "plain")] and log.total == 0


def test_split_lines_finds_newlines_only_at_code_unit_boundaries() -> None:
    data = "aĊb\nc\n".encode("utf-16-le")  # Ċ = 0A 01: a 0x0A byte that is not a newline
    chunks = [data[i : i + 3] for i in range(0, len(data), 3)]  # newlines straddle chunk ends
    assert [line.decode("utf-16-le") for line in split_lines(chunks, "utf-16-le")] == ["aĊb\n", "c\n"]
    assert detect_encoding(codecs.BOM_UTF32_LE + b"x") == ("utf-32-le", 4)  # not mistaken for UTF-16 LE
    assert detect_encoding(b"plain") == ("utf-8", 0)


def test_invalid_utf16_is_replaced_and_counted_once_per_kept_record(tmp_path: Path) -> None:
    # A lone high surrogate (D800) in the second line; the last line is cut in the middle of a code unit.
    long = "x" * 30
    data = (codecs.BOM_UTF16_LE + "good line\n".encode("utf-16-le") + b"\x00\xd8" + f"{long}\n".encode("utf-16-le")
            + f"tail {long}".encode("utf-16-le") + b"!")
    (tmp_path / "a.txt").write_bytes(data)
    docs, log = read([tmp_path / "a.txt"], txt_mode="line")
    assert [doc.text for doc in docs] == ["good line", f"\ufffd{long}", f"tail {long}\ufffd"]
    assert dict(log.counts) == {"undecodable_replaced": 2} and log.dropped == 0
    assert "UTF-16 (little-endian)" in log.to_dict()["examples"]["undecodable_replaced"][0]["detail"]


def test_binary_file_is_skipped_not_trained_on(tmp_path: Path) -> None:
    blob = bytes(random.Random(0).randrange(256) for _ in range(150_000))
    for name in ("image.txt", "image.jsonl", "image.csv"):
        (tmp_path / name).write_bytes(blob)
    for mode in ("file", "line"):
        docs, log = read([tmp_path], txt_mode=mode)
        assert docs == []
        # One count per file, under its own reason: not "repaired", not one per line of garbage.
        assert dict(log.counts) == {"binary_content": 3} and log.dropped == 3
    with pytest.raises(InputError, match="binary_content"):
        read([tmp_path / "image.txt"], on_bad_input="stop")


def test_nul_heavy_text_is_binary_content_under_its_own_reason(tmp_path: Path) -> None:
    (tmp_path / "nul.txt").write_bytes(b"readable words\x00" * 20)  # 1 in 15 characters is NUL
    (tmp_path / "ok.txt").write_text("one NUL in a long text is tolerated " * 10 + "\x00")
    (tmp_path / "a.jsonl").write_text(json.dumps({"text": "x\u0000" * 50}) + "\n" + json.dumps({"text": "fine"}) + "\n")
    docs, log = read([tmp_path])
    assert [doc.text for doc in docs] == ["fine", "one NUL in a long text is tolerated " * 10 + "\x00"]
    assert dict(log.counts) == {"binary_content": 2}
    details = [example["detail"] for example in log.to_dict()["examples"]["binary_content"]]
    assert all("NUL" in detail for detail in details)


def test_utf16_without_byte_order_mark_is_named_as_such(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_bytes("plain English text".encode("utf-16-le"))
    docs, log = read([tmp_path / "a.txt"])
    assert docs == [] and dict(log.counts) == {"binary_content": 1}
    assert "UTF-16 text without a byte order mark" in log.to_dict()["examples"]["binary_content"][0]["detail"]


def test_mostly_replaced_text_is_binary_but_a_few_bad_bytes_are_repaired(tmp_path: Path) -> None:
    (tmp_path / "cp1252.txt").write_bytes("Ångström café naïve".encode("cp1252"))  # 4 of 19 characters bad
    (tmp_path / "latin1.txt").write_bytes("A long sentence with one price of £10 in it.".encode("latin-1"))
    docs, log = read([tmp_path])
    assert [doc.text for doc in docs] == ["A long sentence with one price of \ufffd10 in it."]
    assert dict(log.counts) == {"binary_content": 1, "non_utf8_replaced": 1}
    assert "re-encode it as UTF-8" in log.to_dict()["examples"]["binary_content"][0]["detail"]


def test_small_cut_archive_still_keeps_the_records_before_the_cut(tmp_path: Path) -> None:
    # Smaller than the 8 KiB looked at for binary content: that look must not lose the good records.
    records = "".join(json.dumps({"text": f"record {i}"}) + "\n" for i in range(40)).encode()
    blob = gzip.compress(records)
    (tmp_path / "cut.jsonl.gz").write_bytes(blob[: len(blob) - 12])
    docs, log = read([tmp_path / "cut.jsonl.gz"])
    assert len(docs) > 0 and docs[0].text == "record 0"
    assert dict(log.counts) == {"truncated_archive": 1}
