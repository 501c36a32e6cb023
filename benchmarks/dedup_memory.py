"""Peak memory of `corpuslab dedup` as the corpus grows: is it flat from 100k to 1M documents?

    python benchmarks/dedup_memory.py --docs 100000,300000 [--recipe near] [--processes 2]

Each size is generated once (`scale.py`'s corpus: 20-100 made-up Zipf words per document, 10% near copies,
3% exact copies, as Parquet with `id` and `text`), then deduplicated by `corpuslab dedup` in a fresh process
while this script samples, every 20 ms, the resident memory of that process ("parent") and of its pool
workers. It prints wall and CPU seconds (the command and its workers, user + system), the peaks, and
between consecutive sizes the parent's growth per added document: what the command holds per document.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import scale  # noqa: E402


def _rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def measure(command: list[str]) -> dict:
    """Run `command`, sampling its memory and that of its children; wall and CPU seconds and the peaks."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ, "TQDM_DISABLE": "1"})
    parent = workers = both = 0
    while process.poll() is None:
        own, kids = _rss_kb(process.pid), sum(_rss_kb(child) for child in _children(process.pid))
        parent, workers, both = max(parent, own), max(workers, kids), max(both, own + kids)
        time.sleep(0.02)
    output = process.stdout.read().decode()
    if process.returncode:
        raise SystemExit(f"{' '.join(command)} failed:\n{output}")
    return {"wall_s": round(time.perf_counter() - started, 1), "parent_mb": round(parent / 1024),
            "workers_mb": round(workers / 1024), "sum_mb": round(both / 1024), "summary": output.strip().splitlines()}


def _cpu_of_children() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", default="100000,300000")
    parser.add_argument("--recipe", default="near")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--work", default="/tmp/corpuslab-dedup-memory")
    parser.add_argument("--keep-inputs", action="store_true", help="reuse generated inputs across runs")
    args = parser.parse_args()
    rows = []
    for docs in [int(d) for d in args.docs.split(",")]:
        folder = Path(args.work) / str(docs)
        if not (folder / "input").exists():
            scale.generate(folder / "input", docs)
        shutil.rmtree(folder / "out", ignore_errors=True)
        before = _cpu_of_children()
        row = measure([sys.executable, "-m", "corpuslab.cli", "dedup", str(folder / "input"), "--out", str(folder / "out"),
                       "--recipe", args.recipe, "--processes", str(args.processes)])
        row["cpu_s"] = round(_cpu_of_children() - before, 1)
        row["docs"] = docs
        rows.append(row)
        shutil.rmtree(folder / "out", ignore_errors=True)
        if not args.keep_inputs:
            shutil.rmtree(folder, ignore_errors=True)
        print(f"{docs:>10,} docs: {row['wall_s']:>6.1f} s wall, {row['cpu_s']:>6.1f} CPU-s ({docs / row['cpu_s']:,.0f} docs/CPU-s), "
              f"peak parent {row['parent_mb']} MB, workers {row['workers_mb']} MB, together {row['sum_mb']} MB", flush=True)
    for small, large in zip(rows, rows[1:]):
        added = large["docs"] - small["docs"]
        print(f"  {small['docs']:,} -> {large['docs']:,}: parent +{large['parent_mb'] - small['parent_mb']} MB "
              f"({(large['parent_mb'] - small['parent_mb']) * 2**20 / added:.0f} bytes per added document), "
              f"together +{large['sum_mb'] - small['sum_mb']} MB")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
