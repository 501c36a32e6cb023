"""Curation on Ray: a real local Ray cluster (2 CPUs, loopback only) gives the local executor's decision tables.

Ray starts once for this module (about 10-20 s); every test that needs it shares that instance.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from corpuslab.api import load_config, run
from corpuslab.errors import ConfigError
from corpuslab.executor import build_executor
from corpuslab.ray_executor import RayConfig, RayExecutor, ray_installed
from corpuslab.shard_log import ShardLog
from tests.conftest import TINY
from tests.test_shard_log import calls, record_call, settle

needs_ray = pytest.mark.skipif(not ray_installed(), reason="ray is not installed (pip install 'corpuslab[ray]')")
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ray_cluster():
    """A local Ray on 127.0.0.1 with two CPUs, started through the executor's own `address: local` path."""
    # Ray workers import this test module's helpers by name: they inherit the environment Ray starts with.
    previous = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), previous) if p)
    executor = RayExecutor(RayConfig(address="local", num_cpus=2))
    try:
        executor.connect()
        yield executor
    finally:
        executor.close()
        if previous is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = previous


def square(x: int) -> int:
    return x * x


def fail_on_three(x: int) -> int:
    if x == 3:
        raise ValueError("three")
    return x


@needs_ray
def test_ray_maps_in_input_order_and_raises_the_tasks_own_error(ray_cluster):
    import ray

    assert ray.is_initialized() and ray.cluster_resources().get("CPU") == 2
    assert list(ray_cluster.map(square, range(10))) == [x * x for x in range(10)]
    assert sorted(ray_cluster.completed(square, range(5))) == [(i, i * i) for i in range(5)]
    with pytest.raises(ValueError, match="three"):
        list(ray_cluster.map(fail_on_three, range(5)))


@needs_ray
def test_ray_and_local_curation_give_the_same_decision_tables(tmp_path, ray_cluster, monkeypatch):
    """Exact and near dedup, near decontamination, tokenization, and a semdedup arm (embedding and cluster
    assignment) on several shards, under both executors."""
    from corpuslab.shards import ShardWriter

    monkeypatch.setattr(ShardWriter.__init__, "__defaults__", ("part", 60))  # several shards per split
    submitted: list[str] = []
    submit = RayExecutor._submit

    def counting_submit(self, fn, items):
        items = list(items)
        submitted.extend([fn.__name__] * len(items))
        return submit(self, fn, items)

    monkeypatch.setattr(RayExecutor, "_submit", counting_submit)
    monkeypatch.setattr("corpuslab.tokens.encode.PARALLEL_MIN_DOCS", 0)  # tokenize through the executor too
    common = [*TINY, f"output_dir={tmp_path}", "dataset.synthetic.num_docs=400",
              "runs=[{name: exact, recipe: exact}, {name: near, recipe: near},"
              " {name: sem, recipe: semdedup, eps: 0.2, cluster: {k: 4}, embed: {shard_docs: 100}}]"]
    stages, local = tmp_path / "tiny" / "stages", tmp_path / "local"
    run(load_config(overrides=[*common, "curation.executor=local"]), until="curate", log=lambda _: None)
    # Keep the local run's stages with executor tasks aside; the Ray run rebuilds them and reuses the rest.
    local.mkdir()
    rebuilt = ("decontaminate", "tokens", "curate", "embed", "cluster")  # the stages with executor tasks
    for folder in [f for name in rebuilt for f in stages.glob(f"{name}-*")]:
        folder.rename(local / folder.name)
    run(load_config(overrides=[*common, "curation.executor=ray"]), until="curate", log=lambda _: None)
    # The Ray run's shard tasks went through Ray: scans, embedding and cluster assignment.
    assert {"scan_shard", "encode_shard", "embed_task", "assign_task"} <= set(submitted) and submitted.count("embed_task") >= 3
    tables = sorted(p.relative_to(local) for pattern in ("curate-*/decisions.parquet", "decontaminate-*/removed.parquet",
                                                         "cluster-*/assignments.parquet") for p in local.glob(pattern))
    assert len(tables) == 5
    streams = sorted(p.relative_to(local) for p in local.glob("tokens-*/*") if p.name != "manifest.json")
    assert len(streams) == 12  # train, val, test: tokens, offsets, meta, documents
    for relative in streams:
        assert (local / relative).read_bytes() == (stages / relative).read_bytes(), relative
    dropped = 0
    for relative in tables:
        by_local, by_ray = pq.read_table(local / relative), pq.read_table(stages / relative)
        assert by_local.equals(by_ray), relative  # same stage folder names (fingerprints) and identical rows
        if "kept" in by_local.column_names:
            dropped += by_local.num_rows - sum(by_local.column("kept").to_pylist())
    assert dropped > 0  # the synthetic corpus has duplicates: the comparison covers real drops


