"""A scan's ids are held as one UTF-8 buffer; repeated ids are still found, by hash then exactly."""

from __future__ import annotations

import numpy as np
import pytest

from corpuslab.curation.dedup import scan
from corpuslab.curation.dedup.scan import Ids, ShardScan, check_unique_ids
from corpuslab.errors import InputError


def shard(ids: list[str]) -> ShardScan:
    return ShardScan(Ids.from_strings(ids), np.zeros(len(ids), bool), None, None, None)


def test_ids_round_trip_through_the_buffer():
    parts = [Ids.from_strings(["a", "caf\u00e9-\u6771", ""]), Ids.from_strings([]), Ids.from_strings(["doc-\U0001f642", "z"])]
    joined = Ids.concat(parts)
    assert len(joined) == 5
    assert list(joined) == ["a", "caf\u00e9-\u6771", "", "doc-\U0001f642", "z"]
    assert joined[np.int64(3)] == "doc-\U0001f642" and joined[2] == ""


def test_a_repeated_id_is_named_with_both_shards():
    scans = [shard(["a", "b"]), shard(["c", "b"])]
    with pytest.raises(InputError, match=r"'b' is not unique \(also in s0\)"):
        check_unique_ids(["s0", "s1"], scans, Ids.concat([s.ids for s in scans]))
    distinct = [shard(["a", "b"]), shard(["c", "d"])]
    check_unique_ids(["s0", "s1"], distinct, Ids.concat([s.ids for s in distinct]))


def test_a_hash_collision_is_checked_exactly(monkeypatch):
    monkeypatch.setattr(scan, "_id_hashes", lambda data, offsets: np.zeros(len(offsets) - 1, np.uint64))
    scans = [shard(["a", "b"]), shard(["c"])]
    joined = Ids.concat([s.ids for s in scans])
    assert not joined.hashes_distinct()
    check_unique_ids(["s0", "s1"], scans, joined)  # distinct ids: no error despite equal hashes


def write_shards(folder, shards: list[list[str]]) -> list[str]:
    from corpuslab.documents import Document
    from corpuslab.shards import ShardWriter

    paths = []
    for k, ids in enumerate(shards):
        with ShardWriter(folder / f"s{k}", shard_docs=10_000) as writer:
            writer.write_all(Document(doc_id, f"text of {doc_id} " * 3, {}) for doc_id in ids)
        paths += [str(path) for path in writer.paths]
    return paths


def test_ids_left_in_the_shards_are_read_back_by_index(tmp_path):
    from corpuslab.curation.dedup.normalize import NormalizeConfig

    paths = write_shards(tmp_path, [["a", "caf\u00e9"], ["x", "y", "z"]])
    scanned = scan.scan_corpus(paths, NormalizeConfig(), None, None, ids_in_shards=True)
    assert isinstance(scanned.ids, scan.ShardIds) and len(scanned.ids) == 5
    assert scanned.ids.take(np.array([4, -1, 1, 0, 4])).to_pylist() == ["z", None, "caf\u00e9", "a", "z"]
    assert list(scanned.ids) == ["a", "caf\u00e9", "x", "y", "z"] and scanned.ids[2] == "x"
    assert scanned.digests.shape == (5, 2) and not scanned.empty.any()


def test_ids_left_in_the_shards_are_still_checked_for_repeats(tmp_path, monkeypatch):
    from corpuslab.curation.dedup.normalize import NormalizeConfig

    paths = write_shards(tmp_path, [["a", "b"], ["c", "b"]])
    with pytest.raises(InputError, match=r"'b' is not unique \(also in .*s0"):
        scan.scan_corpus(paths, NormalizeConfig(), None, None, ids_in_shards=True)
    # every hash equal: the ids are compared exactly, and distinct ones pass
    monkeypatch.setattr(scan, "_id_hashes", lambda data, offsets: np.zeros(len(offsets) - 1, np.uint64))
    distinct = write_shards(tmp_path / "distinct", [["a", "b"], ["c", "d"]])
    assert len(scan.scan_corpus(distinct, NormalizeConfig(), None, None, ids_in_shards=True)) == 4
