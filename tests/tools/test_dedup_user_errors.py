"""`corpuslab dedup` on a new user's mistakes: misspelled fields, an absent --keep field, empty inputs, non-UTF-8
text, an --out the inputs would read; each stops (or warns) naming the tool's own flag. And the ids of the
decisions join the output rows of the Arrow path."""

import json
import random

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from corpuslab.cli import main
from corpuslab.sources import hints

WORDS = [f"w{k}" for k in range(300)]


def records(n: int = 12) -> list[dict]:
    """`n` distinct texts, then copies of #1 and #4 (the second copy of #4 a different case and spacing)."""
    rng = random.Random(3)
    texts = [" ".join(rng.choice(WORDS) for _ in range(30)) for _ in range(n)]
    texts += [texts[1], texts[4], "  " + texts[4].upper()]
    return [{"body": t, "n": k} for k, t in enumerate(texts)]


def write(path, rows):
    if path.suffix == ".parquet":
        pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=5)
    else:
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def run(*args):
    return main(["dedup", *map(str, args), "--processes", "1"])


@pytest.mark.parametrize("recipe", ["exact", "near"])
@pytest.mark.parametrize("suffix", ["jsonl", "parquet"])
def test_a_misspelled_text_field_stops_naming_the_flag_and_the_fields(tmp_path, capsys, recipe, suffix):
    source = write(tmp_path / f"in.{suffix}", records())
    assert run(source, "--text-field", "bdy", "--recipe", recipe, "--out", tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert "--text-field" in err and "text_field /" not in err and "'text_field'" not in err
    assert ("columns ['body', 'n']" if suffix == "parquet" else "fields present: ['body', 'n']") in err
    assert not (tmp_path / "out").exists()  # nothing written, not even an empty --out


def test_a_misspelled_id_field_stops_naming_the_flag(tmp_path, capsys):
    source = write(tmp_path / "in.jsonl", records())
    assert run(source, "--text-field", "body", "--id-field", "idd", "--out", tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert "'--id-field'" in err and "'idd'" in err and "fields present: ['body', 'n']" in err


def test_keep_field_no_document_has_stops_and_one_some_have_runs(tmp_path, capsys):
    rows = records()
    source = write(tmp_path / "in.jsonl", rows)
    assert run(source, "--text-field", "body", "--keep", "max:nn", "--out", tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert "'--keep'" in err and "'nn'" in err and "fields seen: ['body', 'n']" in err
    assert not (tmp_path / "out").exists()
    # some documents lacking it is fine: they are never preferred
    partial = write(tmp_path / "partial.jsonl", [r if r["n"] % 2 else {"body": r["body"]} for r in rows])
    assert run(partial, "--text-field", "body", "--keep", "max:n", "--recipe", "exact", "--out", tmp_path / "out2") == 0
    stats = json.loads((tmp_path / "out2" / "stats.json").read_text())
    assert stats["missing_keep_field"] == sum(1 for r in rows if r["n"] % 2 == 0) and stats["dropped"] == 3


@pytest.mark.parametrize("recipe", ["exact", "near"])
def test_no_document_at_all_is_an_error(tmp_path, capsys, recipe):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.jsonl").write_text("")
    write(tmp_path / "in" / "b.jsonl", [{"text": "   "}, {"text": ""}])  # blank texts are not documents
    assert run(tmp_path / "in", "--recipe", recipe, "--out", tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert "no document was read" in err and "'empty_file': 1" in err and "'empty_document': 2" in err
    assert not (tmp_path / "out").exists()


def test_non_utf8_text_is_counted_with_the_encoding_flag_and_experiments_keep_their_words(tmp_path):
    good = records(6)  # 9 records, then the bad one on line 10
    raw = "".join(json.dumps({"text": r["body"]}) + "\n" for r in good).encode()
    raw += json.dumps({"text": "caf\u00e9 au lait"}, ensure_ascii=False).encode().replace(b"\xc3\xa9", b"\xe9") + b"\n"
    (tmp_path / "in.jsonl").write_bytes(raw)
    assert run(tmp_path / "in.jsonl", "--recipe", "exact", "--out", tmp_path / "out") == 0  # the Arrow reader keeps bad bytes
    stats = json.loads((tmp_path / "out" / "stats.json").read_text())
    example = stats["bad_input"]["examples"]["non_utf8_replaced"][0]
    assert example["line"] == 10 and "--encoding utf-8,cp1252" in example["detail"] and "source's encoding" not in example["detail"]
    out = (tmp_path / "out" / "deduplicated.jsonl").read_bytes()
    assert len(out.splitlines()) == 7 and "caf\ufffd".encode() in out  # written as decoded, valid UTF-8

    from corpuslab.sources.local import LocalConfig, LocalSource

    source = LocalSource(LocalConfig(paths=[str(tmp_path / "in.jsonl")]))
    assert len(list(source.documents())) == 10
    assert "set the source's encoding" in source.bad_input.examples["non_utf8_replaced"][0]["detail"]
    with hints.naming({"encoding_hint": "X"}):
        assert hints.name("encoding_hint") == "X" and hints.name("text_field") == "text_field"
    assert hints.name("encoding_hint") == hints.DEFAULT_NAMES["encoding_hint"]


def test_experiment_wrong_schema_message_keeps_config_keys(tmp_path):
    from corpuslab.errors import InputError
    from corpuslab.sources.local import LocalConfig, LocalSource

    write(tmp_path / "in.parquet", records(6))
    source = LocalSource(LocalConfig(paths=[str(tmp_path / "in.parquet")]))
    with pytest.raises(InputError, match="check text_field / id_field / category_field"):
        list(source.documents())


@pytest.mark.parametrize("inputs, out", [(["in"], "in/out"), (["in"], "in"), (["in/**/*.jsonl"], "in/sub/out"),
                                         (["in/*.jsonl"], "in"), (["in/a.jsonl"], "in"), (["in/a.jsonl"], "./in/")])
def test_out_the_inputs_would_read_is_refused(tmp_path, capsys, monkeypatch, inputs, out):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "in").mkdir()
    write(tmp_path / "in" / "a.jsonl", [{"text": r["body"]} for r in records(6)])
    assert run(*inputs, "--out", out) == 2
    assert "'--out'" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "in").iterdir()) == ["a.jsonl"]
    assert run("in/*.jsonl", "--out", "in/out") == 0  # a one-level glob does not read in/out/
    assert run("in/a.jsonl", "--out", "in/out2") == 0  # nor does a file: a sub-folder of its folder is fine


def test_out_beside_shell_expanded_files_names_out(tmp_path, capsys, monkeypatch):
    """`corpuslab dedup data/*.jsonl --out data` after the shell expanded the glob: refused naming --out, nothing written."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    for name in ("a.jsonl", "b.jsonl"):
        write(tmp_path / "data" / name, [{"text": r["body"]} for r in records(6)])
    assert run("data/a.jsonl", "data/b.jsonl", "--out", "data") == 2
    err = capsys.readouterr().err
    assert "'--out'" in err and "holding the input 'data/a.jsonl'" in err
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["a.jsonl", "b.jsonl"]


@pytest.mark.parametrize("suffix", ["jsonl", "parquet"])
def test_decision_ids_join_the_output_rows(tmp_path, suffix):
    """The Arrow path copies records verbatim (no id column): a decision's id is `<path relative to the inputs'
    common folder>:<line from 1 | row from 0>`, and the output keeps the kept records in input order."""
    rows = records()
    (tmp_path / "in" / "sub").mkdir(parents=True)
    write(tmp_path / "in" / f"a.{suffix}", rows[:7])
    write(tmp_path / "in" / "sub" / f"b.{suffix}", rows[7:])
    assert run(tmp_path / "in", "--text-field", "body", "--recipe", "exact", "--out", tmp_path / "out") == 0
    decisions = pq.read_table(tmp_path / "out" / "decisions.parquet").to_pylist()
    assert json.loads((tmp_path / "out" / "stats.json").read_text())["output_rows"] == "input_records"
    kept_ids = [d["id"] for d in decisions if d["kept"]]
    assert len(decisions) == len(rows) and len(kept_ids) == len(rows) - 3
    first = 1 if suffix == "jsonl" else 0
    by_id = {f"a.{suffix}:{k + first}": r for k, r in enumerate(rows[:7])}
    by_id.update({f"sub/b.{suffix}:{k + first}": r for k, r in enumerate(rows[7:])})
    if suffix == "jsonl":
        written = [json.loads(line) for line in (tmp_path / "out" / "deduplicated.jsonl").read_text().splitlines()]
    else:
        written = pq.read_table(tmp_path / "out" / "deduplicated.parquet").to_pylist()
    assert written == [by_id[i] for i in kept_ids]  # row k of the output is the k-th kept id
    assert all("id" not in r for r in written)


def test_documents_output_carries_the_decision_ids(tmp_path):
    """Off the Arrow path (here --keep max:n) each row has the decision's id, the text and source_file / source_line."""
    rows = records(6)
    write(tmp_path / "in.jsonl", rows)
    assert run(tmp_path / "in.jsonl", "--text-field", "body", "--keep", "max:n", "--recipe", "exact", "--out", tmp_path / "out") == 0
    assert json.loads((tmp_path / "out" / "stats.json").read_text())["output_rows"] == "documents"
    kept_ids = [d["id"] for d in pq.read_table(tmp_path / "out" / "decisions.parquet").to_pylist() if d["kept"]]
    written = [json.loads(line) for line in (tmp_path / "out" / "deduplicated.jsonl").read_text().splitlines()]
    assert [w["id"] for w in written] == kept_ids and [w["source_line"] for w in written] == [int(i.split(":")[1]) for i in kept_ids]
    assert all(w["body"] == rows[w["source_line"] - 1]["body"] and w["n"] == rows[w["source_line"] - 1]["n"] for w in written)
