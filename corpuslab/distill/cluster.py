"""The `cluster` stage: spherical mini-batch k-means over an embed stage, and the inspection file.

    <stage>/centroids.npy        (k, dim) unit-length centroids
    <stage>/assignments.parquet  per document, in corpus order: id, row, cluster, distance (= 1 - e . c), category
    <stage>/clusters.json        per cluster (the seed's cluster_info_for_inspection.json, extended):
                                 total_examples, sum_distance, average_distance, the 5 closest and 5 farthest
                                 documents (excerpts), top terms, categories, duplicate_rate

Fitting uses well-kept libraries: faiss-cpu's spherical k-means when installed (`backend: auto|faiss`), else
scikit-learn's MiniBatchKMeans with centroids re-normalised after every mini-batch step (`sklearn`, the
reference). Both fit on a bounded sample (`max_train_points`) and k-means++ starts from a bounded one
(`init_size`): memory and time do not grow with the corpus. Assignment then streams over the shards.

A killed cluster stage resumes (its work folder is kept, see `StageRunner.run(resumable=True)`): the centroids
are fitted once and saved first, and each embed shard's assignment is recorded the moment it finishes
(`corpuslab.shard_log`), so a rerun assigns only the shards not yet done, with the same centroids.
"""

from __future__ import annotations

import heapq
import json
import math
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from corpuslab.artifacts import Stage, StageRunner, write_json_atomic
from corpuslab.atomic import temp_path
from corpuslab.distill.embed import Embeddings
from corpuslab.distill.embedders import require_sklearn
from corpuslab.errors import ConfigError
from corpuslab.executor import Executor, SerialExecutor
from corpuslab.schema import require, require_int
from corpuslab.shard_log import ShardLog
from corpuslab.shards import read_documents

CLUSTER_VERSION = 1
ASSIGNED = ".assigned"  # in the work folder: the per-shard assignment records of a run that may be killed
INSPECT = 5  # closest and farthest documents kept per cluster for inspection
WORD = re.compile(r"[A-Za-z][A-Za-z'-]{2,}")


@dataclass(frozen=True)
class ClusterConfig:
    """k: clusters. batch_size: mini-batch size (sklearn). iterations: passes over the training sample.
    n_init: k-means++ starts, the best kept. max_train_points: documents the centroids are fitted on (a
    uniform sample; all when fewer). init_size: points k-means++ starts from. backend: auto = faiss when
    installed, else sklearn. duplicate_eps: a cluster's duplicate_rate counts members with a neighbour of
    cosine similarity above 1 - duplicate_eps (on up to duplicate_sample members)."""

    k: int = 16
    batch_size: int = 4096
    iterations: int = 10
    n_init: int = 3
    seed: int = 42
    backend: Literal["auto", "faiss", "sklearn"] = "auto"
    max_train_points: int = 262144
    init_size: int = 8192
    excerpt_chars: int = 300
    top_terms: int = 8
    duplicate_eps: float = 0.05
    duplicate_sample: int = 1000

    def validate(self, prefix: str) -> None:
        for key in ("k", "batch_size", "iterations", "n_init", "max_train_points", "init_size", "excerpt_chars",
                    "duplicate_sample"):
            require_int(getattr(self, key), f"{prefix}.{key}", 1)
        require_int(self.top_terms, f"{prefix}.top_terms", 0)
        require(0 <= self.duplicate_eps < 1, f"{prefix}.duplicate_eps", self.duplicate_eps, "a number in [0, 1)")
        require_sklearn(f"{prefix}.backend")  # the reference k-means, top terms and NMI
        if self.backend == "faiss" and not faiss_available():
            raise ConfigError(f"{prefix}.backend", "faiss", "an installed faiss: pip install faiss-cpu (or use backend: sklearn)")

    def resolved_backend(self) -> str:
        return ("faiss" if faiss_available() else "sklearn") if self.backend == "auto" else self.backend


def faiss_available() -> bool:
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


