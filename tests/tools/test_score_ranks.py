"""`corpuslab score` data-parallel: `--processes N` local CPU ranks and a torchrun launch give one process's results,
printed once; bad `--processes` values are ConfigErrors naming the option."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from corpuslab.cli import main
from tests.tools.score_checkpoint import write_score_checkpoint

ROOT = Path(__file__).resolve().parents[2]
PIQA = [{"goal": f"how to fix thing {i} at home", "sol1": f"use the tool {i} slowly", "sol2": f"use another {i % 3}", "label": i % 2}
        for i in range(14)]
LAMBADA = [{"text": f"the miller counted {i} sacks of flour and then sold {'the flour' if i % 2 else 'every sack'}"} for i in range(9)]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A 1-layer model and two task files: 37 requests, ten batches of 4 to split between ranks."""
    root = tmp_path_factory.mktemp("ranks")
    _, files, _, _ = write_score_checkpoint(root, {"piqa": PIQA, "lambada_openai": LAMBADA}, seed=5)
    args = ["score", str(root / "model"), "--tasks", "piqa,lambada_openai", "--device", "cpu", "--batch-size", "4",
            *(f"--task-file={name}={path}" for name, path in files.items())]
    return root, args


@pytest.fixture(scope="module")
def one_process(checkpoint, tmp_path_factory):
    """The table and JSON of scoring in this process, one torch thread (as each rank runs)."""
    import torch

    root, args = checkpoint
    out = tmp_path_factory.mktemp("one") / "scores.json"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        import contextlib
        import io

        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            assert main([*args, "--output", str(out)]) == 0
    finally:
        torch.set_num_threads(threads)
    return printed.getvalue(), json.loads(out.read_text())


def _run(command: list[str], tmp_path: Path, returncode: int = 0) -> tuple[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env.update(PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1")
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == returncode, done.stderr[-3000:]
    return done.stdout, done.stderr


def _same_results(ranked: dict, single: dict) -> None:
    assert ranked.keys() == single.keys() and ranked["checkpoint"] == single["checkpoint"]
    for task, metrics in single["results"].items():
        assert ranked["results"][task].keys() == metrics.keys()
        for name, value in metrics.items():
            assert ranked["results"][task][name] == pytest.approx(value, rel=1e-6, abs=1e-9), (task, name)


def _one_table(stdout: str, single_table: str) -> None:
    table = [line for line in stdout.splitlines() if line.startswith("|")]
    assert sum(line.replace(" ", "").startswith("|Tasks|") for line in table) == 1  # rank 0 alone prints
    assert table == [line for line in single_table.splitlines() if line.startswith("|")]


# 11 s (--processes: ranks forked after the imports), 16 s (torchrun: each rank imports torch and transformers)
# and 11 s (the failing ranks) on the shared 2-core machine at load 3.6.
def test_processes_two_give_the_results_of_one_process(checkpoint, one_process, tmp_path):
    _, args = checkpoint
    out = tmp_path / "ranked.json"
    stdout, stderr = _run([sys.executable, "-m", "corpuslab.cli", *args, "--processes", "2", "--output", str(out)], tmp_path)
    _one_table(stdout, one_process[0])
    _same_results(json.loads(out.read_text()), one_process[1])
    assert stderr.count("corpuslab score:") == 1 and "2 ranks" in stderr


def test_torchrun_launch_gives_the_results_of_one_process(checkpoint, one_process, tmp_path):
    _, args = checkpoint
    out = tmp_path / "torchrun.json"
    stdout, stderr = _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           "-m", "corpuslab.cli", *args, "--output", str(out)], tmp_path)
    _one_table(stdout, one_process[0])
    _same_results(json.loads(out.read_text()), one_process[1])
    assert stderr.count("corpuslab score:") == 1 and "2 ranks" in stderr


def test_an_error_in_the_ranks_is_printed_once_with_the_cli_exit_status(checkpoint, tmp_path):
    root, args = checkpoint
    missing = [str(root / "no-such-model") if a == str(root / "model") else a for a in args]
    stdout, stderr = _run([sys.executable, "-m", "corpuslab.cli", *missing, "--processes", "2"], tmp_path, returncode=2)
    assert stdout == "" and stderr.count("corpuslab: error:") == 1 and "no-such-model" in stderr and "Traceback" not in stderr


