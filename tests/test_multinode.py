"""Multi-node launches simulated on this one machine, on loopback, through the launchers users run:

- examples/slurm_train.sh on two "nodes" (Slurm's srun and scontrol replaced by stand-ins): two
  `torchrun --nnodes 2 --nproc_per_node 1` launches, c10d rendezvous, of `corpuslab train` draw the curve one
  process draws; the process whose RANK is 0 builds every stage, the other node's process (RANK 1 but
  LOCAL_RANK 0) builds nothing and waits for them, in a shared output_dir or, when each node has its own,
  through the shared stage cache;
- a Ray cluster of two nodes (`ray start --head` and `ray start --address`: two raylets, one CPU each) runs a
  curation whose shard tasks run on the cluster's nodes and whose decision tables equal the local executor's.

Each launcher that cannot start here (a port taken, a rendezvous that never forms) skips with the reason.
The launches are slow (~55-65 s each on 2 busy cores): `pytest -m slow`, as `.ci/run` does.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from corpuslab.api import load_config, run
from corpuslab.errors import ConfigError
from corpuslab.executor import build_executor
from corpuslab.ray_executor import RayExecutor, ray_installed
from tests.conftest import TINY

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = [*TINY, "training.num_threads=1"]  # one CPU thread: float reductions in one order in every process
# What a launcher says when its port or rendezvous is not to be had (then the test skips, it does not fail).
CANNOT_START = ("address already in use", "eaddrinuse", "rendezvousconnectionerror", "rendezvoustimeouterror",
                "failed to bind", "port is already in use")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _skip_unless_free(port: int, launcher: str) -> None:
    """A launcher given a port something else holds fails slowly (Ray after ~45 s) or waits on it (torchrun):
    say so at once."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as err:
            pytest.skip(f"{launcher} cannot listen on 127.0.0.1:{port} here: {err.strerror or err}")


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p),
            **extra}


# ---------------------------------------------------------------- torchrun, two nodes


# Stand-ins for Slurm's commands, so that examples/slurm_train.sh itself runs here: `srun` starts its command once
# per node, each "node" a working folder of its own on this machine (its stderr in that folder), and
# `scontrol show hostnames` names every node 127.0.0.1.
FAKE_SRUN = """#!/usr/bin/env bash
while [[ $# -gt 0 && $1 == --* ]]; do shift; done
pids=()
for ((node = 0; node < SLURM_NNODES; node++)); do
    mkdir -p "$FAKE_NODES/node$node"
    (cd "$FAKE_NODES/node$node" && SLURM_NODEID=$node SLURM_PROCID=$node exec "$@" >/dev/null 2>stderr) &
    pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=$?; done
exit $status
"""
FAKE_SCONTROL = """#!/usr/bin/env bash
for ((node = 0; node < SLURM_NNODES; node++)); do echo 127.0.0.1; done
"""