def cluster_stage(stages: StageRunner, cfg: ClusterConfig, embed: Stage, items: list[Path], log: Callable[[str], None],
                  executor: Executor | None = None) -> Stage:
    backend = cfg.resolved_backend()  # part of the key: the two libraries give different centroids
    stage = stages.stage("cluster", CLUSTER_VERSION, embed.fingerprint, cfg, backend)
    stages.run(stage, lambda work: build_clusters(work, cfg, backend, Embeddings(embed.path), items, log, executor),
               label=f"cluster (k={cfg.k}, {backend})", resumable=True)
    return stage


def build_clusters(work: Path, cfg: ClusterConfig, backend: str, emb: Embeddings, items: list[Path],
                   log: Callable[[str], None], executor: Executor | None = None) -> dict[str, Any]:
    n = len(emb)
    if cfg.k > n:
        raise ConfigError("cluster.k", cfg.k, f"at most the number of documents embedded ({n})")
    centroids = fitted_centroids(work / "centroids.npy", emb, cfg, backend, log)
    records = ShardLog(executor or SerialExecutor(), work / ASSIGNED, log)  # a killed run keeps its finished shards
    sizes, sums, extremes = assign(work / "assignments.parquet", emb, centroids, records, work / "centroids.npy")
    empty = [int(i) for i in np.nonzero(sizes == 0)[0]]
    if empty:
        raise ConfigError("cluster.k", cfg.k, f"a k every cluster of which gets documents: {len(empty)} came out empty "
                          f"(ids {empty[:10]}); lower k")
    table = pq.read_table(work / "assignments.parquet", columns=["cluster", "category"])
    labels = table.column("cluster").to_numpy()
    info = describe_clusters(cfg, emb, labels, sizes, sums, extremes, items, table.column("category").to_pylist())
    write_json_atomic(work / "clusters.json", info)
    log(f"  {cfg.k} clusters over {n} documents; sizes {int(sizes.min())}..{int(sizes.max())}"
        + (f"; purity vs categories {info['purity']:.3f}, NMI {info['nmi']:.3f}" if info.get("purity") is not None else ""))
    records.discard()  # last: a run killed while describing the clusters still finds every shard assigned
    return {"documents": n, "k": cfg.k, "backend": backend, "purity": info.get("purity"), "nmi": info.get("nmi"),
            "sizes": sizes.tolist(), "resumed_shards": records.resumed}


def fitted_centroids(path: Path, emb: Embeddings, cfg: ClusterConfig, backend: str, log: Callable[[str], None]) -> np.ndarray:
    """The centroids saved at `path` by an earlier attempt of this stage, else fitted now and saved (whole or
    not at all) before any shard is assigned: the shards a killed run assigned stay valid for the rerun."""
    if path.exists():
        log(f"  resumed: centroids fitted by an earlier run ({path.name})")
        return np.load(path)
    sample = emb.sample(min(len(emb), cfg.max_train_points), cfg.seed)
    centroids = fit_spherical_kmeans(sample, cfg, backend)
    del sample
    tmp = temp_path(path)
    np.save(tmp, centroids)
    tmp.replace(path)
    return centroids


def fit_spherical_kmeans(x: np.ndarray, cfg: ClusterConfig, backend: str) -> np.ndarray:
    """(k, dim) unit-length centroids fitted on the rows of `x` (unit length)."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    if backend == "faiss":
        import faiss

        per_centroid = max(1, math.ceil(len(x) / cfg.k))
        km = faiss.Kmeans(x.shape[1], cfg.k, niter=cfg.iterations, nredo=cfg.n_init, spherical=True, seed=cfg.seed,
                          max_points_per_centroid=per_centroid, min_points_per_centroid=1, verbose=False)
        km.train(x)
        return _normalize(km.centroids)
    return _sklearn_kmeans(x, cfg)


def _sklearn_kmeans(x: np.ndarray, cfg: ClusterConfig) -> np.ndarray:
    """MiniBatchKMeans made spherical as the MiniCorpus reproduction did: centroids re-normalised after each
    `partial_fit` step. k-means++ runs `n_init` times on a bounded init sample; the start of highest total
    cosine similarity there is kept (sklearn's own init would run over 3 * batch_size points or more)."""
    from sklearn.cluster import MiniBatchKMeans, kmeans_plusplus

    rng = np.random.default_rng(cfg.seed)
    init_rows = x[np.sort(rng.choice(len(x), size=min(len(x), max(cfg.init_size, cfg.k)), replace=False))]
    best, best_score = None, -np.inf
    for attempt in range(cfg.n_init):
        centers, _ = kmeans_plusplus(init_rows, cfg.k, random_state=cfg.seed + attempt)
        centers = _normalize(centers)
        score = float((init_rows @ centers.T).max(axis=1).sum())
        if score > best_score:
            best, best_score = centers, score
    km = MiniBatchKMeans(n_clusters=cfg.k, init=best, n_init=1, batch_size=cfg.batch_size, random_state=cfg.seed)
    for _ in range(cfg.iterations):
        order = rng.permutation(len(x))
        for start in range(0, len(x), cfg.batch_size):
            km.partial_fit(x[order[start:start + cfg.batch_size]])
            km.cluster_centers_ = _normalize(km.cluster_centers_)
    return _normalize(km.cluster_centers_)


def _normalize(c: np.ndarray) -> np.ndarray:
    c = np.asarray(c, dtype=np.float32)
    return c / np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-12)


