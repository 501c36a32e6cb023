"""A killed embed or cluster stage resumes without redoing its finished shards, and ends with the files of an
uninterrupted run, byte for byte."""

from __future__ import annotations

import pytest

import corpuslab.distill.cluster as cluster_module
import corpuslab.distill.embed as embed_module
from corpuslab.api import load_config, run
from corpuslab.executor import SerialExecutor
from tests.conftest import TINY

ARM = "runs=[{name: uniform, recipe: minipile, sampler: uniform, target: 0.5, embed: {shard_docs: 20}, cluster: {k: 4, backend: sklearn}}]"
REAL = {"embed_task": embed_module.embed_task, "assign_task": cluster_module.assign_task}
BUDGET = {"embed_task": 10**9, "assign_task": 10**9}  # shards each task may still do before the "kill"
CALLS = {"embed_task": 0, "assign_task": 0}


def _killable(name):
    def task(item):
        if BUDGET[name] <= 0:
            raise RuntimeError(f"killed during {name}")
        BUDGET[name] -= 1
        CALLS[name] += 1
        return REAL[name](item)

    task.__name__ = task.__qualname__ = name  # same shard-record keys whichever run calls it
    task.__module__ = REAL[name].__module__
    return task


@pytest.fixture
def killable(monkeypatch):
    monkeypatch.setattr(embed_module, "embed_task", _killable("embed_task"))
    monkeypatch.setattr(cluster_module, "assign_task", _killable("assign_task"))
    monkeypatch.setattr("corpuslab.experiment.build_executor", lambda *a, **k: SerialExecutor())

    def budget(embed=10**9, assign=10**9):
        BUDGET.update(embed_task=embed, assign_task=assign)
        CALLS.update(embed_task=0, assign_task=0)

    budget()
    return budget


def _config(out):
    return load_config(overrides=[*TINY, f"output_dir={out}", "curation.decontaminate=none", ARM])


def _stage(out, prefix):
    (folder,) = [f for f in (out / "tiny" / "stages").glob(f"{prefix}-*") if not f.name.endswith(".partial")]
    return folder


def test_killed_embed_and_cluster_stages_redo_only_their_unfinished_shards(tmp_path, killable):
    killable()
    run(_config(tmp_path / "whole"), until="curate", log=lambda _: None)  # the uninterrupted run
    shards = CALLS["embed_task"]
    assert shards >= 5 and CALLS["assign_task"] == shards

    out = tmp_path / "killed"
    killable(embed=2)
    with pytest.raises(RuntimeError, match="killed during embed_task"):
        run(_config(out), until="curate", log=lambda _: None)
    (partial,) = (out / "tiny" / "stages").glob("embed-*.partial")
    assert len(list(partial.glob("ids-*.parquet"))) == 2

    killable(assign=2)
    with pytest.raises(RuntimeError, match="killed during assign_task"):
        run(_config(out), until="curate", log=lambda _: None)
    assert CALLS["embed_task"] == shards - 2, "embedded shards were embedded again"
    (partial,) = (out / "tiny" / "stages").glob("cluster-*.partial")
    assert len(list((partial / cluster_module.ASSIGNED).glob("*.done"))) == 2
    assert (partial / "centroids.npy").exists()

    killable()
    messages: list[str] = []
    run(_config(out), until="curate", log=messages.append)
    assert CALLS["embed_task"] == 0 and CALLS["assign_task"] == shards - 2, "assigned shards were assigned again"
    assert any("resumed: centroids fitted by an earlier run" in m for m in messages)
    assert any(f"resumed: 2 of {shards} assign_task tasks" in m for m in messages)
    cluster = _stage(out, "cluster")
    assert not (cluster / cluster_module.ASSIGNED).exists() and not list(cluster.parent.glob("cluster-*.partial"))

    whole = _stage(tmp_path / "whole", "cluster")
    assert cluster.name == whole.name
    for name in ("assignments.parquet", "centroids.npy", "clusters.json"):
        assert (cluster / name).read_bytes() == (whole / name).read_bytes(), name
    embed, whole_embed = _stage(out, "embed"), _stage(tmp_path / "whole", "embed")
    for path in sorted(whole_embed.glob("*-0*")):
        assert (embed / path.name).read_bytes() == path.read_bytes(), path.name
    decisions = [_stage(o, "curate-minipile-doc") / "decisions.parquet" for o in (out, tmp_path / "whole")]
    assert decisions[0].read_bytes() == decisions[1].read_bytes()
