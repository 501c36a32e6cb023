"""corpuslab.sources.local and the shared bad-input policy, on tiny files generated in tmp_path."""

from __future__ import annotations

import gzip
import json
import shutil
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from corpuslab.documents import Document
from corpuslab.errors import ConfigError, InputError
from corpuslab.sources.badinput import BadInputLog
from corpuslab.sources.local import LocalConfig, read_local


def jsonl_bytes(records: list[object]) -> bytes:
    return "".join(json.dumps(record) + "\n" for record in records).encode()


def read(paths: list[Path | str], **options: object) -> tuple[list[Document], BadInputLog]:
    log = BadInputLog()
    docs = list(read_local(LocalConfig(paths=[str(path) for path in paths], **options), log))
    return docs, log


RECORDS = [{"text": f"document number {i}", "doc": 100 + i, "label": "ab"[i % 2], "url": f"u{i}"}
           for i in range(6)]


# JSON lines


def test_jsonl_ids_metadata_and_fields(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_bytes(jsonl_bytes(RECORDS))
    docs, log = read([tmp_path / "a.jsonl"])
    assert [doc.text for doc in docs] == [record["text"] for record in RECORDS]
    assert docs[0].id == "a.jsonl:1"
    assert docs[0].metadata == {"source_file": str(tmp_path / "a.jsonl"), "source_line": 1}
    assert log.total == 0

    docs, _ = read([tmp_path / "a.jsonl"], id_field="doc", category_field="label", metadata_fields=["url"])
    assert [doc.id for doc in docs][:2] == ["100", "101"]
    assert [doc.category for doc in docs][:2] == ["a", "b"]
    assert docs[1].metadata["url"] == "u1"


@pytest.mark.parametrize("suffix", [".jsonl.gz", ".jsonl.zst", ".JSONL"])
def test_compressed_and_upper_case_jsonl_read_like_plain(tmp_path: Path, suffix: str) -> None:
    data = jsonl_bytes(RECORDS)
    compress = {".jsonl.gz": gzip.compress, ".jsonl.zst": zstandard.ZstdCompressor().compress}
    (tmp_path / f"a{suffix}").write_bytes(compress.get(suffix, lambda raw: raw)(data))
    docs, log = read([tmp_path / f"a{suffix}"])
    assert [doc.text for doc in docs] == [record["text"] for record in RECORDS]
    assert log.total == 0


def test_multi_frame_zstd_is_read_to_the_end(tmp_path: Path) -> None:
    compressor = zstandard.ZstdCompressor()
    blob = compressor.compress(jsonl_bytes(RECORDS[:3])) + compressor.compress(jsonl_bytes(RECORDS[3:]))
    (tmp_path / "a.jsonl.zst").write_bytes(blob)
    docs, _ = read([tmp_path / "a.jsonl.zst"])
    assert len(docs) == len(RECORDS)


@pytest.mark.parametrize("suffix", [".gz", ".zst"])
def test_truncated_archive_keeps_records_before_the_cut(tmp_path: Path, suffix: str) -> None:
    records = [{"text": f"record {i} " + "x" * 50} for i in range(3000)]
    data = jsonl_bytes(records)
    # Several zstd frames, so that a cut in the last frame leaves complete frames before it.
    if suffix == ".gz":
        blob = gzip.compress(data)
    else:
        compressor = zstandard.ZstdCompressor()
        blob = b"".join(compressor.compress(data[i : i + 20_000]) for i in range(0, len(data), 20_000))
    path = tmp_path / f"cut.jsonl{suffix}"
    path.write_bytes(blob[: int(len(blob) * 0.8)])

    docs, log = read([path])
    assert 0 < len(docs) < len(records)
    assert [doc.text for doc in docs] == [record["text"] for record in records[: len(docs)]]
    assert log.counts["truncated_archive"] == 1
    assert log.examples["truncated_archive"][0]["file"] == str(path)

    with pytest.raises(InputError, match=r"cut\.jsonl") as raised:
        read([path], on_bad_input="stop")
    assert "truncated_archive" in str(raised.value)


def test_garbage_with_compressed_extension_is_a_corrupt_file(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl.gz").write_bytes(b"not gzip at all")
    (tmp_path / "b.jsonl").write_bytes(jsonl_bytes(RECORDS[:1]))
    docs, log = read([tmp_path])
    assert len(docs) == 1 and log.counts["corrupt_file"] == 1


def test_bad_json_lines_are_counted_or_raised(tmp_path: Path) -> None:
    lines = [b'{"text": "good one"}', b"{broken", b"[1, 2]", b'{"body": "no text"}', b'{"text": 7}',
             b"", b'{"text": "   "}', b'{"text": "good two"}']
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")

    docs, log = read([path])
    assert [doc.text for doc in docs] == ["good one", "good two"]
    assert dict(log.counts) == {"malformed_json": 1, "not_a_json_object": 1, "missing_text_field": 1,
                                "text_not_string": 1, "empty_document": 1}
    assert log.examples["malformed_json"][0] == {"file": str(path), "line": 2, "detail": log.examples[
        "malformed_json"][0]["detail"]}
    assert docs[1].id == "mixed.jsonl:8"

    with pytest.raises(InputError) as raised:
        read([path], on_bad_input="stop")
    assert raised.value.line == 2 and raised.value.path == str(path)
    assert "expected one JSON object per line" in str(raised.value)


def test_empty_and_too_long_documents_are_skipped_under_both_policies(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_bytes(jsonl_bytes([{"text": ""}, {"text": "x" * 11}, {"text": "fits"}]))
    for policy in ("skip", "stop"):
        docs, log = read([path], max_doc_chars=10, on_bad_input=policy)
        assert [doc.text for doc in docs] == ["fits"]
        assert dict(log.counts) == {"empty_document": 1, "document_too_long": 1}


def test_missing_id_or_category_value_skips_the_record(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    records = [{"text": "a", "doc": 1}, {"text": "b"}, {"text": "c", "doc": 3, "label": ""}]
    path.write_bytes(jsonl_bytes(records))
    docs, log = read([path], id_field="doc")
    assert [doc.id for doc in docs] == ["1", "3"] and log.counts["missing_id_field"] == 1
    docs, log = read([path], id_field="doc", category_field="label")
    assert docs == [] and dict(log.counts) == {"missing_id_field": 1, "missing_category_field": 2}


def test_invalid_utf8_is_replaced_and_counted_or_raised(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_bytes(b'{"text": "ok"}\n{"text": "caf\xe9 au lait"}\n')
    docs, log = read([path])
    assert docs[1].text == "caf\ufffd au lait"
    assert log.counts["non_utf8_replaced"] == 1 and log.dropped == 0

    with pytest.raises(InputError, match="UTF-8") as raised:
        read([path], on_bad_input="stop")
    assert raised.value.line == 2


def test_lone_surrogate_escapes_become_replacement_characters(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_bytes(b'{"text": "half \\ud800 pair, whole \\ud83d\\ude00"}\n')
    docs, log = read([path])
    assert docs[0].text == "half \ufffd pair, whole \U0001F600"
    docs[0].text.encode("utf-8")  # writable downstream
    assert log.counts["non_utf8_replaced"] == 1


def test_byte_order_mark_is_not_text(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_bytes(b"\xef\xbb\xbf" + jsonl_bytes(RECORDS[:1]))
    docs, log = read([tmp_path / "a.jsonl"])
    assert docs[0].text == RECORDS[0]["text"] and log.total == 0


def test_json_array_file_is_reported_once(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    path.write_text(json.dumps(RECORDS, indent=1))
    (tmp_path / "b.jsonl").write_bytes(jsonl_bytes(RECORDS[:1]))
    docs, log = read([tmp_path])
    assert len(docs) == 1 and dict(log.counts) == {"not_json_lines": 1}
    with pytest.raises(InputError, match="JSON array"):
        read([path], on_bad_input="stop")


# Files, folders and globs


def test_empty_file_is_a_warning_not_an_error(tmp_path: Path) -> None:
    (tmp_path / "empty.jsonl").write_bytes(b"")
    for policy in ("skip", "stop"):
        docs, log = read([tmp_path / "empty.jsonl"], on_bad_input=policy)
        assert docs == [] and dict(log.counts) == {"empty_file": 1} and log.dropped == 0


def test_missing_paths_always_raise(tmp_path: Path) -> None:
    (tmp_path / "notes.md").write_text("not a corpus file")
    cases = [tmp_path / "nope.jsonl", tmp_path / "*.parquet", tmp_path]
    for path in cases:
        with pytest.raises(InputError, match=str(path).replace("*", r"\*")):
            read_local(LocalConfig(paths=[str(path)]), BadInputLog())
    with pytest.raises(InputError, match="format"):
        read_local(LocalConfig(paths=[str(tmp_path / "notes.md")]), BadInputLog())


def test_folder_is_read_recursively_sorted_with_stable_relative_ids(tmp_path: Path) -> None:
    for category, names in {"sport": ["002.txt", "001.txt"], "tech": ["001.txt"]}.items():
        (tmp_path / "bbc" / category).mkdir(parents=True)
        for name in names:
            (tmp_path / "bbc" / category / name).write_text(f"{category} story {name}\n\nsecond paragraph\n")
    (tmp_path / "bbc" / ".ipynb_checkpoints").mkdir()
    (tmp_path / "bbc" / ".ipynb_checkpoints" / "x.txt").write_text("editor copy")

    docs, _ = read([tmp_path / "bbc"], category_from="parent_dir")
    assert [doc.id for doc in docs] == ["sport/001.txt", "sport/002.txt", "tech/001.txt"]
    assert [doc.category for doc in docs] == ["sport", "sport", "tech"]
    assert docs[0].text == "sport story 001.txt\n\nsecond paragraph\n"

    moved = tmp_path / "elsewhere" / "copy"
    shutil.copytree(tmp_path / "bbc", moved)
    assert [doc.id for doc in read([moved], category_from="parent_dir")[0]] == [doc.id for doc in docs]

    globbed, _ = read([tmp_path / "bbc" / "*" / "001.txt"])
    assert [doc.id for doc in globbed] == ["sport/001.txt", "tech/001.txt"]


def test_files_beside_category_folders_are_flagged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "sport").mkdir()
    (tmp_path / "sport" / "001.txt").write_text("a story")
    (tmp_path / "README.TXT").write_text("about this corpus")
    docs, _ = read([tmp_path], category_from="parent_dir")
    assert [doc.category for doc in docs] == [tmp_path.name, "sport"]
    assert "README.TXT" in caplog.text and "not in a category subfolder" in caplog.text
    docs, _ = read([tmp_path], category_from="parent_dir", exclude=["README.*"])
    assert [doc.category for doc in docs] == ["sport"]


def test_exclude_and_explicit_format_choose_files(tmp_path: Path) -> None:
    (tmp_path / "data.jsonl").write_bytes(jsonl_bytes(RECORDS[:2]))
    (tmp_path / "SOURCE.txt").write_text("where this came from")
    assert len(read([tmp_path])[0]) == 3  # auto reads both formats (and warns)
    assert len(read([tmp_path], exclude=["SOURCE.txt"])[0]) == 2
    assert len(read([tmp_path], format="jsonl")[0]) == 2
    (tmp_path / "raw.data").write_text("line one\nline two\n")
    assert len(read([tmp_path / "raw.data"], format="txt", txt_mode="line")[0]) == 2
    assert len(read([tmp_path / "*.data"], format="txt", txt_mode="line")[0]) == 2
    assert len(read([tmp_path / "*"], exclude=["SOURCE.txt"])[0]) == 2  # auto passes over raw.data


def test_txt_line_mode_skips_blank_lines(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_bytes(b"first line\r\n\n   \nsecond line\nlast, no newline")
    docs, log = read([tmp_path / "a.txt"], txt_mode="line")
    assert [(doc.id, doc.text) for doc in docs] == [("a.txt:1", "first line"), ("a.txt:4", "second line"),
                                                    ("a.txt:5", "last, no newline")]
    assert log.total == 0


def test_txt_file_mode_long_and_invalid_files(tmp_path: Path) -> None:
    (tmp_path / "long.txt").write_text("y" * 200)
    (tmp_path / "latin1.txt").write_bytes(b"price \xa310\nmore")
    docs, log = read([tmp_path], max_doc_chars=100)
    assert [doc.text for doc in docs] == ["price \ufffd10\nmore"]
    assert dict(log.counts) == {"document_too_long": 1, "non_utf8_replaced": 1}
    with pytest.raises(InputError, match=r"latin1\.txt:1"):
        read([tmp_path / "latin1.txt"], on_bad_input="stop")


def test_max_docs_caps_across_files(tmp_path: Path) -> None:
    for name in ("a.jsonl", "b.jsonl"):
        (tmp_path / name).write_bytes(jsonl_bytes(RECORDS))
    docs, _ = read([tmp_path], max_docs=8)
    assert [doc.id for doc in docs][-2:] == ["b.jsonl:1", "b.jsonl:2"]


def test_ids_stay_unique_across_folders_with_same_file_names(tmp_path: Path) -> None:
    for folder in ("x", "y"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "part.jsonl").write_bytes(jsonl_bytes(RECORDS[:1]))
    docs, _ = read([tmp_path / "x", tmp_path / "y", tmp_path / "x" / "part.jsonl"])
    assert [doc.id for doc in docs] == ["x/part.jsonl:1", "y/part.jsonl:1"]  # the repeat is read once


# CSV


def test_csv_with_header_multiline_fields_and_ragged_rows(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text('title,text,terms\nT1,"first\nspans two lines","[\'cs.LG\']"\nT2,ragged\n'
                    'T3,"x ""quoted"" y",cs.CV\n', encoding="utf-8")
    docs, log = read([path], category_field="terms", metadata_fields=["title"])
    assert [(doc.id, doc.text, doc.category) for doc in docs] == [
        ("a.csv:2", "first\nspans two lines", "['cs.LG']"), ("a.csv:5", 'x "quoted" y', "cs.CV")]
    assert docs[1].metadata["title"] == "T3"
    assert log.counts["malformed_csv_row"] == 1 and log.examples["malformed_csv_row"][0]["line"] == 4


def test_headerless_csv_with_column_names(tmp_path: Path) -> None:
    path = tmp_path / "ag.csv"
    path.write_text('"3","Title","Body text"\n"4","Other","More text"\n')
    docs, _ = read([path], csv_column_names=["label", "title", "text"], category_field="label")
    assert [(doc.text, doc.category) for doc in docs] == [("Body text", "3"), ("More text", "4")]


def test_csv_field_longer_than_the_csv_module_default(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text("text\n" + "z" * 200_000 + "\n")
    docs, log = read([path])
    assert len(docs[0].text) == 200_000 and log.total == 0


def test_wrong_schema_skips_the_file_but_raises_when_no_file_fits(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("body,label\nhello,x\n")
    with pytest.raises(InputError, match=r"no input file has the configured fields.*'body', 'label'"):
        read([tmp_path / "a.csv"])
    (tmp_path / "b.csv").write_text("text\nhello\n")
    docs, log = read([tmp_path])
    assert [doc.text for doc in docs] == ["hello"] and log.counts["wrong_schema"] == 1
    with pytest.raises(InputError, match="csv_column_names"):
        read([tmp_path], on_bad_input="stop")


# Parquet


def write_parquet(path: Path, columns: dict[str, list[object]], row_group_size: int = 2) -> None:
    pq.write_table(pa.table(columns), path, row_group_size=row_group_size)


def test_parquet_rows_ids_and_fields(tmp_path: Path) -> None:
    path = tmp_path / "a.parquet"
    write_parquet(path, {"text": ["one", None, "three", " "], "doc": [1, 2, 3, 4],
                         "label": ["a", "b", "c", "d"]})
    docs, log = read([path], id_field="doc", category_field="label")
    assert [(doc.id, doc.text, doc.category) for doc in docs] == [("1", "one", "a"), ("3", "three", "c")]
    assert docs[1].metadata["source_row"] == 2
    assert dict(log.counts) == {"missing_text_field": 1, "empty_document": 1}
    assert read([path])[0][0].id == "a.parquet:0"


def test_parquet_wrong_schema_names_the_columns(tmp_path: Path) -> None:
    write_parquet(tmp_path / "a.parquet", {"content": ["x"], "meta": ["y"]})
    write_parquet(tmp_path / "b.parquet", {"text": [1, 2]})
    with pytest.raises(InputError, match=r"a.parquet.*columns \['content', 'meta'\].*\['text'\]"):
        read([tmp_path / "a.parquet"], on_bad_input="stop")
    with pytest.raises(InputError, match="type int64; expected a string column"):
        read([tmp_path / "b.parquet"], on_bad_input="stop")


def test_corrupt_parquet_is_counted_or_raised(tmp_path: Path) -> None:
    write_parquet(tmp_path / "good.parquet", {"text": ["fine"]})
    blob = (tmp_path / "good.parquet").read_bytes()
    (tmp_path / "cut.parquet").write_bytes(blob[: len(blob) // 2])
    docs, log = read([tmp_path])
    assert [doc.text for doc in docs] == ["fine"] and log.counts["corrupt_file"] == 1
    with pytest.raises(InputError, match=r"cut\.parquet"):
        read([tmp_path / "cut.parquet"], on_bad_input="stop")


# Config validation and the log


@pytest.mark.parametrize(("options", "key"), [
    ({"paths": "data.jsonl"}, "dataset.local.paths"),
    ({"paths": []}, "dataset.local.paths"),
    ({"paths": ["nosuchprotocol://bucket/x.jsonl"]}, "dataset.local.paths"),  # URLs work; an unknown protocol does not
    ({"paths": ["x"], "format": "xml"}, "dataset.local.format"),
    ({"paths": ["x"], "on_bad_input": "ignore"}, "dataset.local.on_bad_input"),
    ({"paths": ["x"], "max_docs": 0}, "dataset.local.max_docs"),
    ({"paths": ["x"], "max_doc_chars": True}, "dataset.local.max_doc_chars"),
    ({"paths": ["x"], "category_from": "parent_dir", "category_field": "l"}, "dataset.local.category_field"),
    ({"paths": ["x"], "csv_column_names": ["a", "b"]}, "dataset.local.csv_column_names"),
])
def test_validate_names_the_key(options: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as raised:
        LocalConfig(**options).validate()
    assert raised.value.key == key


def test_bad_input_log_caps_examples_merges_and_writes_json(tmp_path: Path) -> None:
    log, other = BadInputLog(max_examples=2), BadInputLog(max_examples=2)
    for line in range(5):
        log.record("malformed_json", "a.jsonl", line, "bad")
    other.record("malformed_json", "b.jsonl", 1, "bad")
    other.record("non_utf8_replaced", "b.jsonl", 2, "replaced")
    log.merge(other)
    assert log.counts == {"malformed_json": 6, "non_utf8_replaced": 1}
    assert len(log.examples["malformed_json"]) == 2 and log.dropped == 6

    log.write_json(tmp_path / "bad_input.json")
    written = json.loads((tmp_path / "bad_input.json").read_text())
    assert written == log.summary()
    assert written["counts"] == {"malformed_json": 6, "non_utf8_replaced": 1}
    assert written["effects"]["non_utf8_replaced"].startswith("record kept")
    assert not list(tmp_path.glob("*.tmp"))


# Properties: whatever bytes a file holds, reading yields clean Documents or raises InputError.

_JSONISH = st.lists(st.one_of(
    st.binary(max_size=40),
    st.sampled_from([b'{"text": "a b"}', b'{"text": ""}', b'{"text": 5}', b"[", b'"', b"\\ud800", b"\xff",
                     b"\n", b"\r\n", b",", b'{"text": "\\udc00"}', b"text", b"\x00"]),
    st.text(max_size=20).map(lambda text: text.encode("utf-8", "surrogatepass")),
), max_size=12).map(b"".join)


def _compressed_variants(payload: bytes) -> dict[str, bytes]:
    gz = gzip.compress(payload)
    return {".jsonl": payload, ".txt": payload, ".csv": payload, ".jsonl.gz": gz[: max(1, len(gz) - 3)],
            ".csv.zst": zstandard.ZstdCompressor().compress(payload)[:-2], ".txt.gz": payload}


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payload=_JSONISH, policy=st.sampled_from(["skip", "stop"]), txt_mode=st.sampled_from(["file", "line"]))
def test_any_bytes_give_documents_or_input_error(payload: bytes, policy: str, txt_mode: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        for suffix, blob in _compressed_variants(payload).items():
            path = Path(folder) / f"random{suffix}"
            path.write_bytes(blob)
            cfg = LocalConfig(paths=[str(path)], on_bad_input=policy, txt_mode=txt_mode, max_doc_chars=50)
            try:
                docs = list(read_local(cfg, BadInputLog()))
            except InputError:
                continue
            for doc in docs:
                assert isinstance(doc.text, str) and doc.text.strip() and len(doc.text) <= 50
                doc.text.encode("utf-8")  # no lone surrogates
                assert isinstance(doc.id, str)
            assert len({doc.id for doc in docs}) == len(docs)
