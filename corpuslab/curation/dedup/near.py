"""Near-duplicate detection: MinHash + LSH to find candidates, true Jaccard to decide.

    scan (parallel, per shard)  ->  LSH bucket join        ->  verify (parallel re-read of candidates only)
    ids; band keys spilled          (parallel, per partition    true Jaccard of shingle sets >= threshold
    to disk by key partition        of band keys) -> pairs      ->  clusters of verified pairs (clusters.py)

Neither the band keys, the exact-text digests (`digests.py`), the id hashes of the uniqueness check
(`unique_ids.py`) nor the shingle sets are ever held whole by one process: the parent holds per document an
`active` byte, plus the candidate pairs and arrays over the clustered documents; ids are read back from the
shards for those alone (`scan.ShardIds`).

LSH only proposes: every candidate pair is verified by the exact Jaccard of the two documents' shingle
sets, recomputed from the text of the candidate documents alone in a second pass, so a cluster never
grows through an unverified collision and precision is 1 by construction. Recall is the LSH's:
P(candidate | Jaccard s) = 1 - (1 - s^r)^b (see `MinHashConfig.bands_rows`).

The "near" recipe (exact dedup, then near dedup of the survivors) is `find_exact_and_near_duplicates`,
which does both in one scan.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from corpuslab.curation.dedup.clusters import EXACT, NEAR, DedupResult, Links, build_result
from corpuslab.curation.dedup.digests import partitioned_exact_links
from corpuslab.curation.dedup.exact import corpus_stats
from corpuslab.curation.dedup.lsh import BandIndex, auto_partitions, partitioned_candidate_pairs
from corpuslab.curation.dedup.minhash import (
    MinHashConfig,
    band_keys,
    batch_shingle_sets,
    batch_signatures,
    jaccard_sorted,
    pair_jaccards_between,
)
from corpuslab.curation.dedup.normalize import NormalizeConfig
from corpuslab.curation.dedup.scan import CorpusScan, normalized_batch, scan_corpus, text_digests
from corpuslab.curation.dedup.textbatch import TextBatch, gather, iter_batches, open_shard, release_memory
from corpuslab.executor import Executor, SerialExecutor

ShardPath = str | Path


@dataclass(frozen=True)
class Similarity:
    """How a candidate pair is verified: `jaccard` |A & B| / |A | B| or `containment` |A & B| / |A| with A
    the smaller shingle set ("A is copied inside B"), at `threshold`.

    LSH finds pairs by their Jaccard, so for containment the banding (`MinHashConfig.threshold`, or its
    bands and rows) must be set low enough to propose them: a short text inside one k times longer has
    Jaccard <= 1/k however much of it was copied.

    Containment pairs are directed, so they are decided as `clusters.containment_decisions` says: the
    larger document first, a document dropped only if it lies (>= threshold) inside one already kept, and
    `duplicate_of` always a kept document. The keep policy (`priority`) then only breaks ties between
    equal shingle-set sizes and picks which of several exact copies is kept; otherwise the containing
    document is kept.
    """

    measure: str = "jaccard"
    threshold: float = 0.85


def find_near_duplicates(
    shards: Sequence[ShardPath],
    cfg: MinHashConfig = MinHashConfig(),
    norm: NormalizeConfig = NormalizeConfig(),
    executor: Executor | None = None,
    exclude_ids: set[str] | frozenset[str] = frozenset(),
    partitions: int | None = None,
    spill_dir: str | Path | None = None,
) -> DedupResult:
    """Clusters of verified near duplicates; documents in `exclude_ids` are neither indexed nor reported.

    `partitions`: how many parts the LSH join is split into (None: about 2M band keys each). The band keys
    wait for the join in a temporary folder under `spill_dir` (default: the system's temporary folder),
    which every worker of `executor` must be able to read and write: shared storage on a multi-node cluster.
    """
    started = time.perf_counter()
    _validate(cfg, norm)
    with tempfile.TemporaryDirectory(prefix="corpuslab-lsh-", dir=spill_dir) as spill:
        partitions = partitions or _auto_partitions(shards, cfg)
        scan = scan_corpus(shards, norm, cfg, executor, digests=False, spill=spill, partitions=partitions, ids_in_shards=True)
        excluded = np.zeros(len(scan), dtype=bool)
        if exclude_ids:
            excluded = np.fromiter((doc_id in exclude_ids for doc_id in scan.ids), dtype=bool, count=len(scan))
        stats = {"method": "near", "docs_excluded": int(excluded.sum())}
        active = ~scan.empty & ~excluded
        return _cluster_near(scan, active, Links(), cfg, norm, executor, stats, started, join=(spill, partitions))


def find_exact_and_near_duplicates(
    shards: Sequence[ShardPath],
    cfg: MinHashConfig = MinHashConfig(),
    norm: NormalizeConfig = NormalizeConfig(),
    executor: Executor | None = None,
    priority: np.ndarray | None = None,
    similarity: Similarity | None = None,
    partitions: int | None = None,
    spill_dir: str | Path | None = None,
) -> DedupResult:
    """The "near" recipe: exact duplicates first, then near duplicates among the survivors, one scan.

    With Jaccard, exact copies and verified near pairs form clusters together, so each cluster keeps its
    earliest document (or its lowest `priority`, see `build_result`); copies are dropped as exact_duplicate,
    the rest as near_duplicate. `similarity` verifies candidates by another measure or threshold than the
    banding's `cfg.threshold`; with containment the larger document is kept and `priority` only breaks
    ties (see `Similarity`). `partitions` and `spill_dir` as in `find_near_duplicates`.
    """
    started = time.perf_counter()
    _validate(cfg, norm)
    with tempfile.TemporaryDirectory(prefix="corpuslab-lsh-", dir=spill_dir) as spill:
        partitions = partitions or _auto_partitions(shards, cfg)
        scan = scan_corpus(shards, norm, cfg, executor, digests=True, spill=spill, partitions=partitions, ids_in_shards=True)
        source, target = partitioned_exact_links(spill, partitions, scan.shard_starts, executor or SerialExecutor())
        survivors = ~scan.empty
        survivors[source] = False
        stats = {"method": "exact+near", "docs_excluded": 0}
        links = Links(exact_source=source, exact_target=target)
        return _cluster_near(scan, survivors, links, cfg, norm, executor, stats, started, priority, similarity,
                             join=(spill, partitions))


def _auto_partitions(shards: Sequence[ShardPath], cfg: MinHashConfig) -> int:
    """Partitions of the LSH join for these shards, from their row counts (Parquet metadata only)."""
    rows = sum(open_shard(path).metadata.num_rows for path in shards)
    return auto_partitions(rows, cfg.bands_rows()[0])


def _validate(cfg: MinHashConfig, norm: NormalizeConfig) -> None:
    cfg.validate()
    norm.validate()


def _cluster_near(
    scan: CorpusScan,
    active: np.ndarray,
    links: Links,
    cfg: MinHashConfig,
    norm: NormalizeConfig,
    executor: Executor | None,
    stats: dict,
    started: float,
    priority: np.ndarray | None = None,
    similarity: Similarity | None = None,
    *,
    join: tuple[str, int],
) -> DedupResult:
    """Candidates among `active` documents (band keys spilled to `join` = (folder, partitions) by the scan),
    verification, then clusters together with `links`."""
    similarity = similarity or Similarity("jaccard", cfg.threshold)
    clock = time.perf_counter()
    release_memory()  # what receiving the scan's and the exact join's results left behind
    pairs = partitioned_candidate_pairs(*join, scan.shard_starts, active, executor or SerialExecutor())
    release_memory()
    candidates_s = time.perf_counter() - clock
    containment = similarity.measure == "containment"
    if containment:
        jaccards, sizes = verify_pairs(scan, pairs, norm, cfg, executor, containment, with_sizes=True)
    else:
        jaccards = verify_pairs(scan, pairs, norm, cfg, executor)
    verified = jaccards >= similarity.threshold
    links.near_left, links.near_right, links.near_jaccard = (
        pairs[verified, 0],
        pairs[verified, 1],
        jaccards[verified],
    )
    if containment:
        links.near_left_size, links.near_right_size = sizes[verified, 0], sizes[verified, 1]
    release_memory()
    verify_s = time.perf_counter() - clock - candidates_s
    stats = {**stats, **_near_stats(scan, cfg, norm, len(pairs), int(verified.sum()))}
    if similarity.measure != "jaccard" or similarity.threshold != cfg.threshold:
        stats.update(similarity=similarity.measure, threshold=similarity.threshold, candidate_threshold=cfg.threshold)
    result = build_result(scan.ids, links, stats, priority, containment=containment)
    release_memory()  # the clustering's temporaries
    result.stats["runtime"] = {
        "scan_s": scan.seconds,
        "candidates_s": candidates_s,
        "verify_s": verify_s,
        "cluster_s": time.perf_counter() - clock - candidates_s - verify_s,
        "total_s": time.perf_counter() - started,
    }
    return result


def _near_stats(
    scan: CorpusScan, cfg: MinHashConfig, norm: NormalizeConfig, candidates: int, verified: int
) -> dict:
    bands, rows = cfg.bands_rows()
    return {
        "minhash": str(cfg),
        "normalize": str(norm),
        "threshold": cfg.threshold,
        "bands": bands,
        "rows": rows,
        **corpus_stats(scan),
        "candidate_pairs": candidates,
        "candidates_rejected_by_verification": candidates - verified,
        "verified_pairs": verified,
    }


# --- verification -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShingleSetTask:
    path: str
    rows: np.ndarray  # sorted row numbers within the shard
    norm: NormalizeConfig
    minhash: MinHashConfig


def shingle_set_task(task: ShingleSetTask) -> tuple[np.ndarray, np.ndarray]:
    """Executor task: sorted distinct shingle hashes of the given rows of one shard, in row order."""
    parts = []
    for batch in iter_batches(task.path, rows=task.rows, with_ids=False):
        data, offsets = normalized_batch(batch, task.norm, task.minhash, digests=False)
        parts.append(batch_shingle_sets(data, offsets, task.minhash))
    return join_sets(parts)


def join_sets(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate (values, offsets) set collections, shifting the offsets."""
    values = np.concatenate([v for v, _ in parts]) if parts else np.empty(0, np.uint64)
    ends = np.cumsum([v.size for v, _ in parts])
    offsets = [np.zeros(1, np.int64)] + [
        o[1:] + (ends[k] - parts[k][0].size) for k, (_, o) in enumerate(parts)
    ]
    return values, np.concatenate(offsets)


def shingle_sets_for(
    scan: CorpusScan, docs: np.ndarray, norm: NormalizeConfig, cfg: MinHashConfig, executor: Executor | None
) -> tuple[np.ndarray, np.ndarray]:
    """Shingle sets of the sorted global document indices `docs`, re-read shard by shard.

    Shards' sets are copied into one array sized from the scan's shingle counts as they arrive, so
    the sets are held once, not once per shard and again concatenated.
    """
    shard, row = scan.locate(docs)
    tasks = [ShingleSetTask(scan.paths[s], row[shard == s], norm, cfg) for s in np.unique(shard)]
    values = np.empty(int(scan.shingle_counts[docs].sum()), dtype=np.uint64)
    offsets = np.zeros(len(docs) + 1, dtype=np.int64)
    done = 0
    for shard_values, shard_offsets in (executor or SerialExecutor()).map(shingle_set_task, tasks):
        start = offsets[done]
        values[start : start + len(shard_values)] = shard_values
        offsets[done + 1 : done + len(shard_offsets)] = shard_offsets[1:] + start
        done += len(shard_offsets) - 1
    return values[: offsets[-1]], offsets


def verify_pairs(
    scan: CorpusScan,
    pairs: np.ndarray,
    norm: NormalizeConfig,
    cfg: MinHashConfig,
    executor: Executor | None,
    containment: bool = False,
    with_sizes: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """True Jaccard (or containment) of every candidate pair (global indices); `with_sizes` adds an (n, 2)
    int32 array of the two documents' shingle-set sizes (which side of a containment pair is the smaller).

    The candidate documents' shingle sets (~8 bytes per shingle) would add up to a sizeable share of
    the corpus, so they go to a temporary folder shard by shard as the workers return them, and the
    pairs are then verified one (shard, shard) block at a time from memory-mapped files: the process
    holds the pairs and at most two shards' sets.
    """
    if len(pairs) == 0:
        empty = np.empty(0, dtype=np.float64)
        return (empty, np.empty((0, 2), dtype=np.int32)) if with_sizes else empty
    docs = np.unique(pairs)  # sorted, so each shard's candidates are contiguous
    doc_shard, row = scan.locate(docs)
    with tempfile.TemporaryDirectory(prefix="corpuslab-verify-") as spill:
        shards = np.unique(doc_shard)
        tasks = [ShingleSetTask(scan.paths[s], row[doc_shard == s], norm, cfg) for s in shards]
        for shard, sets in zip(shards.tolist(), (executor or SerialExecutor()).map(shingle_set_task, tasks)):
            _save_sets(Path(spill), shard, sets)
            del sets
            release_memory()  # the received copy, before the next shard's arrives
        if not with_sizes:
            return _verify_blocks(Path(spill), docs, doc_shard, pairs, containment)
        sizes = np.empty(pairs.shape, dtype=np.int32)  # shingle counts fit; half the bytes per candidate
        return _verify_blocks(Path(spill), docs, doc_shard, pairs, containment, sizes), sizes


def _verify_blocks(
    spill: Path, docs: np.ndarray, doc_shard: np.ndarray, pairs: np.ndarray, containment: bool = False,
    sizes: np.ndarray | None = None,
) -> np.ndarray:
    """Jaccard of the pairs, one (left shard, right shard) block at a time from the spilled sets; `sizes`
    (n, 2), when given, receives the two sets' sizes."""
    left, right = np.searchsorted(docs, pairs[:, 0]), np.searchsorted(docs, pairs[:, 1])
    shard_first_doc = {int(s): int(i) for s, i in zip(*np.unique(doc_shard, return_index=True))}
    left_shard, right_shard = doc_shard[left], doc_shard[right]
    order = np.lexsort((right_shard, left_shard))
    bounds = np.flatnonzero(np.diff(left_shard[order]) | np.diff(right_shard[order])) + 1
    jaccards = np.empty(len(pairs), dtype=np.float64)
    for block in np.split(order, bounds):
        a, b = int(left_shard[block[0]]), int(right_shard[block[0]])
        values_a, offsets_a = _open_sets(spill, a)
        values_b, offsets_b = (values_a, offsets_a) if a == b else _open_sets(spill, b)
        jaccards[block] = pair_jaccards_between(
            values_a,
            offsets_a,
            left[block] - shard_first_doc[a],
            values_b,
            offsets_b,
            right[block] - shard_first_doc[b],
            containment,
        )
        if sizes is not None:
            sizes[block, 0] = np.diff(offsets_a)[left[block] - shard_first_doc[a]]
            sizes[block, 1] = np.diff(offsets_b)[right[block] - shard_first_doc[b]]
    return jaccards


def _save_sets(folder: Path, shard: int, sets: tuple[np.ndarray, np.ndarray]) -> None:
    np.save(folder / f"values-{shard}.npy", sets[0])
    np.save(folder / f"offsets-{shard}.npy", sets[1])


def _open_sets(folder: Path, shard: int) -> tuple[np.ndarray, np.ndarray]:
    values = np.load(folder / f"values-{shard}.npy", mmap_mode="r")
    return np.asarray(values), np.load(folder / f"offsets-{shard}.npy")


# --- cross-dataset (decontamination) ------------------------------------------------------------------


@dataclass(frozen=True)
class CrossMatch:
    """Why a query document is a duplicate of the reference dataset, and of which document."""

    reason: str  # "exact_duplicate" or "near_duplicate"
    matched_id: str
    jaccard: float


@dataclass(frozen=True)
class DigestIndex:
    """Digests of the query documents sorted by their high word, for probing."""

    high: np.ndarray
    low: np.ndarray
    members: np.ndarray

    @classmethod
    def build(cls, digests: np.ndarray, active: np.ndarray) -> DigestIndex:
        docs = np.flatnonzero(active)
        order = np.argsort(digests[docs, 0], kind="stable")
        return cls(digests[docs[order], 0], digests[docs[order], 1], docs[order])

    def probe(self, digests: np.ndarray) -> np.ndarray:
        """(m, 2) (row of `digests`, indexed document) pairs with equal digests."""
        left = np.searchsorted(self.high, digests[:, 0], side="left")
        counts = np.searchsorted(self.high, digests[:, 0], side="right") - left
        rows = np.repeat(np.arange(len(digests)), counts)
        hits = left[rows] + np.arange(len(rows)) - np.repeat(np.cumsum(counts) - counts, counts)
        same = self.low[hits] == digests[rows, 1]
        return np.stack([rows[same], self.members[hits[same]]], 1).astype(np.int64)


@dataclass(frozen=True)
class ProbeTask:
    path: str
    norm: NormalizeConfig
    minhash: MinHashConfig | None  # None: exact matches only
    bands: BandIndex | None
    digests: DigestIndex


@dataclass
class ProbeResult:
    """Matches of one reference shard; reference rows are numbered within `ids` (rows that matched)."""

    ids: list[str]
    exact: np.ndarray  # (k, 2): (reference row, query doc)
    near: np.ndarray  # (k, 2): candidates to verify
    set_values: np.ndarray  # shingle sets of the returned rows, in `ids` order (near only)
    set_offsets: np.ndarray

    @classmethod
    def concat(cls, parts: list[ProbeResult]) -> ProbeResult:
        """Parts of consecutive batches, with their row numbers shifted to follow each other."""
        shifts = [np.array([by, 0]) for by in np.cumsum([0] + [len(part.ids) for part in parts[:-1]])]
        values, offsets = join_sets([(part.set_values, part.set_offsets) for part in parts])
        return cls(
            [doc_id for part in parts for doc_id in part.ids],
            _rows([part.exact + by for part, by in zip(parts, shifts)]),
            _rows([part.near + by for part, by in zip(parts, shifts)]),
            values,
            offsets,
        )


def probe_task(task: ProbeTask) -> ProbeResult:
    """Executor task: one reference shard against the query index; keeps only what matched."""
    nothing = ProbeResult([], _rows([]), _rows([]), np.empty(0, np.uint64), np.zeros(1, np.int64))
    return ProbeResult.concat([nothing] + [_probe_part(task, batch) for batch in iter_batches(task.path)])


def _probe_part(task: ProbeTask, batch: TextBatch) -> ProbeResult:
    data, offsets = normalized_batch(batch, task.norm, task.minhash, digests=True)
    live, hits_exact, hits_near = _probe_batch(task, data, offsets)
    matched = np.unique(np.concatenate([hits_exact[:, 0], hits_near[:, 0]]))  # positions in `live`
    chosen = live[matched]
    if task.minhash is None:
        values, set_offsets = np.empty(0, np.uint64), np.zeros(len(chosen) + 1, np.int64)
    else:
        values, set_offsets = batch_shingle_sets(
            *gather(data, offsets[chosen], offsets[chosen + 1]), task.minhash
        )
    ids = [batch.ids[i] for i in chosen.tolist()]
    return ProbeResult(
        ids, _renumber(hits_exact, matched), _renumber(hits_near, matched), values, set_offsets
    )


def _renumber(hits: np.ndarray, matched: np.ndarray) -> np.ndarray:
    """(position in `live`, query doc) -> (position in `matched`, query doc)."""
    return np.stack([np.searchsorted(matched, hits[:, 0]), hits[:, 1]], 1)


def _probe_batch(task: ProbeTask, data: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, ...]:
    """Non-empty rows of the batch, and their (row in `live`, query doc) exact and near hits."""
    if task.minhash is None:
        live = np.flatnonzero(np.diff(offsets) > 0)
        return live, task.digests.probe(text_digests(data, offsets)[live]), np.empty((0, 2), np.int64)
    signature_matrix, counts = batch_signatures(data, offsets, task.minhash)
    live = np.flatnonzero(counts > 0)
    hits_exact = task.digests.probe(text_digests(data, offsets)[live])
    hits_near = task.bands.probe(band_keys(signature_matrix, *task.minhash.bands_rows())[live])
    return live, hits_exact, hits_near


def _rows(parts: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(parts).astype(np.int64) if parts else np.empty((0, 2), np.int64)


def find_cross_duplicates(
    reference_shards: Sequence[ShardPath],
    query_shards: Sequence[ShardPath],
    cfg: MinHashConfig = MinHashConfig(),
    norm: NormalizeConfig = NormalizeConfig(),
    executor: Executor | None = None,
    near: bool = True,
) -> dict[str, CrossMatch]:
    """Query documents (e.g. val/test) that duplicate a reference document (e.g. train).

    Only the query side is indexed; reference shards stream past it, so memory grows with the query
    set, not the reference. A query with an exact copy in the reference is an exact_duplicate of the
    earliest such copy; otherwise (if `near`) its best verified near match -- highest Jaccard, the
    earliest on ties -- if that reaches the threshold.
    """
    _validate(cfg, norm)
    executor = executor or SerialExecutor()
    minhash = cfg if near else None
    query = scan_corpus(query_shards, norm, minhash, executor, digests=True)
    live = ~query.empty
    bands = BandIndex.build(query.band_keys, live) if near else None
    digests = DigestIndex.build(query.digests, live)
    tasks = [ProbeTask(str(path), norm, minhash, bands, digests) for path in reference_shards]
    probes = list(executor.map(probe_task, tasks))
    matches = _exact_matches(query, probes)
    if near:
        matches.update(_near_matches(query, probes, matches, norm, cfg, executor))
    return matches


def _exact_matches(query: CorpusScan, probes: list[ProbeResult]) -> dict[str, CrossMatch]:
    matches: dict[str, CrossMatch] = {}
    for probe in probes:  # reference order, so the first match is the earliest copy
        for row, doc in probe.exact.tolist():
            matches.setdefault(query.ids[doc], CrossMatch(EXACT, probe.ids[row], 1.0))
    return matches


def _near_matches(
    query: CorpusScan,
    probes: list[ProbeResult],
    exact: dict[str, CrossMatch],
    norm: NormalizeConfig,
    cfg: MinHashConfig,
    executor: Executor,
) -> dict[str, CrossMatch]:
    pending = [
        (probe, row, doc)
        for probe in probes
        for row, doc in probe.near.tolist()
        if query.ids[doc] not in exact
    ]
    if not pending:
        return {}
    docs = np.unique([doc for _, _, doc in pending])
    values, offsets = shingle_sets_for(query, docs, norm, cfg, executor)
    best: dict[str, CrossMatch] = {}
    for probe, row, doc in pending:  # reference order: on equal Jaccard the earliest match stays
        slot = np.searchsorted(docs, doc)
        similarity = jaccard_sorted(
            values[offsets[slot] : offsets[slot + 1]],
            probe.set_values[probe.set_offsets[row] : probe.set_offsets[row + 1]],
        )
        doc_id = query.ids[doc]
        if similarity >= cfg.threshold and (doc_id not in best or similarity > best[doc_id].jaccard):
            best[doc_id] = CrossMatch(NEAR, probe.ids[row], similarity)
    return best
