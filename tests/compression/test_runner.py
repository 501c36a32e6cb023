"""The compression experiment end to end on tiny data: config, bad input, stages, results, report, max_runtime."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from corpuslab.compression.data import BytesConfig, leading_bytes, split_bytes, write_byte_stream
from corpuslab.compression.metrics import baselines, description_length_bytes
from corpuslab.compression.runner import CompressionExperimentRunner, load_compression_config
from corpuslab.documents import Document
from corpuslab.errors import ConfigError
from corpuslab.tokens.stream import TokenStream

TINY = {
    "experiment": "tiny",
    "dataset": {"source": {"name": "packaged_text", "text": "tiny_shakespeare_head"}},
    "data": {"size": 1024, "chunk_bytes": 32, "val_bytes": 256, "test_bytes": 256},
    "model": {"preset": "transformer200k", "n_layer": 1, "n_head": 2, "n_embd": 16, "context": 32},
    "training": {"batch_size": 8, "lr": 3e-3, "device": "cpu"},
    "evaluation": {"batch_size": 8},
    "procedure_defaults": {"prelude": {"epochs": 0}, "main": {"epochs": 2}, "fine_tuning": {"epochs": 1},
                           "pruning": {"enabled": True, "first_pruning_after": 1, "prune_every": 1,
                                       "validation_sequences": 4, "max_search_steps": 6}},
    "runs": [{"name": "vanilla", "procedure": "vanilla"},
             {"name": "pmmp", "procedure": {"name": "pmmp", "alpha": 1e-3, "initial_p_value": 1.0}},
             {"name": "continued", "procedure": {"name": "vanilla", "main": {"epochs": 1}, "fine_tuning": {"epochs": 0}},
              "use_pretrained_model": "vanilla"}],
}


def _config(tmp_path, *overrides):
    path = tmp_path / "compression.yaml"
    path.write_text(yaml.safe_dump({**TINY, "output_dir": str(tmp_path / "out")}))
    return load_compression_config([str(path)], list(overrides))


def test_leading_bytes_concatenate_documents_without_separator_and_split_in_order():
    docs = [Document("a", "héllo "), Document("b", ""), Document("c", "world, again")]
    data = leading_bytes(iter(docs), 9)
    assert data == "héllo wo".encode()[:9] and len(data) == 9
    cfg = BytesConfig(size=4, chunk_bytes=2, val_bytes=3, test_bytes=2)
    whole = leading_bytes(iter(docs), None)
    splits = split_bytes(whole, cfg, complete=True)
    assert splits["train"] + splits["val"] + splits["test"] == whole[:9]
    with pytest.raises(ConfigError, match=r"data.size.*100000"):
        split_bytes(whole, BytesConfig(size=100_000, chunk_bytes=2, val_bytes=2, test_bytes=2), complete=True)


def test_byte_stream_is_zero_padded_fixed_chunks(tmp_path):
    meta = write_byte_stream(tmp_path / "s", b"abcdefg", 3)
    stream = TokenStream.open(tmp_path / "s")
    assert meta["chunks"] == 3 and meta["padding"] == 2 and stream.vocab_size == 256
    inputs, targets = stream.batch(np.array([0, 3, 6]), 2)
    assert inputs.tolist() == [[97, 98], [100, 101], [103, 0]] and targets.tolist() == [[98, 99], [101, 102], [0, 0]]


def test_baselines_compress_one_stream_and_label_the_chunked_figure():
    data = ("the quick brown fox jumps over the lazy dog. " * 200).encode()
    compared = baselines(data, chunked_bytes=512)
    assert set(compared) == {"gzip", "bzip2", "xz", "zstd"}
    for figures in compared.values():
        assert figures["bits_per_byte"] == 8 * figures["compressed_bytes"] / len(data)
        assert figures["chunked_512_bits_per_byte"] > 2 * figures["bits_per_byte"]  # each chunk starts from scratch
    assert description_length_bytes(400, np.log(2.0), 8000) == pytest.approx(400 + 1000)


@pytest.mark.parametrize("override, key, value", [
    ("data.chunk_bytes=64", "data.chunk_bytes", "64"),
    ("procedure_defaults.pruning.first_pruning_after=3", "runs[0].procedure.pruning.first_pruning_after", "3"),
    ("runs.1.procedure.alpha=-0.1", "runs[1].procedure.alpha", "-0.1"),
    ("runs.1.procedure.initial_p_value=1.5", "runs[1].procedure.initial_p_value", "1.5"),
    ("runs.0.procedure={name: drr, beta: 5.0, alpha: -1}", "runs[0].procedure.alpha", "-1"),
    ("training.max_steps=10", "training.max_steps", "10"),
    ("runs=[]", "runs", "[]"),
    ("runs.1.use_pretrained_model=later", "runs[1].use_pretrained_model", "later"),
    ("data.size=huge", "data.size", "huge"),
])
def test_bad_config_stops_at_load_naming_key_and_value(tmp_path, override, key, value):
    with pytest.raises(ConfigError) as err:
        _config(tmp_path, override)
    assert f"'{key}'" in str(err.value) and value in str(err.value)


def test_more_bytes_than_the_corpus_stop_before_training(tmp_path):
    cfg = _config(tmp_path, "data.size=10000000")
    with pytest.raises(ConfigError, match=r"'data.size'.*10000000.*196,608 bytes"):
        CompressionExperimentRunner(cfg, log=lambda _: None).run()
    assert not list((tmp_path / "out" / "tiny" / "stages").glob("train-*"))


def test_experiment_end_to_end_with_max_runtime_stop_and_resume(tmp_path, one_thread):
    from transformers import AutoModelForCausalLM

    lines: list[str] = []
    stopped = CompressionExperimentRunner(_config(tmp_path, "max_runtime=1e-9"), log=lines.append).run()
    assert [row["status"].split(":")[0] for row in stopped["runs"]] == ["incomplete", "incomplete", "skipped"]
    assert any("max_runtime" in line and "update 1/" in line for line in lines)

    results = CompressionExperimentRunner(_config(tmp_path), log=lines.append).run()
    root = tmp_path / "out" / "tiny"
    rows = list(csv.DictReader((root / "runs.tsv").open(), delimiter="\t"))
    assert [r["run"] for r in rows] == ["vanilla", "pmmp", "continued"] and all(r["status"] == "done" for r in rows)
    vanilla, _, continued = results["runs"]
    # Continuing from vanilla's trained model: the first pass is coded by a trained model, so it costs fewer bits.
    assert continued["metrics"]["online_code_length_bits"] < 0.9 * vanilla["metrics"]["online_code_length_bits"]
    for row, entry in list(zip(rows, results["runs"]))[:2]:
        metrics = entry["metrics"]
        train_manifest = json.loads((root / "stages" / entry["train_stage"].split("/")[-1] / "manifest.json").read_text())
        assert train_manifest["result"]["resumed_from_step"] == 1  # continued where max_runtime stopped it
        assert metrics["model_bytes"] == 4 * metrics["nonzero_params"] < 4 * metrics["parameters"]  # pruned
        assert metrics["description_length_bytes"] == pytest.approx(
            metrics["model_bytes"] + metrics["train_loss"] * 1024 / (8 * np.log(2)))
        assert 0 < metrics["online_code_length_bits"] and metrics["online_bpb"] == pytest.approx(
            metrics["online_code_length_bits"] / 1024)
        assert float(row["test_bpb"]) == pytest.approx(metrics["test_bpb"], abs=1e-5)
        model = AutoModelForCausalLM.from_pretrained(entry["model_path"])
        zeros = sum(int((p == 0).sum()) for p in {id(p): p for p in model.parameters()}.values())
        assert zeros == metrics["parameters"] - metrics["nonzero_params"]
        assert entry["epochs"][0]["tokens"] == 32 * 31  # the first pass: every chunk once, before its update
    html = (root / "report.html").read_text()
    assert html.count("<svg") == 2 and "xz -9e" in html and "chunked, 512 B at a time" in html
    assert torch.get_num_threads() == 1


def test_shipped_compression_config_loads():
    from pathlib import Path

    cfg = load_compression_config([str(Path(__file__).resolve().parents[2] / "configs" / "compression.yaml")])
    assert [cfg.procedure(i).name for i in range(len(cfg.runs))] == ["vanilla", "rl1", "drr", "pmmp", "vanilla", "vanilla"]
    assert [cfg.run_data(i).train_bytes() for i in range(len(cfg.runs))] == [32768] * 4 + [8192, 16384]
    assert all(cfg.procedure(i).config.pruning.enabled for i in range(len(cfg.runs)))


def test_compression_sections_apply_only_to_compression_reports():
    from corpuslab.compression.report import CompressionPlots, CompressionResults
    from corpuslab.report.sections import page_sections

    plain = {"arms": {"a": {"aggregate": {}}}}
    assert not CompressionResults().applies(plain) and not CompressionPlots().applies(plain)
    assert not any(s.name.startswith("compression") for s in page_sections(plain))


def test_compression_example_runs_as_written(tmp_path, monkeypatch):
    """`python -m corpuslab.compression configs/compression.yaml` from another folder, on a tiny model: the
    packaged text needs no data files, and every run of the shipped config finishes with a row."""
    import shutil
    from pathlib import Path

    from corpuslab.compression.__main__ import main

    repo = Path(__file__).resolve().parents[2]
    shutil.copytree(repo / "configs", tmp_path / "configs")
    monkeypatch.chdir(tmp_path)
    small = ["model.n_layer=1", "model.n_head=2", "model.n_embd=16", "model.context=32", "data.chunk_bytes=32",
             "data.size=1024", "data.val_bytes=512", "data.test_bytes=256", "runs.4.size=512", "runs.5.size=768",
             "procedure_defaults.prelude.epochs=0", "procedure_defaults.main.epochs=2", "procedure_defaults.fine_tuning.epochs=0",
             "procedure_defaults.pruning.max_search_steps=4", "procedure_defaults.pruning.validation_sequences=4",
             f"output_dir={tmp_path / 'out'}"]
    assert main(["configs/compression.yaml", *small]) == 0
    rows = list(csv.DictReader((tmp_path / "out" / "compression" / "runs.tsv").open(), delimiter="\t"))
    assert [r["run"] for r in rows] == ["vanilla", "rl1", "drr", "pmmp", "vanilla_8k", "vanilla_16k"]
    assert all(r["status"] == "done" for r in rows) and [r["dataset_bytes"] for r in rows][-2:] == ["512", "768"]


def test_corpuslab_compress_is_the_same_runner_with_the_cli_s_error_paragraph(tmp_path, capsys):
    """`corpuslab compress CONFIG key=value`: a bad value ends in the CLI's one paragraph (exit 2), naming the key."""
    from corpuslab.cli import main as cli_main

    repo = Path(__file__).resolve().parents[2]
    assert cli_main(["compress", str(repo / "configs/compression.yaml"), "data.size=huge", f"output_dir={tmp_path}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("corpuslab: error: config key 'data.size'") and "huge" in err and "Traceback" not in err
    assert not (tmp_path / "compression").exists()
