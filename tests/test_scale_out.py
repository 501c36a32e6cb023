"""The experiment scaled out: `torchrun ... corpuslab train` (2 CPU processes, gloo) and `--jobs 2` each give the
numbers a single sequential process gives."""

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

from corpuslab.cli import main
from tests.conftest import TINY

ARMS = ["--arm", "no_dedup", "--arm", "exact"]
SETTINGS = [*TINY, "training.num_threads=1"]  # one CPU thread: float reductions in one order in every process


@pytest.fixture(scope="module")
def sequential(tmp_path_factory):
    """Both arms trained one after the other in one process; every stage of it kept."""
    out = tmp_path_factory.mktemp("sequential")
    assert main(["train", f"output_dir={out}", *SETTINGS, *ARMS]) == 0
    return out / "tiny" / "stages"


def _without_training(stages: Path, out: Path) -> None:
    """Start `out` from the sequential run's stages up to packing: only training differs."""
    target = out / "tiny" / "stages"
    shutil.copytree(stages, target, ignore=lambda folder, names: [n for n in names if n.startswith("train-")])


def _trained(stages: Path) -> dict[str, Path]:
    return {path.name: path for path in sorted(stages.glob("train-*")) if (path / "manifest.json").exists()}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_torchrun_two_processes_train_the_single_process_model(sequential, tmp_path):
    _without_training(sequential, tmp_path)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
               "--master_port", str(_free_port()), "-m", "corpuslab.cli", "train", f"output_dir={tmp_path}",
               *SETTINGS, "--arm", "no_dedup"]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "2 processes x 4 windows" in done.stderr
    ddp = _trained(tmp_path / "tiny" / "stages")
    single = _trained(sequential)
    (name,) = ddp  # the same fingerprint as the single-process stage: the world size is not part of it
    assert name in single
    got, expected = (json.loads((folder / "curve.json").read_text()) for folder in (ddp[name], single[name]))
    assert [e["step"] for e in got] == [e["step"] for e in expected]
    for key in ("loss", "grad_norm", "val_loss"):
        assert [e[key] for e in got] == pytest.approx([e[key] for e in expected], rel=1e-5), key
    assert not (tmp_path / "tiny" / ".lock").exists()


def test_a_world_size_that_does_not_divide_the_batch_stops_before_any_stage(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WORLD_SIZE", "3")
    assert main(["train", f"output_dir={tmp_path}", *SETTINGS]) == 2
    err = capsys.readouterr().err
    assert "training.batch_size" in err and "world size (3 processes" in err and "multiple of 3" in err
    assert not list((tmp_path / "tiny" / "stages").glob("ingest-*"))


def test_jobs_train_arms_in_parallel_with_the_sequential_results(sequential, tmp_path):
    _without_training(sequential, tmp_path)
    assert main(["train", f"output_dir={tmp_path}", *SETTINGS, *ARMS, "--jobs", "2"]) == 0
    parallel, single = _trained(tmp_path / "tiny" / "stages"), _trained(sequential)
    assert sorted(parallel) == sorted(single) and len(parallel) == 2
    for name in parallel:
        assert (parallel[name] / "curve.json").read_text() == (single[name] / "curve.json").read_text()
        weights, expected = (load_file(folder / "final" / "model.safetensors") for folder in (parallel[name], single[name]))
        assert all(bool((weights[key] == expected[key]).all()) for key in expected)
    log = (tmp_path / "tiny" / "run.log").read_text()
    assert "training 2 runs, 2 at a time" in log


def test_jobs_must_be_positive(tmp_path, capsys):
    assert main(["train", f"output_dir={tmp_path}", *SETTINGS, "--jobs", "0"]) == 2
    assert "--jobs" in capsys.readouterr().err


def test_the_slurm_example_is_valid_bash_that_starts_torchrun_per_node():
    script = Path(__file__).resolve().parent.parent / "examples" / "slurm_train.sh"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    text = script.read_text()
    assert "--ntasks-per-node=1" in text and "torchrun --nnodes" in text and '-m corpuslab.cli "$COMMAND"' in text
    assert "COMMAND=${COMMAND:-run}" in text  # tests/test_multinode.py runs the script itself on two "nodes"


def test_parallel_workers_take_one_gpu_each_or_share_the_cpu(monkeypatch):
    import torch

    from corpuslab.config import load_config
    from corpuslab.training import parallel

    cfg = load_config(None, SETTINGS[:-1])  # training.num_threads unset
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 3)
    assert parallel._devices(cfg) == ["cuda:0", "cuda:1", "cuda:2"]
    on_gpu = parallel._on_device(cfg, "cuda:2", jobs=3)
    assert on_gpu.training.device == "cuda:2" and on_gpu.training.num_threads is None
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    assert parallel._on_device(cfg, "cpu", jobs=2).training.num_threads == 4
    pinned = load_config(None, [*SETTINGS[:-1], "training.device=cpu", "training.num_threads=3"])
    assert parallel._devices(pinned) == ["cpu"]
    assert parallel._on_device(pinned, "cpu", jobs=2).training.num_threads == 3
