"""The README's default-run figures: wall time of `corpuslab run` and what its report shows.

    python benchmarks/default_run.py [extra key=value overrides]

Runs the built-in default in a fresh temporary output folder (nothing reused), then prints the wall time
and the CPU time of the run (this machine is shared: the load average before and after is printed with
them, and CPU-seconds are the figure that holds under load), where the time went (stage times from the
run's log), a second run's time (everything reused), the model's parameter count, and per arm: drops,
epochs, val perplexity and bits per byte, ground-truth precision/recall, canary exposure by copy count,
zero-shot task scores, training tokens/s.
"""

from __future__ import annotations

import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def timed_run(out: Path, overrides: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the run's process and its workers)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "corpuslab.cli", "run", f"output_dir={out}", *overrides],
                   check=True, capture_output=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def stage_seconds(log: str) -> dict[str, float]:
    """Seconds per kind of stage (train, evaluate, ...) summed over arms, from '[train near] finished in 12.3s'."""
    totals: dict[str, float] = {}
    for kind, seconds in re.findall(r"\[(\w+)[^\]]*\] finished in ([\d.]+)s", log):
        totals[kind] = totals.get(kind, 0.0) + float(seconds)
    return totals


def matmul_gflops(m: int, k: int, n: int, repeats: int = 10) -> float:
    """float32 matmul rate with torch's default threads: the ceiling the training loop works against."""
    import torch

    a, b = torch.randn(m, k), torch.randn(k, n)
    for _ in range(3):
        a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * m * k * n * repeats / (time.perf_counter() - start) / 1e9


def print_hardware_pace(params: int, n_layer: int, n_embd: int, context: int, tokens_per_second: float) -> None:
    """Training FLOP rate (6 N + 12 L d T per token; N counts the tied embedding once, as the output layer)
    next to what a lone matmul of the LM head's shape and a large square one reach on this machine."""
    flops_per_token = 6 * params + 12 * n_layer * n_embd * context
    print(f"training pace: {flops_per_token / 1e6:.2f} MFLOP/token x {tokens_per_second:,.0f} tokens/s = "
          f"{flops_per_token * tokens_per_second / 1e9:.0f} GFLOP/s; float32 matmul here: 4096x128x4096 "
          f"{matmul_gflops(4096, 128, 4096):.0f} GFLOP/s, 2048^3 {matmul_gflops(2048, 2048, 2048):.0f} GFLOP/s")


def minutes(seconds: float) -> str:
    return f"{int(seconds // 60)} min {seconds % 60:.0f} s"


def main() -> None:
    overrides = sys.argv[1:]
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        first, first_cpu = timed_run(out, overrides)
        load_after = os.getloadavg()[0]
        second, _ = timed_run(out, overrides)
        (report_path,) = out.glob("*/report.json")
        report = json.loads(report_path.read_text())
        stages = stage_seconds((report_path.parent / "run.log").read_text())
        (weights,) = list(out.glob("*/stages/train-*/final/model.safetensors"))[:1]
        model_config = json.loads((weights.parent / "config.json").read_text())
        from safetensors import safe_open

        with safe_open(str(weights), "pt") as tensors:
            # GPT-2 ties the output layer to the token embedding: the file holds the shared matrix once.
            params = sum(_numel(tensors.get_slice(k).get_shape()) for k in tensors.keys())
    print(f"corpuslab run (fresh): {first:.1f} s = {minutes(first)} wall, {first_cpu:.0f} CPU-s "
          f"({first_cpu / first:.2f} cores busy; {os.cpu_count()} CPUs, load average {load_before:.1f} before, "
          f"{load_after:.1f} after); rerun (all reused): {second:.1f} s")
    print("where the time went (s, summed over arms): " + ", ".join(f"{k} {v:.1f}" for k, v in stages.items()))
    print(f"model parameters: {params:,}")
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
    rates = [arm["replicates"][0]["training"]["tokens_per_second"] for arm in report["arms"].values()]
    shape = model_config  # the trained model's own config.json: layers, width, context
    print_hardware_pace(params, shape["n_layer"], shape["n_embd"], shape["n_positions"], sum(rates) / len(rates))
    for name, comparison in report.get("comparison", {}).get("arms", {}).items():
        factor = comparison["data_equivalent_factor"].get("mean")
        print(f"data-equivalent factor of {name} vs {report['comparison']['reference']}: "
              f"{'n/a' if factor is None else f'{factor:.2f}x'}")


def _numel(shape: list[int]) -> int:
    total = 1
    for size in shape:
        total *= size
    return total


if __name__ == "__main__":
    main()
