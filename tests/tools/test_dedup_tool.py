"""`corpuslab dedup`: outputs, keep policies, containment, formats, URLs and bad options, on tiny generated data."""

import json
import random

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from corpuslab.cli import main

WORDS = [f"w{k}" for k in range(400)]


def random_text(rng: random.Random, words: int = 100) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words))


@pytest.fixture
def corpus():
    """40 originals of 100 words, then: an exact copy of #3, a near copy of #5 (one word changed), a 30-word
    excerpt of #7 (containment 1, Jaccard 26/96), each with a `quality` and a `date`."""
    rng = random.Random(0)
    originals = [random_text(rng) for _ in range(40)]
    words = originals[5].split()
    words[30] = "CHANGED"
    extra = [originals[3], " ".join(words), " ".join(originals[7].split()[20:50])]
    records = [{"text": t, "quality": q, "date": f"2020-01-{q % 28 + 1:02d}"} for q, t in enumerate(originals + extra)]
    return records


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def run(*args):
    return main(["dedup", *map(str, args), "--processes", "1"])


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_near_dedup_writes_docs_decisions_pairs_clusters(tmp_path, corpus, capsys):
    source = write_jsonl(tmp_path / "in.jsonl", corpus)
    assert run(source, "--out", tmp_path / "out", "--fields", "quality") == 0
    summary = capsys.readouterr().out
    assert "kept 41, dropped 2 (1 exact_duplicate, 1 near_duplicate)" in summary
    kept = read_jsonl(tmp_path / "out" / "deduplicated.jsonl")
    assert [r["quality"] for r in kept] == [*range(40), 42]  # earliest copies kept, in input order
    lines = source.read_text().splitlines(keepends=True)
    assert (tmp_path / "out" / "deduplicated.jsonl").read_text() == "".join(lines[:40] + lines[42:43])  # records as given
    decisions = pq.read_table(tmp_path / "out" / "decisions.parquet").to_pylist()
    assert len(decisions) == 43 and sum(not d["kept"] for d in decisions) == 2
    pairs = pq.read_table(tmp_path / "out" / "pairs.parquet").to_pylist()
    assert [(p["a"], p["b"], p["kind"]) for p in pairs] == [("in.jsonl:41", "in.jsonl:4", "exact"),
                                                           ("in.jsonl:6", "in.jsonl:42", "near")]
    assert pairs[1]["similarity"] == pytest.approx(91 / 101)  # one word changes 5 of 96 five-grams
    clusters = pq.read_table(tmp_path / "out" / "clusters.parquet").to_pylist()
    assert {c["cluster_id"] for c in clusters} == {"in.jsonl:4", "in.jsonl:6"} and all(c["size"] == 2 for c in clusters)
    stats = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert stats["docs_in"] == 43 and stats["dropped_by_reason"] == {"exact_duplicate": 1, "near_duplicate": 1}
    assert not list((tmp_path / "out").glob(".dedup-work-*"))  # working shards removed


@pytest.mark.parametrize("keep, kept_quality", [("earliest", {3, 5}), ("max:quality", {40, 41}),
                                                 ("min:date", {3, 5}), ("max:date", {40, 41})])
def test_keep_policy_picks_the_copy(tmp_path, corpus, keep, kept_quality):
    source = write_jsonl(tmp_path / "in.jsonl", corpus)
    assert run(source, "--out", tmp_path / "out", "--keep", keep, "--fields", "quality") == 0
    kept = {r["quality"] for r in read_jsonl(tmp_path / "out" / "deduplicated.jsonl")}
    assert {3, 5, 40, 41} & kept == kept_quality
    decisions = {d["id"]: d for d in pq.read_table(tmp_path / "out" / "decisions.parquet").to_pylist()}
    for dropped in {3, 5, 40, 41} - kept_quality:
        row = decisions[f"in.jsonl:{dropped + 1}"]
        assert not row["kept"] and row["duplicate_of"] == row["cluster_id"]


def test_containment_finds_an_excerpt_and_longest_keeps_the_source(tmp_path, corpus, capsys):
    source = write_jsonl(tmp_path / "in.jsonl", corpus)
    assert run(source, "--out", tmp_path / "jaccard") == 0
    assert "in.jsonl:43" not in {p["a"] for p in pq.read_table(tmp_path / "jaccard" / "pairs.parquet").to_pylist()}
    assert run(source, "--out", tmp_path / "out", "--similarity", "containment", "--threshold", "0.9", "--keep", "longest") == 0
    pairs = pq.read_table(tmp_path / "out" / "pairs.parquet").to_pylist()
    assert {"a": "in.jsonl:8", "b": "in.jsonl:43", "similarity": 1.0, "kind": "near"} in pairs
    decisions = {d["id"]: d for d in pq.read_table(tmp_path / "out" / "decisions.parquet").to_pylist()}
    assert decisions["in.jsonl:8"]["kept"] and decisions["in.jsonl:43"]["reason"] == "near_duplicate"
    assert "containment >= 0.9" in capsys.readouterr().out


