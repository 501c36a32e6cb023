"""`corpuslab dedup` after a new user's review: a reused --out holds one run's outputs only, an --out that is a file
or holds other files is refused, `file://` globs are guarded and listed like local ones, storage credentials and
repeated ids are reported against what the user typed, and messages name the tool's own flags."""

import json

import pyarrow.parquet as pq
import pytest

from tests.tools.test_dedup_user_errors import records, run, write

OUTPUTS = ["clusters.parquet", "decisions.parquet", "pairs.parquet", "stats.json"]


def test_a_reused_out_holds_the_new_runs_outputs_only(tmp_path, capsys):
    rows = records()
    jsonl = write(tmp_path / "corpus.jsonl", [{"text": r["body"]} for r in rows])
    parquet = write(tmp_path / "corpus.parquet", [{"text": r["body"]} for r in rows])
    out = tmp_path / "out1"
    assert run(jsonl, "--out", out) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted([*OUTPUTS, "deduplicated.jsonl"])
    assert run(parquet, "--recipe", "exact", "--out", out) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted([*OUTPUTS, "deduplicated.parquet"])
    assert json.loads((out / "stats.json").read_text())["settings"]["recipe"] == "exact"
    capsys.readouterr()
    (out / "notes.txt").write_text("mine")
    assert run(jsonl, "--out", out) == 2
    err = capsys.readouterr().err
    assert "--out" in err and "notes.txt" in err
    assert (out / "notes.txt").read_text() == "mine" and (out / "deduplicated.parquet").exists()  # nothing touched


