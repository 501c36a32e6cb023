"""`corpuslab score CHECKPOINT --tasks ...`: any saved model on tasks from local files, the harness table."""

import json
from pathlib import Path

import pytest

import corpuslab
from corpuslab.cli import main
from corpuslab.tools.score_cli import harness_table
from tests.tools.score_checkpoint import write_score_checkpoint

PIQA = [{"goal": f"how to do thing {i}", "sol1": f"use tool {i}", "sol2": f"use other {i % 3}", "label": i % 2}
        for i in range(6)]
LAMBADA = [{"text": f"the miller counted {i} sacks of flour and then sold the flour"} for i in range(5)]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return write_score_checkpoint(tmp_path_factory.mktemp("score"), {"piqa": PIQA, "lambada_openai": LAMBADA}, seed=3)


def test_score_prints_the_table_and_matches_the_api(checkpoint, tmp_path, capsys, one_thread):
    model_dir, files, model, tokenizer = checkpoint
    out = tmp_path / "scores.json"
    code = main(["score", str(model_dir), "--tasks", "piqa,lambada_openai:3", "--task-file", f"piqa={files['piqa']}",
                 "--task-file", f"lambada_openai={files['lambada_openai']}", "--device", "cpu", "--output", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert printed.splitlines()[0].replace(" ", "") == "|Tasks|n|Metric||Value||Stderr|"
    assert any(line.replace(" ", "").startswith("|piqa|6|acc|↑|") for line in printed.splitlines())
    results = json.loads(out.read_text())["results"]
    expected = corpuslab.evaluate(model, tokenizer, {"piqa": None, "lambada_openai": 3}, device="cpu",
                                  task_files={k: str(v) for k, v in files.items()})
    assert results == json.loads(json.dumps(expected))
    assert results["lambada_openai"]["n"] == 3


@pytest.mark.parametrize("args, key", [(["--tasks", "piqa:x"], "'--tasks'"), (["--tasks", "pika"], "'--tasks pika'"),
                                       (["--tasks", "piqa", "--task-file", "piqa"], "'--task-file'"),
                                       (["--tasks", "piqa", "--task-file", "hellaswag=h.jsonl"], "'--task-file hellaswag=...'"),
                                       (["--tasks", "piqa", "--batch-size", "0"], "'--batch-size'"),
                                       (["--tasks", "piqa", "--device", "gpu"], "'--device'")])
def test_bad_options_name_the_option_typed(checkpoint, capsys, args, key):
    """Errors name the option on the command line, never the config key behind it (score.tasks..., training.device)."""
    assert main(["score", str(checkpoint[0]), *args]) == 2
    err = capsys.readouterr().err
    assert key in err and "score." not in err and "training." not in err and "unexpected" not in err


def test_device_names_the_accepted_values(checkpoint, capsys, monkeypatch):
    import torch

    assert main(["score", str(checkpoint[0]), "--tasks", "piqa", "--device", "gpu"]) == 2
    assert "auto, cpu, cuda, cuda:N or mps" in capsys.readouterr().err
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["score", str(checkpoint[0]), "--tasks", "piqa", "--device", "cuda:1"]) == 2
    err = capsys.readouterr().err
    assert "'--device'" in err and "no CUDA device" in err


def test_output_is_checked_before_scoring(checkpoint, tmp_path, capsys, one_thread):
    """A folder as --output fails at once (nothing scored, nothing printed); a missing folder is created."""
    model_dir, files = checkpoint[0], checkpoint[1]
    args = ["score", str(model_dir), "--tasks", "piqa:2", "--task-file", f"piqa={files['piqa']}", "--device", "cpu"]
    assert main([*args, "--output", str(tmp_path)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "'--output'" in err and "not a folder" in err
    target = tmp_path / "new" / "deeper" / "scores.json"
    assert main([*args, "--output", str(target)]) == 0
    assert json.loads(target.read_text())["results"]["piqa"]["n"] == 2
    capsys.readouterr()
    (tmp_path / "file").write_text("")
    assert main([*args, "--output", str(tmp_path / "file" / "x.json")]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "'--output'" in err


def test_interrupted_score_does_not_promise_a_resume(checkpoint, capsys, monkeypatch):
    from corpuslab.tools import score_cli

    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(score_cli, "run", interrupted)
    assert main(["score", str(checkpoint[0]), "--tasks", "piqa", "--device", "cpu"]) == 130
    err = capsys.readouterr().err
    assert "interrupted" in err and "resumes" not in err


def test_user_errors_print_on_rank_zero_only(checkpoint, capsys, monkeypatch):
    """Under torchrun every rank meets the same bad option: rank 0 alone prints it; all exit 2."""
    monkeypatch.setenv("RANK", "1")
    assert main(["score", str(checkpoint[0]), "--tasks", "pika"]) == 2
    assert capsys.readouterr().err == ""
    monkeypatch.setenv("RANK", "0")
    assert main(["score", str(checkpoint[0]), "--tasks", "pika"]) == 2
    assert "'--tasks pika'" in capsys.readouterr().err


def test_a_hub_model_offline_fails_without_a_request(monkeypatch, tmp_path):
    """The Hub found unreachable: transformers goes to the (empty) cache only, with no HTTP request (its
    adapter_config.json probe ignores local_files_only and retried five times, ~30 s), and says so."""
    import socket

    from huggingface_hub import constants

    from corpuslab import hub
    from corpuslab.errors import InputError
    from corpuslab.evaluation.lm import load_any_checkpoint

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(hub, "hub_reachable", lambda timeout=3.0: False)
    lookups = []

    def no_network(*args, **kwargs):
        lookups.append(args)
        raise socket.gaierror(-2, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    monkeypatch.setattr("time.sleep", lambda seconds: None)  # before the fix: five retries, without their waits here
    with pytest.raises(InputError, match="not reachable .* not in the local cache"):
        load_any_checkpoint("corpuslab-tests/no-such-model", "cpu")
    assert lookups == [] and constants.HF_HUB_OFFLINE is False


def test_table_rules_have_a_dash_in_every_cell():
    rule = harness_table({"piqa": {"acc": 0.5, "acc_stderr": 0.1, "n": 4}}).splitlines()[1]
    assert all("-" in cell for cell in rule.strip("|").split("|"))


def test_missing_checkpoint_is_an_input_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["score", str(tmp_path / "nothing-here"), "--tasks", "piqa"]) == 2
    assert "nothing-here" in capsys.readouterr().err


def test_table_marks_lower_is_better():
    table = harness_table({"lambada_openai": {"acc": 0.5, "acc_stderr": 0.1, "perplexity": 12.0, "perplexity_stderr": 2.0, "n": 4}})
    lines = table.splitlines()
    assert "↑" in lines[2] and "↓" in lines[3] and "12.0000" in lines[3] and lines[3].lstrip("|").startswith(" ")


@pytest.fixture
def hub_offline(monkeypatch):
    """HF_HUB_OFFLINE=1 as huggingface_hub reads it at import; `datasets.load_dataset` records the offline
    state it was called under and fails as an empty cache does."""
    import datasets
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)  # as when only the reachability check found it offline
    calls: list[bool] = []

    def load_dataset(*args, **kwargs):
        calls.append(datasets.config.HF_HUB_OFFLINE)
        raise ConnectionError("Couldn't reach 'allenai/ai2_arc' on the Hub (LocalEntryNotFoundError)")

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    return calls


def test_score_offline_reads_the_cache_once_and_names_the_task_file_option(checkpoint, capsys, hub_offline):
    """The reviewer's `corpuslab score CKPT --tasks arc_easy:5` offline: datasets must go straight to the local
    cache (no five retries with backoff), and the hint must name the option this command has."""
    assert main(["score", str(checkpoint[0]), "--tasks", "arc_easy:5", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert hub_offline == [True]  # one lookup, in offline mode
    assert "--task-file arc_easy=PATH" in err and "tasks.data_files" not in err


def test_api_and_experiment_hints_name_their_own_keys(checkpoint, hub_offline):
    from corpuslab.errors import InputError
    from corpuslab.evaluation.tasks.runner import load_examples

    _, _, model, tokenizer = checkpoint
    with pytest.raises(InputError, match=r"task_files=\{'arc_easy': PATH\}"):
        corpuslab.evaluate(model, tokenizer, {"arc_easy": 5}, device="cpu")
    with pytest.raises(InputError, match=r"evaluation\.task_files\.arc_easy"):  # what an experiment run reads
        load_examples("arc_easy", 5)
    assert hub_offline == [True, True]


def test_a_real_offline_load_fails_at_once_with_an_input_error(monkeypatch):
    """Through the real `datasets.load_dataset` under HF_HUB_OFFLINE with an empty cache: no request is tried."""
    from huggingface_hub import constants

    from corpuslab.errors import InputError
    from corpuslab.evaluation.tasks.base import HFSource
    from corpuslab.evaluation.tasks.data import load_hf_docs

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(InputError, match="not in the local cache"):
        load_hf_docs(HFSource("corpuslab-tests/no-such-dataset", None, "test"), "no_such_task")


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    """A tiny two-arm experiment run to its report: the layout `corpuslab run` makes."""
    from corpuslab.api import load_config, run
    from tests.conftest import TINY

    out = tmp_path_factory.mktemp("experiment")
    overrides = [*TINY, f"output_dir={out}", "training.max_steps=2", "training.eval_interval=2", "curation.workers=1",
                 "curation.decontaminate=none", "evaluation.tasks={}", "runs=[{name: kept, recipe: none}, {name: exact, recipe: exact}]"]
    run(load_config(overrides=overrides), log=lambda _: None)
    return out / "tiny"


def test_score_names_one_arm_of_an_experiment(experiment, checkpoint, tmp_path, capsys):
    """`corpuslab score outputs/default --arm exact`: one arm's final checkpoint, where `stages/train-*/final`
    expanded to one checkpoint per arm and failed with 'unrecognized arguments'."""
    files = checkpoint[1]
    finals = sorted(experiment.glob("stages/train-*/final"))
    assert len(finals) == 2
    out = tmp_path / "exact.json"
    assert main(["score", str(experiment), "--arm", "exact", "--tasks", "piqa", "--task-file", f"piqa={files['piqa']}",
                 "--device", "cpu", "--output", str(out)]) == 0
    report = json.loads((experiment / "report.json").read_text())
    chosen = json.loads(out.read_text())["checkpoint"]
    recorded = Path(report["arms"]["exact"]["replicates"][0]["checkpoints"]["final"])
    assert Path(chosen) == experiment / "stages" / recorded.parent.name / "final"
    assert chosen in map(str, finals) and chosen != report["arms"]["kept"]["replicates"][0]["checkpoints"]["final"]
    stage = tmp_path / "stage.json"  # the arm's train stage folder names its final/ too
    assert main(["score", str(Path(chosen).parent), "--tasks", "piqa", "--task-file", f"piqa={files['piqa']}",
                 "--device", "cpu", "--output", str(stage)]) == 0
    assert json.loads(stage.read_text())["results"] == json.loads(out.read_text())["results"]
    capsys.readouterr()
    for args, expected in ((["--arm", "nosuch"], "exact, kept"), (["--arm", "exact:7"], "seeds of 'exact': 0"), ([], "--arm")):
        assert main(["score", str(experiment), *args, "--tasks", "piqa"]) == 2
        assert expected in capsys.readouterr().err


def test_readme_score_examples_name_one_checkpoint():
    """Each `corpuslab score` command the README shows parses, and names one checkpoint (no shell glob)."""
    import argparse
    import shlex

    from corpuslab.tools.score_cli import add_arguments

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    commands = [line.split(" #")[0].strip() for line in readme.splitlines() if line.startswith("corpuslab score ")]
    assert commands
    parser = argparse.ArgumentParser(exit_on_error=False)
    add_arguments(parser)
    for command in commands:
        words = shlex.split(command)[2:]
        if "CHECKPOINT" in words:  # the synopsis line
            continue
        args = parser.parse_args(words)
        assert not any(c in args.checkpoint for c in "*?["), command