def test_exact_recipe_and_parquet_in_parquet_out(tmp_path, corpus):
    pq.write_table(pa.Table.from_pylist(corpus), tmp_path / "in.parquet")
    assert run(tmp_path / "in.parquet", "--out", tmp_path / "out", "--recipe", "exact", "--fields", "date") == 0
    kept = pq.read_table(tmp_path / "out" / "deduplicated.parquet")
    assert kept.num_rows == 42 and "date" in kept.column_names
    stats = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert stats["dropped_by_reason"] == {"exact_duplicate": 1}


def test_fsspec_url_goes_through_the_hf_source(tmp_path, corpus, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "cache"))
    source = write_jsonl(tmp_path / "in.jsonl", corpus)
    assert run(f"file://{source}", "--out", tmp_path / "out") == 0
    assert len(read_jsonl(tmp_path / "out" / "deduplicated.jsonl")) == 41


@pytest.mark.parametrize("args, named", [(["--keep", "newest"], "--keep"), (["--threshold", "1.5"], "--threshold"),
                                         (["--recipe", "exact", "--similarity", "containment"], "--similarity"),
                                         (["--keep", "max:quality"], "--keep")])
def test_bad_options_name_the_option(tmp_path, corpus, capsys, args, named):
    records = corpus if args[-1] != "max:quality" else [*corpus[:-1], {**corpus[-1], "quality": "high"}]
    source = write_jsonl(tmp_path / "in.jsonl", records)
    assert run(source, "--out", tmp_path / "out", "--fields", "quality", *args) == 2
    assert f"'{named}'" in capsys.readouterr().err


@pytest.mark.parametrize("suffix", ["jsonl", "parquet"])
def test_arrow_path_and_source_path_decide_alike(tmp_path, corpus, suffix):
    """Plain .jsonl / .parquet go through Arrow; an encoding list sends them through the local source."""
    if suffix == "jsonl":
        source = write_jsonl(tmp_path / "in.jsonl", corpus)
    else:
        source = tmp_path / "in.parquet"
        pq.write_table(pa.Table.from_pylist(corpus), source)
    assert run(source, "--out", tmp_path / "fast", "--keep", "longest") == 0
    assert run(source, "--out", tmp_path / "slow", "--keep", "longest", "--encoding", "utf-8,cp1252", "--fields", "quality") == 0
    fast, slow = (pq.read_table(tmp_path / d / "decisions.parquet").to_pylist() for d in ("fast", "slow"))
    assert fast == slow and sum(not d["kept"] for d in fast) == 2
    stats = json.loads((tmp_path / "fast" / "stats.json").read_text())
    assert stats["runtime"]["read_s"] < stats["runtime"]["total_s"]
    if suffix == "parquet":
        assert pq.read_table(tmp_path / "fast" / "deduplicated.parquet").column_names == ["text", "quality", "date"]
        assert pq.read_table(tmp_path / "fast" / "deduplicated.parquet").num_rows == 41


def test_blank_line_falls_back_to_the_source_path(tmp_path, corpus):
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in corpus[:20]) + "\n" + "".join(json.dumps(r) + "\n" for r in corpus[20:]))
    assert run(source, "--out", tmp_path / "out") == 0
    ids = [d["id"] for d in pq.read_table(tmp_path / "out" / "decisions.parquet").to_pylist()]
    assert ids[19:21] == ["in.jsonl:20", "in.jsonl:22"]  # line numbers as the local source counts them


def test_hf_dataset_input_through_datasets(tmp_path, corpus, monkeypatch):
    """hf:NAME goes through `datasets.load_dataset`; a local dataset folder stands in for the hub."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "cache"))
    (tmp_path / "dataset").mkdir()
    write_jsonl(tmp_path / "dataset" / "train.jsonl", corpus)
    assert run(f"hf:{tmp_path / 'dataset'}", "--split", "train", "--out", tmp_path / "out") == 0
    stats = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert stats["docs_in"] == 43 and stats["dropped_by_reason"] == {"exact_duplicate": 1, "near_duplicate": 1}