def test_a_run_that_fails_midway_leaves_the_previous_outputs_whole(tmp_path, monkeypatch):
    from corpuslab.tools import dedup

    source = write(tmp_path / "in.jsonl", [{"text": r["body"]} for r in records()])
    out = tmp_path / "out"
    assert run(source, "--out", out) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def fail(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(dedup, "_write_kept", fail)  # the tables are written, the documents fail
    monkeypatch.setattr(dedup, "_write_kept_fast", fail)
    assert run(parquet := write(tmp_path / "in.parquet", [{"text": r["body"]} for r in records()]), "--out", out) != 0
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # no file of the failed run, none of the previous lost
    fresh = tmp_path / "fresh"
    assert run(parquet, "--out", fresh) != 0
    assert not fresh.exists()  # a folder made by a failed run is removed: nothing looks like a finished run


def test_out_that_is_a_file_names_out(tmp_path, capsys):
    source = write(tmp_path / "in.parquet", [{"text": r["body"]} for r in records()])
    (tmp_path / "afile").write_text("")
    assert run(source, "--out", tmp_path / "afile") == 2
    err = capsys.readouterr().err
    assert "'--out'" in err and "existing file" in err and "unexpected" not in err


def test_file_url_globs_are_guarded_and_listed_like_local_globs(tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    write(data / "a.jsonl", [{"text": r["body"]} for r in records()])
    assert run(f"file://{data}/*.jsonl", "--recipe", "exact", "--out", data) == 2
    err = capsys.readouterr().err
    assert "'--out'" in err and "sibling folder" in err and "sub-folder" not in err
    assert [p.name for p in data.iterdir()] == ["a.jsonl"]
    assert run(f"file://{tmp_path}/nothere/*.jsonl", "--out", tmp_path / "o") == 2
    err = capsys.readouterr().err
    assert "the glob matches no file" in err and "unexpected" not in err and "StopIteration" not in err
    assert not (tmp_path / "o").exists()


def test_s3_credentials_errors_name_the_url_and_how_to_give_them(s3_bucket, tmp_path, capsys, monkeypatch):
    import moto.settings
    import s3fs

    fs, bucket = s3_bucket
    fs.pipe(f"{bucket}/crawl/a.jsonl", b'{"text": "one two three"}\n')
    url = f"s3://{bucket}/crawl/*.jsonl"
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance-metadata probe for credentials
    s3fs.S3FileSystem.clear_instance_cache()
    assert run(url, "--out", tmp_path / "o") == 2
    err = capsys.readouterr().err
    assert url in err and "NoCredentialsError" in err and "AWS_ACCESS_KEY_ID" in err and "AWS_PROFILE" in err
    assert "unexpected" not in err
    monkeypatch.setattr(moto.settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)  # the server now checks credentials
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAWRONGWRONGWRONG0")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong")
    s3fs.S3FileSystem.clear_instance_cache()
    assert run(url, "--out", tmp_path / "o") == 2
    err = capsys.readouterr().err
    assert url in err and "AWS_ACCESS_KEY_ID" in err and "unexpected" not in err
    assert not (tmp_path / "o").exists()


def test_a_credentials_error_while_reading_names_the_url(tmp_path, capsys, monkeypatch):
    """A read refused after the listing passed (botocore's NoCredentialsError from inside `datasets`)."""
    from corpuslab.tools import dedup

    class NoCredentialsError(Exception):
        pass

    def refuse(cfg):
        raise NoCredentialsError("Unable to locate credentials")

    monkeypatch.setattr(dedup, "check_urls", lambda cfg: None)
    monkeypatch.setattr(dedup, "open_input", refuse)
    assert run("s3://bucket/crawl/a.jsonl", "--out", tmp_path / "o") == 2
    err = capsys.readouterr().err
    assert "s3://bucket/crawl/a.jsonl" in err and "refused to read" in err and "AWS_PROFILE" in err and "unexpected" not in err


@pytest.mark.parametrize("recipe", ["exact", "near"])
def test_a_repeated_id_names_the_users_file_and_lines(tmp_path, capsys, recipe):
    rows = [{"id": f"d{k}", "text": r["body"]} for k, r in enumerate(records(6))]
    rows[4]["id"] = "d1"
    source = write(tmp_path / "in.jsonl", rows)
    assert run(source, "--id-field", "id", "--recipe", recipe, "--out", tmp_path / "o") == 2
    err = capsys.readouterr().err
    assert f"{source}:5" in err and f"also at {source}:2" in err and "'d1' is not unique" in err
    assert ".dedup-work" not in err and "part-00000" not in err
    parquet = write(tmp_path / "in.parquet", rows)
    assert run(parquet, "--id-field", "id", "--recipe", recipe, "--out", tmp_path / "o") == 2
    assert f"{parquet} row 4: --id-field value 'd1' is not unique (also at {parquet} row 1)" in capsys.readouterr().err


def test_messages_name_the_tools_flags(tmp_path, capsys):
    source = write(tmp_path / "in.jsonl", [{"text": r["body"]} for r in records()])
    for args, flag in ((["--rows", "3"], "'--bands'"), (["--bands", "7", "--rows", "3"], "'--bands'"),
                       (["--num-perm", "0"], "'--num-perm'")):
        assert run(source, *args, "--out", tmp_path / "o") == 2
        err = capsys.readouterr().err
        assert flag in err and "minhash" not in err, err
    assert run(source, "--recipe", "exact", "--threshold", "0.5", "--out", tmp_path / "o") == 2
    assert "'--threshold'" in capsys.readouterr().err
    (tmp_path / "t.csv").write_text("a,b\n1,2\n", encoding="utf-8")
    assert run(tmp_path / "t.csv", "--out", tmp_path / "o") == 2
    err = capsys.readouterr().err
    assert "header row" in err and "csv_column_names" not in err
    assert not (tmp_path / "o").exists()
    assert run(source, "--recipe", "near", "--threshold", "0.5", "--out", tmp_path / "o") == 0
    assert json.loads((tmp_path / "o" / "stats.json").read_text())["settings"]["threshold"] == 0.5
    assert pq.read_table(tmp_path / "o" / "decisions.parquet").num_rows == len(records())
