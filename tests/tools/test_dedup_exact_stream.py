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
    options = {"recipe": "exact", **options}
    stats = run_dedup(DedupToolConfig(inputs=[str(p) for p in inputs], out=str(out), processes=1, **options), log=lambda line: None)
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


def _parquet_inputs(tmp_path, texts, parts=3, row_group=5):
    files = []
    size = -(-len(texts) // parts)
    for k in range(parts):
        part = texts[k * size : (k + 1) * size]
        files.append(tmp_path / f"part{k}.parquet")
        pq.write_table(pa.table({"text": part, "score": np.arange(len(part), dtype=np.float64) + 100 * k,
                                 "lang": ["en"] * len(part)}), files[-1], row_group_size=row_group)
    return files


def test_one_pass_parquet_equals_two_pass(tmp_path, monkeypatch):
    """Keeping the earliest copy, Parquet is written in the scan's pass; copies repeat across batches (of 3
    rows here) and files, and the output equals the two-pass one (scan, then a second read to write)."""
    texts = _texts(90)
    texts[50] = texts[2]  # a copy in another file
    texts[70] = texts[31].upper()  # a copy in the next file, equal once normalized
    texts[33] = texts[32]  # the next row, within a file
    files = _parquet_inputs(tmp_path, texts)
    monkeypatch.setattr(dedup_fast, "ROW_GROUP", 1)  # batches of 4 rows: copies cross batch edges
    reads = []
    real_reader = dedup_fast._parquet_records
    monkeypatch.setattr(dedup_fast, "_parquet_records", lambda path, columns, *size: reads.append(columns) or real_reader(path, columns, *size))
    one, decisions = _run(files, tmp_path / "one")
    assert reads == [None] * len(files)  # one read of each file, every column
    monkeypatch.setattr(dedup_fast, "ONE_PASS_PARQUET", False)
    reads.clear()
    two, expected = _run(files, tmp_path / "two")
    assert reads == [["text"]] * len(files) + [None] * len(files)  # the text for the scan, then all columns to write
    assert decisions == expected and one["dropped"] == two["dropped"] >= 8
    assert {d["id"] for d in decisions if not d["kept"]} >= {"part1.parquet:20", "part2.parquet:10", "part1.parquet:3"}
    kept_one = pq.read_table(tmp_path / "one" / "deduplicated.parquet")
    kept_two = pq.read_table(tmp_path / "two" / "deduplicated.parquet")
    assert kept_one.schema == kept_two.schema and kept_one.to_pylist() == kept_two.to_pylist()
    kept_texts = [t for t, d in zip(texts, decisions) if d["kept"]]
    assert kept_one.column("text").to_pylist() == kept_texts and kept_one.num_rows == len(texts) - one["dropped"]
    for name in ("pairs.parquet", "clusters.parquet"):
        assert pq.read_table(tmp_path / "one" / name).equals(pq.read_table(tmp_path / "two" / name))
    assert not list((tmp_path / "one").glob(".tmp-*"))


@pytest.mark.parametrize("fmt,recipe", [("jsonl", "exact"), ("parquet", "exact"), ("jsonl", "near"), ("parquet", "near")])
def test_blank_documents_are_bad_input_on_both_paths(tmp_path, monkeypatch, fmt, recipe):
    """Empty and whitespace-only texts (Unicode spaces too) are counted as `empty_document` with their row by the
    Arrow path, as the `local` source counts them: no id, no decision, no output row; later ids keep their numbers."""
    arrow_runs = []
    real_scan, real_ingest = dedup_fast.scan_exact, dedup_fast.ingest_fast
    monkeypatch.setattr(dedup_fast, "scan_exact", lambda *a, **k: arrow_runs.append(real_scan(*a, **k)) or arrow_runs[-1])
    monkeypatch.setattr(dedup_fast, "ingest_fast", lambda *a, **k: arrow_runs.append(real_ingest(*a, **k)) or arrow_runs[-1])
    texts = _texts()[:30]
    blanks = {4: "", 9: "   \t ", 17: "\u3000\u00a0\n", 25: "\u2003"}
    for k, blank in blanks.items():
        texts[k] = blank
    texts[12] = " \u00a0" + texts[3]  # starts with spaces but is not blank: a copy of #3
    if fmt == "jsonl":
        source = tmp_path / "in.jsonl"
        source.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")
        files, first = [source], 1
    else:
        files, first = [tmp_path / "in.parquet"], 0
        pq.write_table(pa.table({"text": texts, "n": list(range(30))}), files[0], row_group_size=7)
    options = {"recipe": recipe, "ngram": 2} if recipe == "near" else {}  # near: the working-shard Arrow path
    fast, decisions = _run(files, tmp_path / "fast", **options)
    assert len(arrow_runs) == 1 and arrow_runs[0] is not None  # the Arrow path read the files
    general, expected = _run(files, tmp_path / "general", max_docs=10_000, **options)
    assert decisions == expected and len(decisions) == len(texts) - len(blanks)
    assert fast["bad_input"] == general["bad_input"]
    assert fast["bad_input"]["counts"] == {"empty_document": len(blanks)}
    assert {f"in.{fmt}:{k + first}" for k in blanks}.isdisjoint(d["id"] for d in decisions)
    assert decisions[-1]["id"] == f"in.{fmt}:{len(texts) - 1 + first}"
    copies = {d["id"]: d["duplicate_of"] for d in decisions if not d["kept"]}
    assert fast["dropped"] == general["dropped"] >= 2 and copies[f"in.{fmt}:{12 + first}"] == f"in.{fmt}:{3 + first}"
    out = tmp_path / "fast" / f"deduplicated.{fmt}"
    if fmt == "jsonl":
        kept = [json.loads(line)["text"] for line in out.read_text().splitlines()]
    else:
        kept = pq.read_table(out).column("text").to_pylist()
        assert pq.read_table(out).column("n").to_pylist() == [k for k in range(30) if k not in blanks and decisions[k - sum(b < k for b in blanks)]["kept"]]
    assert kept == [t for t, d in zip([t for k, t in enumerate(texts) if k not in blanks], decisions) if d["kept"]]


def test_blank_rows_match_python_strip():
    texts = ["", " ", "a", " a", "\u2028\u2029", "\x1c\x1d", "\u200b", "\u00a0x", "\u0085", "\ufeff"]
    array = pa.array(texts)
    data, offsets = dedup_fast.utf8_buffers(array)
    assert dedup_fast._blank_rows(data, offsets).tolist() == [k for k, t in enumerate(texts) if not t.strip()]


def test_arrow_columns_equal_pa_array():
    from corpuslab.tools import arrow_columns

    cases = [(["a", None, "", "délta"], pa.string()), ([True, None, False], pa.bool_()), ([1.5, None, -2.0], pa.float64()),
             ([3, None, 7], pa.int32()), ([2**40, 5], pa.int64()), ([], pa.string()), (np.array([True, False, True]), pa.bool_())]
    for values, kind in cases:
        built = arrow_columns.column(values, kind)
        built.validate(full=True)
        assert built.equals(pa.array(list(values), kind)), (values, kind)
    texts = pa.array(["ab", "dé", ""]).slice(1)
    assert arrow_columns.lengths(texts).tolist() == [2, 0]


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_streamed_exact_run_imports_no_pandas(tmp_path, fmt):
    """pyarrow imports pandas (~0.4 CPU-s) on the first `pa.array`; the streamed exact run builds its tables without it."""
    import subprocess
    import sys

    texts = _texts()
    if fmt == "jsonl":
        source = tmp_path / "in.jsonl"
        source.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")
    else:
        source = tmp_path / "in.parquet"
        pq.write_table(pa.table({"text": texts}), source)
    code = ("import sys; from corpuslab.tools.dedup import DedupToolConfig, run_dedup; "
            f"s = run_dedup(DedupToolConfig(inputs=[{str(source)!r}], out={str(tmp_path / 'out')!r}, recipe='exact'), log=lambda l: None); "
            "print(s['dropped'], 'pandas' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    expected, _ = _run([source], tmp_path / "in-process")
    assert done.stdout.split() == [str(expected["dropped"]), "False"] and expected["dropped"] >= 4


@pytest.mark.parametrize("one_pass", [True, False])
def test_parquet_files_with_other_columns_get_nulls(tmp_path, monkeypatch, one_pass):
    """Files whose schemas unify (a column only some have, int32 and int64) are written in the unified schema."""
    monkeypatch.setattr(dedup_fast, "ONE_PASS_PARQUET", one_pass)
    pq.write_table(pa.table({"text": ["a b", "c"], "n": pa.array([1, 2], pa.int32())}), tmp_path / "a.parquet")
    pq.write_table(pa.table({"score": [0.5, 0.25, 1.0], "text": ["A  b", "d", "e"], "n": pa.array([3, 4, 5], pa.int32())}),
                   tmp_path / "b.parquet")
    stats, _ = _run([tmp_path / "a.parquet", tmp_path / "b.parquet"], tmp_path / "out")
    kept = pq.read_table(tmp_path / "out" / "deduplicated.parquet")
    assert stats["dropped"] == 1 and kept.column_names == ["text", "n", "score"]
    assert kept.to_pylist() == [{"text": "a b", "n": 1, "score": None}, {"text": "c", "n": 2, "score": None},
                                {"text": "d", "n": 4, "score": 0.25}, {"text": "e", "n": 5, "score": 1.0}]


@pytest.mark.parametrize("keep", ["earliest", "longest"])
def test_tool_decision_table_is_the_results_decisions(tmp_path, monkeypatch, keep):
    """The streamed run writes the one decision-table layout (`DedupResult.write_every_row`, built through
    arrow_columns): a row per document, in several row groups, agreeing with the result's `Decision` objects."""
    from corpuslab.curation import decisions
    from corpuslab.curation.dedup import clusters
    from corpuslab.tools import dedup

    monkeypatch.setattr(decisions, "ROWS_PER_GROUP", 16)
    monkeypatch.setattr(clusters, "ROWS_PER_GROUP", 16)
    texts = _texts()
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")
    seen = {}
    original = dedup._write_tables

    def spy(out, result):
        seen["result"], seen["counts"] = result, original(out, result)
        return seen["counts"]

    monkeypatch.setattr(dedup, "_write_tables", spy)
    stats, rows = _run([source], tmp_path / "out", keep=keep)
    result = seen["result"]
    assert isinstance(result.ids, dedup._ArrowIds) and stats["dropped"] >= 4 and stats["dropped"] == seen["counts"]["dropped"]
    assert pq.ParquetFile(tmp_path / "out" / "decisions.parquet").metadata.num_row_groups == -(-len(texts) // 16)
    expected = {d.id: d for d in result.decisions}
    assert len(rows) == len(texts) and [row["id"] for row in rows] == list(result.ids)
    for row in rows:
        decision = expected.get(row["id"])
        if decision is None:
            assert row["kept"] and row["reason"] is None and row["cluster_id"] is None and row["similarity"] is None
            continue
        assert (row["kept"], row["reason"], row["cluster_id"], row["duplicate_of"]) == (
            decision.kept, decision.reason, decision.cluster_id, decision.duplicate_of)
        assert row["similarity"] == (None if decision.kept else decision.similarity)
