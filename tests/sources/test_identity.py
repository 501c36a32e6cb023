"""corpuslab.sources.identity and each source's identity(): editing, adding or deleting an input file
changes the ingest fingerprint, and the change is named."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from corpuslab.config import DatasetConfig
from corpuslab.sources import identity as identity_module
from corpuslab.sources import open_source
from corpuslab.sources.hf import HFConfig, HFSource
from corpuslab.sources.identity import changes_since_newest, describe_changes, file_identity, identity_fingerprint
from corpuslab.sources.local import LocalConfig, LocalSource
from corpuslab.sources.synthetic import SyntheticConfig, SyntheticSource


def local_source(folder: Path, **options: object) -> LocalSource:
    return LocalSource(LocalConfig(paths=[str(folder)], **options))


def bump_mtime(path: Path) -> None:
    info = path.stat()
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns + 10**9))


def test_edit_add_delete_each_change_the_fingerprint_and_are_named(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("alpha")
    (tmp_path / "c.txt").write_text("gamma")
    before = local_source(tmp_path).identity()
    seen = {identity_fingerprint(before)}

    (tmp_path / "a.txt").write_text("alpha, edited")
    edited = local_source(tmp_path).identity()
    assert describe_changes(before, edited) == [f"changed: {tmp_path / 'a.txt'}"]

    (tmp_path / "b.txt").write_text("beta")
    added = local_source(tmp_path).identity()
    assert describe_changes(edited, added) == [f"added: {tmp_path / 'b.txt'}"]

    (tmp_path / "c.txt").unlink()
    deleted = local_source(tmp_path).identity()
    assert describe_changes(added, deleted) == [f"deleted: {tmp_path / 'c.txt'}"]

    for identity in (edited, added, deleted):
        assert identity_fingerprint(identity) not in seen
        seen.add(identity_fingerprint(identity))


def test_same_size_edit_is_seen_by_the_hash(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_text("alpha")
    before = local_source(tmp_path).identity()
    info = path.stat()
    path.write_text("alphA")
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))  # same size, same mtime: only the bytes differ
    after = local_source(tmp_path).identity()
    assert identity_fingerprint(after) != identity_fingerprint(before)
    assert describe_changes(before, after) == [f"changed: {path}"]


def test_touching_a_hashed_file_keeps_the_fingerprint(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_text("alpha")
    before = local_source(tmp_path).identity()
    bump_mtime(path)
    after = local_source(tmp_path).identity()
    assert after["files"][0]["mtime_ns"] != before["files"][0]["mtime_ns"]
    assert identity_fingerprint(after) == identity_fingerprint(before) and describe_changes(before, after) == []


def test_large_files_are_identified_by_size_and_mtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(identity_module, "HASH_MAX_BYTES", 4)
    path = tmp_path / "big.txt"
    path.write_text("more than four bytes")
    entry = file_identity(path)
    assert set(entry) == {"path", "size", "mtime_ns"}
    before = local_source(tmp_path).identity()
    bump_mtime(path)
    after = local_source(tmp_path).identity()
    assert identity_fingerprint(after) != identity_fingerprint(before)
    assert describe_changes(before, after) == [f"changed: {path}"]


def test_unreadable_entries_are_not_identity_but_become_it_when_fixed(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("alpha")
    (tmp_path / "b.txt").symlink_to("target.txt")
    dangling = local_source(tmp_path)
    assert [entry["path"] for entry in dangling.identity()["files"]] == [str(tmp_path / "a.txt")]
    assert dangling.bad_input.counts["dangling_symlink"] == 1
    (tmp_path / "target.txt").write_text("now it exists")
    fixed = local_source(tmp_path).identity()
    assert f"added: {tmp_path / 'b.txt'}" in describe_changes(dangling.identity(), fixed)


def test_changed_during_read_sees_a_file_rewritten_after_the_identity(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_text("alpha")
    source = local_source(tmp_path)
    identity = source.identity()
    assert source.changed_during_read(identity) == []
    path.write_text("alpha and more")
    assert source.changed_during_read(identity) == [f"changed: {path}"]
    path.unlink()
    assert source.changed_during_read(identity) == [f"deleted: {path}"]


def test_hf_identity_lists_local_data_files_and_pinned_commit(tmp_path: Path) -> None:
    data = tmp_path / "data.jsonl"
    data.write_text(json.dumps({"text": "a row"}) + "\n")
    identity = HFSource(HFConfig(name="json", data_files=str(tmp_path / "*.jsonl"))).identity()
    assert identity["resolved_revision"] is None and [entry["path"] for entry in identity["files"]] == [str(data)]
    data.write_text(json.dumps({"text": "another row"}) + "\n")
    changed = HFSource(HFConfig(name="json", data_files=str(tmp_path / "*.jsonl"))).identity()
    assert describe_changes(identity, changed) == [f"changed: {data}"]

    commit = "0123456789abcdef0123456789abcdef01234567"
    pinned = HFSource(HFConfig(name="someone/corpus", revision=commit)).identity()  # no Hub call needed
    assert pinned["resolved_revision"] == commit and pinned["files"] == []
    moved = HFSource(HFConfig(name="someone/corpus", revision="f" * 40)).identity()
    assert describe_changes(pinned, moved) == ["changed: resolved_revision", "changed: revision"]


def test_hf_unresolvable_revision_falls_back_to_the_configured_one(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    datasets = pytest.importorskip("datasets")
    import huggingface_hub.constants

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    cfg = HFConfig(name="someone/not-cached-anywhere", revision="main", cache_dir=str(tmp_path))
    identity = HFSource(cfg).identity()
    assert identity["revision"] == "main" and identity["resolved_revision"] is None
    assert caplog.text.count("could not resolve which commit") == 1
    assert HFSource(cfg).identity() == identity  # asked again (stage key, then ingest): no second warning
    assert caplog.text.count("could not resolve which commit") == 1


def test_synthetic_identity_is_its_config_and_seed() -> None:
    small = SyntheticConfig(num_docs=10)
    assert SyntheticSource(small, seed=1).identity()["config"]["num_docs"] == 10
    fingerprints = {SyntheticSource(small, seed=1).inputs_fingerprint(), SyntheticSource(small, seed=2).inputs_fingerprint(),
                    SyntheticSource(SyntheticConfig(num_docs=11), seed=1).inputs_fingerprint()}
    assert len(fingerprints) == 3
    assert open_source(DatasetConfig(synthetic=small), 1).inputs_fingerprint() == SyntheticSource(small, 1).inputs_fingerprint()


def test_changes_since_newest_compares_with_the_newest_folder_of_the_same_source(tmp_path: Path) -> None:
    old = {"source": "local", "files": [{"path": "a.txt", "size": 1, "mtime_ns": 1}]}
    newer = {"source": "local", "files": [{"path": "a.txt", "size": 2, "mtime_ns": 2}]}
    other = {"source": "synthetic", "config": {}}
    for name, identity in [("ingest-old", old), ("ingest-newer", newer), ("ingest-other", other)]:
        (tmp_path / name).mkdir()
        (tmp_path / name / "inputs.json").write_text(json.dumps(identity))
        os.utime(tmp_path / name / "inputs.json", ns=(1, {"ingest-old": 1, "ingest-newer": 2, "ingest-other": 3}[name]))
    (tmp_path / "ingest-broken").mkdir()
    (tmp_path / "ingest-broken" / "inputs.json").write_text("{not json")
    current = {"source": "local", "files": [{"path": "b.txt", "size": 1, "mtime_ns": 1}]}
    found = changes_since_newest(tmp_path, "ingest", current)
    assert found is not None and found.previous == "ingest-newer"
    assert found.changes == ["added: b.txt", "deleted: a.txt"]
    assert changes_since_newest(tmp_path, "ingest", {"source": "hf"}) is None
