"""Zero-shot scoring speed: corpuslab vs lm-evaluation-harness 0.4.13, the scoring loop and end to end.

    python benchmarks/tasks_speed.py                                  # 150 documents per task, tiny model
    python benchmarks/tasks_speed.py --docs 300 --preset small --vocab-size 16384

Task files are written in the Hugging Face field format of six harness tasks (hellaswag, arc_easy, piqa,
lambada_openai, winogrande, one BLiMP paradigm), from real text the project did not generate: the
sentences of the corpora under `shared/data` (`dedup_real_corpus.real_sentences`). Each has the shape of
its task: a HellaSwag context of two sentences and a started third with four endings, ARC questions with
four short answers, PIQA goals with two solutions, LAMBADA passages, WinoGrande sentences with a blank,
BLiMP minimal pairs (two words swapped). A BPE tokenizer is trained on the same text and a random model
of `--preset` saved as a checkpoint.

Two ratios, each scorer in a fresh process, same checkpoint, same requests, one torch thread:
- loop: corpuslab's `loglikelihoods` against the harness's `HFLM.loglikelihood` on the same list of
  (context, continuation) requests (built by corpuslab from the task files; the parity test checks the
  harness builds the same). Tokenization is inside both calls. Warm-up on a few requests, then the best
  of `--repeats` timed calls; CPU seconds (process time) and wall seconds.
- end to end: `corpuslab score CHECKPOINT --tasks ... --task-file ...` against the harness's `evaluate`
  on its own task YAMLs pointed at the same files (as `tests/evaluation/test_tasks_harness_parity.py`
  runs it), each a whole process: start-up, loading, building requests, scoring, metrics and their
  bootstrap standard errors (100,000 resamples in both).
Then the same two on all of the machine's cores, per second (what a user waits) and per CPU-second (the sum
over ranks / threads), `--processes` (default: the cores this process may use) against the harness with
its default torch threads (all cores, as a user gets it; it has no data-parallel mode on one device):
- loop: `loglikelihoods` in N fresh processes of one thread each, joined in a gloo group (each scores every
  N-th batch, all get every result; timed between barriers, wall of the slowest rank, CPU summed), against
  `HFLM.loglikelihood` in one process with N threads;
- end to end: `corpuslab score --processes N` against the harness's `evaluate` with N threads.
The loop workers also return every log-likelihood: the largest difference and the number of multiple-
choice decisions (acc, acc_norm) that differ are printed, and every request that differs by more than
1e-4 is scored again by the harness on its own (batch size 1), to tell which side the difference is on.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TASKS = ("hellaswag", "arc_easy", "piqa", "lambada_openai", "winogrande", "blimp_anaphor_gender_agreement")
YAMLS = {
    "hellaswag": ("hellaswag/hellaswag.yaml", "validation"),
    "arc_easy": ("arc/arc_easy.yaml", "test"),
    "piqa": ("piqa/piqa.yaml", "validation"),
    "lambada_openai": ("lambada/lambada_openai.yaml", "test"),
    "winogrande": ("winogrande/default.yaml", "validation"),
    "blimp_anaphor_gender_agreement": ("blimp/anaphor_gender_agreement.yaml", "train"),
}


# ---------------------------------------------------------------------------------------------- task files


def _words(sentence: str, n: int) -> str:
    return " ".join(sentence.split()[:n])


def task_documents(sentences: list[str], docs: int, seed: int) -> dict[str, list[dict]]:
    """`docs` documents per task in the hub dataset's fields, each built from real sentences."""
    rng = random.Random(seed)

    def pick(min_words: int = 4, max_words: int = 60) -> str:
        while True:
            sentence = rng.choice(sentences)
            if min_words <= len(sentence.split()) <= max_words:
                return sentence

    out: dict[str, list[dict]] = {name: [] for name in TASKS}
    for i in range(docs):
        first, second, third = pick(), pick(), pick(8)
        endings = [" ".join(third.split()[3:])] + [" ".join(pick(8).split()[3:]) for _ in range(3)]
        gold = rng.randrange(4)
        endings[0], endings[gold] = endings[gold], endings[0]
        out["hellaswag"].append({
            "ind": i, "activity_label": _words(pick(), 2).title(), "ctx_a": f"{first} {second}", "ctx_b": _words(third, 3).lower(),
            "ctx": "", "endings": endings, "source_id": str(i), "split": "val", "split_type": "indomain", "label": str(gold),
        })
        labels = ["A", "B", "C", "D"]
        out["arc_easy"].append({
            "id": str(i), "question": pick(6, 30).rstrip(".") + "?",
            "choices": {"text": [_words(pick(), rng.randint(1, 5)) for _ in labels], "label": labels}, "answerKey": rng.choice(labels),
        })
        out["piqa"].append({"goal": pick(4, 20), "sol1": pick(6, 30), "sol2": pick(6, 30), "label": rng.randrange(2)})
        passage = " ".join(pick() for _ in range(4))
        out["lambada_openai"].append({"text": " ".join(passage.split()[: rng.randint(40, 90)])})
        words = pick(8, 30).split()
        blank = rng.randrange(1, len(words) - 1)
        option = words[blank]
        words[blank] = "_"
        other = rng.choice(pick().split())
        answer = rng.choice(["1", "2"])
        options = (option, other) if answer == "1" else (other, option)
        out["winogrande"].append({"sentence": " ".join(words), "option1": options[0], "option2": options[1], "answer": answer})
        good = pick(4, 14).split()
        j = rng.randrange(len(good) - 1)
        bad = good[:j] + [good[j + 1], good[j]] + good[j + 2 :]
        out["blimp_anaphor_gender_agreement"].append({
            "sentence_good": " ".join(good), "sentence_bad": " ".join(bad), "UID": "anaphor_gender_agreement", "pair_id": i,
            "field": "syntax", "linguistics_term": "x", "simple_LM_method": True, "one_prefix_method": False,
            "two_prefix_method": False, "lexically_identical": True,
        })
    return out


