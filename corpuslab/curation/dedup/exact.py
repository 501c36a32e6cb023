"""Exact duplicates: documents whose normalized text is byte-identical.

Each document's normalized text (see `normalize.py`) is hashed with 128-bit blake2b in the scan
workers; the earliest document in corpus order with a given digest is kept and every later one is
dropped as "exact_duplicate" with `duplicate_of` = the kept id. Empty documents are never matched.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from corpuslab.curation.dedup.clusters import DedupResult, Links, build_result
from corpuslab.curation.dedup.digests import equal_digest_links
from corpuslab.curation.dedup.normalize import NormalizeConfig
from corpuslab.curation.dedup.scan import CorpusScan, scan_corpus
from corpuslab.executor import Executor


def find_exact_duplicates(
    shards: Sequence[str | Path],
    norm: NormalizeConfig = NormalizeConfig(),
    executor: Executor | None = None,
    priority: np.ndarray | None = None,
) -> DedupResult:
    """Decisions for every exact-duplicate cluster of the corpus (shard order, then row order); each keeps
    its earliest copy, or the copy of lowest `priority` (see `build_result`)."""
    started = time.perf_counter()
    norm.validate()
    scan = scan_corpus(shards, norm, None, executor, ids_in_shards=True)
    source, target = exact_links(scan.digests, ~scan.empty)
    stats = {"method": "exact", "normalize": str(norm), **corpus_stats(scan)}
    result = build_result(scan.ids, Links(exact_source=source, exact_target=target), stats, priority)
    result.stats["runtime"] = {"scan_s": scan.seconds, "total_s": time.perf_counter() - started}
    return result


def exact_links(digests: np.ndarray, active: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(later copies, their earliest copy) among the active documents, as global indices."""
    docs = np.flatnonzero(active)
    return equal_digest_links(digests[docs, 0], digests[docs, 1], docs)


def corpus_stats(scan: CorpusScan) -> dict:
    return {"shards": len(scan.paths), "docs_in": len(scan), "empty_docs": int(scan.empty.sum())}
