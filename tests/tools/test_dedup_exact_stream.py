"""`corpuslab dedup --recipe exact` on plain JSON Lines / Parquet: one streamed pass (no working shards) that
decides and writes exactly what the general path (the `local` source and working shards) does."""

import json
import random

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from corpuslab.tools import dedup_fast
from corpuslab.tools.dedup import DedupToolConfig, run_dedup

WORDS = ["alpha", "Beta", "gamma", "délta", "ÉPSILON", "zeta", "eta", "ﬁne"]  # accents and a ligature NFKC unfolds


def _texts(n: int = 60) -> list[str]:
    rng = random.Random(1)
    texts = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 5))) for _ in range(n)]
    texts[10] = texts[3]  # exact copy
    texts[20] = "  " + texts[5].upper().replace(" ", "\t ") + " "  # equal after NFKC + lowercase + whitespace collapse
    texts[40] = "fine " + texts[7]
    texts[41] = "ﬁne " + texts[7]  # NFKC makes the ligature "fi"
    texts[-1] = texts[0]  # the last line, written without a newline
    return texts


def _run(inputs, out, **options):
    stats = run_dedup(DedupToolConfig(inputs=[str(p) for p in inputs], out=str(out), recipe="exact", processes=1, **options), log=lambda line: None)
    return stats, pq.read_table(out / "decisions.parquet").to_pylist()


@pytest.mark.parametrize("keep", ["earliest", "longest"])
def test_jsonl_streamed_matches_the_general_path_byte_for_byte(tmp_path, monkeypatch, keep):
    texts = _texts()
    source = tmp_path / "in.jsonl"
    lines = [json.dumps({"text": t, "n": i}, ensure_ascii=False) for i, t in enumerate(texts)]
    source.write_text("\n".join(lines), encoding="utf-8")  # no newline after the last record
    monkeypatch.setattr(dedup_fast, "JSON_BLOCK", 256)  # many blocks: lines cross block edges
    calls = []
    monkeypatch.setattr(dedup_fast, "ingest_fast", lambda *a: calls.append(a))  # the working-shard path must not run
    streamed, decisions = _run([source], tmp_path / "fast", keep=keep)
    assert not calls
    general, expected = _run([source], tmp_path / "general", keep=keep, max_docs=10_000)  # max_docs: the local source
    assert decisions == expected
    assert streamed["dropped"] == general["dropped"] >= 4 and set(streamed["dropped_by_reason"]) == {"exact_duplicate"}
    kept = (tmp_path / "fast" / "deduplicated.jsonl").read_bytes()
    dropped = {int(d["id"].split(":")[1]) - 1 for d in decisions if not d["kept"]}
    assert kept.decode() == "".join(line + "\n" for i, line in enumerate(lines) if i not in dropped)
    if keep == "earliest":  # the planted copies, the unterminated last line among them
        assert {10, 20, 41, len(texts) - 1} <= dropped
    else:  # the longer spelling of #5 wins, and "fine" over its one-character ligature
        assert {5, 41} <= dropped and {20, 40} <= set(range(len(texts))) - dropped


def test_parquet_streamed_matches_the_general_path(tmp_path, monkeypatch):
    texts = _texts()
    files = []
    for k, part in enumerate((texts[:25], texts[25:])):
        files.append(tmp_path / f"part{k}.parquet")
        pq.write_table(pa.table({"text": part, "score": np.arange(len(part), dtype=np.float64)}), files[-1], row_group_size=7)
    streamed, decisions = _run(files, tmp_path / "fast")
    general, expected = _run(files, tmp_path / "general", max_docs=10_000)
    assert decisions == expected and streamed["dropped"] == general["dropped"] >= 4
    kept = pq.read_table(tmp_path / "fast" / "deduplicated.parquet")
    general_texts = pq.read_table(tmp_path / "general" / "deduplicated.parquet").column("text").to_pylist()
    assert kept.column("text").to_pylist() == general_texts  # the general path writes its own record form
    assert kept.column_names == ["text", "score"] and kept.num_rows == len(texts) - streamed["dropped"]
    kept_rows = [i for i, d in enumerate(decisions) if d["kept"]]
    assert kept.column("score").to_pylist() == [float(i if i < 25 else i - 25) for i in kept_rows]  # every column, row-aligned


def test_utf8_buffers_of_a_sliced_array():
    texts = pa.array(["abc", "", "déf", "g"]).slice(1, 3)
    data, offsets = dedup_fast.utf8_buffers(texts)
    assert offsets.tolist() == [0, 0, 4, 5] and bytes(data) == "défg".encode()


@pytest.mark.parametrize("tail", ["", "\n"])
def test_kept_unterminated_last_line_gets_its_newline(tmp_path, tail):
    lines = [json.dumps({"text": t}) for t in ("one two", "three", "one  TWO", "four five")]
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join(lines) + tail, encoding="utf-8")
    stats, decisions = _run([source], tmp_path / "out")
    assert stats["dropped"] == 1 and [d["kept"] for d in decisions] == [True, True, False, True]
    assert (tmp_path / "out" / "deduplicated.jsonl").read_text() == "".join(lines[k] + "\n" for k in (0, 1, 3))


def test_whitespace_only_line_is_not_a_plain_line(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_bytes(b'{"text": "a"}\n \t\r\n{"text": "b"}\n')
    assert not dedup_fast._plain_lines(path)
    path.write_bytes(b'{"text": "a"}\n  {"text": "b"}')
    assert dedup_fast._plain_lines(path)
    path.write_bytes(b"")
    assert dedup_fast._plain_lines(path)


def test_fast_digests_partition_like_blake2b(monkeypatch):
    from corpuslab.curation.dedup.scan import text_digests

    texts = [b"a b", b"", b"a b", b"a c", b"x" * 5000, b"x" * 5000, b"x" * 4999]
    offsets = np.concatenate([[0], np.cumsum([len(t) for t in texts])]).astype(np.int64)
    data = np.frombuffer(b"".join(texts), dtype=np.uint8)

    def groups(digests):
        return [[tuple(other) == tuple(row) for other in digests] for row in digests]

    fast = dedup_fast.fast_digests(data, offsets)
    assert fast.shape == (len(texts), 2) and fast.dtype == np.uint64
    assert groups(fast) == groups(text_digests(data, offsets)) == groups([[hash(t), 0] for t in texts])
    monkeypatch.setitem(__import__("sys").modules, "xxhash", None)  # not installed: blake2b
    assert (dedup_fast.fast_digests(data, offsets) == text_digests(data, offsets)).all()


def test_parquet_output_uncompressed_unless_a_codec_is_asked(tmp_path):
    from corpuslab.errors import ConfigError

    source = tmp_path / "in.parquet"
    pq.write_table(pa.table({"text": ["a b", "c", "A  b", "d"]}), source, compression="snappy")
    codecs = {}
    for compression in ("none", "zstd"):
        stats, _ = _run([source], tmp_path / compression, compression=compression)
        written = pq.ParquetFile(tmp_path / compression / "deduplicated.parquet")
        codecs[compression] = written.metadata.row_group(0).column(0).compression
        assert stats["dropped"] == 1 and written.read().column("text").to_pylist() == ["a b", "c", "d"]
    assert codecs == {"none": "UNCOMPRESSED", "zstd": "ZSTD"}
    with pytest.raises(ConfigError, match="--compression"):
        _run([source], tmp_path / "bad", compression="lzma")