def _launch_two_nodes(root: Path, settings: list[str]) -> list[str]:
    """examples/slurm_train.sh on two "nodes" (`root/node0`, `root/node1`): one torchrun each, c10d rendezvous at
    the first node's address; each node's stderr."""
    port = _free_port()
    _skip_unless_free(port, "torchrun's c10d rendezvous")
    bin_dir = root / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    for name, text in (("srun", FAKE_SRUN), ("scontrol", FAKE_SCONTROL)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    env = _env(PATH=os.pathsep.join([str(bin_dir), str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
               SLURM_NNODES="2", SLURM_JOB_NODELIST="node[0-1]", SLURM_JOB_ID="4242", SLURM_SUBMIT_DIR=str(root),
               FAKE_NODES=str(root), MASTER_PORT=str(port), GPUS_PER_NODE="1", COMMAND="train")
    script = ROOT / "examples" / "slurm_train.sh"
    config = ROOT / "corpuslab" / "configs" / "default.yaml"
    with (root / "sbatch.out").open("w") as out:
        job = subprocess.Popen(["bash", str(script), str(config), *SETTINGS, *settings, "--arm", "no_dedup"], stdout=out,
                               stderr=subprocess.STDOUT, env=env, cwd=root, start_new_session=True)
    try:
        code = job.wait(timeout=240)
    except subprocess.TimeoutExpired:
        if not list(root.rglob("run.log")):  # rank 0 never started: the launchers never met
            pytest.skip(f"the two torchrun launchers did not rendezvous at 127.0.0.1:{port} within 240 s")
        raise
    finally:
        if job.poll() is None:
            os.killpg(job.pid, 9)  # the script, the stand-in srun, both torchruns and their workers
            job.wait()
    errors = [(root / f"node{node}" / "stderr").read_text() if (root / f"node{node}" / "stderr").exists() else "" for node in (0, 1)]
    if code:
        text = "\n".join(errors)
        if any(marker in text.lower() for marker in CANNOT_START):
            pytest.skip(f"torchrun could not rendezvous on 127.0.0.1:{port}: {text[-600:]}")
        raise AssertionError(f"slurm_train.sh exit code {code}:\n{(root / 'sbatch.out').read_text()[-1000:]}\n{text[-4000:]}")
    return errors


def _trained(stages: Path) -> dict[str, Path]:
    return {path.name: path for path in sorted(stages.glob("train-*")) if (path / "manifest.json").exists()}


@pytest.fixture(scope="module")
def single_process(tmp_path_factory) -> Path:
    """The no_dedup arm trained by one plain process: its stages folder."""
    from corpuslab.cli import main

    out = tmp_path_factory.mktemp("single")
    assert main(["train", f"output_dir={out}", *SETTINGS, "--arm", "no_dedup"]) == 0
    return out / "tiny" / "stages"


@pytest.mark.slow  # 55-85 s each on 2 busy cores: two torchrun launchers, each starting a process that imports torch
@pytest.mark.parametrize("layout", ["shared output_dir", "node-local output_dir, shared cache.url"])
def test_two_torchrun_nodes_train_the_single_process_model(single_process, tmp_path, layout):
    nodes = [tmp_path / "node0", tmp_path / "node1"]
    if layout == "shared output_dir":  # on a filesystem every node mounts
        settings, outputs = [f"output_dir={tmp_path / 'shared'}"], [tmp_path / "shared"] * 2
    else:  # each node works on its own disk (a relative output_dir, one working folder per node); stages meet in the cache
        settings, outputs = ["output_dir=out", f"cache.url={tmp_path / 'cache'}"], [folder / "out" for folder in nodes]
    # From scratch: the two nodes build every stage themselves (rank 0 does, the other rank waits).
    errors = _launch_two_nodes(tmp_path, settings)
    # Under c10d rendezvous torchrun hands out ranks in order of arrival, not by --node_rank: find which
    # node's process got RANK 1. Its LOCAL_RANK is 0, as rank 0's is: rank-0 work goes by RANK.
    (follower,) = [node for node, err in enumerate(errors) if "[rank 1]" in err]
    leader = 1 - follower
    assert "started ->" not in errors[follower] and "[rank" not in errors[leader]
    # (It may start after rank 0 built the first stages; the tokenizer's take seconds.)
    waited = "waits for rank 0 to build " if layout == "shared output_dir" else "downloaded ingest-"
    assert f"rank 1 {waited}" in errors[follower], errors[follower][-2000:]
    run_log = (outputs[leader] / "tiny" / "run.log").read_text()  # written by rank 0 alone
    assert "[ingest] started ->" in run_log and "2 processes x 4 windows" in run_log and "[rank" not in run_log
    stages = outputs[leader] / "tiny" / "stages"
    assert sorted(p.name for p in stages.iterdir()) == sorted(p.name for p in single_process.iterdir())  # same fingerprints
    if layout != "shared output_dir":
        assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == sorted(p.name for p in stages.iterdir())
        fetched = sorted(p.name for p in (outputs[follower] / "tiny" / "stages").glob("*") if (p / "manifest.json").exists())
        assert fetched == sorted(p.name for p in stages.iterdir() if not p.name.startswith("train-"))
    (name,) = _trained(stages)
    got, want = (json.loads((folder / name / "curve.json").read_text()) for folder in (stages, single_process))
    assert [e["step"] for e in got] == [e["step"] for e in want] and len(got) >= 2
    for key in ("loss", "grad_norm", "val_loss"):
        assert [e[key] for e in got] == pytest.approx([e[key] for e in want], rel=1e-5), key
    assert not (outputs[leader] / "tiny" / ".lock").exists()
    if layout == "shared output_dir":
        return
    # Two fresh nodes: every stage comes from the cache, the trained one too, and rank 0 tells the other rank
    # not to train (were it to train alone, the launch would hang in DDP).
    for folder in outputs:
        shutil.rmtree(folder)
    errors = _launch_two_nodes(tmp_path, settings)
    (leader,) = [node for node, err in enumerate(errors) if "[rank 1]" not in err]
    run_log = (outputs[leader] / "tiny" / "run.log").read_text()
    assert f"[train no_dedup] downloaded {name}" in run_log and "started ->" not in run_log and "training 12 steps" not in run_log
    assert json.loads((outputs[leader] / "tiny" / "stages" / name / "curve.json").read_text()) == got


def test_rank_zero_work_goes_by_rank_and_the_device_by_local_rank(tmp_path, monkeypatch):
    """The second node's first process: LOCAL_RANK 0 but RANK 2 of 4. It trains on its node's cuda:0 and
    builds no stage; rank 0 (LOCAL_RANK 0 too) builds them."""
    import torch

    from corpuslab.artifacts import StageRunner
    from corpuslab.experiment import Experiment
    from corpuslab.training import distributed

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    cfg = load_config(overrides=[*TINY, f"output_dir={tmp_path}"])
    for rank, local_rank, follower in ((2, 0, True), (0, 0, False), (3, 1, True)):
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("LOCAL_RANK", str(local_rank))
        monkeypatch.setenv("WORLD_SIZE", "4")
        assert distributed.training_device("cuda") == f"cuda:{local_rank}"
        assert distributed.training_device("auto") == f"cuda:{local_rank}"
        assert distributed.is_main() is not follower
        stages = Experiment(cfg, log=lambda line: None).stages
        assert isinstance(stages, distributed.FollowerStageRunner) is follower and isinstance(stages, StageRunner)


def test_a_follower_on_another_node_downloads_stages_from_the_cache_and_trains_as_rank_0_says(tmp_path, monkeypatch):
    """Rank 0 and a rank of another node, each with its own stages folder, sharing a stage cache (a folder)."""
    from corpuslab.artifacts import MANIFEST, StageRunner
    from corpuslab.stage_cache import StageCache
    from corpuslab.training import distributed

    monkeypatch.setattr(distributed, "POLL_SECONDS", 0.05)
    said: list[bool] = []
    monkeypatch.setattr(distributed, "broadcast", lambda value: said.append(value) or value)
    cache = StageCache(str(tmp_path / "cache"))
    leader = distributed.LeaderStageRunner(tmp_path / "node0", lambda line: None, cache)
    follower = distributed.FollowerStageRunner(tmp_path / "node1", lambda line: None, cache)
    tokens = leader.stage("tokens", "key")
    leader.run(tokens, lambda work: (work / "ids.bin").write_bytes(b"rank 0") and {"made": "by rank 0"})
    theirs = follower.stage("tokens", "key")
    assert follower.run(theirs, lambda work: pytest.fail("a follower builds nothing"))["made"] == "by rank 0"
    assert (theirs.path / "ids.bin").read_bytes() == b"rank 0"
    # Never over a folder already there (on a shared folder, rank 0's): the complete one there wins.
    other = StageRunner(tmp_path / "node2", lambda line: None).stage("tokens", "key")
    other.path.mkdir(parents=True)
    (other.path / MANIFEST).write_text(json.dumps({"made": "here"}))
    assert cache.download(other, replace=False) == {"made": "here"} and not list(other.root.glob(".*tmp*"))
    # Training: rank 0 says whether it trains; a stage complete in the cache alone is downloaded, not retrained.
    train = leader.stage("train", "key")
    trained = []
    leader.run(train, lambda work: trained.append("rank 0") or {"steps": 12})
    follower.run(follower.stage("train", "key"), lambda work: trained.append("rank 1") or {})
    assert said == [False, False] and trained == ["rank 0", "rank 1"]
    elsewhere = distributed.LeaderStageRunner(tmp_path / "node3", lambda line: None, cache)
    interrupted = elsewhere.stage("train", "key").partial_path
    interrupted.mkdir(parents=True)  # a killed attempt on that node: superseded by the cache's stage
    assert elsewhere.run(elsewhere.stage("train", "key"), lambda work: pytest.fail("retrained"))["steps"] == 12
    assert not interrupted.exists()
    monkeypatch.setattr(distributed, "broadcast", lambda value: said.append(value) or True)  # rank 0's answer: done
    assert follower.run(follower.stage("train", "key"), lambda work: pytest.fail("trained alone")) == {}
    assert said == [False, False, True, False]


# ---------------------------------------------------------------- Ray, two nodes

needs_ray = pytest.mark.skipif(not ray_installed(), reason="ray is not installed (pip install 'corpuslab[ray]')")


class RayNodes:
    """A head node and a worker node, each a `ray start --block` process with one CPU and its own temp folder.
    Stopped by ending those two processes (each stops the Ray processes it started): never `ray stop`, which
    would stop every Ray on the machine."""

    def __init__(self, folder: Path, env: dict[str, str]):
        self.folder, self.env = folder, env
        self.port = _free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.processes: list[subprocess.Popen] = []

    def start(self) -> None:
        _skip_unless_free(self.port, "the Ray head node")
        ray = str(Path(sys.executable).with_name("ray"))
        common = ["--node-ip-address", "127.0.0.1", "--num-cpus", "1", "--disable-usage-stats", "--block"]
        self._node("head", [ray, "start", "--head", "--port", str(self.port), "--include-dashboard=false", *common])
        self._node("worker", [ray, "start", "--address", self.address, *common])

    def _node(self, name: str, command: list[str]) -> None:
        log_path = self.folder / f"{name}.log"
        with log_path.open("w") as log:
            process = subprocess.Popen([*command, "--temp-dir", str(self.folder / name)], stdout=log, stderr=subprocess.STDOUT,
                                       env=self.env, cwd=self.folder)
        self.processes.append(process)
        deadline = time.monotonic() + 90
        while "Ray runtime started" not in log_path.read_text():
            if process.poll() is not None or time.monotonic() > deadline:
                tail = log_path.read_text()[-800:]
                self.stop()
                pytest.skip(f"`ray start` ({name} node, {self.address}) could not start here: {tail}")
            time.sleep(0.5)

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                process.terminate()  # `ray start --block` stops its own Ray processes on SIGTERM
        for process in self.processes:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes = []


@contextlib.contextmanager
def driver_environment(**values: str | None):
    """This process's environment for joining Ray (None: unset), restored on exit. Ray reads its
    authentication settings once per process, so they are re-read at both ends."""
    from ray._private.authentication_test_utils import reset_auth_token_state

    saved = {key: os.environ.get(key) for key in values}

    def apply(settings):
        for key, value in settings.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        reset_auth_token_state()

    apply(values)
    try:
        yield
    finally:
        apply(saved)


def _keep_logs(folder: Path, into: Path) -> None:
    """The nodes' logs (their temporary folders hold sockets too, which do not copy), for a failure's post-mortem."""
    for log in [p for pattern in ("*.log", "*.out", "*.err") for p in folder.rglob(pattern) if p.is_file()]:
        target = into / log.relative_to(folder)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(log, target)


@pytest.fixture
def ray_nodes(tmp_path):
    """Two Ray nodes on this machine, with token authentication (as a cluster should run) by a token of the
    test's own, in the environment of both nodes and of this process (the driver)."""
    import ray

    if ray.is_initialized():
        pytest.skip("a Ray is already initialised in this process; the test must connect to the cluster it starts")
    # Socket paths under the temp folder must stay short (a Unix socket path holds at most 107 bytes).
    folder = Path(tempfile.mkdtemp(prefix="cl-ray-", dir="/tmp"))
    auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32), "RAY_AUTH_TOKEN_PATH": None}
    nodes = RayNodes(folder, _env(RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE=auth["RAY_AUTH_MODE"], RAY_AUTH_TOKEN=auth["RAY_AUTH_TOKEN"]))
    try:
        nodes.start()
        # Ray workers import this module's helper by name: they inherit PYTHONPATH from `ray start`.
        with driver_environment(**auth):
            yield nodes
    finally:
        if ray.is_initialized():
            ray.shutdown()
        nodes.stop()
        _keep_logs(folder, tmp_path / "ray-nodes")
        shutil.rmtree(folder, ignore_errors=True)


def on_node(task):
    """A shard task `(folder, fn, item)`: `fn(item)`, noting in `folder` which Ray node ran it."""
    import ray

    folder, fn, item = task
    Path(folder, f"{ray.get_runtime_context().get_node_id()}-{uuid.uuid4().hex}").touch()
    return fn(item)


@needs_ray
@pytest.mark.slow  # ~60 s on 2 busy cores: two Ray nodes start (~20 s), then the curation runs twice
def test_a_two_node_ray_cluster_gives_the_local_executors_decision_tables(tmp_path, ray_nodes, monkeypatch):
    import tempfile as tempfile_module

    import ray

    from corpuslab.shards import ShardWriter

    monkeypatch.setattr(ShardWriter.__init__, "__defaults__", ("part", 60))  # several shards per split
    monkeypatch.setattr("corpuslab.tokens.encode.PARALLEL_MIN_DOCS", 0)  # tokenize through the executor too
    ran_on, submitted = tmp_path / "ran-on", []
    ran_on.mkdir()
    submit = RayExecutor._submit

    def noting_submit(self, fn, items):
        submitted.append(fn.__name__)
        return submit(self, on_node, [(str(ran_on), fn, item) for item in items])

    monkeypatch.setattr(RayExecutor, "_submit", noting_submit)
    spills, temporary = [], tempfile_module.TemporaryDirectory

    def noting_temporary(*args, **kwargs):
        spills.append(kwargs.get("dir"))
        return temporary(*args, **kwargs)

    monkeypatch.setattr(tempfile_module, "TemporaryDirectory", noting_temporary)
    shared = tmp_path / "shared"  # what every node mounts
    common = [*TINY, f"output_dir={shared / 'out'}", "dataset.synthetic.num_docs=400",
              "runs=[{name: exact, recipe: exact}, {name: near, recipe: near}]"]
    stages, local = shared / "out" / "tiny" / "stages", tmp_path / "local"
    run(load_config(overrides=[*common, "curation.executor=local"]), until="curate", log=lambda _: None)
    local.mkdir()
    for folder in [f for name in ("decontaminate", "tokens", "curate") for f in stages.glob(f"{name}-*")]:
        folder.rename(local / folder.name)  # the Ray run rebuilds the stages with executor tasks
    spills.clear()
    ray_settings = ["curation.executor=ray", f"curation.ray.address={ray_nodes.address}", f"curation.spill_dir={shared / 'spill'}"]
    run(load_config(overrides=[*common, *ray_settings]), until="curate", log=lambda _: None)

    assert {"scan_shard", "encode_shard"} <= set(submitted)
    assert str(shared / "spill") in map(str, spills)  # near dedup's band keys went to the shared folder
    assert not list((shared / "spill").iterdir())  # and were cleaned up
    # Two nodes in the cluster, and the shard tasks ran on its nodes. Which nodes is Ray's choice: its default
    # policy packs short tasks on the node it submits from until that node is busy, so one CI run put every task
    # on one node; "both" is not asserted.
    ray.init(address=ray_nodes.address, include_dashboard=False, log_to_driver=False)
    alive = {node["NodeID"] for node in ray.nodes() if node["Alive"]}
    ray.shutdown()
    used = {p.name.split("-")[0] for p in ran_on.iterdir()}
    assert len(alive) == 2 and used and used <= alive, (alive, used)
    tables = sorted(p.relative_to(local) for pattern in ("curate-*/decisions.parquet", "decontaminate-*/removed.parquet")
                    for p in local.glob(pattern))
    assert len(tables) == 3
    dropped = 0
    for relative in tables:
        by_local, by_ray = pq.read_table(local / relative), pq.read_table(stages / relative)
        assert by_local.equals(by_ray), relative  # same fingerprints (folder names) and identical rows
        if "kept" in by_local.column_names:
            dropped += by_local.num_rows - sum(by_local.column("kept").to_pylist())
    assert dropped > 0
    streams = sorted(p.relative_to(local) for p in local.glob("tokens-*/*") if p.name != "manifest.json")
    assert len(streams) == 12
    for relative in streams:
        assert (local / relative).read_bytes() == (stages / relative).read_bytes(), relative

    # A driver without the cluster's token is refused: the message says which setting and what to do.
    cfg = load_config(overrides=[*common, *ray_settings])
    # (RAY_gcs_server_port_wait_time_s: Ray retries the refused connection for 20 s otherwise.)
    with driver_environment(RAY_AUTH_MODE="disabled", RAY_gcs_server_port_wait_time_s="2"):
        with pytest.raises(ConfigError, match="curation.ray.address") as err:
            build_executor(cfg.curation.executor, {"ray": cfg.curation.ray}, cfg.curation.workers).connect()
    assert ray_nodes.address in str(err.value) and "RAY_AUTH_MODE=token" in str(err.value)
