"""The README's diversity-scaling figures: wall and CPU time of `corpuslab run --config configs/diversity.yaml`
and what its report shows.

    python benchmarks/diversity_run.py [--config FILE] [extra key=value overrides]
    python benchmarks/diversity_run.py --report outputs/diversity/report.json     # only summarize a finished run

Runs the config in a fresh temporary output folder (nothing reused), then prints the wall time, the CPU time
of the run (user + system of the child process), the machine's load average before and after (this machine is
shared: a loaded machine stretches wall time), per arm the categories drawn, epochs and tokens/s, and per K
the seen / unseen test loss with 95% intervals and the report's sentence.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def timed_run(out: Path, config: str, overrides: list[str]) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "corpuslab.cli", "run", "--config", config, f"output_dir={out}", *overrides],
                   check=True, capture_output=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return time.perf_counter() - start, cpu


def summarize(report: dict) -> None:
    from corpuslab.report.diversity import diversity_summary

    for name, arm in report["arms"].items():
        stats, training = arm["curation"], arm["replicates"][0]["training"]
        print(f"{name:22} K={stats['k']} {','.join(stats['selected']):60} epochs {training['epochs_seen']:.2f} | "
              f"{training['tokens_per_second']:,.0f} tok/s")
    summary = diversity_summary(report)

    def cell(stats: dict) -> str:
        if stats["mean"] is None:
            return "-"
        half = f" ± {(stats['ci95'][1] - stats['ci95'][0]) / 2:.3f}" if stats.get("ci95") else ""
        return f"{stats['mean']:.3f}{half}"

    print(f"{'K':>4} {'models':>6} {'epochs':>7} {'seen loss':>16} {'unseen loss':>16}")
    for entry in summary["by_k"]:
        print(f"{entry['k']:>4} {entry['models']:>6} {entry['epochs']['mean']:>7.2f} {cell(entry['seen']):>16} "
              f"{cell(entry['unseen']):>16}")
    print(summary["sentence"])


def main() -> None:
    args = sys.argv[1:]
    if args[:1] == ["--report"]:
        summarize(json.loads(Path(args[1]).read_text()))
        return
    config = str(REPO / "configs" / "diversity.yaml")
    if args[:1] == ["--config"]:
        config, args = args[1], args[2:]
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        wall, cpu = timed_run(Path(tmp), config, args)
        (report_path,) = Path(tmp).glob("*/report.json")
        report = json.loads(report_path.read_text())
    load_after = os.getloadavg()
    print(f"corpuslab run --config {Path(config).name}: {wall:.0f} s wall = {int(wall // 60)} min {wall % 60:.0f} s, "
          f"{cpu:.0f} s CPU; load average before {load_before[0]:.1f}, after {load_after[0]:.1f} (2 cores)")
    summarize(report)


if __name__ == "__main__":
    main()
