"""Near/exact dedup benchmark: corpuslab vs datasketch vs rensa, end to end, against known truth.

    python benchmarks/dedup.py --docs 20000
    python benchmarks/dedup.py --sizes 10000,20000,50000,100000 --methods corpuslab,rensa
    python benchmarks/dedup.py --kind real --docs 20000     real English sentences with planted edits

`--kind synthetic` (the default) is `dedup_corpus.py`'s made-up Zipf words; `--kind real` is
`dedup_real_corpus.py`: sentences of the real corpora in `<workspace>/shared/data` (C4, BBC, AG News,
arXiv, WikiText-2, Shakespeare), log-normal lengths, planted near and exact duplicates.

The corpus (benchmarks/dedup_corpus.py) is generated untimed and cached. Every method then runs in its
own fresh subprocess, timed from reading the Parquet shards to its duplicate pairs, with word 5-gram
shingles of the normalized text (NFKC, lowercase, whitespace split), 128 permutations and the same
bands x rows. Peak memory is the subprocess tree's, sampled every 50 ms: PSS (shared pages split
between the processes that share them -- the fair figure for forked workers; note that library pages
are also split with any other process on the machine using the same files) and RSS summed over
processes (an upper bound). CPU seconds (user + system, the process and its pool workers, less the
memory sampler's) do not depend on what else runs on the machine: docs per CPU-second is the
load-independent figure, docs/s the wall-clock one.

What counts as "found": corpuslab's verified pairs (true Jaccard >= threshold); for datasketch and
rensa, LSH candidates whose MinHash-estimated Jaccard >= threshold, the usual way to use them.
Truth: planted pairs with exact Jaccard >= threshold (pairs outside planted groups have J ~ 0).

datasketch and rensa run in one process, as they are normally used (rensa's batch call may use
threads); corpuslab uses a process pool over shards (`--processes`, default all cores) and is also
reported with one process.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import threading
import time
import unicodedata
from collections.abc import Callable
from pathlib import Path

import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
import dedup_corpus  # noqa: E402
import dedup_real_corpus  # noqa: E402

THRESHOLD = 0.85
NUM_PERM = 128
NGRAM = 5
SEED = 1
CURVE_BINS = np.round(np.arange(0.5, 1.0001, 0.05), 2)


# --- measurement, in the child process ------------------------------------------------------------------


class PeakMemory:
    """Samples the PSS and RSS of this process and its children every 50 ms in a thread."""

    def __init__(self) -> None:
        self.pss = self.rss = 0
        self.cpu_seconds = 0.0  # the sampler's own, to leave out of the method's CPU time
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        me = psutil.Process()
        started = time.thread_time()
        while not self._stop.is_set():
            pss = rss = 0
            for process in [me, *me.children(recursive=True)]:
                try:
                    info = process.memory_full_info()
                    pss, rss = pss + info.pss, rss + info.rss
                except psutil.Error:
                    pass
            self.pss, self.rss = max(self.pss, pss), max(self.rss, rss)
            self.cpu_seconds = time.thread_time() - started
            self._stop.wait(0.05)


def shingles(text: str) -> list[str]:
    """The baselines' shingles: word 5-grams of NFKC + lowercase text, like corpuslab's defaults."""
    words = unicodedata.normalize("NFKC", text).lower().split()
    if len(words) < NGRAM:
        return [" ".join(words)] if words else []
    return [" ".join(words[i : i + NGRAM]) for i in range(len(words) - NGRAM + 1)]


def read_shard(path: str) -> tuple[list[str], list[str]]:
    import pyarrow.parquet as pq

    table = pq.read_table(path, columns=["id", "text"])
    return table.column("id").to_pylist(), table.column("text").to_pylist()


def run_datasketch(shards: list[str], bands: int, rows: int) -> set[tuple[str, str]]:
    from datasketch import MinHash, MinHashLSH

    lsh = MinHashLSH(threshold=THRESHOLD, num_perm=NUM_PERM, params=(bands, rows))
    sketches: dict[str, MinHash] = {}
    for path in shards:
        for doc_id, text in zip(*read_shard(path)):
            sketch = MinHash(num_perm=NUM_PERM, seed=SEED)
            sketch.update_batch([s.encode() for s in shingles(text)])
            lsh.insert(doc_id, sketch)
            sketches[doc_id] = sketch
    return {
        _ordered(doc_id, other)
        for doc_id, sketch in sketches.items()
        for other in lsh.query(sketch)
        if other != doc_id and sketch.jaccard(sketches[other]) >= THRESHOLD
    }


def run_rensa(shards: list[str], bands: int, rows: int) -> set[tuple[str, str]]:
    from rensa import RMinHash, RMinHashLSH

    lsh = RMinHashLSH(threshold=THRESHOLD, num_perm=NUM_PERM, num_bands=bands)
    ids: list[str] = []
    sketches: list = []
    for path in shards:
        shard_ids, texts = read_shard(path)
        batch = RMinHash.from_token_sets([shingles(text) for text in texts], num_perm=NUM_PERM, seed=SEED)
        lsh.insert_many(batch, len(sketches))
        ids.extend(shard_ids)
        sketches.extend(batch)
    found = lsh.query_all(sketches)
    return {
        _ordered(ids[i], ids[j])
        for i, candidates in enumerate(found)
        for j in candidates
        if j != i and sketches[i].jaccard(sketches[j]) >= THRESHOLD
    }


def run_corpuslab(shards: list[str], bands: int, rows: int, processes: int) -> set[tuple[str, str]]:
    from corpuslab.curation.dedup.minhash import MinHashConfig
    from corpuslab.curation.dedup.near import find_near_duplicates
    from corpuslab.executor import LocalExecutor, SerialExecutor

    cfg = MinHashConfig(
        ngram=NGRAM, num_perm=NUM_PERM, threshold=THRESHOLD, bands=bands, rows=rows, seed=SEED
    )
    with LocalExecutor(processes) if processes > 1 else SerialExecutor() as executor:
        result = find_near_duplicates(shards, cfg, executor=executor)
    return {_ordered(a, b) for a, b, _ in result.verified_pairs}


def run_exact(shards: list[str], processes: int) -> dict[str, str]:
    from corpuslab.curation.dedup.exact import find_exact_duplicates
    from corpuslab.executor import LocalExecutor, SerialExecutor

    with LocalExecutor(processes) if processes > 1 else SerialExecutor() as executor:
        result = find_exact_duplicates(shards, executor=executor)
    return {d.id: d.duplicate_of for d in result.decisions if not d.kept}


def corpuslab_candidates(shards: list[str], bands: int, rows: int) -> list[tuple[str, str]]:
    """LSH candidate pairs before verification, for the detection curve (not timed)."""
    from corpuslab.curation.dedup.lsh import candidate_pairs
    from corpuslab.curation.dedup.minhash import MinHashConfig
    from corpuslab.curation.dedup.normalize import NormalizeConfig
    from corpuslab.curation.dedup.scan import scan_corpus
    from corpuslab.executor import LocalExecutor

    cfg = MinHashConfig(
        ngram=NGRAM, num_perm=NUM_PERM, threshold=THRESHOLD, bands=bands, rows=rows, seed=SEED
    )
    with LocalExecutor() as executor:
        scan = scan_corpus(shards, NormalizeConfig(), cfg, executor, digests=False)
    return [(scan.ids[a], scan.ids[b]) for a, b in candidate_pairs(scan.band_keys, ~scan.empty).tolist()]


def _ordered(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a < b else (b, a)


def child(args: argparse.Namespace) -> None:
    """Run one method and write {seconds, cpu_seconds, memory, found} as JSON to --output.

    Python imports happen before the clock starts, for every method alike; everything after --
    including corpuslab loading its compiled kernels and starting its worker pool -- is timed.
    """
    shards = sorted(str(p) for p in Path(args.corpus).glob("shard-*.parquet"))
    run = prepare(args)
    cpu_before = cpu_seconds()
    with PeakMemory() as memory:
        started = time.perf_counter()
        found = run(shards)
        seconds = time.perf_counter() - started
    report = {
        "seconds": seconds,
        "cpu_seconds": cpu_seconds() - cpu_before - memory.cpu_seconds,
        "pss": memory.pss,
        "rss": memory.rss,
        "found": found,
    }
    if args.method == "corpuslab" and args.candidates:
        report["candidates"] = corpuslab_candidates(shards, args.bands, args.rows)
    Path(args.output).write_text(json.dumps(report))


def prepare(args: argparse.Namespace) -> Callable[[list[str]], list | dict]:
    """Import the method's library and return a function of the shards that runs it."""
    import pyarrow.parquet  # noqa: F401  (every method reads Parquet)

    if args.method == "datasketch":
        import datasketch  # noqa: F401

        return lambda shards: sorted(run_datasketch(shards, args.bands, args.rows))
    if args.method == "rensa":
        import rensa  # noqa: F401

        return lambda shards: sorted(run_rensa(shards, args.bands, args.rows))
    import corpuslab.curation.dedup.near  # noqa: F401

    if args.method == "exact":
        return lambda shards: run_exact(shards, args.processes)
    return lambda shards: sorted(run_corpuslab(shards, args.bands, args.rows, args.processes))