def prepare(folder: Path, docs: int, preset: str, vocab_size: int) -> dict[str, str]:
    """Task files and a checkpoint under `folder`; returns {task: file}."""
    sys.path.insert(0, str(HERE))
    from dedup_real_corpus import real_sentences

    from corpuslab.tokens.tokenizer import TokenizerConfig, build_tokenizer
    from corpuslab.training.model import ModelConfig, build_model

    sentences = real_sentences()
    files = {}
    for name, rows in task_documents(sentences, docs, seed=0).items():
        path = folder / f"{name}.jsonl"
        path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
        files[name] = str(path)
    texts = [" ".join(sentences[i : i + 20]) for i in range(0, min(len(sentences), 40_000), 20)]
    tokenizer = build_tokenizer(TokenizerConfig(kind="bpe", vocab_size=vocab_size), texts)
    model = build_model(ModelConfig(preset), len(tokenizer), seed=0, eos_id=tokenizer.eos_token_id)
    model.save_pretrained(folder / "model")
    tokenizer.save_pretrained(folder / "model")
    return files


# ---------------------------------------------------------------------------------------------- workers


def _requests(files: dict[str, str]):
    from corpuslab.evaluation.tasks import load_examples

    return [r for name in files for e in load_examples(name, data_file=files[name]) for r in e.requests]


