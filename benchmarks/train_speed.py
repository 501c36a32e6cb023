"""Training speed: corpuslab's training loop next to a plain Hugging Face loop on the same model, data and batch.

    python benchmarks/train_speed.py                      # CPU: the tiny and small presets, 40 timed steps each
    python benchmarks/train_speed.py --cli                # also `corpuslab train --arm no_dedup` of the default run
    python benchmarks/train_speed.py --device cuda --preset gpt2-124m --bf16      # GPU: tokens/s and MFU, compiled

Loop section. Both loops train the same Hugging Face GPT-2 (`build_model`, same seed, SDPA attention)
with AdamW, gradient clipping at 1.0, on the same windows of a random-token stream (the speed of a step
does not depend on which tokens it sees), batch `--batch-size` x `--chunk-len`. The plain loop is what
one writes by hand with transformers: `loss = model(input_ids=x, labels=x).loss`, backward, clip,
`torch.optim.AdamW(model.parameters(), fused=True on CUDA)` step, zero_grad, with no host sync per step;
with `--compile` (the default on CUDA) the model is `torch.compile`d. corpuslab's is `corpuslab.training.trainer.train` with its default callbacks (rate
logging, the loss and gradient-norm checks, the learning-rate schedule); validation and periodic saves
are off, so the two do the same work; with `--compile` it runs with training.compile=true. Each measurement runs in a fresh process (torch threads and the
allocator start alike), the two alternate `--repeats` times so a burst of load on a shared machine hits
both, `--warmup` steps are left out of the timing, and both the best and the median are printed.
Tokens per CPU-second (user + system time of every thread) are printed next to tokens/s: on a shared
machine they move much less with the load than wall time does.

CLI section (`--cli`). `corpuslab train --arm no_dedup` of the built-in default (244 steps, with its
validation and checkpoints), timed end to end `--repeats` times in a fresh process each; prints wall and
CPU seconds, the run's training tokens/s and its final validation loss in full precision, so a change
that claims to keep the numbers can be checked bit for bit. The experiment is prepared once (untimed)
in `--output-dir`, or a temporary folder.

GPU. `--device cuda` times on the GPU (synchronizing before each clock read); `--bf16` runs the forward
under bf16 autocast as `training.precision=bf16` does. MFU = tokens/s x FLOPs per token / peak FLOPs,
with FLOPs per token = 6 N + 12 n_layer n_embd T (N: the parameters a token's forward multiplies by,
the tied embedding counted once as the output projection; T: the context) and the peak from
`--peak-tflops` or, for H100/H200/A100 with --bf16, their dense bf16 peak.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Dense bf16 tensor-core peaks (TFLOP/s, SXM parts) for the MFU line.
BF16_PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0}


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def child_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# ------------------------------------------------------------------------------------------ one measurement


def random_stream(folder: Path, vocab_size: int, n_tokens: int):
    """A token stream of uniformly random ids in documents of 1,000 tokens (eos = 0)."""
    import numpy as np

    from corpuslab.tokens.stream import TokenStream, write_token_stream

    prefix = folder / "train"
    rng = np.random.default_rng(0)
    docs = (rng.integers(1, vocab_size, size=1000) for _ in range(max(1, n_tokens // 1000)))
    write_token_stream(prefix, docs, vocab_size, eos_id=0)
    return TokenStream.open(prefix)


def measure(args: argparse.Namespace) -> dict:
    """Train `args.warmup + args.steps` steps with one loop in this process; time the last `args.steps`."""
    import torch

    from corpuslab.training.model import ModelConfig, build_model, count_parameters

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    total = args.warmup + args.steps
    tokens_per_step = args.batch_size * args.chunk_len
    with tempfile.TemporaryDirectory() as tmp:
        stream = random_stream(Path(tmp), args.vocab_size, (total + 2) * tokens_per_step)
        windows = stream.windows(args.chunk_len)
        model = build_model(ModelConfig(args.preset), args.vocab_size, seed=0, eos_id=0)
        clock: dict[str, float] = {}

        def tick(name: str) -> None:
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            clock[name], clock[name + "_cpu"] = time.perf_counter(), cpu_seconds()

        if args.child == "plain":
            final_loss = plain_loop(model, stream, windows, args, device, tick)
        else:
            final_loss = corpuslab_loop(model, stream, windows, args, Path(tmp) / "run", tick)
        wall, cpu = clock["end"] - clock["start"], clock["end_cpu"] - clock["start_cpu"]
        tokens = args.steps * tokens_per_step
        out = {"loop": args.child, "tokens_per_s": tokens / wall, "tokens_per_cpu_s": tokens / cpu,
               "wall_s": wall, "cpu_s": cpu, "final_loss": final_loss, "threads": torch.get_num_threads()}
        if device.type == "cuda":
            config = model.config
            params = count_parameters(model) - model.transformer.wpe.weight.numel()
            flops_per_token = 6 * params + 12 * config.n_layer * config.n_embd * args.chunk_len
            out["achieved_tflops"] = out["tokens_per_s"] * flops_per_token / 1e12
            out["device_name"] = torch.cuda.get_device_name(device)
            out["max_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
        return out


def _decay_groups(model, weight_decay: float) -> list[dict]:
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def plain_loop(model, stream, windows, args, device, tick) -> float:
    """The Hugging Face loop one writes by hand (the model computes its own shifted loss from `labels`),
    with the same batches corpuslab's default sampler draws."""
    import torch

    from corpuslab.training.samplers import WindowSampler

    model.to(device).train()
    optimizer = torch.optim.AdamW(_decay_groups(model, 0.1), lr=1e-3, betas=(0.9, 0.95), fused=device.type == "cuda")
    params = [p for group in optimizer.param_groups for p in group["params"]]
    forward = torch.compile(model) if args.compile else model
    sampler = WindowSampler(len(windows), args.batch_size, seed=0)
    for step in range(args.warmup + args.steps):
        if step == args.warmup:
            tick("start")
        inputs, _ = stream.batch(windows[sampler.batch_indices(step)], args.chunk_len)
        inputs = inputs.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16):
            loss = forward(input_ids=inputs, labels=inputs, use_cache=False).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    tick("end")
    return loss.item()