@dataclass(frozen=True)
class AssignTask:
    """One embed shard to assign; the centroids by path, so a cluster's tasks do not each carry (k, dim) floats."""

    emb_path: str
    centroids_path: str


def assign_task(task: AssignTask) -> tuple[np.ndarray, np.ndarray]:
    """Executor task: nearest centroid (int64) and cosine distance (float32) of every row of one embed shard."""
    x = np.asarray(np.load(task.emb_path, mmap_mode="r"), dtype=np.float32)
    sims = x @ np.load(task.centroids_path).T
    labels = sims.argmax(axis=1)
    distance = np.clip(1.0 - sims[np.arange(len(x)), labels], 0.0, 2.0).astype(np.float32)
    return labels, distance


def assign(path: Path, emb: Embeddings, centroids: np.ndarray, executor: Executor | None = None,
           centroids_path: Path | None = None):
    """Nearest centroid by cosine for every row, one executor task per embed shard; per-cluster size, sum of
    distances, and heaps of the INSPECT closest and farthest rows, merged here in shard order."""
    k = len(centroids)
    if centroids_path is None:
        centroids_path = path.with_name("centroids.npy")
        np.save(centroids_path, centroids)
    sizes, sums = np.zeros(k, np.int64), np.zeros(k, np.float64)
    closest: list[list] = [[] for _ in range(k)]  # max-heaps of (-distance, row, id)
    farthest: list[list] = [[] for _ in range(k)]  # min-heaps of (distance, row, id)
    schema = pa.schema([("id", pa.string()), ("row", pa.int64()), ("cluster", pa.int32()), ("distance", pa.float32()),
                        ("category", pa.string())])
    tmp = path.with_name(".tmp-" + path.name)
    tasks = [AssignTask(str(p), str(centroids_path)) for p in emb.paths]
    results = (executor or SerialExecutor()).map(assign_task, tasks)
    with pq.ParquetWriter(tmp, schema) as writer:
        for (start, ids), (labels, distance) in zip(emb.id_tables(), results):
            sizes += np.bincount(labels, minlength=k)
            sums += np.bincount(labels, weights=distance, minlength=k)
            rows = np.arange(start, start + len(labels))
            id_list = ids.column("id").to_pylist()
            for c in np.unique(labels):
                members = np.nonzero(labels == c)[0]
                order = members[np.argsort(distance[members], kind="stable")]
                for i in order[:INSPECT]:
                    _push(closest[c], (-float(distance[i]), int(rows[i]), id_list[i]))
                for i in order[-INSPECT:]:
                    _push(farthest[c], (float(distance[i]), int(rows[i]), id_list[i]))
            writer.write_table(pa.table({"id": ids.column("id"), "row": rows, "cluster": labels.astype(np.int32),
                                         "distance": distance, "category": ids.column("category")}, schema=schema))
    tmp.replace(path)
    extremes = {c: {"closest": sorted((-d, r, i) for d, r, i in closest[c]), "farthest": sorted(farthest[c], reverse=True)}
                for c in range(k)}
    return sizes, sums, extremes


