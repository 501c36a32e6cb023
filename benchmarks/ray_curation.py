"""Curation on Ray vs the local process pool: exact + near dedup of the same shards, same decisions.

    python benchmarks/ray_curation.py --docs 20000 --cpus 2

Builds `dedup_corpus.py`'s planted corpus (untimed, cached), then runs corpuslab's exact + near dedup
(`find_exact_and_near_duplicates`, word 5-grams, 128 permutations) three ways in this process: in-process
(serial), through the local process pool (`--cpus` workers), and as Ray tasks on a local Ray instance with
`--cpus` CPUs (bound to 127.0.0.1; its start-up is timed separately, since a cluster is started once and
reused), each twice: the first run pays the workers' start-up. Every run's decisions must equal an
untimed serial run's (the script exits non-zero otherwise).
Wall-clock figures: on a shared machine, compare them within one run of the script.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import dedup_corpus  # noqa: E402


def dedup(shards: list[Path], executor) -> tuple[float, list[tuple]]:
    from corpuslab.curation.dedup.minhash import MinHashConfig
    from corpuslab.curation.dedup.near import find_exact_and_near_duplicates
    from corpuslab.curation.dedup.normalize import NormalizeConfig

    started = time.perf_counter()
    result = find_exact_and_near_duplicates(shards, MinHashConfig(ngram=5, num_perm=128, threshold=0.85), NormalizeConfig(), executor)
    seconds = time.perf_counter() - started
    decisions = sorted((d.id, d.kept, d.reason, d.duplicate_of) for d in result.decisions)
    return seconds, decisions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=20000)
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--shard-docs", type=int, default=1000, help="documents per shard (one task each)")
    parser.add_argument("--out", default="/tmp/corpuslab-bench/ray-curation")
    args = parser.parse_args()

    from corpuslab.executor import LocalExecutor, SerialExecutor
    from corpuslab.ray_executor import RayConfig, RayExecutor

    corpus = Path(args.out) / f"docs-{args.docs}"
    shards, _ = dedup_corpus.build(args.docs, corpus)
    shards = reshard(shards, corpus / f"shards-{args.shard_docs}", args.shard_docs)
    print(f"{args.docs:,} documents in {len(shards)} shards; exact + near dedup (word 5-grams, 128 permutations)")

    rows, same = [], []
    _, reference = dedup(shards, SerialExecutor())  # untimed: numba kernels compiled or loaded from cache
    rows += timed("serial (in-process)", shards, SerialExecutor(), reference, same)
    with LocalExecutor(args.cpus) as pool:
        rows += timed(f"local pool, {args.cpus} processes", shards, pool, reference, same)
    started = time.perf_counter()
    ray = RayExecutor(RayConfig(address="local", num_cpus=args.cpus))
    ray.connect()
    startup = time.perf_counter() - started
    with ray:
        rows += timed(f"ray, {args.cpus} CPUs", shards, ray, reference, same)
    dropped = sum(1 for d in reference if not d[1])
    print(f"dropped {dropped:,} documents; decisions identical to serial: {all(same)}")
    print(f"ray start-up (local instance): {startup:.1f} s")
    print(f"{'executor':<36} {'seconds':>8} {'docs/s':>9} {'vs serial, 2nd':>14}")
    for name, seconds in rows:
        print(f"{name:<36} {seconds:8.2f} {args.docs / seconds:9,.0f} {rows[1][1] / seconds:8.2f}x")
    sys.exit(0 if all(same) else 1)


def timed(name: str, shards: list[Path], executor, reference: list, same: list[bool]) -> list[tuple[str, float]]:
    """Two runs: the first pays the workers' start-up (pool fork, Ray worker processes and their imports)."""
    rows = []
    for run in ("1st", "2nd"):
        seconds, decisions = dedup(shards, executor)
        same.append(decisions == reference)
        rows.append((f"{name}, {run}", seconds))
    return rows


def reshard(shards: list[Path], out: Path, shard_docs: int) -> list[Path]:
    """The corpus in shards of `shard_docs` rows: one executor task per shard."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not out.exists():
        table = pa.concat_tables([pq.read_table(p) for p in shards])
        tmp = out.with_name(out.name + ".tmp")
        tmp.mkdir(parents=True, exist_ok=True)
        for i, start in enumerate(range(0, table.num_rows, shard_docs)):
            pq.write_table(table.slice(start, shard_docs), tmp / f"part-{i:05d}.parquet")
        tmp.rename(out)
    return sorted(out.glob("part-*.parquet"))


if __name__ == "__main__":
    main()