def test_notices_of_the_ranks_are_printed_once(checkpoint, tmp_path):
    """--processes 2 with the Hub unreachable (a closed local port) and a hub task: the Hub notice and the error
    each once, from rank 0, not once per rank."""
    root, _ = checkpoint
    env = {key: value for key, value in os.environ.items() if key not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "HF_HUB_OFFLINE")}
    env.update(PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false", HF_ENDPOINT="http://127.0.0.1",
               HF_HOME=str(tmp_path / "hf"))
    done = subprocess.run([sys.executable, "-m", "corpuslab.cli", "score", str(root / "model"), "--tasks", "arc_easy:2",
                           "--device", "cpu", "--processes", "2"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr[-3000:]
    assert done.stderr.count("the Hugging Face Hub (127.0.0.1) is not reachable") == 1 and done.stderr.count("corpuslab: error:") == 1, done.stderr


@pytest.mark.parametrize("extra, expected", [(["--processes", "0"], "from 1 to"), (["--processes", "-3"], "from 1 to"),
                                             (["--processes", "10000"], "the cores this process may use")])
def test_bad_processes_name_the_option(checkpoint, capsys, extra, expected):
    _, args = checkpoint
    args = [a for a in args if a not in ("--device", "cpu")]
    assert main([*args, *extra]) == 2
    err = capsys.readouterr().err
    assert "'--processes'" in err and expected in err


def test_processes_on_cuda_say_what_the_machine_has(checkpoint, capsys, monkeypatch):
    """--processes 2 --device cuda: without CUDA the same message as without --processes; with it, the torchrun line."""
    import torch

    _, args = checkpoint
    args = [a for a in args if a not in ("--device", "cpu")]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main([*args, "--device", "cuda", "--processes", "2"]) == 2
    with_ranks = capsys.readouterr().err
    assert main([*args, "--device", "cuda"]) == 2
    assert capsys.readouterr().err == with_ranks
    assert "'--device'" in with_ranks and "no CUDA device" in with_ranks and "is a GPU here" not in with_ranks
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert main([*args, "--device", "cuda", "--processes", "2"]) == 2
    err = capsys.readouterr().err
    assert "'--processes'" in err and "torchrun --nproc_per_node N" in err


def test_processes_under_a_launcher_is_refused(checkpoint, capsys, monkeypatch):
    for name, value in (("RANK", "0"), ("WORLD_SIZE", "2"), ("LOCAL_RANK", "0")):
        monkeypatch.setenv(name, value)
    assert main([*checkpoint[1], "--processes", "2"]) == 2
    err = capsys.readouterr().err
    assert "'--processes'" in err and "under torchrun" in err


def test_processes_one_scores_in_this_process(checkpoint, one_process, tmp_path, capsys, monkeypatch):
    """`--processes 1` starts no rank: no process group, the single-process results."""
    from corpuslab.tools import ranks

    monkeypatch.setattr(ranks, "spawn", lambda *a: pytest.fail("--processes 1 started ranks"))
    out = tmp_path / "one.json"
    assert main([*checkpoint[1], "--processes", "1", "--output", str(out)]) == 0
    _same_results(json.loads(out.read_text()), one_process[1])


def _report_rank(folder: str) -> int:
    """A rank's view: its environment, its torch threads, the group it joined, and an all-gather through it."""
    import torch
    import torch.distributed as dist

    gathered = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, int(os.environ["RANK"]))
    Path(folder, f"rank{os.environ['RANK']}.json").write_text(json.dumps({
        "world": os.environ["WORLD_SIZE"], "local": os.environ["LOCAL_RANK"], "threads": torch.get_num_threads(),
        "backend": dist.get_backend(), "gathered": gathered}))
    return 0


def _second_rank_fails(folder: str) -> int:
    """Rank 1 fails at once; rank 0 waits for it in a collective that never completes."""
    import torch.distributed as dist

    if os.environ["RANK"] == "1":
        return 3
    dist.barrier()
    Path(folder, "rank0-passed").write_text("")
    return 0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="forked ranks: Linux; elsewhere each rank is a new interpreter")
def test_spawned_ranks_get_torchruns_environment_a_gloo_group_and_a_share_of_the_cores(tmp_path, monkeypatch):
    from corpuslab.tools import ranks

    monkeypatch.setattr(ranks, "usable_cores", lambda: 4)
    assert ranks.spawn(2, _report_rank, (str(tmp_path),)) == 0
    seen = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert [(s["world"], s["local"], s["threads"], s["backend"]) for s in seen] == [("2", "0", 2, "gloo"), ("2", "1", 2, "gloo")]
    assert all(s["gathered"] == [0, 1] for s in seen)
    assert "RANK" not in os.environ  # the parent is not a rank


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="forked ranks: Linux")
def test_a_failing_rank_ends_the_others_and_gives_its_exit_status(tmp_path):
    from corpuslab.tools import ranks

    assert ranks.spawn(2, _second_rank_fails, (str(tmp_path),)) == 3
    assert not (tmp_path / "rank0-passed").exists()
