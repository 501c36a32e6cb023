import multiprocessing as mp
import os

import pytest

from corpuslab.artifacts import StageRunner, exclusive_lock, fingerprint
from corpuslab.errors import CorpuslabError


def test_fingerprint_is_stable_and_sensitive():
    assert fingerprint({"a": 1, "b": 2}) == fingerprint({"b": 2, "a": 1})
    assert fingerprint({"a": 1}) != fingerprint({"a": 2})


def test_stage_is_complete_only_after_manifest(tmp_path):
    messages = []
    runner = StageRunner(tmp_path, messages.append)
    stage = runner.stage("thing", {"k": 1})

    def crash(work):
        (work / "half.txt").write_text("half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        runner.run(stage, crash)
    assert not stage.is_complete()
    assert not stage.path.exists()

    calls = []

    def build(work):
        calls.append(1)
        (work / "data.txt").write_text("ok")
        return {"n": 1}

    assert runner.run(stage, build)["n"] == 1
    assert runner.run(stage, build)["n"] == 1
    assert len(calls) == 1
    assert (stage.path / "data.txt").read_text() == "ok"
    assert any("reused" in m for m in messages)


def test_resumable_stage_keeps_its_work_folder(tmp_path):
    runner = StageRunner(tmp_path, lambda m: None)
    stage = runner.stage("train", 1)

    def first(work):
        (work / "state").write_text("step 5")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        runner.run(stage, first, resumable=True)

    def second(work):
        return {"resumed_from": (work / "state").read_text()}

    assert runner.run(stage, second, resumable=True)["resumed_from"] == "step 5"


def _hold(folder, ready, release):
    with exclusive_lock(folder):
        ready.set()
        release.wait(10)


def test_second_run_on_same_folder_stops_with_message(tmp_path):
    ctx = mp.get_context("fork")
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold, args=(tmp_path, ready, release))
    holder.start()
    try:
        assert ready.wait(10)
        with pytest.raises(CorpuslabError, match="in use by another corpuslab run"):
            with exclusive_lock(tmp_path):
                pass
    finally:
        release.set()
        holder.join()
    with exclusive_lock(tmp_path):
        assert os.path.exists(tmp_path / ".lock")


def test_out_of_disk_names_the_stage_and_keeps_finished_stages(tmp_path):
    import errno

    from corpuslab.errors import StageError

    runner = StageRunner(tmp_path, lambda m: None)
    done = runner.stage("first", 1)
    runner.run(done, lambda work: {"ok": True})

    def full_disk(work):
        raise OSError(errno.ENOSPC, "No space left on device", str(work / "big.bin"))

    with pytest.raises(StageError, match="stage 'second': no space left on device"):
        runner.run(runner.stage("second", 1), full_disk)
    assert done.is_complete()
    assert done.manifest()["made_from"] == [1]


def test_the_lock_file_is_removed_when_the_run_ends(tmp_path):
    from corpuslab.artifacts import exclusive_lock

    with exclusive_lock(tmp_path):
        assert (tmp_path / ".lock").exists()
    assert not (tmp_path / ".lock").exists()
    with exclusive_lock(tmp_path):  # and the folder can be locked again
        pass


def test_progress_in_a_log_is_plain_rate_lines(capsys, monkeypatch):
    from corpuslab import progress as progress_module

    assert list(progress_module.progress(range(3), "quick", unit="doc")) == [0, 1, 2]
    assert capsys.readouterr().err == ""  # a short loop prints nothing, and never a bar's debris
    monkeypatch.setattr(progress_module, "LOG_EVERY", 0.0)
    list(progress_module.progress(range(4), "slow", unit="doc"))
    lines = capsys.readouterr().err.splitlines()
    assert lines and all(line.startswith("  slow: ") and "\r" not in line for line in lines)
    assert "4/4 docs" in lines[-1]


def test_a_full_disk_at_the_manifest_is_a_stage_error_and_leaves_no_stage(tmp_path, monkeypatch):
    import errno

    import corpuslab.artifacts as artifacts
    from corpuslab.errors import StageError

    def full_disk(path, data):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    runner = StageRunner(tmp_path, lambda m: None)
    stage = runner.stage("split", 1)
    monkeypatch.setattr(artifacts, "write_json_atomic", full_disk)
    with pytest.raises(StageError, match=r"stage 'split': no space left on device while writing \(.*manifest.json\)"):
        runner.run(stage, lambda work: {"ok": True})
    assert not stage.path.exists()


def test_an_atomic_write_that_fails_names_its_file_and_leaves_the_old_one(tmp_path):
    import errno

    from corpuslab.atomic import atomic_file

    target = tmp_path / "report.json"
    target.write_text("old")
    with pytest.raises(OSError) as failure:
        with atomic_file(target) as handle:
            handle.write("new")
            raise OSError(errno.ENOSPC, "No space left on device")  # what a failed write or flush raises
    assert failure.value.filename == str(target)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]
