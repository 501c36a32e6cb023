"""Everything a run needs is checked before the first stage: a typo fails in seconds, not after training."""

import json

import pytest

import corpuslab
from corpuslab.cli import main
from corpuslab.errors import ConfigError, InputError
from tests.conftest import TINY


def test_a_missing_task_file_is_named_at_load(tmp_path):
    with pytest.raises(ConfigError) as err:
        corpuslab.load_config(overrides=[f"evaluation.task_files={{piqa: {tmp_path / 'piqa.jsonl'}}}",
                                         "evaluation.tasks={piqa: 5}"])
    assert err.value.key == "evaluation.task_files.piqa"


def test_bad_task_file_and_tokenizer_stop_before_any_stage(tmp_path):
    broken = tmp_path / "piqa.jsonl"
    broken.write_text('{"goal": "x"}\nnot json\n')
    cfg = corpuslab.load_config(overrides=[f"output_dir={tmp_path}", *TINY, f"evaluation.task_files={{piqa: {broken}}}",
                                           "evaluation.tasks={piqa: 1}"])
    with pytest.raises(InputError) as err:
        corpuslab.run(cfg, log=lambda _: None)
    assert err.value.line == 2 and str(broken) in str(err.value)
    assert not list((tmp_path / "tiny" / "stages").iterdir())  # nothing was built

    cfg = corpuslab.load_config(overrides=[f"output_dir={tmp_path}", *TINY, "tokenizer.kind=pretrained",
                                           f"tokenizer.name={tmp_path}"])
    with pytest.raises(InputError, match="not a tokenizer folder"):
        corpuslab.run(cfg, log=lambda _: None)


def test_an_unloadable_checkpoint_is_refused_before_preparing(tmp_path, capsys):
    empty = tmp_path / "ckpt"
    empty.mkdir()
    assert main(["evaluate", "--checkpoint", str(empty), f"output_dir={tmp_path}", *TINY]) == 2
    assert "not a model folder" in capsys.readouterr().err
    assert not list((tmp_path / "tiny" / "stages").iterdir())


def test_synthetic_tasks_run_only_on_the_synthetic_corpus_unless_named():
    assert set(corpuslab.load_config().evaluation.tasks) == {"synthetic_cloze", "synthetic_choice"}
    local = corpuslab.load_config(overrides=["dataset.source=local", "dataset.local.paths=[x]"])
    assert local.evaluation.tasks == {}
    named = corpuslab.load_config(overrides=["dataset.source=local", "dataset.local.paths=[x]",
                                             "evaluation.tasks={synthetic_choice: 10}"])
    assert named.evaluation.tasks == {"synthetic_choice": 10}


def test_a_damaged_checkpoint_folder_ends_in_one_paragraph(tmp_path, capsys):
    broken = tmp_path / "ckpt"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    assert main(["evaluate", "--checkpoint", str(broken), f"output_dir={tmp_path}", *TINY]) == 2
    err = capsys.readouterr().err
    # Found by the preflight, before any stage ran: the message names the file and what it should be.
    assert "not a readable JSON model config" in err and str(broken / "config.json") in err and "Traceback" not in err
    assert not list((tmp_path / "tiny").rglob("manifest.json"))

    (broken / "config.json").write_text('{"model_type": "gpt2"}')  # parses, but the weights are garbage
    (broken / "model.safetensors").write_bytes(b"garbage")
    assert main(["evaluate", "--checkpoint", str(broken), f"output_dir={tmp_path}", *TINY]) == 2
    err = capsys.readouterr().err
    assert "could not load the checkpoint" in err and str(broken) in err and "Traceback" not in err


def test_an_empty_val_split_stops_before_training_saying_why(tmp_path, capsys):
    data = tmp_path / "same.jsonl"
    data.write_text("".join(json.dumps({"text": "one and the same document, word for word, every time."}) + "\n" for _ in range(40)))
    overrides = [*TINY, f"output_dir={tmp_path}", "dataset.source=local", f"dataset.local.paths=[{data}]"]
    assert main(["prepare", *overrides]) == 0  # a tiny or duplicated corpus can still be prepared and inspected
    assert main(["train", *overrides]) == 2
    err = capsys.readouterr().err
    assert "the val split is empty: decontamination removed all" in err and "exact_duplicate" in err
    assert not list(tmp_path.rglob("train-*"))