def loop_worker(scorer: str, folder: Path, files: dict[str, str], batch_size: int, repeats: int, one_thread: bool = True) -> dict:
    """Time one scorer's loop in this (fresh) process; return its figures and log-likelihoods. Without
    `one_thread`, torch keeps its default thread count (the machine's cores)."""
    import logging

    import torch

    if one_thread:
        torch.set_num_threads(1)
    logging.disable(logging.WARNING)  # the harness logs every truncated request
    requests = _requests(files)
    if scorer == "corpuslab":
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from corpuslab.evaluation.tasks import loglikelihoods

        model = AutoModelForCausalLM.from_pretrained(folder / "model").eval()
        tokenizer = AutoTokenizer.from_pretrained(folder / "model")

        def run(reqs):
            return loglikelihoods(model, tokenizer, reqs, batch_size, "cpu")
    else:
        from lm_eval.api.instance import Instance
        from lm_eval.models.huggingface import HFLM

        harness = HFLM(pretrained=str(folder / "model"), device="cpu", batch_size=batch_size)

        def run(reqs):
            instances = [Instance("loglikelihood", {}, (r.context, r.continuation), i) for i, r in enumerate(reqs)]
            return harness.loglikelihood(instances, disable_tqdm=True)

    run(requests[:64])  # warm-up: first-call allocations, kernel selection
    best_wall = best_cpu = float("inf")
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        results = run(requests)
        best_wall, best_cpu = min(best_wall, time.perf_counter() - wall), min(best_cpu, time.process_time() - cpu)
    return {"wall": best_wall, "cpu": best_cpu, "requests": len(requests), "threads": torch.get_num_threads(),
            "results": [list(map(float, r)) for r in results]}


def rank_worker(folder: Path, files: dict[str, str], batch_size: int, repeats: int) -> dict | None:
    """One rank of corpuslab's data-parallel loop (RANK, WORLD_SIZE, MASTER_* set by `_ranks`), one thread:
    each timed call runs between barriers; the wall of the slowest rank and the CPU of all, best of `repeats`.
    Rank 0 returns the figures and the log-likelihoods, the others None."""
    import logging

    import torch
    import torch.distributed as dist
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from corpuslab.evaluation.tasks import loglikelihoods
    from corpuslab.training import distributed

    torch.set_num_threads(1)
    logging.disable(logging.WARNING)
    distributed.init()
    requests = _requests(files)
    model = AutoModelForCausalLM.from_pretrained(folder / "model").eval()
    tokenizer = AutoTokenizer.from_pretrained(folder / "model")
    loglikelihoods(model, tokenizer, requests[:64], batch_size, "cpu")  # warm-up
    best_wall = best_cpu = float("inf")
    for _ in range(repeats):
        dist.barrier()
        wall, cpu = time.perf_counter(), time.process_time()
        results = loglikelihoods(model, tokenizer, requests, batch_size, "cpu")
        dist.barrier()
        figures = [None] * dist.get_world_size()
        dist.all_gather_object(figures, (time.perf_counter() - wall, time.process_time() - cpu))
        best_wall, best_cpu = min(best_wall, max(w for w, _ in figures)), min(best_cpu, sum(c for _, c in figures))
    world = dist.get_world_size()
    dist.destroy_process_group()
    if not distributed.is_main():
        return None
    return {"wall": best_wall, "cpu": best_cpu, "requests": len(requests), "ranks": world,
            "results": [list(map(float, r)) for r in results]}


def harness_alone(folder: Path, files: dict[str, str], indices: list[int]) -> list[list[float]]:
    """The harness's result for each of these requests scored on its own (batch size 1)."""
    import logging

    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    logging.disable(logging.WARNING)
    requests = _requests(files)
    harness = HFLM(pretrained=str(folder / "model"), device="cpu", batch_size=1)
    picked = [Instance("loglikelihood", {}, (requests[i].context, requests[i].continuation), k) for k, i in enumerate(indices)]
    return [list(map(float, r)) for r in harness.loglikelihood(picked, disable_tqdm=True)]


