"""The Python API: the same config, stages and scores as the CLI, from a notebook."""

import json

import pytest

import corpuslab
from corpuslab.errors import ConfigError
from corpuslab.evaluation.lm import load_checkpoint
from corpuslab.evaluation.tasks import TaskConfig, evaluate_tasks
from tests.conftest import TINY


def test_run_one_stage_then_everything_and_score_the_model_in_memory(tmp_path):
    cfg = corpuslab.load_config(overrides=[f"output_dir={tmp_path}", *TINY])
    assert corpuslab.run(cfg, until="curate", arms=["near"]) is None
    stages = sorted(p.name.split("-")[0] for p in (tmp_path / "tiny" / "stages").iterdir())
    assert "curate" in stages and "train" not in stages  # only what curation needs was built
    report = corpuslab.run(cfg, log=lambda _: None)
    assert set(report["arms"]) == {"no_dedup", "exact", "near"}
    assert json.loads((tmp_path / "tiny" / "report.json").read_text())["arms"].keys() == report["arms"].keys()

    checkpoint = report["arms"]["near"]["replicates"][0]["checkpoints"]["final"]
    model, tokenizer, _ = load_checkpoint(checkpoint, "cpu")
    scores = corpuslab.evaluate(model, tokenizer, tasks={"synthetic_choice": 8}, batch_size=4)
    expected = evaluate_tasks(model, tokenizer, TaskConfig(tasks={"synthetic_choice": 8}, batch_size=4), "cpu", seed=0)
    assert scores == expected and scores["synthetic_choice"]["n"] == 8


def test_unknown_arm_is_named(tmp_path):
    cfg = corpuslab.load_config(overrides=[f"output_dir={tmp_path}", *TINY])
    with pytest.raises(ConfigError) as err:
        corpuslab.run(cfg, until="curate", arms=["nope"])
    assert err.value.key == "arms" and "near" in err.value.expected
