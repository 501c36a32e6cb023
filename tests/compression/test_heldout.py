"""Validation and test bytes as in the seed: the source's own splits (Wiki40B's validation and test) when it has
them, the bytes after the training bytes otherwise. The Wiki40B path runs offline on a local folder laid out
like the Hub's `google/wiki40b` (README configs + en/{split}-*.parquet), read through the same
`datasets.load_dataset` calls as the Hub dataset."""

import csv
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from corpuslab.compression.runner import CompressionExperimentRunner, load_compression_config
from corpuslab.errors import ConfigError

MODEL = {"preset": "transformer200k", "n_layer": 1, "n_head": 2, "n_embd": 16, "context": 32}
WIKI40B_CARD = """---
configs:
- config_name: en
  data_files:
  - split: train
    path: en/train-*
  - split: validation
    path: en/validation-*
  - split: test
    path: en/test-*
---
# Wiki-40B (a few made-up articles, laid out like google/wiki40b)
"""


def _article(split: str, index: int) -> str:
    """Wiki40B's markup: article, section and paragraph markers on their own lines, _NEWLINE_ inside paragraphs."""
    return (f"\n_START_ARTICLE_\n{split.title()} topic {index}\n_START_SECTION_\nHistory\n_START_PARAGRAPH_\n"
            f"The {split} article {index} was written in café number {index}._NEWLINE_It has a second line.")


def _wiki40b(root, counts=(("train", 12), ("validation", 5), ("test", 4))):
    texts = {}
    (root / "en").mkdir(parents=True)
    (root / "README.md").write_text(WIKI40B_CARD)
    for split, count in counts:
        texts[split] = [_article(split, i) for i in range(count)]
        table = pa.table({"wikidata_id": [f"Q{i}" for i in range(count)], "text": texts[split],
                          "version_id": [str(1000 + i) for i in range(count)]})
        pq.write_table(table, root / "en" / f"{split}-00000-of-00001.parquet")
    return {split: "".join(parts).encode("utf-8") for split, parts in texts.items()}


def _config(tmp_path, dataset, data, runs=None, **extra):
    path = tmp_path / "compression.yaml"
    config = {"experiment": "heldout", "output_dir": str(tmp_path / "out"), "dataset": dataset,
              "data": {"chunk_bytes": 32, **data}, "model": MODEL, "training": {"batch_size": 8, "lr": 3e-3, "device": "cpu"},
              "evaluation": {"batch_size": 8}, "runs": runs or [{"name": "vanilla", "procedure": "vanilla"}], **extra}
    path.write_text(yaml.safe_dump(config, allow_unicode=True))
    return load_compression_config([str(path)])


def _hf(tmp_path, folder, **more):
    return {"source": "hf", "hf": {"name": str(folder), "subset": "en", "cache_dir": str(tmp_path / "hf-cache"), **more}}


def _bytes(tmp_path, cfg):
    stage = CompressionExperimentRunner(cfg, log=lambda _: None).bytes_stage(cfg.data)
    manifest = stage.manifest()
    return manifest, {name: (stage.path / f"{name}.bin").read_bytes()[: manifest["splits"][name]["bytes"]]
                      for name in ("train", "val", "test")}