def harness_end_to_end(folder: Path, files: dict[str, str], batch_size: int) -> None:
    """The harness as its users run it on local files: task YAMLs, HFLM, `evaluate`, its table."""
    import logging

    import lm_eval
    from lm_eval.api.task import ConfigurableTask
    from lm_eval.evaluator import evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks._yaml_loader import load_yaml
    from lm_eval.utils import make_table

    logging.disable(logging.WARNING)
    tasks = {}
    for name in files:
        yaml, split = YAMLS[name]
        cfg = load_yaml(Path(lm_eval.tasks.__file__).parent / yaml, resolve_func=True)
        cfg.update({"dataset_path": "json", "dataset_name": None, "dataset_kwargs": {"data_files": {split: files[name]}},
                    "training_split": None, "validation_split": None, "test_split": None, "fewshot_split": None})
        cfg["test_split" if split == "test" else "validation_split"] = split
        for key in ("tag", "group"):
            cfg.pop(key, None)
        tasks[name] = ConfigurableTask(config=cfg)
    lm = HFLM(pretrained=str(folder / "model"), device="cpu", batch_size=batch_size)
    output = evaluate(lm, {"tasks": tasks, "groups": {}, "group_map": {}}, bootstrap_iters=100_000, verbosity="ERROR")
    print(make_table(output))


# ---------------------------------------------------------------------------------------------- parent


