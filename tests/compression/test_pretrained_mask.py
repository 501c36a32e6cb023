"""`use_pretrained_model` carries the earlier run's pruning mask: what it pruned stays zero and stays masked."""

import json

import pytest
import torch
import yaml
from safetensors.torch import load_file

from corpuslab.compression.runner import MASK_FILE, CompressionExperimentRunner, load_compression_config

CONFIG = {
    "experiment": "mask",
    "dataset": {"source": {"name": "packaged_text", "text": "tiny_shakespeare_head"}},
    "data": {"size": 512, "chunk_bytes": 32, "val_bytes": 128, "test_bytes": 64},
    "model": {"preset": "transformer200k", "n_layer": 1, "n_head": 2, "n_embd": 16, "context": 32},
    "training": {"batch_size": 8, "lr": 1e-2, "device": "cpu"},
    "evaluation": {"batch_size": 8},
    "runs": [
        # Prunes generously (a 2% loss increase tolerated), so a large part of the weights is masked.
        {"name": "pruned", "procedure": {"name": "vanilla", "main": {"epochs": 1}, "pruning": {
            "enabled": True, "first_pruning_after": 1, "tolerated_relative_loss_increase": 0.02,
            "validation_sequences": 4, "max_search_steps": 8}}},
        # Trains on without pruning of its own, at a learning rate that moves every weight it may move.
        {"name": "continued", "procedure": {"name": "vanilla", "main": {"epochs": 2}}, "use_pretrained_model": "pruned"},
        # Continues the continued model: the mask travels on through a run that pruned nothing itself.
        {"name": "again", "procedure": {"name": "vanilla", "main": {"epochs": 1}}, "use_pretrained_model": "continued"},
    ],
}


def _weights(path):
    return load_file(str(path / "final" / "model.safetensors"))


def _masks(path):
    return load_file(str(path / MASK_FILE))


def test_continuing_a_pruned_run_keeps_its_mask(tmp_path, one_thread):
    config = tmp_path / "mask.yaml"
    config.write_text(yaml.safe_dump({**CONFIG, "output_dir": str(tmp_path / "out")}))
    results = CompressionExperimentRunner(load_compression_config([str(config)]), log=lambda _: None).run()
    pruned, continued, again = (row for row in results["runs"])
    assert [row["status"] for row in results["runs"]] == ["done"] * 3
    stages = [tmp_path / "out" / "mask" / "stages" / row["train_stage"].split("/")[-1] for row in (pruned, continued, again)]

    masks = _masks(stages[0])
    masked = sum(int((~m).sum()) for m in masks.values())
    assert masked > 0.2 * pruned["metrics"]["parameters"]  # TAMADE pruned a good part of the model
    assert pruned["pruning"] and not continued["pruning"]  # the continued run did not prune by itself

    before, after = _weights(stages[0]), _weights(stages[1])
    moved = 0
    for name, mask in masks.items():
        assert torch.equal(before[name][~mask], torch.zeros_like(before[name][~mask]))
        assert torch.equal(after[name][~mask], torch.zeros_like(after[name][~mask])), f"{name}: a pruned weight regrew"
        moved += int((after[name][mask] != before[name][mask]).sum())
    assert moved > 0.5 * (pruned["metrics"]["parameters"] - masked)  # it did train the weights the mask keeps
    assert continued["inherited_masked_params"] == masked and pruned["inherited_masked_params"] == 0
    # Same model, same zeros: the continued model has no fewer zeros, and its own saved mask is the inherited one.
    assert continued["metrics"]["nonzero_params"] <= pruned["metrics"]["nonzero_params"]
    assert all(torch.equal(m, _masks(stages[1])[name]) for name, m in masks.items())
    assert again["inherited_masked_params"] == masked
    assert all(torch.equal(after_again[~masks[name]], torch.zeros_like(after_again[~masks[name]]))
               for name, after_again in _weights(stages[2]).items() if name in masks)


def test_a_mask_for_another_model_is_refused(tmp_path):
    from corpuslab.compression.runner import read_mask, write_mask
    from corpuslab.errors import CorpuslabError
    from corpuslab.training.config import ModelConfig
    from corpuslab.training.model import build_model

    small = build_model(ModelConfig("transformer200k", n_layer=1, n_head=2, n_embd=16, context=32), vocab_size=256, seed=0)
    wide = build_model(ModelConfig("transformer200k", n_layer=1, n_head=2, n_embd=32, context=32), vocab_size=256, seed=0)
    masks = [param.abs() > 0.01 for param in small.parameters()]
    write_mask(tmp_path / MASK_FILE, small, masks)
    assert all(torch.equal(a, b) for a, b in zip(read_mask(tmp_path / MASK_FILE, small), masks))
    with pytest.raises(CorpuslabError, match="does not fit the model"):
        read_mask(tmp_path / MASK_FILE, wide)
    assert read_mask(tmp_path / "none.safetensors", small) is None


def test_a_continued_run_stopped_by_max_runtime_resumes_with_its_inherited_mask(tmp_path, one_thread):
    """The inherited mask is part of the resumable state: stopped after its first update and rerun, the continued
    run ends bit-identical to one that ran straight through."""
    runs = CONFIG["runs"][:2]

    def run(folder, names, *overrides):
        config = tmp_path / f"{folder}.yaml"
        config.write_text(yaml.safe_dump({**CONFIG, "runs": [r for r in runs if r["name"] in names],
                                          "output_dir": str(tmp_path / folder)}))
        return CompressionExperimentRunner(load_compression_config([str(config)], list(overrides)), log=lambda _: None).run()

    straight = run("straight", {"pruned", "continued"})["runs"][1]
    run("resumed", {"pruned"})
    stopped = run("resumed", {"pruned", "continued"}, "max_runtime=1e-9")["runs"][1]
    assert stopped["status"].startswith("incomplete") and "update 1/" in stopped["status"]
    resumed = run("resumed", {"pruned", "continued"})["runs"][1]
    assert resumed["status"] == "done" and resumed["inherited_masked_params"] == straight["inherited_masked_params"] > 0
    folders = [tmp_path / name / "mask" / "stages" / row["train_stage"].split("/")[-1] for name, row in
               (("straight", straight), ("resumed", resumed))]
    assert json.loads((folders[1] / "manifest.json").read_text())["result"]["resumed_from_step"] == 1
    a, b = (_weights(folder) for folder in folders)
    assert a.keys() == b.keys() and all(torch.equal(a[name], b[name]) for name in a)
    assert all(torch.equal(m, _masks(folders[1])[name]) for name, m in _masks(folders[0]).items())
