"""Corpus distillation speed and memory: embedding, k-means, and embed -> cluster -> sample at scale.

    python benchmarks/distill.py embed  [--docs 128] [--batch 32] [--max-tokens 128] [--texts FILE.jsonl]
    python benchmarks/distill.py kmeans [--n 100000] [--dim 384] [--k 220] [--iterations 10]
    python benchmarks/distill.py scale  [--docs 200000] [--k 64]
    python benchmarks/distill.py static [--docs 2000] [--minilm-docs 400]

embed: corpuslab's `sentence_transformer` embedder next to sentence-transformers' own `encode` on the same
model (the packaged all-MiniLM-L6-v2), batch size and max length, on the same texts (C4 sample when
given, else synthetic documents); each timed in turn `--repeats` times, best kept. Prints docs/s, docs per
CPU-second and the ratio, and the largest difference between the two embeddings.

kmeans: spherical k-means on random unit vectors (n x dim, `--clusters` planted directions plus noise):
corpuslab's default path (`fit_spherical_kmeans`, backend auto = faiss when installed), faiss.Kmeans
spherical directly, and scikit-learn MiniBatchKMeans with its default k-means++ start (the MiniCorpus
reference). Same data, k and iterations. Prints wall and CPU seconds and the ratio of the default path to
the faster library.

static: a model2vec static model distilled from the packaged all-MiniLM-L6-v2 (`corpuslab.distill.static`,
timed), then on AG News test (first `--docs`, 4 classes): docs/s of the static model, of MiniLM itself (on
the first `--minilm-docs`) and of the hashed embedder, and the NMI of spherical k-means (k=4, faiss or
sklearn) against the classes for each, on the same documents.

scale: the whole distillation on `--docs` synthetic documents (shards on disk): embed (hashed) -> cluster
-> uniform sample, through the stages the recipe uses. Prints docs/s for each step and the peak resident
memory of the process, with the same at a quarter of the documents in a fresh process: bounded memory
means the two peaks are close, not 4x apart.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _timed(fn):
    wall, cpu = time.perf_counter(), _cpu()
    out = fn()
    return out, time.perf_counter() - wall, _cpu() - cpu


def _texts(n: int, path: str | None) -> list[str]:
    if path and Path(path).exists():
        texts = []
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                texts.append(json.loads(line)["text"])
                if len(texts) >= n:
                    break
        return texts
    rng = np.random.default_rng(0)
    words = [f"word{i}" for i in range(5000)]
    return [" ".join(rng.choice(words, size=int(rng.integers(20, 300)))) for _ in range(n)]


def bench_embed(args) -> None:
    import torch
    from sentence_transformers import SentenceTransformer

    from corpuslab.distill.embedders import SentenceTransformerEmbedder, packaged_minilm

    torch.set_num_threads(args.threads)
    texts = _texts(args.docs, args.texts)
    ours = SentenceTransformerEmbedder(SentenceTransformerEmbedder.Config(max_tokens=args.max_tokens, batch_size=args.batch))
    ours.prepare(lambda: [], lambda m: None)
    theirs = SentenceTransformer(str(packaged_minilm("embed")), device="cpu")
    theirs.max_seq_length = args.max_tokens
    best = {"corpuslab": None, "sentence-transformers": None}
    for _ in range(args.repeats):
        for name, fn in (("corpuslab", lambda: ours.encode(texts)),
                         ("sentence-transformers", lambda: theirs.encode(texts, batch_size=args.batch, normalize_embeddings=True))):
            out, wall, cpu = _timed(fn)
            if best[name] is None or wall < best[name][1]:
                best[name] = (out, wall, cpu)
    diff = float(np.abs(best["corpuslab"][0] - best["sentence-transformers"][0]).max())
    print(f"embed {len(texts)} docs, batch {args.batch}, max {args.max_tokens} tokens, {args.threads} threads (best of {args.repeats})")
    for name, (_, wall, cpu) in best.items():
        print(f"  {name:22s} {len(texts) / wall:8.1f} docs/s  {len(texts) / max(cpu, 1e-9):8.1f} docs/CPU-s")
    print(f"  ratio corpuslab / sentence-transformers: {best['sentence-transformers'][1] / best['corpuslab'][1]:.3f} "
          f"(docs/s); max |difference| {diff:.2e}")


def bench_kmeans(args) -> None:
    from corpuslab.distill.cluster import ClusterConfig, faiss_available, fit_spherical_kmeans

    rng = np.random.default_rng(0)
    centers = rng.standard_normal((args.clusters, args.dim)).astype(np.float32)
    x = centers[rng.integers(0, args.clusters, args.n)] + 0.5 * rng.standard_normal((args.n, args.dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    cfg = ClusterConfig(k=args.k, iterations=args.iterations, n_init=1, batch_size=args.batch, max_train_points=args.n)
    rows = []
    _, wall, cpu = _timed(lambda: fit_spherical_kmeans(x, cfg, cfg.resolved_backend()))
    rows.append((f"corpuslab default ({cfg.resolved_backend()})", wall, cpu))
    if faiss_available():
        import faiss

        def raw_faiss():
            km = faiss.Kmeans(args.dim, args.k, niter=args.iterations, spherical=True, seed=42, max_points_per_centroid=args.n)
            km.train(x)
        _, wall, cpu = _timed(raw_faiss)
        rows.append(("faiss.Kmeans spherical", wall, cpu))
    if not args.skip_sklearn:
        from sklearn.cluster import MiniBatchKMeans

        def raw_sklearn():
            MiniBatchKMeans(n_clusters=args.k, batch_size=args.batch, max_iter=args.iterations, n_init=1, random_state=42).fit(x)
        _, wall, cpu = _timed(raw_sklearn)
        rows.append(("sklearn MiniBatchKMeans (k-means++)", wall, cpu))
        _, wall, cpu = _timed(lambda: fit_spherical_kmeans(x, cfg, "sklearn"))
        rows.append(("corpuslab sklearn backend (bounded init)", wall, cpu))
    print(f"k-means on {args.n} x {args.dim}, k={args.k}, {args.iterations} iterations")
    for name, wall, cpu in rows:
        print(f"  {name:42s} {wall:8.2f} s  {cpu:8.2f} CPU-s")
    libraries = [r for r in rows if not r[0].startswith("corpuslab")]
    if libraries:
        fastest = min(libraries, key=lambda r: r[1])
        print(f"  default path / fastest library ({fastest[0]}): {rows[0][1] / fastest[1]:.2f}x wall, "
              f"{rows[0][2] / max(fastest[2], 1e-9):.2f}x CPU")


def bench_scale(args) -> None:
    if args.child:
        print(json.dumps(_scale_once(args.docs, args.k, Path(args.child))))
        return
    results = []
    for docs in (args.docs // 4, args.docs):
        with tempfile.TemporaryDirectory() as tmp:
            out = subprocess.run([sys.executable, __file__, "scale", "--docs", str(docs), "--k", str(args.k), "--child", tmp],
                                 capture_output=True, text=True, check=True)
            results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    for r in results:
        print(f"{r['docs']} docs: write {r['write_s']:.1f}s; embed {r['docs'] / r['embed_s']:.0f} docs/s; "
              f"cluster {r['docs'] / r['cluster_s']:.0f} docs/s; sample {r['docs'] / r['sample_s']:.0f} docs/s; "
              f"end to end {r['docs'] / (r['embed_s'] + r['cluster_s'] + r['sample_s']):.0f} docs/s; peak RSS {r['peak_mb']:.0f} MB")
    print(f"peak memory ratio {results[1]['peak_mb'] / results[0]['peak_mb']:.2f} for 4x the documents")


def _scale_once(docs: int, k: int, folder: Path) -> dict:
    from corpuslab.artifacts import StageRunner
    from corpuslab.curation.recipes.distill import Assignment, sample_clusters
    from corpuslab.distill.cluster import ClusterConfig, cluster_stage, read_assignments, read_clusters
    from corpuslab.distill.embed import EmbedConfig, embed_stage
    from corpuslab.documents import Document
    from corpuslab.shards import ShardWriter, shard_paths

    rng = np.random.default_rng(0)
    topics = [[f"t{t}w{i}" for i in range(40)] for t in range(50)]
    start = time.perf_counter()
    with ShardWriter(folder / "docs") as writer:
        for i in range(docs):
            words = rng.choice(topics[i % 50], size=60)
            writer.write(Document(f"d{i}", " ".join(words), {"category": f"c{i % 50}"}))
    write_s = time.perf_counter() - start
    items = shard_paths(folder / "docs")
    stages = StageRunner(folder / "stages", lambda m: None)
    _, embed_s, _ = _timed(lambda: embed_stage(stages, EmbedConfig(), items, lambda m: None))
    embed = next(p for p in (folder / "stages").glob("embed-*"))
    cfg = ClusterConfig(k=k, top_terms=5)
    from corpuslab.artifacts import Stage

    stage_obj = Stage(folder / "stages", embed.name.rsplit("-", 1)[0], embed.name.rsplit("-", 1)[1])
    clusters, cluster_s, _ = _timed(lambda: cluster_stage(stages, cfg, stage_obj, items, lambda m: None))

    def sample():
        info, table = read_clusters(clusters.path), read_assignments(clusters.path)
        a = Assignment(table.column("id").to_pylist(), table.column("cluster").to_numpy().astype(np.int64),
                       table.column("distance").to_numpy(), table.column("category").to_pylist())
        return sample_clusters("uniform", docs // 4, a.members(k), list(range(k)), info, None, 42)
    _, sample_s, _ = _timed(sample)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"docs": docs, "write_s": write_s, "embed_s": embed_s, "cluster_s": cluster_s, "sample_s": sample_s, "peak_mb": peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    embed = sub.add_parser("embed")
    embed.add_argument("--docs", type=int, default=128)
    embed.add_argument("--batch", type=int, default=32)
    embed.add_argument("--max-tokens", type=int, default=128)
    embed.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    embed.add_argument("--repeats", type=int, default=3)
    embed.add_argument("--texts", default="/work/shared/data/c4_sample/c4_sample.jsonl")
    kmeans = sub.add_parser("kmeans")
    kmeans.add_argument("--n", type=int, default=100000)
    kmeans.add_argument("--dim", type=int, default=384)
    kmeans.add_argument("--k", type=int, default=220)
    kmeans.add_argument("--clusters", type=int, default=50)
    kmeans.add_argument("--iterations", type=int, default=10)
    kmeans.add_argument("--batch", type=int, default=4096)
    kmeans.add_argument("--skip-sklearn", action="store_true")
    scale = sub.add_parser("scale")
    scale.add_argument("--docs", type=int, default=200000)
    scale.add_argument("--k", type=int, default=64)
    scale.add_argument("--child", default=None)
    static = sub.add_parser("static")
    static.add_argument("--docs", type=int, default=2000)
    static.add_argument("--minilm-docs", type=int, default=400)
    static.add_argument("--out", default=None, help="keep the distilled model here (default: a temporary folder)")
    args = parser.parse_args()
    {"embed": bench_embed, "kmeans": bench_kmeans, "scale": bench_scale, "static": bench_static}[args.what](args)


def bench_static(args) -> None:
    import csv

    from sklearn.metrics import normalized_mutual_info_score

    from corpuslab.distill.cluster import ClusterConfig, faiss_available, fit_spherical_kmeans
    from corpuslab.distill.embedders import HashedEmbedder, Model2VecEmbedder, SentenceTransformerEmbedder, packaged_minilm
    from corpuslab.distill.static import distill_static

    with open("/work/shared/data/ag_news_test/test.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))[: args.docs]
    labels = [int(r[0]) for r in rows]
    texts = [f"{r[1]}. {r[2]}" for r in rows]
    out = Path(args.out or tempfile.mkdtemp(prefix="static-")) / "model"
    if not (out / "config.json").exists():
        _, wall, cpu = _timed(lambda: distill_static(str(packaged_minilm("embed")), out, 256, 1e-4, print))
        print(f"distilled in {wall:.1f} s ({cpu:.1f} CPU-s)")
    static = Model2VecEmbedder(Model2VecEmbedder.Config(model=str(out)))
    minilm = SentenceTransformerEmbedder(SentenceTransformerEmbedder.Config(max_tokens=128))
    hashed = HashedEmbedder(HashedEmbedder.Config(dim=64))
    backend = "faiss" if faiss_available() else "sklearn"
    print(f"AG News test: {len(texts)} documents (MiniLM: first {args.minilm_docs}); k-means k=4 ({backend}), NMI vs classes")
    for name, embedder, n in (("model2vec (static)", static, len(texts)), ("hashed", hashed, len(texts)),
                              ("all-MiniLM-L6-v2", minilm, args.minilm_docs), ("model2vec, same docs", static, args.minilm_docs)):
        embedder.prepare(lambda n=n: iter(texts[:n]), lambda m: None)
        vectors, wall, cpu = _timed(lambda embedder=embedder, n=n: embedder.encode(texts[:n]))
        centroids = fit_spherical_kmeans(vectors, ClusterConfig(k=4, iterations=20, n_init=3, seed=0), backend)
        nmi = normalized_mutual_info_score(labels[:n], np.argmax(vectors @ centroids.T, axis=1))
        print(f"  {name:22s} {n / wall:9.1f} docs/s  {n / max(cpu, 1e-9):9.1f} docs/CPU-s  NMI {nmi:.3f}")


if __name__ == "__main__":
    main()
