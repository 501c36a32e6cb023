"""The shared stage cache (corpuslab.stage_cache) against an S3 server on loopback, a memory:// store and a folder:
finished stages go up with their manifest last, a fresh run downloads them instead of building, and a stage
whose upload was killed (no manifest) is built again."""

import json

import pytest

from corpuslab.artifacts import MANIFEST, StageRunner
from corpuslab.stage_cache import StageCache


def _build_counting(calls):
    def build(work):
        calls.append(1)
        (work / "data.txt").write_text("payload")
        (work / "nested").mkdir()
        (work / "nested" / "part-0.bin").write_bytes(bytes(range(256)) * 10)
        (work / "nested" / "empty").mkdir()  # a split with no documents is an empty folder
        return {"rows": 3}

    return build


@pytest.fixture(params=["s3", "memory", "folder"])
def cache_url(request, tmp_path):
    if request.param == "s3":
        _, bucket = request.getfixturevalue("s3_bucket")
        return f"s3://{bucket}/cache"
    if request.param == "memory":
        import uuid

        return f"memory://corpuslab-test-{uuid.uuid4().hex[:8]}/cache"
    return str(tmp_path / "shared-cache")


def test_a_built_stage_is_uploaded_and_a_fresh_runner_downloads_it(tmp_path, cache_url):
    first_log, calls = [], []
    first = StageRunner(tmp_path / "a", first_log.append, StageCache(cache_url))
    stage = first.stage("thing", {"k": 1})
    manifest = first.run(stage, _build_counting(calls))
    assert calls == [1] and any("uploaded 3 files" in m for m in first_log)
    cache = StageCache(cache_url)
    assert cache.has(stage)

    second_log = []
    second = StageRunner(tmp_path / "b", second_log.append, StageCache(cache_url))
    again = second.stage("thing", {"k": 1})
    assert second.run(again, _build_counting(calls)) == manifest
    assert calls == [1], "the stage was built again instead of downloaded"
    assert any("downloaded thing-" in m for m in second_log) and not any("started" in m for m in second_log)
    assert (again.path / "data.txt").read_text() == "payload"
    assert (again.path / "nested" / "part-0.bin").read_bytes() == (stage.path / "nested" / "part-0.bin").read_bytes()
    assert json.loads((again.path / MANIFEST).read_text()) == json.loads((stage.path / MANIFEST).read_text())
    assert not list((tmp_path / "b").glob(".*tmp*")), "the download's temporary folder was left behind"
    assert sorted(p.relative_to(again.path) for p in again.path.rglob("*")) == sorted(p.relative_to(stage.path) for p in stage.path.rglob("*"))

    other = second.stage("thing", {"k": 2})  # another fingerprint: not in the cache, built
    second.run(other, _build_counting(calls))
    assert calls == [1, 1]


def test_a_killed_upload_is_not_complete_and_is_rebuilt(tmp_path, cache_url):
    calls = []
    cache = StageCache(cache_url)
    real_put_file = cache.fs.put_file

    def killed(lpath, rpath, *args, **kwargs):  # the process dies just before the manifest goes up
        if rpath.endswith(MANIFEST):
            raise KeyboardInterrupt
        return real_put_file(lpath, rpath, *args, **kwargs)

    cache.fs.put_file = killed
    first = StageRunner(tmp_path / "a", lambda m: None, cache)
    stage = first.stage("thing", {"k": 1})
    try:
        with pytest.raises(KeyboardInterrupt):
            first.run(stage, _build_counting(calls))
    finally:
        cache.fs.put_file = real_put_file
    fresh = StageCache(cache_url)
    remote = f"{fresh.root}/{stage.path.name}"
    assert fresh.fs.exists(f"{remote}/data.txt"), "the data files were uploaded before the manifest"
    assert not fresh.has(stage)
    fresh.fs.pipe_file(f"{remote}/stray.tmp", b"left by the killed upload")

    log = []
    second = StageRunner(tmp_path / "b", log.append, fresh)
    second.run(second.stage("thing", {"k": 1}), _build_counting(calls))
    assert calls == [1, 1], "a stage without its manifest in the cache must be built again"
    assert any("started" in m for m in log) and any("uploaded" in m for m in log)
    assert StageCache(cache_url).has(stage)
    fresh.fs.invalidate_cache()
    assert not fresh.fs.exists(f"{remote}/stray.tmp"), "the debris of the killed upload was kept"


def test_a_torn_download_is_built_instead(tmp_path, cache_url):
    """A cached copy whose files do not match their listing (or whose manifest is someone else's) is not used."""
    calls = []
    first = StageRunner(tmp_path / "a", lambda m: None, StageCache(cache_url))
    stage = first.stage("thing", {"k": 1})
    first.run(stage, _build_counting(calls))
    cache = StageCache(cache_url)
    manifest = json.loads((stage.path / MANIFEST).read_text())
    cache.fs.pipe_file(f"{cache.root}/{stage.path.name}/{MANIFEST}", json.dumps({**manifest, "fingerprint": "other"}).encode())
    second = StageRunner(tmp_path / "b", lambda m: None, cache)
    second.run(second.stage("thing", {"k": 1}), _build_counting(calls))
    assert calls == [1, 1]


def test_a_stage_built_before_the_cache_was_set_is_uploaded_when_reused(tmp_path, cache_url):
    calls, log = [], []
    StageRunner(tmp_path / "a", lambda m: None).run(StageRunner(tmp_path / "a", lambda m: None).stage("thing", {"k": 1}),
                                                     _build_counting(calls))
    runner = StageRunner(tmp_path / "a", log.append, StageCache(cache_url))
    stage = runner.stage("thing", {"k": 1})
    runner.run(stage, _build_counting(calls))
    assert calls == [1] and any("reused" in m for m in log) and any("uploaded" in m for m in log)
    assert StageCache(cache_url).has(stage)