@needs_ray
def test_a_failed_ray_map_resumes_with_only_the_unfinished_tasks(tmp_path, ray_cluster):
    seen, records = tmp_path / "seen", tmp_path / "records"
    seen.mkdir()
    items = [(str(seen), value) for value in range(8)]
    log = ShardLog(ray_cluster, records)
    with pytest.raises(RuntimeError, match="shard 5"):
        list(log.map(record_call, items))
    settle(seen)
    finished = log.finished()
    assert 1 <= finished <= 7
    (seen / "healed").touch()
    for p in seen.glob("call-*"):
        p.unlink()
    again = ShardLog(ray_cluster, records)
    assert list(again.map(record_call, items)) == [v * v for v in range(8)]
    assert again.resumed == finished and again.ran == len(calls(seen)) == 8 - finished


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@needs_ray
def test_an_unreachable_ray_address_names_the_key_and_what_to_do(tmp_path, monkeypatch):
    import ray

    monkeypatch.setattr(ray, "is_initialized", lambda: False)  # as in a fresh process, even if a test started Ray
    address = f"127.0.0.1:{closed_port()}"
    cfg = load_config(overrides=[*TINY, f"output_dir={tmp_path}", "curation.executor=ray", f"curation.ray.address={address}",
                                 "curation.ray.connect_timeout_s=2"])
    executor = build_executor(cfg.curation.executor, {"ray": cfg.curation.ray}, cfg.curation.workers)
    with pytest.raises(ConfigError, match="curation.ray.address") as err:
        executor.connect()
    assert address in str(err.value) and "ray start --head" in str(err.value)
    with pytest.raises(ConfigError, match="curation.ray.address"):
        run(cfg, until="curate", log=lambda _: None)
    assert not list((tmp_path / "tiny" / "stages").glob("ingest-*"))  # stopped before the first stage


@needs_ray
def test_auto_without_a_cluster_names_the_key_before_any_stage(tmp_path, monkeypatch):
    import ray
    import ray._private.services as services

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path / "ray-tmp"))  # no `ray start` ever ran here
    def no_running_clusters():  # clusters other users of this machine run do not count either
        return []

    no_running_clusters.cache_clear = lambda: None  # Ray clears the cache of the function it replaces
    monkeypatch.setattr(services, "find_gcs_addresses", no_running_clusters)
    cfg = load_config(overrides=[*TINY, f"output_dir={tmp_path}", "curation.executor=ray", "curation.ray.address=auto"])
    executor = build_executor(cfg.curation.executor, {"ray": cfg.curation.ray}, cfg.curation.workers)
    with pytest.raises(ConfigError, match="curation.ray.address") as err:
        executor.connect()
    assert "no Ray cluster was found" in str(err.value) and "ray start --head" in str(err.value)
    with pytest.raises(ConfigError, match="curation.ray.address") as err:
        run(cfg, until="curate", log=lambda _: None)
    assert "RAY_ADDRESS is not set" in str(err.value)
    assert not list((tmp_path / "tiny" / "stages").glob("ingest-*"))  # stopped before the first stage

    address = f"127.0.0.1:{closed_port()}"
    monkeypatch.setenv("RAY_ADDRESS", address)  # auto follows RAY_ADDRESS: checked in seconds too
    with pytest.raises(ConfigError, match="curation.ray.address") as err:
        run(cfg, until="curate", log=lambda _: None)
    assert err.value.value == "auto" and f"`auto` found {address}" in str(err.value) and "nothing answered" in str(err.value)


def test_ray_settings_are_checked_at_load():
    with pytest.raises(ConfigError, match="curation.ray.address"):
        load_config(overrides=["curation.ray.address=nowhere"])
    with pytest.raises(ConfigError, match="curation.ray.cpus_per_task"):
        load_config(overrides=["curation.ray.cpus_per_task=0"])
    with pytest.raises(ConfigError, match="curation.executor"):
        load_config(overrides=["curation.executor=dask"])
    with pytest.raises(ConfigError, match=r"curation\.executor\.address"):  # the inline form names its own key
        load_config(overrides=["curation.executor={name: ray, address: nowhere}"])


@needs_ray
def test_inline_executor_parameters_override_the_ray_section():
    cfg = load_config(overrides=["curation.executor={name: ray, address: '10.0.0.1:6379'}", "curation.ray.num_cpus=3"])
    executor = build_executor(cfg.curation.executor, {"ray": cfg.curation.ray}, None)
    assert isinstance(executor, RayExecutor) and executor.config.address == "10.0.0.1:6379" and executor.config.num_cpus == 3


def test_ray_not_installed_names_the_extra(monkeypatch):
    monkeypatch.setattr("corpuslab.config.ray_installed", lambda: False)
    with pytest.raises(ConfigError, match=r"corpuslab\[ray\]"):
        load_config(overrides=["curation.executor=ray"])
