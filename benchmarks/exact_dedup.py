"""Exact dedup: corpuslab against the plain Python loop a user would write, from JSONL and from Parquet.

    python benchmarks/exact_dedup.py --docs 20000            (the real-text corpus of dedup_real_corpus.py)

The baseline reads each record (`json.loads` per line, or Parquet batches `to_pylist`), normalizes the text
as corpuslab does by default (NFKC, lowercase, whitespace collapsed), hashes it with 128-bit blake2b and
keeps the first document of each digest. corpuslab runs as a user runs it: `corpuslab dedup --recipe exact`
end to end (read, normalize and hash, decisions, kept documents -- Parquet ones written in the reading pass --,
pairs, clusters written), and, for
Parquet, the engine alone on the shards (`find_exact_duplicates`, what the `exact` recipe runs). Each
method runs in its own fresh process; CPU seconds are the process's and its workers' (user + system).
Both must drop the same documents: the script checks the counts.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import dedup_real_corpus  # noqa: E402

METHODS = ("python-jsonl", "python-parquet", "corpuslab-jsonl", "corpuslab-parquet", "engine-parquet")


def cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def python_loop(texts) -> int:
    import hashlib
    import unicodedata

    seen: set[bytes] = set()
    dropped = 0
    for text in texts:
        key = " ".join(unicodedata.normalize("NFKC", text).lower().split())
        digest = hashlib.blake2b(key.encode(), digest_size=16).digest()
        if digest in seen:
            dropped += 1
        else:
            seen.add(digest)
    return dropped


def jsonl_texts(path: Path):
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            yield json.loads(line)["text"]


def parquet_texts(paths: list[Path]):
    import pyarrow.parquet as pq

    for path in paths:
        for batch in pq.ParquetFile(path).iter_batches(batch_size=2048, columns=["text"]):
            yield from batch.column(0).to_pylist()


def run_method(method: str, corpus: Path, processes: int) -> int:
    shards = sorted(corpus.glob("shard-*.parquet"))
    if method == "python-jsonl":
        return python_loop(jsonl_texts(corpus / "docs.jsonl"))
    if method == "python-parquet":
        return python_loop(parquet_texts(shards))
    if method == "engine-parquet":
        from corpuslab.curation.dedup.exact import find_exact_duplicates
        from corpuslab.executor import LocalExecutor, SerialExecutor

        with LocalExecutor(processes) if processes > 1 else SerialExecutor() as executor:
            result = find_exact_duplicates(shards, executor=executor)
        return sum(not d.kept for d in result.decisions)
    from corpuslab.tools.dedup import DedupToolConfig, run_dedup

    inputs = [str(corpus / "docs.jsonl")] if method == "corpuslab-jsonl" else [str(s) for s in shards]
    out = corpus / f"out-{method}"
    stats = run_dedup(DedupToolConfig(inputs=inputs, out=str(out), recipe="exact", processes=processes),
                      log=lambda line: None)
    return stats["dropped"]


def child(method: str, corpus: Path, processes: int, output: Path) -> None:
    if method.startswith(("corpuslab", "engine")):
        import corpuslab.curation.dedup.exact  # noqa: F401  imports before the clock, as for the baseline
        import corpuslab.tools.dedup  # noqa: F401
    before, started = cpu_seconds(), time.perf_counter()
    dropped = run_method(method, corpus, processes)
    output.write_text(json.dumps({"seconds": time.perf_counter() - started, "cpu_seconds": cpu_seconds() - before,
                                  "dropped": dropped}))


def ensure_jsonl(corpus: Path) -> Path:
    path = corpus / "docs.jsonl"
    if not path.exists():
        texts = parquet_texts(sorted(corpus.glob("shard-*.parquet")))
        tmp = path.with_suffix(".tmp")
        with open(tmp, "w", encoding="utf-8") as out:
            for number, text in enumerate(texts):
                out.write(json.dumps({"id": f"doc-{number:07d}", "text": text}, ensure_ascii=False) + "\n")
        tmp.replace(path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=int, default=20_000)
    parser.add_argument("--out", type=Path, default=Path("/tmp/corpuslab_dedup_corpus"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--output", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    corpus = args.out / f"real_docs{args.docs}_seed{args.seed}"
    if args.child:
        return child(args.child, corpus, args.processes, args.output)
    _, truth = dedup_real_corpus.build(args.docs, corpus, args.seed)
    jsonl = ensure_jsonl(corpus)
    megabytes = truth["bytes"] / 1e6
    print(f"== real corpus, {args.docs} docs, {megabytes:.1f} MB of text ({jsonl.stat().st_size / 1e6:.1f} MB as JSONL), "
          f"{len(truth['exact_duplicates'])} exact copies; {args.processes} process(es), {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.2f}")
    print(f"   {'method':<20}{'seconds':>8}{'CPU s':>7}{'MB/CPU-s':>10}{'MB/s':>7}{'dropped':>9}")
    results = {}
    for method in args.methods.split(","):
        output = corpus / f"exact-{method}.json"
        subprocess.run([sys.executable, __file__, "--child", method, "--docs", str(args.docs), "--out", str(args.out),
                        "--seed", str(args.seed), "--processes", str(args.processes), "--output", str(output)], check=True)
        report = json.loads(output.read_text())
        results[method] = report
        print(f"   {method:<20}{report['seconds']:>8.2f}{report['cpu_seconds']:>7.1f}"
              f"{megabytes / report['cpu_seconds']:>10.1f}{megabytes / report['seconds']:>7.1f}{report['dropped']:>9}")
    for ours, theirs in (("corpuslab-jsonl", "python-jsonl"), ("corpuslab-parquet", "python-parquet"),
                         ("engine-parquet", "python-parquet")):
        if ours in results and theirs in results:
            ratio = results[theirs]["cpu_seconds"] / results[ours]["cpu_seconds"]
            print(f"   {ours} / {theirs}: {ratio:.2f}x MB per CPU-second")
    expected = len(truth["exact_duplicates"])
    wrong = {m: r["dropped"] for m, r in results.items() if r["dropped"] != expected}
    print(f"   every method dropped the {expected} planted copies" if not wrong else f"   MISMATCH: expected {expected}, got {wrong}")


if __name__ == "__main__":
    main()
