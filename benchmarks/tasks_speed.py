"""Scoring speed: corpuslab's batched log-likelihoods vs lm-evaluation-harness's HFLM on the same requests.

    python benchmarks/tasks_speed.py                       # 500 requests, tiny model
    python benchmarks/tasks_speed.py --preset small --requests 1000 --batch-size 64

The requests are the synthetic tasks' (4 per multiple-choice item, 1 per cloze passage), so they have
the shapes real tasks have: shared contexts, one- and many-token continuations. Both scorers get the
same saved checkpoint, batch size and thread count (one by default); tokenization is included in the
time (both tokenize inside the call). Each is timed `--repeats` times, alternating so that a burst of
load on a shared machine hits both alike, and the best run counts. CPU seconds (process time) are
reported next to wall time: they depend much less on what else the machine is doing.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from corpuslab.evaluation.tasks import Request, load_examples, loglikelihoods
from corpuslab.sources.synthetic import SyntheticConfig, generate
from corpuslab.tokens.tokenizer import TokenizerConfig, build_tokenizer
from corpuslab.training.model import ModelConfig, build_model


def make_checkpoint(folder: Path, preset: str, vocab_size: int) -> None:
    texts = [doc.text for doc in generate(SyntheticConfig(num_docs=1000), seed=0)]
    tokenizer = build_tokenizer(TokenizerConfig(kind="bpe", vocab_size=vocab_size), texts)
    model = build_model(ModelConfig(preset), len(tokenizer), seed=0, eos_id=tokenizer.eos_token_id)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def make_requests(n: int, seed: int) -> list[Request]:
    n_choice = (4 * n) // 5 // 4
    requests = [r for e in load_examples("synthetic_choice", n_choice, seed) for r in e.requests]
    requests += [r for e in load_examples("synthetic_cloze", n - len(requests), seed) for r in e.requests]
    return requests


def timed(run: Callable[[], list[tuple[float, bool]]]) -> tuple[float, float, list[tuple[float, bool]]]:
    wall, cpu = time.perf_counter(), time.process_time()
    results = run()
    return time.perf_counter() - wall, time.process_time() - cpu, results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--vocab-size", type=int, default=4096)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    # One thread by default: on a small shared machine, torch's threads spin against other processes and
    # wall times swing tenfold; one thread gives stable numbers. Both scorers use the same setting.
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    logging.disable(logging.WARNING)  # the harness logs every truncated request

    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        make_checkpoint(folder, args.preset, args.vocab_size)
        requests = make_requests(args.requests, seed=0)
        model = AutoModelForCausalLM.from_pretrained(folder).eval()
        tokenizer = AutoTokenizer.from_pretrained(folder)
        harness = HFLM(pretrained=str(folder), device="cpu", batch_size=args.batch_size)
        instances = [
            Instance("loglikelihood", {}, (r.context, r.continuation), i) for i, r in enumerate(requests)
        ]
        runners = {
            "corpuslab": lambda: loglikelihoods(model, tokenizer, requests, args.batch_size, "cpu"),
            "lm-eval HFLM": lambda: harness.loglikelihood(instances, disable_tqdm=True),
        }
        for run in runners.values():  # warm-up: first-call allocations, kernel selection
            run()
        best: dict[str, tuple[float, float]] = {}
        outputs = {}
        for _ in range(args.repeats):
            for name, run in runners.items():
                wall, cpu, outputs[name] = timed(run)
                previous = best.get(name, (float("inf"), float("inf")))
                best[name] = (min(previous[0], wall), min(previous[1], cpu))
    worst = max(abs(a[0] - b[0]) for a, b in zip(outputs["corpuslab"], outputs["lm-eval HFLM"], strict=True))
    print(
        f"{len(requests)} requests, preset {args.preset}, vocab {args.vocab_size}, batch {args.batch_size}, "
        f"{args.threads} threads; best of {args.repeats}"
    )
    for name, (wall, cpu) in best.items():
        print(f"  {name:<13} {len(requests) / wall:8.1f} requests/s  ({wall:.3f} s wall, {cpu:.3f} s CPU)")
    ours, theirs = best["corpuslab"], best["lm-eval HFLM"]
    print(f"  speed-up (corpuslab / HFLM): {theirs[0] / ours[0]:.2f}x wall, {theirs[1] / ours[1]:.2f}x CPU")
    print(f"  max |loglikelihood difference|: {worst:.2g}")


if __name__ == "__main__":
    main()