def corpuslab_loop(model, stream, windows, args, out_dir: Path, tick) -> float:
    """corpuslab's `train()` with the same settings, timed by a callback between the same steps."""
    from _timing import StepTimer

    from corpuslab.training.trainer import TrainingConfig, train

    total = args.warmup + args.steps
    cfg = TrainingConfig(chunk_len=args.chunk_len, batch_size=args.batch_size, max_steps=total, lr=1e-3,
                         warmup_steps=0, min_lr_ratio=1.0, grad_clip=1.0, log_interval=10**9,
                         eval_interval=10**9, precision="bf16" if args.bf16 else "fp32", device=args.device,
                         resume="never", compile=args.compile)
    result = train(model, stream, windows, None, None, cfg, out_dir, log=lambda _: None, callbacks=[StepTimer(args.warmup, tick)])
    return result.curve[-1]["loss"]


# ------------------------------------------------------------------------------------------ the comparison


def run_child(loop: str, args: argparse.Namespace) -> dict:
    command = [sys.executable, __file__, "--child", loop, "--device", args.device, "--preset", args.preset,
               "--batch-size", str(args.batch_size), "--chunk-len", str(args.chunk_len), "--steps", str(args.steps),
               "--warmup", str(args.warmup), "--vocab-size", str(args.vocab_size), "--threads", str(args.threads or 0)]
    if args.bf16:
        command.append("--bf16")
    command.append("--compile" if args.compile else "--no-compile")
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"{loop} loop failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def summary(runs: list[dict], key: str) -> str:
    values = [run[key] for run in runs]
    return f"best {max(values):>9,.0f}  median {statistics.median(values):>9,.0f}"


def loop_section(args: argparse.Namespace) -> None:
    print(f"== loops: {args.preset} GPT-2, {args.batch_size} x {args.chunk_len} tokens, vocab {args.vocab_size}, "
          f"{args.device}{' bf16' if args.bf16 else ''}{', compiled' if args.compile else ''}, "
          f"{args.steps} timed steps after {args.warmup}, "
          f"{args.repeats} repeats, threads {args.threads or 'torch default'}")
    runs: dict[str, list[dict]] = {"plain": [], "corpuslab": []}
    for _ in range(args.repeats):
        for loop in runs:
            runs[loop].append(run_child(loop, args))
    for loop, results in runs.items():
        line = (f"{loop:10} tokens/s {summary(results, 'tokens_per_s')} | tokens per CPU-s "
                f"{summary(results, 'tokens_per_cpu_s')} | threads {results[0]['threads']}")
        if "achieved_tflops" in results[0]:
            best = max(results, key=lambda r: r["tokens_per_s"])
            peak = args.peak_tflops or (next((v for k, v in BF16_PEAK_TFLOPS.items() if k in best["device_name"]),
                                             None) if args.bf16 else None)
            mfu = f"{100 * best['achieved_tflops'] / peak:.1f}%" if peak else "n/a (give --peak-tflops)"
            line += (f" | {best['achieved_tflops']:.1f} TFLOP/s, MFU {mfu} on {best['device_name']}, "
                     f"peak memory {best['max_memory_gib']:.1f} GiB")
        print(line)
    ratio = statistics.median(r["tokens_per_cpu_s"] for r in runs["corpuslab"]) / statistics.median(
        r["tokens_per_cpu_s"] for r in runs["plain"])
    speed = statistics.median(r["tokens_per_s"] for r in runs["corpuslab"]) / statistics.median(
        r["tokens_per_s"] for r in runs["plain"])
    print(f"corpuslab / plain (medians): tokens/s {speed:.2f}x, tokens per CPU-s {ratio:.2f}x")