def cpu_seconds() -> float:
    """User + system CPU time of this process and its finished children (pool workers are joined)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


# --- orchestration, in the parent -----------------------------------------------------------------------


def measure(
    method: str, corpus: Path, bands: int, rows: int, processes: int, candidates: bool = False
) -> dict:
    output = corpus / f"result-{method}-{processes}.json"
    command = [
        sys.executable,
        __file__,
        "--child",
        method,
        "--corpus",
        str(corpus),
        "--output",
        str(output),
        "--bands",
        str(bands),
        "--rows",
        str(rows),
        "--processes",
        str(processes),
    ]
    subprocess.run(command + (["--candidates"] if candidates else []), check=True)
    return json.loads(output.read_text())


def pair_scores(found: list, truth_pairs: list) -> dict:
    positives = {_ordered(a, b) for a, b, j in truth_pairs if j >= THRESHOLD}
    found_set = {tuple(pair) for pair in found}
    hits = len(found_set & positives)
    return {
        "precision": hits / len(found_set) if found_set else 1.0,
        "recall": hits / len(positives),
        "found": len(found_set),
        "positives": len(positives),
    }


def detection_curve(candidates: list, truth_pairs: list, bands: int, rows: int) -> list[tuple]:
    """Per true-Jaccard bin: share of planted pairs that became LSH candidates, vs 1 - (1 - s^r)^b."""
    found = {tuple(pair) for pair in candidates}
    similarity = np.array([j for _, _, j in truth_pairs])
    detected = np.array([_ordered(a, b) in found for a, b, _ in truth_pairs])
    rows_out = []
    for low, high in zip(CURVE_BINS[:-1], CURVE_BINS[1:]):
        inside = (similarity >= low) & ((similarity < high) if high < 1 else (similarity <= 1))
        if inside.any():
            theory = np.mean(1 - (1 - similarity[inside] ** rows) ** bands)
            rows_out.append(
                (
                    f"[{low:.2f}, {high:.2f}{')' if high < 1 else ']'}",
                    int(inside.sum()),
                    float(detected[inside].mean()),
                    float(theory),
                )
            )
    return rows_out


def mb(n_bytes: int) -> str:
    return f"{n_bytes / 2**20:.0f} MB"


def benchmark_size(n_docs: int, args: argparse.Namespace, bands: int, rows: int) -> dict:
    corpus = args.out / f"{args.kind}_docs{n_docs}_seed{args.seed}"
    clock = time.perf_counter()
    builder = dedup_real_corpus if args.kind == "real" else dedup_corpus
    _, truth = builder.build(n_docs, corpus, args.seed)
    print(
        f"\n== {args.kind} corpus, {n_docs} docs, {truth['bytes'] / 1e6:.1f} MB of text, {len(truth['pairs'])} planted pairs, "
        f"{len(truth['exact_duplicates'])} exact copies; random cross-group pairs: max Jaccard "
        f"{truth['cross_group_max_jaccard']:.4f} (corpus ready in {time.perf_counter() - clock:.0f} s, "
        "untimed)"
    )
    print(
        f"   word {NGRAM}-grams, {NUM_PERM} permutations, {bands} bands x {rows} rows, "
        f"threshold {THRESHOLD}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start"
    )
    results = {}
    plan = [("corpuslab", args.processes), ("corpuslab", 1)] if "corpuslab" in args.methods else []
    plan += [(m, 1) for m in ("datasketch", "rensa") if m in args.methods]
    print(
        f"   {'method':<22}{'seconds':>8}{'docs/s':>8}{'CPU s':>7}{'docs/CPU-s':>11}{'peak PSS':>10}"
        f"{'peak RSS sum':>13}{'precision':>10}{'recall':>8}"
    )
    for method, processes in plan:
        report = measure(
            method,
            corpus,
            bands,
            rows,
            processes,
            candidates=(method, processes) == ("corpuslab", args.processes),
        )
        scores = pair_scores(report["found"], truth["pairs"])
        name = f"{method} ({processes} proc)" if method == "corpuslab" else method
        results[name] = {
            **report,
            **scores,
            "docs_per_s": n_docs / report["seconds"],
            "docs_per_cpu_s": n_docs / report["cpu_seconds"],
        }
        print(
            f"   {name:<22}{report['seconds']:>8.2f}{n_docs / report['seconds']:>8.0f}"
            f"{report['cpu_seconds']:>7.1f}{n_docs / report['cpu_seconds']:>11.0f}{mb(report['pss']):>10}"
            f"{mb(report['rss']):>13}{scores['precision']:>10.4f}{scores['recall']:>8.4f}"
        )
    _print_ratios(results, args.processes)
    print(f"   load average {os.getloadavg()[0]:.2f} at the end")
    if "corpuslab" in args.methods:
        _print_exact(corpus, truth, args.processes)
        _print_curve(results[f"corpuslab ({args.processes} proc)"]["candidates"], truth["pairs"], bands, rows)
    return {
        name: {k: v for k, v in r.items() if k not in ("found", "candidates")} for name, r in results.items()
    }


def _print_ratios(results: dict, processes: int) -> None:
    ours = results.get(f"corpuslab ({processes} proc)")
    single = results.get("corpuslab (1 proc)")
    for other in ("datasketch", "rensa"):
        if ours and other in results:
            print(
                f"   corpuslab/{other}: {ours['docs_per_s'] / results[other]['docs_per_s']:.1f}x docs/s "
                f"({single['docs_per_s'] / results[other]['docs_per_s']:.1f}x with one process), "
                f"{ours['docs_per_cpu_s'] / results[other]['docs_per_cpu_s']:.1f}x docs per CPU-second"
            )


def _print_exact(corpus: Path, truth: dict, processes: int) -> None:
    report = measure("exact", corpus, 1, 1, processes)
    expected = truth["exact_duplicates"]
    found = report["found"]
    correct = sum(found.get(copy) == original for copy, original in expected.items())
    print(
        f"   exact dedup ({processes} proc): {truth['bytes'] / 1e6 / report['seconds']:.0f} MB/s "
        f"({report['seconds']:.2f} s, {truth['bytes'] / 1e6 / report['cpu_seconds']:.0f} MB per CPU-second, "
        f"peak PSS {mb(report['pss'])}), recall {correct / len(expected):.4f} "
        f"(duplicate_of = earliest copy), precision {correct / max(len(found), 1):.4f}"
    )


def _print_curve(candidates: list, truth_pairs: list, bands: int, rows: int) -> None:
    print("   detection probability vs true Jaccard (LSH candidates before verification, planted pairs):")
    print(f"     {'true J':<14}{'pairs':>7}{'measured':>10}{'1-(1-s^r)^b':>13}")
    for label, count, measured, theory in detection_curve(candidates, truth_pairs, bands, rows):
        print(f"     {label:<14}{count:>7}{measured:>10.3f}{theory:>13.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=int, default=20_000)
    parser.add_argument("--sizes", type=str, default=None, help="comma-separated corpus sizes (scaling run)")
    parser.add_argument("--methods", type=str, default="corpuslab,datasketch,rensa")
    parser.add_argument("--kind", choices=("synthetic", "real"), default="synthetic",
                        help="made-up Zipf words (dedup_corpus.py) or real sentences with planted edits (dedup_real_corpus.py)")
    parser.add_argument("--processes", type=int, default=os.cpu_count())
    parser.add_argument("--out", type=Path, default=Path("/tmp/corpuslab_dedup_corpus"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument("--child", dest="method", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--corpus", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--output", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--bands", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--rows", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--candidates", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.method:
        return child(args)
    from corpuslab.curation.dedup.minhash import MinHashConfig

    bands, rows = MinHashConfig(ngram=NGRAM, num_perm=NUM_PERM, threshold=THRESHOLD).bands_rows()
    args.methods = args.methods.split(",")
    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else [args.docs]
    figures = {n: benchmark_size(n, args, bands, rows) for n in sizes}
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