def _fresh(command: list[str], one_thread: bool = True) -> tuple[float, float, str]:
    """Run `command` in a new process, with one thread or torch's default (all cores): (wall s, CPU s of it and
    its children, stdout)."""
    env = {key: value for key, value in os.environ.items() if key not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    env["TOKENIZERS_PARALLELISM"] = "false"
    if one_thread:
        env.update({"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return wall, cpu, done.stdout


def _ranks(command: list[str], processes: int) -> dict:
    """Run `command` as `processes` fresh ranks of one thread (the environment torchrun gives); rank 0's JSON line."""
    from corpuslab.tools.ranks import _free_port

    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
           "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port()), "WORLD_SIZE": str(processes), "LOCAL_WORLD_SIZE": str(processes)}
    ranks = [subprocess.Popen(command, env={**env, "RANK": str(r), "LOCAL_RANK": str(r)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for r in range(processes)]
    outputs = [rank.communicate() for rank in ranks]
    for rank, (_, err) in zip(ranks, outputs):
        if rank.returncode != 0:
            raise SystemExit(f"{' '.join(command)} failed:\n{err[-3000:]}")
    return json.loads(outputs[0][0].splitlines()[-1])


def _decisions(requests_per_example: list[int], lls: list[float], lengths: list[int]) -> list[tuple[int, int]]:
    out, first = [], 0
    for n in requests_per_example:
        scores = lls[first : first + n]
        norm = [s / max(1, chars) for s, chars in zip(scores, lengths[first : first + n])]
        out.append((max(range(n), key=scores.__getitem__), max(range(n), key=norm.__getitem__)))
        first += n
    return out


def compare(files: dict[str, str], ours: list[list[float]], theirs: list[list[float]]) -> tuple[float, int, int, int]:
    """Largest |log-likelihood difference|, differing greedy flags, differing acc / acc_norm decisions."""
    from corpuslab.evaluation.tasks import load_examples

    examples = [e for name in files for e in load_examples(name, data_file=files[name])]
    sizes = [len(e.requests) for e in examples]
    lengths = [len(r.continuation) for e in examples for r in e.requests]
    worst = max(abs(a[0] - b[0]) for a, b in zip(ours, theirs, strict=True))
    greedy = sum(bool(a[1]) != bool(b[1]) for a, b in zip(ours, theirs, strict=True))
    choice = [i for i, n in enumerate(sizes) if n > 1]
    mine = _decisions(sizes, [a[0] for a in ours], lengths)
    other = _decisions(sizes, [b[0] for b in theirs], lengths)
    return worst, greedy, sum(mine[i][0] != other[i][0] for i in choice), sum(mine[i][1] != other[i][1] for i in choice)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=int, default=150, help="documents per task")
    parser.add_argument("--tasks", default=",".join(TASKS), help=f"a comma-separated subset of {','.join(TASKS)}")
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--vocab-size", type=int, default=4096)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--skip-end-to-end", action="store_true")
    parser.add_argument("--processes", type=int, help="ranks of the all-cores comparison (default: the cores this process may use)")
    parser.add_argument("--skip-parallel", action="store_true", help="only the one-thread comparison")
    parser.add_argument("--worker", choices=["corpuslab", "harness", "harness-threads", "corpuslab-rank", "harness-e2e", "harness-alone"],
                        help=argparse.SUPPRESS)
    parser.add_argument("--indices", default="", help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        folder = Path(args.folder)
        files = json.loads((folder / "files.json").read_text())
        if args.worker == "harness-e2e":
            harness_end_to_end(folder, files, args.batch_size)
        elif args.worker == "harness-alone":
            print(json.dumps(harness_alone(folder, files, [int(i) for i in args.indices.split(",")])))
        elif args.worker == "corpuslab-rank":
            print(json.dumps(rank_worker(folder, files, args.batch_size, args.repeats)))
        elif args.worker == "harness-threads":
            print(json.dumps(loop_worker("harness", folder, files, args.batch_size, args.repeats, one_thread=False)))
        else:
            print(json.dumps(loop_worker(args.worker, folder, files, args.batch_size, args.repeats)))
        return

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        files = {name: path for name, path in prepare(folder, args.docs, args.preset, args.vocab_size).items() if name in args.tasks.split(",")}
        (folder / "files.json").write_text(json.dumps(files))
        me = [sys.executable, str(Path(__file__).resolve()), "--folder", tmp, "--batch-size", str(args.batch_size), "--repeats", str(args.repeats)]
        loop = {name: json.loads(_fresh([*me, "--worker", name])[2].splitlines()[-1]) for name in ("corpuslab", "harness")}
        end_to_end = {}
        if not args.skip_end_to_end:
            task_files = [f"--task-file={name}={path}" for name, path in files.items()]
            score = [sys.executable, "-m", "corpuslab.cli", "score", str(folder / "model"), "--tasks", ",".join(files),
                     "--device", "cpu", "--batch-size", str(args.batch_size), *task_files]
            end_to_end["corpuslab"] = _fresh(score)[:2]
            end_to_end["harness"] = _fresh([*me, "--worker", "harness-e2e"])[:2]
        parallel = {} if args.skip_parallel else run_parallel(args, me, folder, files)
        worst, greedy, acc, acc_norm = compare(files, loop["corpuslab"]["results"], loop["harness"]["results"])
        if parallel:
            parallel["worst"] = compare(files, parallel["loop"]["corpuslab"]["results"], parallel["loop"]["harness"]["results"])
        ours_all, theirs_all = loop["corpuslab"]["results"], loop["harness"]["results"]
        differing = [i for i, (a, b) in enumerate(zip(ours_all, theirs_all)) if abs(a[0] - b[0]) > 1e-4]
        alone = json.loads(_fresh([*me, "--worker", "harness-alone", "--indices", ",".join(map(str, differing))])[2].splitlines()[-1]) if differing else []

    n = loop["corpuslab"]["requests"]
    print(f"{args.docs} documents per task ({', '.join(files)}; real text from shared/data), {n} requests; "
          f"preset {args.preset}, vocab {args.vocab_size}, batch {args.batch_size}, 1 thread, each scorer in a fresh process; "
          f"load average at the start {load_before:.2f}, now {os.getloadavg()[0]:.2f}")
    print(f"scoring loop (best of {args.repeats}):")
    for name, figures in loop.items():
        print(f"  {name:<10} {n / figures['cpu']:8.1f} requests per CPU-s  ({figures['cpu']:.2f} CPU-s, {figures['wall']:.2f} s wall)")
    ours, theirs = loop["corpuslab"], loop["harness"]
    print(f"  loop ratio (corpuslab / harness): {theirs['cpu'] / ours['cpu']:.2f}x per CPU-s, {theirs['wall'] / ours['wall']:.2f}x wall")
    print(f"  max |loglikelihood difference| {worst:.2g}; differing greedy flags {greedy}, acc decisions {acc}, acc_norm decisions {acc_norm}")
    for i, their_alone in zip(differing, alone):
        print(f"  request {i} differs by more than 1e-4: corpuslab {ours_all[i][0]:.6f}, harness batched {theirs_all[i][0]:.6f}, "
              f"harness scoring it alone {their_alone[0]:.6f}")
    if end_to_end:
        print("end to end (one process each: start-up, loading, requests, scoring, metrics):")
        for name, (wall, cpu) in end_to_end.items():
            print(f"  {name:<10} {cpu:7.2f} CPU-s, {wall:7.2f} s wall")
        (w_ours, c_ours), (w_theirs, c_theirs) = end_to_end["corpuslab"], end_to_end["harness"]
        print(f"  end-to-end ratio (corpuslab / harness): {c_theirs / c_ours:.2f}x per CPU-s, {w_theirs / w_ours:.2f}x wall")
    if parallel:
        print_parallel(parallel, n)


def run_parallel(args: argparse.Namespace, me: list[str], folder: Path, files: dict[str, str]) -> dict:
    """The all-cores comparison: corpuslab in `--processes` one-thread ranks, the harness with its default threads."""
    from corpuslab.tools.ranks import usable_cores

    processes = args.processes or usable_cores()
    loop = {"corpuslab": _ranks([*me, "--worker", "corpuslab-rank"], processes),
            "harness": json.loads(_fresh([*me, "--worker", "harness-threads"], one_thread=False)[2].splitlines()[-1])}
    out = {"processes": processes, "loop": loop, "end_to_end": {}}
    if not args.skip_end_to_end:
        task_files = [f"--task-file={name}={path}" for name, path in files.items()]
        score = [sys.executable, "-m", "corpuslab.cli", "score", str(folder / "model"), "--tasks", ",".join(files),
                 "--device", "cpu", "--batch-size", str(args.batch_size), "--processes", str(processes), *task_files]
        out["end_to_end"]["corpuslab"] = _fresh(score, one_thread=False)[:2]
        out["end_to_end"]["harness"] = _fresh([*me, "--worker", "harness-e2e"], one_thread=False)[:2]
    return out


def print_parallel(parallel: dict, n: int) -> None:
    loop, processes = parallel["loop"], parallel["processes"]
    threads = loop["harness"]["threads"]
    print(f"all cores ({processes} corpuslab ranks of 1 thread in a gloo group; the harness with its default {threads} torch threads), "
          f"load average {os.getloadavg()[0]:.2f}:")
    print("  scoring loop (best of the repeats; per CPU-s = requests / CPU-s summed over ranks or threads):")
    for name, figures in loop.items():
        print(f"    {name:<10} {n / figures['wall']:8.1f} requests per s  {n / figures['cpu']:8.1f} per CPU-s  "
              f"({figures['wall']:.2f} s wall, {figures['cpu']:.2f} CPU-s)")
    ours, theirs = loop["corpuslab"], loop["harness"]
    print(f"    loop ratio (corpuslab / harness): {theirs['wall'] / ours['wall']:.2f}x per second, {theirs['cpu'] / ours['cpu']:.2f}x per CPU-s")
    worst, greedy, acc, acc_norm = parallel["worst"]
    print(f"    max |loglikelihood difference| {worst:.2g}; differing greedy flags {greedy}, acc decisions {acc}, acc_norm decisions {acc_norm}")
    if parallel["end_to_end"]:
        print(f"  end to end (corpuslab score --processes {processes}; the harness's evaluate with {threads} threads):")
        for name, (wall, cpu) in parallel["end_to_end"].items():
            print(f"    {name:<10} {n / wall:8.1f} requests per s  {n / cpu:8.1f} per CPU-s  ({wall:.2f} s wall, {cpu:.2f} CPU-s)")
        (w_ours, c_ours), (w_theirs, c_theirs) = parallel["end_to_end"]["corpuslab"], parallel["end_to_end"]["harness"]
        print(f"    end-to-end ratio (corpuslab / harness): {w_theirs / w_ours:.2f}x per second, {c_theirs / c_ours:.2f}x per CPU-s")


if __name__ == "__main__":
    main()