def test_wiki40b_validation_and_test_are_its_own_splits_markup_kept(tmp_path):
    texts = _wiki40b(tmp_path / "wiki40b")
    cfg = _config(tmp_path, _hf(tmp_path, tmp_path / "wiki40b"), {"size": 512, "val_bytes": 128, "test_bytes": "all"})
    manifest, data = _bytes(tmp_path, cfg)
    assert manifest["held_out"]["mode"] == "source" and "'validation', 'test'" in manifest["held_out"]["reason"]
    assert "split validation" in manifest["held_out"]["validation"] and "all bytes" in manifest["held_out"]["test"]
    # Leading bytes of each split, concatenated without separators, the text exactly as the dataset gives it.
    assert data["train"] == texts["train"][:512]
    assert data["val"] == texts["validation"][:128]
    assert data["test"] == texts["test"] and manifest["splits"]["test"]["chunks"] == -(-len(texts["test"]) // 32)
    assert data["train"].startswith(b"\n_START_ARTICLE_\nTrain topic 0\n_START_SECTION_\nHistory\n_START_PARAGRAPH_\n")
    assert b"_NEWLINE_It has" in data["train"] and "café".encode() in data["train"]

    stream = _config(tmp_path, _hf(tmp_path, tmp_path / "wiki40b"),
                     {"size": 512, "val_bytes": 128, "test_bytes": 64, "held_out": "stream"})
    manifest, data = _bytes(tmp_path, stream)
    assert manifest["held_out"]["mode"] == "stream"
    assert (data["train"], data["val"], data["test"]) == (texts["train"][:512], texts["train"][512:640], texts["train"][640:704])


def test_split_choices_that_cannot_work_stop_naming_the_key(tmp_path):
    texts = _wiki40b(tmp_path / "wiki40b")
    dataset = _hf(tmp_path, tmp_path / "wiki40b")
    with pytest.raises(ConfigError) as err:
        _bytes(tmp_path, _config(tmp_path, dataset, {"size": 512, "val_bytes": 64, "test_bytes": 64, "held_out": "source",
                                                     "val_split": "dev"}))
    assert "'data.val_split'" in str(err.value) and "dev" in str(err.value) and "validation" in str(err.value)
    # auto falls back to the one stream when the dataset lacks a named split, and says why.
    manifest, data = _bytes(tmp_path, _config(tmp_path, dataset, {"size": 512, "val_bytes": 64, "test_bytes": 64, "val_split": "dev"}))
    assert manifest["held_out"]["mode"] == "stream" and "'dev'" in manifest["held_out"]["reason"]
    assert data["val"] == texts["train"][512:576]
    too_many = len(texts["validation"]) + 1
    with pytest.raises(ConfigError) as err:
        _bytes(tmp_path, _config(tmp_path, dataset, {"size": 512, "val_bytes": too_many, "test_bytes": 64}))
    assert "'data.val_bytes'" in str(err.value) and str(too_many) in str(err.value) and f"{len(texts['validation']):,}" in str(err.value)
    with pytest.raises(ConfigError) as err:  # more training bytes than the train split has
        _bytes(tmp_path, _config(tmp_path, dataset, {"size": 100_000, "val_bytes": 64, "test_bytes": 64}))
    assert "'data.size'" in str(err.value) and "100000" in str(err.value) and f"{len(texts['train']):,} bytes" in str(err.value)
    with pytest.raises(ConfigError, match=r"'data.val_split'.*'train'"):
        _bytes(tmp_path, _config(tmp_path, dataset, {"size": 512, "val_bytes": 64, "test_bytes": 64, "val_split": "train"}))
    with pytest.raises(ConfigError, match=r"'data.test_bytes'.*all"):
        _config(tmp_path, dataset, {"size": 512, "val_bytes": 64, "test_bytes": "all", "held_out": "stream"})


def test_single_stream_sources_keep_the_bytes_after_training(tmp_path):
    packaged = {"source": {"name": "packaged_text", "text": "tiny_shakespeare_head"}}
    manifest, data = _bytes(tmp_path, _config(tmp_path, packaged, {"size": 256, "val_bytes": 64, "test_bytes": 64}))
    assert manifest["held_out"]["mode"] == "stream" and "no validation and test splits" in manifest["held_out"]["reason"]
    assert data["val"][:10] != data["train"][:10]
    with pytest.raises(ConfigError, match=r"'data.held_out'.*source.*packaged_text"):
        _bytes(tmp_path, _config(tmp_path, packaged, {"size": 256, "val_bytes": 64, "test_bytes": 64, "held_out": "source"}))
    with pytest.raises(ConfigError, match=r"'data.val_bytes'.*all"):
        _bytes(tmp_path, _config(tmp_path, packaged, {"size": 256, "val_bytes": "all", "test_bytes": 64}))


def test_local_files_per_split(tmp_path):
    for split in ("train", "valid", "test"):
        (tmp_path / "corpus" / split).mkdir(parents=True)
        for i in range(3):
            (tmp_path / "corpus" / split / f"{i}.txt").write_text(f"<{split} document {i}> " * 8)
    local = {"source": "local", "local": {"paths": ["corpus/train"]}}
    data = {"size": 256, "val_bytes": 64, "test_bytes": 64}
    manifest, split_bytes = _bytes(tmp_path, _config(tmp_path, local, {**data, "val_paths": ["corpus/valid"],
                                                                        "test_paths": ["corpus/test"]}))
    assert manifest["held_out"]["mode"] == "source"
    assert split_bytes["val"].startswith(b"<valid document 0>") and split_bytes["test"].startswith(b"<test document 0>")
    assert b"valid" not in split_bytes["train"] and b"test" not in split_bytes["train"]
    manifest, split_bytes = _bytes(tmp_path, _config(tmp_path, local, data))
    train_text = b"".join(f"<train document {i}> ".encode() * 8 for i in range(3))
    assert manifest["held_out"]["mode"] == "stream" and split_bytes["val"] == train_text[256:320]
    with pytest.raises(ConfigError, match=r"'data.val_paths'"):
        _bytes(tmp_path, _config(tmp_path, local, {**data, "held_out": "source"}))
    with pytest.raises(ConfigError, match=r"'data.test_paths'"):
        _config(tmp_path, local, {**data, "val_paths": ["corpus/valid"]})


def test_hf_packaged_builder_with_files_per_split(tmp_path):
    """Local JSON-lines files per split through `dataset.hf` (name json, data_files per split)."""
    files = {}
    for split in ("train", "validation", "test"):
        files[split] = str(tmp_path / f"{split}.jsonl")
        (tmp_path / f"{split}.jsonl").write_text("".join(json.dumps({"text": f"[{split} {i}] " * 6}) + "\n" for i in range(6)))
    cfg = _config(tmp_path, _hf(tmp_path, "json", subset=None, data_files=files), {"size": 128, "val_bytes": 64, "test_bytes": 64})
    manifest, data = _bytes(tmp_path, cfg)
    assert manifest["held_out"]["mode"] == "source"
    assert data["train"].startswith(b"[train 0] ") and data["val"].startswith(b"[validation 0] ") and data["test"].startswith(b"[test 0] ")


def test_a_run_on_wiki40b_says_which_held_out_bytes_it_used(tmp_path, one_thread):
    _wiki40b(tmp_path / "wiki40b")
    runs = [{"name": "vanilla", "procedure": {"name": "vanilla", "main": {"epochs": 1}, "pruning": {
        "enabled": True, "first_pruning_after": 1, "validation_sequences": 4, "max_search_steps": 4}}}]
    cfg = _config(tmp_path, _hf(tmp_path, tmp_path / "wiki40b"), {"size": 512, "val_bytes": 128, "test_bytes": "all"}, runs)
    results = CompressionExperimentRunner(cfg, log=lambda _: None).run()
    row = results["runs"][0]
    assert row["status"] == "done" and row["held_out"]["mode"] == "source" and row["pruning"]
    assert row["pruning"][0]["baseline_loss"] > 0  # TAMADE scored the validation split's chunks
    tsv = list(csv.DictReader((tmp_path / "out" / "heldout" / "runs.tsv").open(), delimiter="\t"))
    assert tsv[0]["held_out"] == "source" and "split validation" in tsv[0]["validation"] and "split test" in tsv[0]["test"]
    html = (tmp_path / "out" / "heldout" / "report.html").read_text()
    assert "Validation and test (the source&#x27;s own splits)" in html or "Validation and test (the source's own splits)" in html
