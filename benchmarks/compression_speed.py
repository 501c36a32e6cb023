"""Byte-level training speed: corpuslab's compression procedures next to a plain PyTorch loop.

    python benchmarks/compression_speed.py                     # transformer200k, 8 x 256 bytes, 1 thread
    python benchmarks/compression_speed.py --preset transformer4.1m --chunk-bytes 2048 --device cuda

Every loop trains the same Hugging Face GPT-2 (`build_model`, same seed, vocabulary 256) with Adam at a
constant learning rate, no clipping, on the same fixed byte chunks in stream order, batch `--batch-size` x
(`--chunk-bytes` - 1) targets. The plain loop is the one written by hand: forward, cross-entropy, backward,
step, zero_grad. The others are `corpuslab.training.trainer.train` with a compression procedure (vanilla,
rl1, drr, pmmp; TAMADE off, so a step's cost is compared): they read every batch's loss before its update
(the online code length), which costs one host sync per step on a GPU. Each measurement is a fresh process,
the loops alternate `--repeats` times so a burst of load on a shared machine hits all of them, `--warmup`
steps are untimed; the best and the median tokens/s are printed, with tokens per CPU-second (user + system
of every thread), which move much less with the load of a shared machine than wall time does.

A TAMADE search is timed on its own (`--tamade`): one bisection of `--tamade-steps` halvings on
`--tamade-sequences` validation chunks.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOOPS = ("plain", "vanilla", "rl1", "drr", "pmmp")


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _data(folder: Path, args):
    from corpuslab.compression.data import chunk_starts, write_byte_stream
    from corpuslab.compression.packaged import packaged_text_bytes
    from corpuslab.tokens.stream import TokenStream

    text = packaged_text_bytes("tiny_shakespeare_head")
    n_chunks = (args.warmup + args.steps) * args.batch_size
    needed = n_chunks * args.chunk_bytes
    data = (text * (needed // len(text) + 1))[:needed]
    write_byte_stream(folder / "train", data, args.chunk_bytes)
    write_byte_stream(folder / "val", text[: args.tamade_sequences * args.chunk_bytes], args.chunk_bytes)
    return (TokenStream.open(folder / "train"), chunk_starts(n_chunks, args.chunk_bytes),
            TokenStream.open(folder / "val"), chunk_starts(args.tamade_sequences, args.chunk_bytes))


def _model(args):
    from corpuslab.training.config import ModelConfig
    from corpuslab.training.model import build_model

    return build_model(ModelConfig(args.preset, context=max(args.chunk_bytes - 1, 1)), 256, seed=0)


def measure(args) -> dict:
    import torch

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    clock: dict[str, float] = {}

    def tick(name: str) -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        clock[name], clock[name + "_cpu"] = time.perf_counter(), cpu_seconds()

    with tempfile.TemporaryDirectory() as tmp:
        stream, windows, val, val_windows = _data(Path(tmp), args)
        model = _model(args)
        if args.child == "plain":
            loss = plain_loop(model, stream, windows, args, device, tick)
        elif args.child == "tamade":
            return tamade(model, val, val_windows, args, device)
        else:
            loss = procedure_loop(model, stream, windows, args, Path(tmp) / "run", tick)
    tokens = args.steps * args.batch_size * (args.chunk_bytes - 1)
    wall, cpu = clock["end"] - clock["start"], clock["end_cpu"] - clock["start_cpu"]
    return {"loop": args.child, "tokens_per_s": tokens / wall, "tokens_per_cpu_s": tokens / cpu, "final_loss": loss}


def plain_loop(model, stream, windows, args, device, tick) -> float:
    import torch
    import torch.nn.functional as F

    model.to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999))
    for step in range(args.warmup + args.steps):
        if step == args.warmup:
            tick("start")
        starts = windows[step * args.batch_size : (step + 1) * args.batch_size]
        inputs, targets = stream.batch(starts, args.chunk_bytes - 1)
        inputs, targets = inputs.to(device, non_blocking=True), targets.to(device, non_blocking=True)
        logits = model(input_ids=inputs, use_cache=False).logits
        loss = F.cross_entropy(logits.float().flatten(0, 1), targets.flatten())
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    tick("end")
    return loss.item()


def procedure_loop(model, stream, windows, args, out_dir, tick) -> float:
    from _timing import StepTimer

    from corpuslab.compression.procedures import PhaseConfig
    from corpuslab.training.config import TrainingConfig
    from corpuslab.training.procedures import procedures
    from corpuslab.training.trainer import train

    params = {"name": args.child, "prelude": {"epochs": 0}, "main": {"epochs": 1}, "fine_tuning": {"epochs": 0}}
    if args.child != "vanilla":
        params["alpha"] = 1e-4
    procedure = procedures.build(params, "procedure")
    assert procedure.config.main == PhaseConfig(epochs=1)
    steps = procedure.total_steps(len(windows), args.batch_size)
    cfg = TrainingConfig(chunk_len=args.chunk_bytes - 1, batch_size=args.batch_size, max_steps=steps, lr=1e-3,
                         warmup_steps=0, min_lr_ratio=1.0, weight_decay=0.0, grad_clip=0.0, betas=(0.9, 0.999),
                         log_interval=10**9, eval_interval=10**9, device=args.device, num_threads=args.threads)
    # No validation stream: the plain loop validates nothing either (TAMADE is off here and timed on its own).
    result = train(model, stream, windows, None, None, cfg, out_dir, log=lambda _: None,
                   callbacks=[StepTimer(args.warmup, tick)], procedure=procedure)
    return result.curve[-1]["loss"]


def tamade(model, val, val_windows, args, device) -> dict:
    import torch

    from corpuslab.compression.procedures import tamade_threshold
    from corpuslab.evaluation.lm import mean_window_loss

    model.to(device)
    originals = [p.detach().clone() for p in model.parameters()]

    def loss_at(eps: float) -> float:
        with torch.no_grad():
            for param, original in zip(model.parameters(), originals):
                param.copy_(original * (original.abs() >= eps))
        return mean_window_loss(model, val, val_windows, args.chunk_bytes - 1, args.batch_size, device)

    started, cpu = time.perf_counter(), cpu_seconds()
    baseline = loss_at(0.0)
    eps, _, steps = tamade_threshold(loss_at, baseline, 0.01, max_steps=args.tamade_steps)
    return {"loop": "tamade", "seconds": time.perf_counter() - started, "cpu_seconds": cpu_seconds() - cpu,
            "halvings": steps, "threshold": eps, "sequences": len(val_windows)}


def _child_arguments(argv: list[str]) -> list[str]:
    """The command line a child gets: everything but --tamade and --loops (`--loops=a,b` or `--loops a,b`)."""
    forward, skip = [], False
    for arg in argv:
        if skip or arg == "--tamade" or arg.startswith("--loops="):
            skip = False
            continue
        skip = arg == "--loops"
        if not skip:
            forward.append(arg)
    return forward


def run_child(args, loop: str) -> dict:
    command = [sys.executable, __file__, "--child", loop, *args.forward]
    out = subprocess.run(command, check=True, capture_output=True, text=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="transformer200k")
    parser.add_argument("--chunk-bytes", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=24)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--tamade-sequences", type=int, default=16)
    parser.add_argument("--tamade-steps", type=int, default=16)
    parser.add_argument("--tamade", action="store_true", help="also time one TAMADE search")
    parser.add_argument("--loops", default=",".join(LOOPS), help="comma-separated subset of " + ", ".join(LOOPS))
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args)))
        return
    args.forward = _child_arguments(sys.argv[1:])
    loops = [loop for loop in args.loops.split(",") if loop]
    if "plain" not in loops or any(loop not in LOOPS for loop in loops):
        parser.error(f"--loops: a subset of {', '.join(LOOPS)} including plain")
    results: dict[str, list[dict]] = {loop: [] for loop in loops}
    for _ in range(args.repeats):
        for loop in loops:
            results[loop].append(run_child(args, loop))
    print(f"byte-level training, {args.preset}, batch {args.batch_size} x {args.chunk_bytes - 1} targets, "
          f"{args.steps} timed steps, {args.threads} thread(s), {args.device}, {args.repeats} repeats")
    plain_best = max(r["tokens_per_s"] for r in results["plain"])
    plain_cpu = max(r["tokens_per_cpu_s"] for r in results["plain"])
    print(f"{'loop':10s} {'best tok/s':>12s} {'median tok/s':>13s} {'best tok/CPU-s':>15s} {'vs plain (CPU-s)':>17s}")
    for loop, runs in results.items():
        best = max(r["tokens_per_s"] for r in runs)
        median = statistics.median(r["tokens_per_s"] for r in runs)
        cpu = max(r["tokens_per_cpu_s"] for r in runs)
        print(f"{loop:10s} {best:12,.0f} {median:13,.0f} {cpu:15,.0f} {cpu / plain_cpu:16.2f}x")
    if "vanilla" in results:
        vanilla_cpu = max(r["tokens_per_cpu_s"] for r in results["vanilla"])
        for loop in ("rl1", "drr", "pmmp"):
            if loop in results:
                cpu = max(r["tokens_per_cpu_s"] for r in results[loop])
                print(f"overhead of {loop} over vanilla: {100 * (vanilla_cpu / cpu - 1):+.1f}% CPU time per token")
        print(f"vanilla / plain (best tok/s): {max(r['tokens_per_s'] for r in results['vanilla']) / plain_best:.2f}")
    if args.tamade:
        timing = run_child(args, "tamade")
        print(f"one TAMADE search: {timing['halvings']} halvings on {timing['sequences']} chunks in "
              f"{timing['seconds']:.1f} s ({timing['cpu_seconds']:.1f} CPU-s)")


if __name__ == "__main__":
    main()
