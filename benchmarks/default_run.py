"""The README's default-run figures: wall time of `corpuslab run` and what its report shows.

    python benchmarks/default_run.py [extra key=value overrides]

Runs the built-in default in a fresh temporary output folder (nothing reused), then prints the wall time,
a second run's time (everything reused), and per arm: drops, epochs, val perplexity and bits per byte,
ground-truth precision/recall, canary exposure by copy count, zero-shot task scores, training tokens/s.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def timed_run(out: Path, overrides: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "corpuslab.cli", "run", f"output_dir={out}", *overrides],
                   check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    overrides = sys.argv[1:]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        first = timed_run(out, overrides)
        second = timed_run(out, overrides)
        (report_path,) = out.glob("*/report.json")
        report = json.loads(report_path.read_text())
    print(f"corpuslab run (fresh): {first:.1f} s = {int(first // 60)} min {first % 60:.0f} s; rerun (all reused): {second:.1f} s")
    for name, arm in report["arms"].items():
        curation, replicate = arm["curation"], arm["replicates"][0]
        metrics, training = replicate["metrics"], replicate["training"]
        reasons = curation.get("dropped_by_reason", {})
        truth = curation.get("ground_truth", {})
        exposure = {c["copies"]: round(c["mean_exposure"], 2) for c in metrics["canaries"]["by_copies"]}
        tasks = {task: {k: round(v, 3) for k, v in scores.items() if isinstance(v, float)}
                 for task, scores in metrics.get("tasks", {}).items()}
        print(f"{name:10} dropped exact {reasons.get('exact_duplicate', 0)} near {reasons.get('near_duplicate', 0)} | "
              f"epochs {training['epochs_seen']:.2f} | val ppl {metrics['val']['perplexity']:.2f} "
              f"bpb {metrics['val']['bits_per_byte']:.3f} | dup precision {truth.get('precision')} recall "
              f"{None if truth.get('recall') is None else round(truth['recall'], 3)} | exposure by copies {exposure} | "
              f"{training['tokens_per_second']:,.0f} tok/s")
        print(f"{'':10} tasks {tasks}")
    for name, comparison in report.get("comparison", {}).get("arms", {}).items():
        factor = comparison["data_equivalent_factor"].get("mean")
        print(f"data-equivalent factor of {name} vs {report['comparison']['reference']}: "
              f"{'n/a' if factor is None else f'{factor:.2f}x'}")


if __name__ == "__main__":
    main()
