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


def test_spilled_id_hashes_are_checked_one_partition_at_a_time(tmp_path, monkeypatch):
    """With a spill folder the parent holds no hash per document: each partition of the spilled hashes is
    checked on its own, and only the documents whose hashes repeat are compared exactly."""
    from corpuslab.curation.dedup import unique_ids
    from corpuslab.curation.dedup.minhash import MinHashConfig
    from corpuslab.curation.dedup.normalize import NormalizeConfig

    cfg = MinHashConfig(num_perm=16, bands=4, rows=4)
    paths = write_shards(tmp_path, [["a", "b", "c"], ["d", "e"], ["f", "b", "g"]])
    spill = tmp_path / "spill"
    spill.mkdir()
    with pytest.raises(InputError, match=r"s2.*'b' is not unique \(also in .*s0"):
        scan.scan_corpus(paths, NormalizeConfig(), cfg, None, digests=False, spill=spill, partitions=3, ids_in_shards=True)
    assert len(list(spill.glob("ids-*.npy"))) == 3 * 3  # shards x partitions
    checked = []
    original = unique_ids.partition_repeated_hashes
    monkeypatch.setattr(unique_ids, "partition_repeated_hashes", lambda task: checked.append(task.partition) or original(task))
    distinct = write_shards(tmp_path / "distinct", [["a", "b"], ["c", "d", "e"]])
    (tmp_path / "spill2").mkdir()
    scanned = scan.scan_corpus(distinct, NormalizeConfig(), cfg, None, digests=False, spill=tmp_path / "spill2", partitions=4,
                               ids_in_shards=True)
    assert len(scanned) == 5 and checked == [0, 1, 2, 3]
    # every hash equal: one partition holds them all; its documents are compared exactly, and distinct ids pass
    monkeypatch.setattr(scan, "_id_hashes", lambda data, offsets: np.zeros(len(offsets) - 1, np.uint64))
    (tmp_path / "spill3").mkdir()
    assert len(scan.scan_corpus(distinct, NormalizeConfig(), cfg, None, digests=False, spill=tmp_path / "spill3", partitions=4,
                                ids_in_shards=True)) == 5
    suspects = unique_ids.repeated_hash_documents(tmp_path / "spill3", 4, np.array([0, 2, 5]), scan.SerialExecutor())
    assert suspects.tolist() == [0, 1, 2, 3, 4]


def test_partition_repeated_hashes_returns_global_indices(tmp_path):
    from corpuslab.curation.dedup import unique_ids

    unique_ids.spill_id_hashes(tmp_path, 0, np.array([5, 7, 9], np.uint64), 2)
    unique_ids.spill_id_hashes(tmp_path, 1, np.array([11, 7, 5, 4], np.uint64), 2)
    found = unique_ids.repeated_hash_documents(tmp_path, 2, np.array([0, 3, 7]), scan.SerialExecutor())
    assert found.tolist() == [0, 1, 4, 5]  # hash 5 at (0, 0) and (1, 2); hash 7 at (0, 1) and (1, 1)
