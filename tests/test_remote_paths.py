"""fsspec URLs end to end, against an S3 server on loopback (moto): input files, a shared stage cache between two
output folders, a remote output_dir, and the errors for a missing s3fs and wrong credentials."""

import json
import sys

import pytest

import corpuslab
from corpuslab.errors import ConfigError
from corpuslab.paths import local_output_dir, relocate
from corpuslab.report.build import reproducible_part
from corpuslab.sources.badinput import BadInputLog
from corpuslab.sources.local import LocalConfig, LocalSource, read_local
from tests.conftest import TINY

SHARED = ("ingest", "split", "canaries", "decontaminate", "tokenizer", "tokens")


def _lines(docs):
    return "".join(json.dumps({"text": text, "id": f"d{i}"}) + "\n" for i, text in enumerate(docs))


def _texts(n, offset=0):
    return [f"document {i} about the cat and the dog number {i * 7} with words" for i in range(offset, offset + n)]


def _stage_events(messages, event):
    return {m.split("]")[0].lstrip("[") for m in messages if f"] {event}" in m}


# Input paths


def test_local_source_reads_s3_folders_and_globs_like_local_files(s3_bucket, tmp_path):
    fs, bucket = s3_bucket
    local = tmp_path / "corpus"
    (local / "sub").mkdir(parents=True)
    files = {"a.jsonl": _lines(_texts(3)), "sub/b.jsonl": _lines(_texts(2, 10)), "notes.csv.txt": "not jsonl: skipped and counted"}
    for name, text in files.items():
        (local / name).write_text(text)
        fs.pipe_file(f"{bucket}/corpus/{name}", text.encode())
    fs.pipe_file(f"{bucket}/corpus/.hidden/c.jsonl", _lines(_texts(1)).encode())

    def read(paths, **options):
        return [(d.id, d.text) for d in read_local(LocalConfig(paths=paths, format="jsonl", id_field="id", **options), BadInputLog())]

    assert read([f"s3://{bucket}/corpus"]) == read([str(local)])
    copy = tmp_path / "local-cache" / "inputs" / "s3" / bucket / "corpus" / "a.jsonl"
    inode = copy.stat().st_ino
    read([f"s3://{bucket}/corpus"])
    assert copy.stat().st_ino == inode, "an unchanged remote file was downloaded again"
    assert read([f"s3://{bucket}/corpus/**/*.jsonl"]) == read([str(local / "**" / "*.jsonl")])
    assert read([f"s3://{bucket}/corpus/sub/b.jsonl"]) == read([str(local / "sub" / "b.jsonl")])

    log = BadInputLog()
    list(read_local(LocalConfig(paths=[f"s3://{bucket}/corpus"], format="jsonl"), log))
    assert log.to_dict()["examples"]["other_format_file"][0]["file"] == f"s3://{bucket}/corpus/notes.csv.txt", "bad input names the URL"

    source = LocalSource(LocalConfig(paths=[f"s3://{bucket}/corpus"], format="jsonl"))
    identity = source.identity()
    assert sorted(f["path"] for f in identity["files"]) == [f"s3://{bucket}/corpus/a.jsonl", f"s3://{bucket}/corpus/sub/b.jsonl"]
    ids = [d.id for d in source.documents()]
    assert ids[0] == "a.jsonl:1", "ids are relative to the remote folder, as for a local one"
    before = source.inputs_fingerprint(identity)

    fs.rm(f"{bucket}/corpus/sub/b.jsonl")  # a file deleted remotely is no longer read from the local mirror
    fs.pipe_file(f"{bucket}/corpus/a.jsonl", _lines(_texts(3, 50)).encode())  # and an edited one is fetched again
    again = LocalSource(LocalConfig(paths=[f"s3://{bucket}/corpus"], format="jsonl"))
    assert [d.text for d in again.documents()] == _texts(3, 50)
    assert again.inputs_fingerprint(again.identity()) != before


def test_memory_urls_are_inputs_too(tmp_path, monkeypatch):
    import fsspec

    monkeypatch.setenv("CORPUSLAB_CACHE_DIR", str(tmp_path / "cache"))
    fs = fsspec.filesystem("memory")
    fs.pipe_file("/corpuslab-inputs/x/one.jsonl", _lines(_texts(4)).encode())
    docs = list(read_local(LocalConfig(paths=["memory://corpuslab-inputs/x"]), BadInputLog()))
    assert [d.text for d in docs] == _texts(4)
    with pytest.raises(corpuslab.errors.InputError, match="memory://corpuslab-inputs/nothing"):
        list(read_local(LocalConfig(paths=["memory://corpuslab-inputs/nothing"]), BadInputLog()))


