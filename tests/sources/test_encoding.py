"""`dataset.local.encoding`: a codec for files without a byte order mark, a fallback list, replaced-character counts."""

from __future__ import annotations

from pathlib import Path

import pytest

from corpuslab.errors import ConfigError, InputError
from corpuslab.sources.badinput import BadInputLog
from corpuslab.sources.local import LocalConfig, read_local

CP1252_TEXT = "It\u2019s a caf\u00e9 \u2013 na\u00efve \u20ac5, " + "plain ascii words " * 5


def read(paths, **options):
    log = BadInputLog()
    return list(read_local(LocalConfig(paths=[str(p) for p in paths], **options), log)), log


@pytest.fixture
def mixed(tmp_path: Path) -> Path:
    """One cp1252 file and one UTF-8 file, as in a folder of answers typed on different machines."""
    (tmp_path / "a.txt").write_bytes(CP1252_TEXT.encode("cp1252"))
    (tmp_path / "b.txt").write_bytes(CP1252_TEXT.encode("utf-8"))
    return tmp_path


def test_default_utf8_replaces_and_counts_characters(mixed: Path) -> None:
    docs, log = read([mixed])
    assert docs[0].text.count("\ufffd") == 5 and docs[1].text == CP1252_TEXT
    summary = log.to_dict()
    assert summary["counts"] == {"non_utf8_replaced": 1} and summary["replaced_chars"] == 5


def test_a_declared_codec_reads_the_file(mixed: Path) -> None:
    docs, log = read([mixed / "a.txt"], encoding="cp1252")
    assert docs[0].text == CP1252_TEXT and log.total == 0


def test_fallback_list_decodes_each_file_in_the_first_codec_that_fits(mixed: Path) -> None:
    docs, log = read([mixed], encoding="utf-8,cp1252")
    assert [d.text for d in docs] == [CP1252_TEXT, CP1252_TEXT]
    assert dict(log.counts) == {"decoded_with_fallback": 1} and log.replaced_chars == 0 and log.dropped == 0
    # a fallback the user asked for is not bad input, even under "stop"
    assert len(read([mixed], encoding="utf-8,cp1252", on_bad_input="stop")[0]) == 2


def test_fallback_per_line_in_jsonl(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_bytes(b'{"text": "caf\xc3\xa9"}\n{"text": "caf\xe9 \x81 and a few more plain words"}\n')
    docs, log = read([path], encoding="utf-8,cp1252")
    # 0x81 is unassigned in cp1252: the last codec replaces it, and that is counted
    assert [d.text for d in docs] == ["caf\u00e9", "caf\u00e9 \ufffd and a few more plain words"]
    assert log.counts["decoded_with_fallback"] == 0 and log.counts["undecodable_replaced"] == 1
    assert log.replaced_chars == 1
    with pytest.raises(InputError, match="cp1252"):
        read([path], encoding="utf-8,cp1252", on_bad_input="stop")


def test_byte_order_mark_still_wins(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_bytes(b"\xff\xfe" + "h\u00e9llo".encode("utf-16-le"))
    docs, _ = read([tmp_path], encoding="cp1252")
    assert docs[0].text == "h\u00e9llo"


@pytest.mark.parametrize("value", ["klingon", "utf-8,nope", ""])
def test_unknown_codec_names_the_key(tmp_path: Path, value: str) -> None:
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(ConfigError, match="dataset.local.encoding"):
        read([tmp_path], encoding=value)
