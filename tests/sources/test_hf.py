"""corpuslab.sources.hf through the real `datasets.load_dataset`, on local JSON and Parquet files.

The Hub is not reachable from tests: packaged builders ("json", "parquet") with data_files run the same
code path as Hub datasets, and offline mode stands in for an unreachable Hub.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from corpuslab.errors import ConfigError, InputError
from corpuslab.sources import hf
from corpuslab.sources.badinput import BadInputLog
from corpuslab.sources.hf import HFConfig, prefetch, read_hf

datasets = pytest.importorskip("datasets")

SECRET = "hf_NEVERLOGTHISa1b2c3d4e5"
ROWS = [{"text": f"row {i} text", "doc": 10 + i, "label": "xy"[i % 2], "url": f"u{i}"} for i in range(8)]


@pytest.fixture(autouse=True)
def no_telemetry(monkeypatch: pytest.MonkeyPatch) -> None:
    # load_dataset pings a download counter on S3 for packaged builders; keep tests off the network.
    monkeypatch.setattr(datasets.config, "HF_UPDATE_DOWNLOAD_COUNTS", False)


@pytest.fixture()
def jsonl_file(tmp_path: Path) -> str:
    path = tmp_path / "data.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in ROWS))
    return str(path)


def read(**options: object) -> tuple[list, BadInputLog]:
    log = BadInputLog()
    return list(read_hf(HFConfig(**options), log)), log


@pytest.mark.parametrize("streaming", [True, False])
def test_json_data_files_streaming_and_not(jsonl_file: str, tmp_path: Path, streaming: bool) -> None:
    docs, log = read(name="json", data_files=jsonl_file, streaming=streaming,
                     cache_dir=str(tmp_path / "cache"))
    assert [doc.text for doc in docs] == [row["text"] for row in ROWS]
    assert docs[2].id == "json:train:2"
    assert docs[2].metadata == {"source": "hf", "hf_dataset": "json", "hf_subset": None, "hf_split": "train",
                                "source_row": 2}
    assert log.total == 0


@pytest.mark.parametrize("streaming", [True, False])
def test_parquet_with_id_category_metadata_and_cap(tmp_path: Path, streaming: bool) -> None:
    path = tmp_path / "data.parquet"
    pq.write_table(pa.Table.from_pylist(ROWS), path)
    docs, _ = read(name="parquet", data_files=str(path), streaming=streaming,
                   cache_dir=str(tmp_path / "cache"), id_field="doc", category_field="label",
                   metadata_fields=["url"], max_docs=3)
    assert [(doc.id, doc.category, doc.metadata["url"]) for doc in docs] == [
        ("10", "x", "u0"), ("11", "y", "u1"), ("12", "x", "u2")]


def test_missing_text_values_are_counted_or_raised(tmp_path: Path) -> None:
    path = tmp_path / "gaps.jsonl"
    path.write_text('{"text": "one"}\n{"other": 1}\n{"text": ""}\n{"text": "four"}\n')
    docs, log = read(name="json", data_files=str(path), cache_dir=str(tmp_path / "cache"))
    assert [doc.id for doc in docs] == ["json:train:0", "json:train:3"]
    assert dict(log.counts) == {"missing_text_field": 1, "empty_document": 1}
    assert log.examples["missing_text_field"][0]["line"] == 1

    with pytest.raises(InputError, match="no 'text' value") as raised:
        read(name="json", data_files=str(path), cache_dir=str(tmp_path / "cache"), on_bad_input="stop")
    assert raised.value.line == 1 and "json split 'train'" in str(raised.value)


def test_absent_text_column_raises_under_both_policies(jsonl_file: str, tmp_path: Path) -> None:
    for policy in ("skip", "stop"):
        with pytest.raises(InputError, match=r"columns \['text', 'doc', 'label', 'url'\].*\['body'\]"):
            read_hf(HFConfig(name="json", data_files=jsonl_file, text_field="body", on_bad_input=policy,
                             cache_dir=str(tmp_path / "cache")), BadInputLog())


@pytest.mark.parametrize("streaming", [True, False])
def test_read_errors_inside_datasets_become_input_errors(tmp_path: Path, streaming: bool) -> None:
    path = tmp_path / "broken.jsonl"
    path.write_text('{"text": "fine"}\n{not json\n')
    with pytest.raises(InputError, match="JSON parse error"):
        read(name="json", data_files=str(path), streaming=streaming, cache_dir=str(tmp_path / "cache"))
    with pytest.raises(InputError):
        read(name="json", data_files=str(tmp_path / "absent.jsonl"), cache_dir=str(tmp_path / "cache"))
    with pytest.raises(InputError, match="test"):
        read(name="json", data_files=str(path), split="test", cache_dir=str(tmp_path / "cache"))


def test_trust_remote_code_warns(jsonl_file: str, tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = HFConfig(name="json", data_files=jsonl_file, trust_remote_code=True, cache_dir=str(tmp_path / "c"))
    with caplog.at_level(logging.WARNING, logger="corpuslab"):
        docs = list(read_hf(cfg, BadInputLog()))
    assert len(docs) == len(ROWS)
    if hf._load_dataset_accepts("trust_remote_code"):
        assert "will run on this machine" in caplog.text
    else:
        assert f"datasets {datasets.__version__} does not run dataset loading scripts" in caplog.text

    # With a datasets that still runs scripts, the flag is passed on and the warning says code will run.
    monkeypatch.setattr(hf, "_load_dataset_accepts", lambda parameter: True)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="corpuslab"):
        assert hf._remote_code_kwargs(cfg) == {"trust_remote_code": True}
    assert "will run on this machine" in caplog.text
    assert hf._remote_code_kwargs(HFConfig(name="json")) == {}


def test_token_reaches_load_dataset_but_never_logs_or_repr(
        jsonl_file: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("HF_TOKEN", SECRET)
    seen_tokens = []
    real_load = datasets.load_dataset

    def spying_load(*args: object, **kwargs: object) -> object:
        seen_tokens.append(kwargs.get("token"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(datasets, "load_dataset", spying_load)
    cfg = HFConfig(name="json", data_files=jsonl_file, trust_remote_code=True, cache_dir=str(tmp_path / "c"))
    log = BadInputLog()
    with caplog.at_level(logging.DEBUG):
        docs = list(read_hf(cfg, log))
        description = prefetch(cfg)
        with pytest.raises(InputError) as raised:
            read_hf(HFConfig(name="json", data_files=jsonl_file, text_field="body",
                             cache_dir=cfg.cache_dir), log)
    assert seen_tokens == [SECRET, SECRET, SECRET]
    captured = capsys.readouterr()
    texts = [caplog.text, captured.out, captured.err, repr(cfg), str(cfg.describe()), description,
             str(raised.value), json.dumps(log.to_dict()), repr(docs)]
    assert all(SECRET not in text for text in texts)


def test_prefetch_describes_the_cached_split(jsonl_file: str, tmp_path: Path) -> None:
    description = prefetch(HFConfig(name="json", data_files=jsonl_file), cache_dir=str(tmp_path / "cache"))
    assert description.startswith("json split 'train': 8 rows in 1 Arrow file(s)")
    assert str(tmp_path / "cache") in description


def test_unreachable_hub_gives_a_clear_input_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import huggingface_hub.constants

    # Offline mode fails the way an unreachable Hub does, without waiting for network retries.
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    cfg = HFConfig(name="someone/not-cached-anywhere", subset="en", cache_dir=str(tmp_path))
    for attempt in (lambda: prefetch(cfg), lambda: read_hf(cfg, BadInputLog())):
        with pytest.raises(InputError) as raised:
            attempt()
        message = str(raised.value)
        assert "someone/not-cached-anywhere/en split 'train'" in message
        assert "HF_HUB_OFFLINE" in message and "data_files" in message


@pytest.mark.parametrize(("options", "key"), [
    ({"name": ""}, "dataset.hf.name"),
    ({"name": "x", "streaming": "yes"}, "dataset.hf.streaming"),
    ({"name": "x", "max_docs": -1}, "dataset.hf.max_docs"),
    ({"name": "x", "data_files": []}, "dataset.hf.data_files"),
    ({"name": "x", "data_files": {"train": [3]}}, "dataset.hf.data_files.train"),
    ({"name": "x", "on_bad_input": "warn"}, "dataset.hf.on_bad_input"),
    ({"name": "x", "trust_remote_code": 1}, "dataset.hf.trust_remote_code"),
])
def test_validate_names_the_key(options: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as raised:
        HFConfig(**options).validate()
    assert raised.value.key == key


@pytest.mark.parametrize("streaming", [True, False])
def test_a_class_label_category_reads_as_its_name(tmp_path: Path, streaming: bool) -> None:
    # ccdv/arxiv-classification (no_ref) holds `text` and a ClassLabel `label` (0 -> 'math.AC', ...); a Parquet
    # file written by `datasets` keeps the ClassLabel in its schema, so the packaged builder sees the same features.
    names = ["math.AC", "cs.CV", "cs.AI"]
    features = datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=names)})
    data = datasets.Dataset.from_dict({"text": [f"paper {i}" for i in range(6)], "label": [0, 1, 2, 2, 1, 0]},
                                      features=features)
    path = tmp_path / "arxiv.parquet"
    data.to_parquet(str(path))
    docs, _ = read(name="parquet", data_files=str(path), streaming=streaming, category_field="label",
                   cache_dir=str(tmp_path / "cache"))
    assert [d.category for d in docs] == ["math.AC", "cs.CV", "cs.AI", "cs.AI", "cs.CV", "math.AC"]
