"""Remote input files are fingerprinted from their listing (size, checksum, time), so a second machine sharing the
stage cache gets the ingest stage from the cache without downloading a single input file."""

from __future__ import annotations

import json

import pytest

import corpuslab
from corpuslab.sources.identity import identity_fingerprint, remote_file_identity, same_file
from corpuslab.sources.local import LocalConfig, LocalSource
from tests.conftest import TINY

WORDS = "cat dog bird fish tree river stone cloud rain wind sun moon star road house field".split()


def _jsonl(part, n=60):
    lines = []
    for i in range(n):
        words = " ".join(WORDS[(i * 7 + part * 3 + j * (i % 5 + 1)) % len(WORDS)] for j in range(30))
        lines.append(json.dumps({"text": f"document {part}-{i}: {words}"}))
    return ("\n".join(lines) + "\n").encode()


@pytest.fixture
def object_gets(monkeypatch):
    """The keys of every GET the S3 client sends (downloads, reads), in order."""
    import s3fs

    gets: list[str] = []
    real = s3fs.S3FileSystem._call_s3

    async def counting(self, method, *args, **kwargs):
        if method == "get_object":
            gets.append(kwargs.get("Key"))
        return await real(self, method, *args, **kwargs)

    monkeypatch.setattr(s3fs.S3FileSystem, "_call_s3", counting)
    return gets


def _run(overrides, machine, monkeypatch, tmp_path):
    monkeypatch.setenv("CORPUSLAB_CACHE_DIR", str(tmp_path / machine))  # each machine its own local mirror
    messages: list[str] = []
    corpuslab.run(corpuslab.load_config(overrides=[*overrides, f"output_dir={tmp_path / machine / 'out'}"]), until="ingest",
                  log=messages.append)
    return messages


def test_a_second_machine_gets_ingest_from_the_cache_without_reading_the_inputs(s3_bucket, tmp_path, monkeypatch, object_gets):
    fs, bucket = s3_bucket
    for part in range(3):
        fs.pipe_file(f"{bucket}/corpus/part-{part}.jsonl", _jsonl(part))
    overrides = [*TINY, "dataset.source=local", f"dataset.local.paths=[s3://{bucket}/corpus]", "curation.decontaminate=none",
                 f"cache.url=s3://{bucket}/stage-cache"]

    first = _run(overrides, "one", monkeypatch, tmp_path)
    assert any(m.startswith("[ingest] started") for m in first)
    assert sorted(k for k in object_gets if k.startswith("corpus/")) == [f"corpus/part-{p}.jsonl" for p in range(3)]

    object_gets.clear()
    second = _run(overrides, "two", monkeypatch, tmp_path)
    assert any(m.startswith("[ingest] downloaded") for m in second) and not any("] started" in m for m in second)
    assert not [k for k in object_gets if k.startswith("corpus/")], "a cache hit on ingest read the input files"
    assert object_gets, "the cached stages themselves were downloaded"
    assert not (tmp_path / "two" / "inputs").exists()

    # An edited input changes its checksum: the fingerprint moves and the second machine ingests the new files.
    fs.pipe_file(f"{bucket}/corpus/part-1.jsonl", _jsonl(7))
    object_gets.clear()
    third = _run(overrides, "two", monkeypatch, tmp_path)
    assert any(m.startswith("[ingest] started") for m in third)
    assert sorted(k for k in object_gets if k.startswith("corpus/")) == [f"corpus/part-{p}.jsonl" for p in range(3)]


def test_remote_identity_comes_from_the_listing_and_follows_the_content(s3_bucket, object_gets):
    fs, bucket = s3_bucket
    fs.pipe_file(f"{bucket}/c/a.jsonl", _jsonl(0, 3))
    fs.pipe_file(f"{bucket}/c/notes.md", b"not read: other format")
    source = LocalSource(LocalConfig(paths=[f"s3://{bucket}/c"], format="jsonl"))
    identity = source.identity()
    (entry,) = identity["files"]
    assert entry["path"] == f"s3://{bucket}/c/a.jsonl" and entry["size"] == len(_jsonl(0, 3))
    assert entry["checksum"].startswith("ETag:") and '"' not in entry["checksum"] and entry["mtime"]
    assert not object_gets, "taking the identity downloaded a file"

    fs.pipe_file(f"{bucket}/c/a.jsonl", _jsonl(0, 3))  # the same bytes again: a new time, the same ETag
    again = LocalSource(LocalConfig(paths=[f"s3://{bucket}/c"], format="jsonl")).identity()
    assert identity_fingerprint(again) == identity_fingerprint(identity) and same_file(entry, again["files"][0])
    fs.pipe_file(f"{bucket}/c/a.jsonl", _jsonl(1, 3))
    edited = LocalSource(LocalConfig(paths=[f"s3://{bucket}/c"], format="jsonl"))
    assert identity_fingerprint(edited.identity()) != identity_fingerprint(identity)
    assert edited.changed_during_read(identity) == [f"changed: s3://{bucket}/c/a.jsonl"]


def test_local_and_remote_paths_together_each_keep_their_kind_of_identity(s3_bucket, tmp_path, object_gets):
    fs, bucket = s3_bucket
    fs.pipe_file(f"{bucket}/c/a.jsonl", _jsonl(0, 3))
    (tmp_path / "local").mkdir()
    (tmp_path / "local" / "b.jsonl").write_bytes(_jsonl(1, 3))
    source = LocalSource(LocalConfig(paths=[f"s3://{bucket}/c", str(tmp_path / "local"), f"s3://{bucket}/c/a.jsonl"]))
    remote, local = source.identity()["files"]  # a file named twice is one entry
    assert remote["path"] == f"s3://{bucket}/c/a.jsonl" and "checksum" in remote
    assert local["path"] == str(tmp_path / "local" / "b.jsonl") and "blake2b" in local
    assert not object_gets
    assert len(list(source.documents())) == 6 and source.changed_during_read(source.identity()) == []


def test_without_a_checksum_the_size_and_time_identify_a_remote_file():
    entry = remote_file_identity("memory://x/a.txt", {"name": "/x/a.txt", "size": 5, "type": "file", "created": 1700000000.5})
    assert entry == {"path": "memory://x/a.txt", "size": 5, "mtime": "1700000000.5"}
    touched = remote_file_identity("memory://x/a.txt", {"name": "/x/a.txt", "size": 5, "type": "file", "created": 1700000001.0})
    assert not same_file(entry, touched) and identity_fingerprint({"files": [entry]}) != identity_fingerprint({"files": [touched]})
    hub = remote_file_identity("hf://datasets/o/r/a.parquet", {"size": 9, "blob_id": "b1", "lfs": {"sha256": "s1", "size": 9}})
    assert hub["checksum"] == "lfs.sha256:s1"