def _push(heap: list, item: tuple) -> None:
    if len(heap) < INSPECT:
        heapq.heappush(heap, item)
    else:
        heapq.heappushpop(heap, item)


def describe_clusters(cfg: ClusterConfig, emb: Embeddings, labels: np.ndarray, sizes: np.ndarray, sums: np.ndarray,
                      extremes: dict, items: list[Path], categories: list[str | None]) -> dict[str, Any]:
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    k = len(sizes)
    wanted = {r: None for c in extremes.values() for group in c.values() for _, r, _ in group}
    words: list[Counter] = [Counter() for _ in range(k)]
    seen = np.zeros(k, np.int64)
    for row, doc in enumerate(read_documents(items, columns=["text"])):  # rows are the documents in corpus order
        c = labels[row]
        if row in wanted:
            wanted[row] = " ".join(doc.text[: cfg.excerpt_chars].split())
        if seen[c] < 500:  # terms from the first 500 documents of each cluster: bounded memory
            seen[c] += 1
            words[c].update(w for w in (m.lower() for m in WORD.findall(doc.text)) if w not in ENGLISH_STOP_WORDS)
    top = _top_terms(words, cfg.top_terms)
    by_category = _category_counts(labels, categories, k)
    clusters = []
    for c in range(k):
        clusters.append({
            "cluster": c, "total_examples": int(sizes[c]), "sum_distance": float(sums[c]),
            "average_distance": float(sums[c] / sizes[c]) if sizes[c] else None,
            "duplicate_rate": duplicate_rate(emb, np.nonzero(labels == c)[0], cfg),
            "top_terms": top[c], "categories": by_category[c],
            "closest": [{"id": i, "distance": d, "text": wanted[r]} for d, r, i in extremes[c]["closest"]],
            "farthest": [{"id": i, "distance": d, "text": wanted[r]} for d, r, i in extremes[c]["farthest"]],
        })
    info: dict[str, Any] = {"k": k, "documents": int(sizes.sum()), "clusters": clusters}
    if any(cat is not None for cat in categories):
        from sklearn.metrics import normalized_mutual_info_score

        info["purity"] = float(sum(max(c.values()) for c in by_category if c) / max(1, len(labels)))
        info["nmi"] = float(normalized_mutual_info_score([str(c) for c in categories], labels))
    return info


def duplicate_rate(emb: Embeddings, members: np.ndarray, cfg: ClusterConfig) -> float:
    """Share of (sampled) members whose most similar other member is above 1 - duplicate_eps."""
    if len(members) < 2:
        return 0.0
    if len(members) > cfg.duplicate_sample:
        members = np.sort(np.random.default_rng(cfg.seed).choice(members, cfg.duplicate_sample, replace=False))
    x = emb.rows(members)
    sims = x @ x.T
    np.fill_diagonal(sims, -1.0)
    return float((sims.max(axis=1) > 1 - cfg.duplicate_eps).mean())


def _top_terms(words: list[Counter], n: int) -> list[list[str]]:
    """Class-based TF-IDF (BERTopic's c-TF-IDF): tf in the cluster x log(1 + average cluster words / term's total)."""
    if n == 0:
        return [[] for _ in words]
    total: Counter = Counter()
    for counter in words:
        total.update(counter)
    average = sum(total.values()) / max(1, len(words))
    out = []
    for counter in words:
        scored = sorted(counter.items(), key=lambda kv: (-kv[1] * math.log(1 + average / total[kv[0]]), kv[0]))
        out.append([w for w, _ in scored[:n]])
    return out


def _category_counts(labels: np.ndarray, categories: list[str | None], k: int) -> list[dict[str, int]]:
    counts: list[Counter] = [Counter() for _ in range(k)]
    for label, category in zip(labels.tolist(), categories):
        if category is not None:
            counts[label][category] += 1
    return [dict(c.most_common()) for c in counts]


def read_clusters(folder: Path) -> dict[str, Any]:
    return json.loads((Path(folder) / "clusters.json").read_text(encoding="utf-8"))


def read_assignments(folder: Path) -> pa.Table:
    return pq.read_table(Path(folder) / "assignments.parquet")
