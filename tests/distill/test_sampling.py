"""The distillation arithmetic (ALGORITHMS.md sections 1-2): per-cluster quotas, top-up, SemDeDup ranking."""

import numpy as np
import pytest

from corpuslab.curation.recipes.distill import Assignment, density_quotas, sample_clusters, semantic_duplicates


def _clusters(sizes, spreads):
    members, start = [], 0
    for size in sizes:
        members.append(np.arange(start, start + size))
        start += size
    info = {"clusters": [{"cluster": i, "average_distance": s} for i, s in enumerate(spreads)]}
    return members, info


def test_uniform_quota_gives_the_remainder_to_the_first_clusters():
    members, info = _clusters([50, 50, 50, 3], [0.3] * 4)
    chosen = sample_clusters("uniform", 62, members, [0, 1, 2, 3], info, None, seed=42)
    per_cluster = [int(np.isin(chosen, m).sum()) for m in members]
    # floor(62/4) = 15, 62 mod 4 = 2 -> clusters 0 and 1 get 16; cluster 3 has only 3 documents
    assert per_cluster == [16, 16, 15, 3]
    assert list(chosen) == sorted(set(chosen.tolist()))


def test_size_and_density_quotas_follow_the_formulas():
    sizes, spreads = [100, 300, 600], [0.2, 0.5, 0.8]
    members, info = _clusters(sizes, spreads)
    chosen = sample_clusters("size", 100, members, [0, 1, 2], info, None, seed=1)
    assert [int(np.isin(chosen, m).sum()) for m in members] == [10, 30, 60]
    expected = [min(int(100 * (n / 1000) * (1 - 0.5 * rho)), n) for n, rho in zip(sizes, spreads)]
    assert density_quotas(100, np.array(sizes), np.array(spreads), 0.5).tolist() == expected == [9, 22, 36]
    chosen = sample_clusters("density", 100, members, [0, 1, 2], info, None, seed=1)
    assert [int(np.isin(chosen, m).sum()) for m in members] == expected


def test_low_density_is_topped_up_to_the_density_total_and_is_deterministic():
    members, info = _clusters([100, 300, 600], [0.2, 0.5, 0.8])
    low = sample_clusters("low_density", 100, members, [0, 1, 2], info, None, seed=7)
    density_total = int(density_quotas(100, np.array([100, 300, 600]), np.array([0.2, 0.5, 0.8]), 0.5).sum())
    assert len(low) == len(set(low.tolist())) == density_total
    assert np.array_equal(low, sample_clusters("low_density", 100, members, [0, 1, 2], info, None, seed=7))
    assert not np.array_equal(low, sample_clusters("low_density", 100, members, [0, 1, 2], info, None, seed=8))


def test_excluded_clusters_are_never_sampled():
    members, info = _clusters([40, 40, 40], [0.3] * 3)
    chosen = sample_clusters("uniform", 60, members, [0, 2], info, None, seed=0)
    assert len(chosen) == 60 and not np.isin(chosen, members[1]).any()


def test_assignment_members_group_rows_by_cluster_in_corpus_order():
    a = Assignment(["a", "b", "c", "d"], np.array([1, 0, 1, 1]), np.zeros(4), [None] * 4)
    assert [m.tolist() for m in a.members(3)] == [[1], [0, 2, 3], []]


def _unit(v):
    v = np.asarray(v, dtype=np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.mark.parametrize("block", [1, 2, 1024])
def test_semdedup_drops_later_ranked_near_copies_and_names_the_earlier_item(block):
    x = _unit([[1, 0, 0], [0.999, 0.04, 0], [0, 1, 0], [0.998, 0.0, 0.06], [0, 0, 1]])
    found = list(semantic_duplicates(x, eps=0.01, block=block))
    assert [(j, i) for j, i, _ in found] == [(1, 0), (3, 0)]
    assert all(sim > 0.99 for _, _, sim in found)
    assert abs(found[0][2] - float(x[1] @ x[0])) < 1e-6
    # a smaller eps prunes less
    assert len(list(semantic_duplicates(x, eps=1e-5, block=block))) < len(found)


def test_semdedup_is_not_transitive():
    # 1 is close to 0, 2 is close to 1 but not to 0: 2 is removed against 1 although 1 itself is removed.
    angles = np.array([0.0, 0.1, 0.2])
    x = _unit(np.stack([np.cos(angles), np.sin(angles)], axis=1))
    found = list(semantic_duplicates(x, eps=1 - np.cos(0.15), block=8))
    assert [(j, i) for j, i, _ in found] == [(1, 0), (2, 1)]