# The shared cache between two output folders


def test_a_second_output_dir_downloads_the_stages_instead_of_building_them(s3_bucket, tmp_path):
    _, bucket = s3_bucket
    cache = f"s3://{bucket}/stage-cache"
    overrides = [*TINY, f"cache.url={cache}", "runs=[{name: exact, recipe: exact}]"]
    first = []
    corpuslab.run(corpuslab.load_config(overrides=[*overrides, f"output_dir={tmp_path / 'one'}"]), until="curate", log=first.append)
    built = _stage_events(first, "started")
    assert set(SHARED) <= built and "curate exact" in built
    assert _stage_events(first, "uploaded") == built

    second = []
    corpuslab.run(corpuslab.load_config(overrides=[*overrides, f"output_dir={tmp_path / 'two'}"]), until="curate", log=second.append)
    assert not _stage_events(second, "started"), "a stage whose fingerprint is in the cache was built again"
    assert _stage_events(second, "downloaded") == built
    one, two = tmp_path / "one" / "tiny" / "stages", tmp_path / "two" / "tiny" / "stages"
    assert sorted(p.name for p in one.iterdir()) == sorted(p.name for p in two.iterdir())
    for folder in one.iterdir():
        assert (two / folder.name / "manifest.json").read_text() == (folder / "manifest.json").read_text()
    decisions = next(one.glob("curate-*"))
    assert (two / decisions.name / "stats.json").read_text() == (decisions / "stats.json").read_text()


def test_output_dir_on_s3_holds_the_report_and_the_stages(s3_bucket, tmp_path, monkeypatch):
    fs, bucket = s3_bucket
    out = f"s3://{bucket}/runs"
    overrides = [*TINY, f"output_dir={out}", "runs=[{name: none, recipe: none}]", "training.max_steps=4",
                 "training.eval_interval=2", "evaluation.tasks={}"]
    first = []
    report = corpuslab.run(corpuslab.load_config(overrides=overrides), log=first.append)
    for name in ("report.json", "summary.tsv", "report.html", "config.yaml"):
        assert fs.exists(f"{bucket}/runs/tiny/{name}"), name
    assert json.loads(fs.cat_file(f"{bucket}/runs/tiny/report.json"))["arms"] == json.loads(json.dumps(report["arms"]))
    assert fs.glob(f"{bucket}/runs/tiny/runs/*/report.json")
    stages = {p.rsplit("/", 1)[-1].rsplit("-", 1)[0] for p in fs.ls(f"{bucket}/runs/tiny/stages")}
    assert {*SHARED, "train", "evaluate"} <= stages
    # The report lists where things are: the stages' URLs, not the local staging folder they were built in.
    text = fs.cat_file(f"{bucket}/runs/tiny/report.json").decode()
    assert str(local_output_dir(out)) not in text
    arm = report["arms"]["none"]
    assert arm["artifacts"]["curate"].startswith(f"s3://{bucket}/runs/tiny/stages/curate-none-doc-")
    (replicate,) = arm["replicates"]
    for url in [*arm["artifacts"].values(), *replicate["artifacts"].values()]:
        assert fs.exists(url + "/manifest.json"), url
    assert fs.exists(replicate["checkpoints"]["final"] + "/config.json")
    assert any(m.startswith(f"report: s3://{bucket}/runs/tiny/report.html") for m in first)

    # Another machine (another local staging folder) finds every stage there and trains nothing.
    monkeypatch.setenv("CORPUSLAB_CACHE_DIR", str(tmp_path / "other-machine"))
    second = []
    again = corpuslab.run(corpuslab.load_config(overrides=overrides), log=second.append)
    assert not _stage_events(second, "started")
    assert "train none" in _stage_events(second, "downloaded")
    assert reproducible_part(again) == reproducible_part(report)  # the same numbers, from downloaded stages
    assert again["arms"]["none"]["artifacts"] == arm["artifacts"], "both machines' reports name the same URLs"


def test_relocate_rewrites_paths_under_the_moved_folders_only():
    moves = {"/stage/exp": "s3://b/runs/exp", "/stage/exp/stages": "s3://b/cache"}
    report = {"a": ["/stage/exp/stages/train-1/final", "/stage/exp/runs/x", "/stage/expired", "kept"], "n": 3,
              "b": {"c": "/stage/exp"}}
    assert relocate(report, moves) == {"a": ["s3://b/cache/train-1/final", "s3://b/runs/exp/runs/x", "/stage/expired", "kept"],
                                       "n": 3, "b": {"c": "s3://b/runs/exp"}}
    assert relocate(report, {}) is report


# Bad input