def cli_section(args: argparse.Namespace) -> None:
    own = args.output_dir is None
    out = Path(tempfile.mkdtemp(prefix="train_speed_")) if own else Path(args.output_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    def command(*overrides: str) -> list[str]:
        return [sys.executable, "-m", "corpuslab.cli", "train", f"output_dir={out}", *args.set, *overrides,
                "--arm", "no_dedup"]

    try:
        print(f"== corpuslab train --arm no_dedup (default run, {' '.join(args.set) or 'no overrides'}), "
              f"{args.repeats} repeats in {out}")
        # Untimed: everything before training (prepare, curate, pack), by a one-step run.
        # The working directory is the output folder, so the corpuslab on PYTHONPATH (or installed) runs.
        subprocess.run(command("training.max_steps=1"), check=True, capture_output=True, cwd=out)
        stages = next(out.glob("*/stages"))
        for repeat in range(args.repeats):
            for old in stages.glob("train-*"):
                shutil.rmtree(old)
            wall, cpu = time.perf_counter(), child_cpu_seconds()
            done = subprocess.run(command(), capture_output=True, text=True, cwd=out)
            wall, cpu = time.perf_counter() - wall, child_cpu_seconds() - cpu
            if done.returncode != 0:
                raise SystemExit(f"corpuslab train failed:\n{done.stderr[-3000:]}")
            (stage,) = [p for p in stages.glob("train-*") if (p / "curve.json").exists()]
            result = json.loads((stage / "manifest.json").read_text())["result"]
            curve = json.loads((stage / "curve.json").read_text())
            val = [entry["val_loss"] for entry in curve if entry.get("val_loss") is not None]
            tokens = result["tokens_seen"]
            print(f"run {repeat + 1}: {wall:6.1f} s wall, {cpu:6.1f} CPU-s ({tokens / cpu:,.0f} tokens per CPU-s "
                  f"for the whole command) | training {result['tokens_per_second']:,.0f} tokens/s | final train "
                  f"loss {curve[-1]['loss']!r} | val losses {val!r}")
    finally:
        if own:
            shutil.rmtree(out, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--preset", action="append", default=None,
                        help="model preset, repeatable (default: tiny and small on CPU, gpt2-124m on CUDA)")
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                        help="torch.compile both loops (default: on with CUDA, off on CPU)")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast forward (training.precision=bf16)")
    parser.add_argument("--batch-size", type=int, default=None, help="default: 32 (tiny), 16 (gpt2-124m)")
    parser.add_argument("--chunk-len", type=int, default=None, help="default: the preset's context")
    parser.add_argument("--vocab-size", type=int, default=None, help="default: 4096 (tiny, small), 50257 (gpt2-124m)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default 40 on CPU, 50 on GPU)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps first (default 3 on CPU, 10 on GPU)")
    parser.add_argument("--repeats", type=int, default=None, help="default 3 on CPU, 1 on GPU (compiling takes a minute)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads in both loops (0: each loop's default)")
    parser.add_argument("--peak-tflops", type=float, default=None, help="the device's peak, for MFU")
    parser.add_argument("--cli", action="store_true", help="also time `corpuslab train --arm no_dedup` end to end")
    parser.add_argument("--cli-only", action="store_true", help="only the CLI section")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="overrides for the CLI run")
    parser.add_argument("--output-dir", default=None, help="experiment folder for the CLI run (kept)")
    parser.add_argument("--child", choices=["plain", "corpuslab"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    gpu = args.device.startswith("cuda")
    args.compile = gpu if args.compile is None else args.compile
    args.repeats = args.repeats or (1 if gpu else 3)
    presets = args.preset or (["gpt2-124m"] if gpu else ["tiny", "small"])
    if args.child:
        print(json.dumps(measure(_sized(args, presets[0]))))
        return
    os.environ.setdefault("PYTHONPATH", str(ROOT))
    if not args.cli_only:
        for preset in presets:
            loop_section(_sized(args, preset))
    if args.cli or args.cli_only:
        cli_section(args)


def _sized(args: argparse.Namespace, preset: str) -> argparse.Namespace:
    """The settings for one preset: its context, and a batch, vocabulary and step count that fit it."""
    try:
        from corpuslab.training.config import PRESETS
    except ImportError:  # a corpuslab from before the torch-free config module
        from corpuslab.training.model import PRESETS
    gpu = args.device.startswith("cuda")
    large = preset == "gpt2-124m"
    sized = argparse.Namespace(**vars(args))
    sized.preset = preset
    sized.batch_size = args.batch_size or (16 if large else 32)
    sized.chunk_len = args.chunk_len or PRESETS[preset]["context"]
    sized.vocab_size = args.vocab_size or (50257 if large else 4096)
    sized.steps = args.steps or (50 if gpu else 40 if preset == "tiny" else 10)
    sized.warmup = args.warmup if args.warmup is not None else (10 if gpu else 3)
    return sized


if __name__ == "__main__":
    main()
