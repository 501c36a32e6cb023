"""The LSH join partitioned by band key gives exactly the unpartitioned join's pairs and decisions."""

from __future__ import annotations

import random

import numpy as np
import pytest

from corpuslab.curation.dedup.lsh import (
    ACTIVE_FILE,
    ALL_PAIRS_MAX_BUCKET,
    auto_partitions,
    candidate_pairs,
    partitioned_candidate_pairs,
    spill_band_keys,
)
from corpuslab.curation.dedup.minhash import MinHashConfig
from corpuslab.curation.dedup.near import find_exact_and_near_duplicates, find_near_duplicates
from corpuslab.curation.dedup.normalize import NormalizeConfig
from corpuslab.executor import LocalExecutor, SerialExecutor
from tests.curation.test_dedup_engine import edit, random_text, write_shards


def planted_keys(rng: np.random.Generator, docs: int = 600, bands: int = 6) -> np.ndarray:
    """Band keys with small buckets in every band and one bucket larger than the all-pairs limit."""
    keys = rng.integers(0, 2**64 - 1, size=(docs, bands), dtype=np.uint64)
    for _ in range(150):  # documents that share a key with another in one band
        a, b, band = rng.integers(0, docs), rng.integers(0, docs), rng.integers(0, bands)
        keys[b, band] = keys[a, band]
    big = rng.choice(docs, size=ALL_PAIRS_MAX_BUCKET + 20, replace=False)
    keys[big, 2] = keys[big[0], 2]
    keys[rng.choice(docs, 40, replace=False), 4] = np.uint64(7)  # a small key value, in every partition's range
    return keys


@pytest.mark.parametrize("partitions", [1, 3, 8])
def test_partitioned_pairs_equal_the_unpartitioned_join(tmp_path, partitions):
    rng = np.random.default_rng(partitions)
    keys = planted_keys(rng)
    active = rng.random(len(keys)) > 0.1
    shard_starts = np.array([0, 100, 100, 350, 600], dtype=np.int64)  # an empty shard too
    for shard in range(len(shard_starts) - 1):
        spill_band_keys(tmp_path, shard, keys[shard_starts[shard] : shard_starts[shard + 1]], partitions)
    expected = candidate_pairs(keys, active)
    assert len(expected) > 300  # the planted buckets produce pairs, large bucket included
    got = partitioned_candidate_pairs(tmp_path, partitions, shard_starts, active, SerialExecutor())
    np.testing.assert_array_equal(got, expected)
    files = sorted(path.name for path in tmp_path.iterdir() if path.name.startswith("keys-"))
    assert len(files) == 4 * partitions  # every shard wrote every partition, empty or not
    assert (tmp_path / ACTIVE_FILE).exists()  # the tasks read the active flags there, not from their pickles


def test_each_partition_holds_a_share_of_the_keys(tmp_path):
    keys = np.random.default_rng(0).integers(0, 2**64 - 1, size=(4000, 8), dtype=np.uint64)
    spill_band_keys(tmp_path, 0, keys, 4)
    sizes = [len(np.load(tmp_path / f"keys-000000-{p:04d}.npy")) for p in range(4)]
    assert sum(sizes) == keys.size and max(sizes) < keys.size / 3


def test_auto_partitions_grow_with_the_corpus():
    assert auto_partitions(1000, 16) == 1
    assert auto_partitions(1_000_000, 16) == 8
    assert auto_partitions(10**10, 16) == 256  # capped


@pytest.fixture(scope="module")
def duplicated_corpus(tmp_path_factory):
    """300 docs in 6 shards: near-duplicate chains across shards, exact copies, and 70 copies of one text."""
    rng = random.Random(3)
    texts = [random_text(rng, 60) for _ in range(300)]
    for k in range(40):
        base = rng.randrange(300)
        texts[(base + 97 * (k + 1)) % 300] = edit(texts[base], [rng.randrange(60)], rng)
    for k in range(70):
        texts[200 + k // 3 + (k % 3) * 33] = texts[199] if k % 2 else edit(texts[199], [k % 60], rng)
    return write_shards(tmp_path_factory.mktemp("partitions"), texts, per_shard=50)


@pytest.mark.parametrize("partitions", [2, 7])
def test_decisions_identical_partitioned_or_not(duplicated_corpus, partitions):
    cfg = MinHashConfig(num_perm=64, bands=16, rows=4, threshold=0.7)
    one = find_exact_and_near_duplicates(duplicated_corpus, cfg, NormalizeConfig(), SerialExecutor(), partitions=1)
    many = find_exact_and_near_duplicates(duplicated_corpus, cfg, NormalizeConfig(), SerialExecutor(), partitions=partitions)
    assert one.stats["candidate_pairs"] > 100 and one.stats["dropped_by_reason"]["near_duplicate"] > 30
    assert many.decisions == one.decisions
    assert many.verified_pairs == one.verified_pairs
    assert many.stats["candidate_pairs"] == one.stats["candidate_pairs"]


def test_partitions_run_through_the_process_pool(duplicated_corpus):
    serial = find_near_duplicates(duplicated_corpus, MinHashConfig(), NormalizeConfig(), SerialExecutor(), partitions=1)
    with LocalExecutor(2) as executor:
        pooled = find_near_duplicates(duplicated_corpus, MinHashConfig(), NormalizeConfig(), executor, partitions=5)
    assert serial.decisions and pooled.decisions == serial.decisions
    assert pooled.verified_pairs == serial.verified_pairs


def test_band_keys_wait_in_the_given_folder_and_are_removed(duplicated_corpus, tmp_path, monkeypatch):
    import corpuslab.curation.dedup.scan as scan

    seen = []
    spill = scan.spill_band_keys
    monkeypatch.setattr(scan, "spill_band_keys", lambda folder, *rest: (seen.append(folder), spill(folder, *rest)))
    result = find_near_duplicates(duplicated_corpus, MinHashConfig(), NormalizeConfig(), SerialExecutor(), partitions=3,
                                  spill_dir=tmp_path)
    assert result.decisions and len(seen) == len(duplicated_corpus)
    assert all(str(folder).startswith(str(tmp_path)) for folder in seen)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("partitions", [1, 3, 8])
def test_partitioned_exact_links_equal_the_unpartitioned_join(tmp_path, partitions):
    from corpuslab.curation.dedup.digests import partitioned_exact_links, spill_digests
    from corpuslab.curation.dedup.exact import exact_links

    rng = np.random.default_rng(partitions)
    digests = rng.integers(0, 2**64 - 1, size=(500, 2), dtype=np.uint64)
    for _ in range(120):  # copies, some of copies
        digests[rng.integers(0, 500)] = digests[rng.integers(0, 500)]
    digests[rng.choice(500, 5, replace=False), 0] = digests[3, 0]  # equal high words, different texts
    active = rng.random(500) > 0.1
    starts = np.array([0, 130, 131, 420, 500])
    for shard in range(4):
        rows = slice(starts[shard], starts[shard + 1])
        spill_digests(tmp_path, shard, digests[rows], active[rows], partitions)
    source, target = partitioned_exact_links(tmp_path, partitions, starts, SerialExecutor())
    expected_source, expected_target = exact_links(digests, active)
    order = np.argsort(expected_source)
    assert len(source) > 50
    assert np.array_equal(source, expected_source[order]) and np.array_equal(target, expected_target[order])