@pytest.mark.parametrize("key", ["cache.url", "output_dir", "dataset.local.paths"])
def test_an_s3_url_without_s3fs_names_the_extra(monkeypatch, key):
    monkeypatch.setitem(sys.modules, "s3fs", None)  # as if not installed: importing it raises ImportError
    value = "[s3://bucket/corpus]" if key == "dataset.local.paths" else "s3://bucket/prefix"
    extra = ["dataset.source=local"] if key == "dataset.local.paths" else []
    with pytest.raises(ConfigError) as raised:
        corpuslab.load_config(overrides=[*TINY, *extra, f"{key}={value}"])
    assert raised.value.key == key
    assert "pip install 'corpuslab[s3]'" in str(raised.value)


def test_wrong_s3_credentials_name_the_setting_at_once(s3_bucket, tmp_path, monkeypatch):
    import time

    import moto.settings

    _, bucket = s3_bucket
    monkeypatch.setattr(moto.settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)  # the server now checks credentials
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAWRONGWRONGWRONG0")
    cases = (("cache.url", f"s3://{bucket}/cache"), ("output_dir", f"s3://{bucket}/runs"),
             ("dataset.local.paths", f"[s3://{bucket}/corpus]"))
    for key, value in cases:
        local = ["dataset.source=local"] if key == "dataset.local.paths" else []
        cfg = corpuslab.load_config(overrides=[*TINY, *local, f"{key}={value}", f"output_dir={tmp_path}" if key != "output_dir" else "seed=0"])
        start = time.monotonic()
        with pytest.raises(ConfigError) as raised:
            corpuslab.run(cfg, until="ingest", log=lambda m: None)
        assert raised.value.key == key
        assert "AWS_ACCESS_KEY_ID" in str(raised.value) and "PermissionError" in str(raised.value)
        assert time.monotonic() - start < 10, "a credentials error must not be retried for long"


def test_other_protocols_name_their_package_or_say_the_protocol_is_unknown(monkeypatch):
    monkeypatch.setitem(sys.modules, "gcsfs", None)
    with pytest.raises(ConfigError, match=r"pip install 'corpuslab\[gcs\]'") as raised:
        corpuslab.load_config(overrides=[*TINY, "cache.url=gs://bucket/stages"])
    assert raised.value.key == "cache.url"
    with pytest.raises(ConfigError, match="protocol fsspec knows") as raised:
        corpuslab.load_config(overrides=[*TINY, "output_dir=nosuchprotocol://bucket/runs"])
    assert raised.value.key == "output_dir"
    assert corpuslab.load_config(overrides=[*TINY, "cache.url=memory://stages", "output_dir=file:///tmp/x"]).cache.url == "memory://stages"


@pytest.mark.slow  # ~30 s on 2 busy cores; the default suite covers the same mechanism through experiments
def test_compression_experiments_take_a_url_output_dir_too(tmp_path, monkeypatch):
    """The byte-level runner shares the mechanism: memory:// output_dir gets results and stages; a second
    machine (another local staging folder) downloads the trained run instead of training it."""
    import uuid

    import fsspec

    from corpuslab.compression.runner import CompressionExperimentRunner
    from tests.compression.test_runner import _config

    monkeypatch.setenv("CORPUSLAB_CACHE_DIR", str(tmp_path / "machine-a"))
    out = f"memory://corpuslab-{uuid.uuid4().hex[:8]}/runs"
    overrides = (f"output_dir={out}", "runs=[{name: vanilla, procedure: vanilla}]", "procedure_defaults.main.epochs=1",
                 "procedure_defaults.fine_tuning.epochs=0", "procedure_defaults.pruning.enabled=false")
    first = CompressionExperimentRunner(_config(tmp_path, *overrides), log=lambda m: None).run()
    fs = fsspec.filesystem("memory")
    remote = out[len("memory://"):] + "/tiny"
    assert fs.exists(f"{remote}/runs.tsv") and fs.exists(f"{remote}/results.json")
    assert any(p.rsplit("/", 1)[-1].startswith("train-") for p in fs.ls(f"{remote}/stages", detail=False))
    (row,) = json.loads(fs.cat_file(f"{remote}/results.json"))["runs"]
    assert row["model_path"].startswith(f"{out}/tiny/stages/train-") and fs.exists(row["train_stage"] + "/manifest.json")

    monkeypatch.setenv("CORPUSLAB_CACHE_DIR", str(tmp_path / "machine-b"))
    lines = []
    second = CompressionExperimentRunner(_config(tmp_path, *overrides), log=lines.append).run()
    assert not any("] started" in line for line in lines) and any("[train vanilla] downloaded" in line for line in lines)
    assert second["runs"][0]["metrics"] == first["runs"][0]["metrics"]
