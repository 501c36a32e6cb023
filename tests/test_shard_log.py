"""Per-shard completion records: a stage that fails part-way resumes without redoing its finished shards."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import corpuslab.curation.dedup.scan as scan_module
from corpuslab.api import load_config, run
from corpuslab.executor import LocalExecutor, SerialExecutor
from corpuslab.shard_log import ShardLog, task_key
from corpuslab.shards import ShardWriter
from tests.conftest import TINY


def record_call(item: tuple[str, int]) -> int:
    """Task: note the call in a file (workers are other processes), fail on a poisoned item the first time."""
    folder, value = item
    Path(folder, f"call-{value}-{os.getpid()}-{len(os.listdir(folder))}").touch()
    if value == 5 and not Path(folder, "healed").exists():
        raise RuntimeError("shard 5 failed")
    return value * value


def calls(folder: Path) -> list[int]:
    return sorted(int(p.name.split("-")[1]) for p in folder.glob("call-*"))


def settle(folder: Path, quiet: float = 1.5, timeout: float = 60.0) -> None:
    """Wait until no task of a failed map is still starting: tasks already running (in a pool or on Ray)
    when the map raised finish afterwards, and their call files must not count as the rerun's."""
    deadline, seen, still = time.monotonic() + timeout, -1, time.monotonic()
    while time.monotonic() < deadline:
        now = len(calls(folder))
        if now != seen:
            seen, still = now, time.monotonic()
        elif time.monotonic() - still >= quiet:
            return
        time.sleep(0.05)


@pytest.mark.parametrize("make", [SerialExecutor, lambda: LocalExecutor(2)])
def test_a_failed_map_resumes_with_only_the_unfinished_tasks(tmp_path, make):
    seen, records = tmp_path / "seen", tmp_path / "records"
    seen.mkdir()
    items = [(str(seen), value) for value in range(8)]
    with make() as executor:
        log = ShardLog(executor, records)
        with pytest.raises(RuntimeError, match="shard 5"):
            list(log.map(record_call, items))
        settle(seen)
        finished = log.finished()
        assert 1 <= finished <= 7 and finished == len(list(records.glob("*.pkl")))
        first = calls(seen)
        (seen / "healed").touch()
        for p in seen.glob("call-*"):
            p.unlink()
        again = ShardLog(executor, records)
        assert list(again.map(record_call, items)) == [v * v for v in range(8)]
    redone = calls(seen)
    assert again.resumed == finished and again.ran == 8 - finished == len(redone)
    assert 5 in redone and set(redone).isdisjoint(set(first) - {5} - set(redone))
    assert again.finished() == 8
    again.discard()
    assert not records.exists()


def test_task_keys_follow_the_function_and_the_item():
    assert task_key(record_call, ("a", 1)) == task_key(record_call, ("a", 1))
    assert task_key(record_call, ("a", 1)) != task_key(record_call, ("a", 2))
    assert task_key(record_call, ("a", 1)) != task_key(calls, ("a", 1))


FAIL_AFTER = {"left": 10**9}


def flaky_scan_shard(task):
    """scan_shard that fails once its budget of shards is spent (the test runs it in this process)."""
    if FAIL_AFTER["left"] <= 0:
        raise RuntimeError("killed mid-stage")
    FAIL_AFTER["left"] -= 1
    return REAL_SCAN(task)


REAL_SCAN = scan_module.scan_shard


def test_a_curate_stage_killed_mid_way_redoes_only_unfinished_shards(tmp_path, monkeypatch):
    """The exact-dedup arm scans 6 train shards; it fails after 2, and the rerun scans only the other 4."""
    overrides = [*TINY, f"output_dir={tmp_path}", "dataset.synthetic.num_docs=300", "curation.decontaminate=none",
                 "curation.workers=1", "runs=[{name: exact, recipe: exact}]"]
    cfg = load_config(overrides=overrides)
    monkeypatch.setattr(ShardWriter.__init__, "__defaults__", ("part", 50))  # several shards per split
    monkeypatch.setattr("corpuslab.experiment.build_executor", lambda *a, **k: SerialExecutor())
    run(cfg, until="tokens", log=lambda _: None)
    stages = tmp_path / "tiny" / "stages"
    shards = [*stages.glob("split-*/train/*.parquet"), *stages.glob("canaries-*/*.parquet")]
    assert len(shards) >= 4
    monkeypatch.setattr(scan_module, "scan_shard", flaky_scan_shard)
    monkeypatch.setitem(FAIL_AFTER, "left", 2)
    with pytest.raises(RuntimeError, match="killed mid-stage"):
        run(cfg, until="curate", log=lambda _: None)
    records = list((tmp_path / "tiny" / "stages").glob(".curate-*.shards"))
    assert len(records) == 1 and len(list(records[0].glob("*.done"))) == 2
    monkeypatch.setitem(FAIL_AFTER, "left", 10**9)
    messages: list[str] = []
    run(cfg, until="curate", log=messages.append)
    assert any("resumed: 2 of" in m for m in messages)
    assert FAIL_AFTER["left"] == 10**9 - (len(shards) - 2)  # every train and canary shard but the 2 done
    assert not records[0].exists()  # removed once the stage is complete
    (decisions,) = (tmp_path / "tiny" / "stages").glob("curate-exact-*/decisions.parquet")
    assert pq.read_table(decisions).num_rows > 0


def square(value: int) -> int:
    return value * value


def test_a_task_recorded_earlier_in_the_same_run_is_not_reported_as_resumed(tmp_path):
    """Decontamination maps the same probe task for val and for test when neither split indexes anything:
    the second map reads the first one's record back, but nothing was resumed from an earlier run."""
    messages: list[str] = []
    log = ShardLog(SerialExecutor(), tmp_path / "records", messages.append)
    assert list(log.map(square, [3, 4])) == [9, 16]
    assert list(log.map(square, [4, 5])) == [16, 25]
    assert (log.resumed, log.reused, log.ran) == (0, 1, 3)
    assert not [m for m in messages if "resumed" in m]
    again = ShardLog(SerialExecutor(), tmp_path / "records", messages.append)  # a later run: those records are an earlier run's
    assert list(again.map(square, [3, 4, 6])) == [9, 16, 36]
    assert (again.resumed, again.reused, again.ran) == (2, 0, 1)
    assert messages == ["  resumed: 2 of 3 square tasks were finished by an earlier run"]


def test_a_fresh_prepare_of_awkward_local_files_logs_no_resume(tmp_path, monkeypatch):
    """The reviewer's case: a JSONL with a malformed line, an empty file and a Latin-1 text file, prepared into
    a new folder. Val and test come out empty, so decontamination probes both with one identical task."""
    data = tmp_path / "data"
    data.mkdir()
    lines = [f'{{"body": "document {i} about topic {i % 3} with a few more words {i * 7}"}}' for i in range(12)]
    (data / "a.jsonl").write_text("\n".join(lines[:5] + ["{not json"] + lines[5:]) + "\n", encoding="utf-8")
    (data / "empty.jsonl").write_text("")
    (data / "latin.txt").write_bytes(("café naïve résumé " * 20).encode("latin-1"))
    monkeypatch.chdir(data)
    overrides = [*TINY, f"output_dir={tmp_path / 'out'}", "dataset.source=local", "dataset.local.paths=[a.jsonl,empty.jsonl,latin.txt]",
                 "dataset.local.text_field=body", "curation.workers=1"]
    messages: list[str] = []
    run(load_config(overrides=overrides), until="decontaminate", log=messages.append)
    assert any("decontaminate" in m for m in messages)
    assert not [m for m in messages if "resumed" in m], messages
