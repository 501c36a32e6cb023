"""End to end: the whole experiment on a tiny synthetic corpus, through the CLI."""

import csv
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from corpuslab.cli import main
from tests.conftest import TINY


def run(tmp_path: Path, *extra: str, command: str = "run") -> int:
    return main([command, f"output_dir={tmp_path}", *TINY, *extra])


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("e2e")
    assert run(out) == 0
    return out


def stage_dirs(out: Path, prefix: str) -> list[Path]:
    return sorted(p for p in (out / "tiny" / "stages").iterdir() if p.name.startswith(prefix) and p.is_dir())


def test_report_has_every_arm_with_curation_training_and_metrics(finished):
    report = json.loads((finished / "tiny" / "report.json").read_text())
    assert list(report["arms"]) == ["no_dedup", "exact", "near"]
    arms = report["arms"]
    assert arms["no_dedup"]["curation"]["dropped"] == 0
    assert arms["exact"]["curation"]["dropped_by_reason"]["exact_duplicate"] > 0
    assert arms["near"]["curation"]["dropped"] >= arms["exact"]["curation"]["dropped"]
    assert arms["exact"]["curation"]["ground_truth"]["precision"] == 1.0
    for arm in arms.values():
        (replicate,) = arm["replicates"]
        assert replicate["training"]["steps"] == 12
        assert replicate["training"]["tokens_seen"] == 12 * 8 * 32
        assert replicate["metrics"]["val"]["bits_per_byte"] > 0
        assert 0.0 <= replicate["metrics"]["canaries"]["overall"]["exact_rate"] <= 1.0
        assert len(replicate["curve"]) > 0 and replicate["canary_examples"]
        assert replicate["metrics"]["tasks"]["synthetic_choice"]["n"] == 8
        assert 0.0 <= replicate["metrics"]["tasks"]["synthetic_choice"]["acc"] <= 1.0
        assert arm["aggregate"]["val.loss"]["mean"] == replicate["metrics"]["val"]["loss"]
        assert arm["aggregate"]["val.loss"]["ci95"] is None  # one seed: no interval
    # Same budget, less data: the deduplicated arms see more epochs of what they kept.
    epochs = {name: arm["replicates"][0]["training"]["epochs_seen"] for name, arm in arms.items()}
    assert epochs["exact"] > epochs["no_dedup"]
    assert set(report["comparison"]["arms"]) == {"exact", "near"}
    assert report["config"]["training"]["max_steps"] == 12
    assert (finished / "tiny" / "config.yaml").exists()


def test_summary_has_one_row_per_arm(finished):
    with open(finished / "tiny" / "summary.tsv") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    assert [r["arm"] for r in rows] == ["no_dedup", "exact", "near"]
    assert all(float(r["val_ppl"]) > 1 for r in rows)


def test_decision_table_accounts_for_every_document(finished):
    report = json.loads((finished / "tiny" / "report.json").read_text())
    near = Path(report["arms"]["near"]["artifacts"]["curate"])
    table = pq.read_table(near / "decisions.parquet").to_pylist()
    assert len(table) == report["arms"]["near"]["curation"]["input"]
    dropped = [r for r in table if not r["kept"]]
    assert len(dropped) == report["arms"]["near"]["curation"]["dropped"]
    assert all(r["reason"] in ("exact_duplicate", "near_duplicate") and r["duplicate_of"] for r in dropped)


def test_rerun_reuses_everything_and_gives_the_same_report(finished):
    before = (finished / "tiny" / "report.json").read_text()
    log = finished / "tiny" / "run.log"
    mark = len(log.read_text())
    assert run(finished) == 0
    new_lines = log.read_text()[mark:]
    assert "started" not in new_lines and "reused" in new_lines
    assert (finished / "tiny" / "report.json").read_text() == before


def test_a_full_disk_while_writing_the_report_names_the_file(finished, monkeypatch, capsys):
    import errno

    import corpuslab.report.build as build

    def full_disk(path, report):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(build, "write_summary", full_disk)
    assert run(finished) == 2
    err = capsys.readouterr().err
    assert "corpuslab: error: stage 'report': no space left on device while writing" in err
    assert "Traceback" not in err


def test_changing_one_knob_recomputes_only_what_depends_on_it(finished):
    trains_before = stage_dirs(finished, "train-")
    curates_before = stage_dirs(finished, "curate-")
    assert run(finished, "runs.2.minhash.threshold=0.7") == 0
    assert len(stage_dirs(finished, "curate-")) == len(curates_before) + 1
    assert len(stage_dirs(finished, "train-")) == len(trains_before) + 1
    assert len(stage_dirs(finished, "tokens-")) == 1


def test_stage_command_and_bad_override_stop_before_work(tmp_path, capsys):
    assert run(tmp_path, "training.batchsize=3") == 2
    assert "training.batchsize" in capsys.readouterr().err
    assert not (tmp_path / "tiny").exists()
    assert run(tmp_path, command="prepare") == 0
    assert stage_dirs(tmp_path, "tokens-") and not stage_dirs(tmp_path, "train-")


def test_seeds_give_replicates_intervals_and_paired_differences(finished):
    assert run(finished, "seeds=[0,1]", "runs=[{name: no_dedup, recipe: none}, {name: near, recipe: near}]") == 0
    report = json.loads((finished / "tiny" / "report.json").read_text())
    near = report["arms"]["near"]
    assert [r["seed"] for r in near["replicates"]] == [0, 1]
    assert near["replicates"][0]["metrics"]["val"]["loss"] != near["replicates"][1]["metrics"]["val"]["loss"]
    low, high = near["aggregate"]["val.loss"]["ci95"]
    assert low < near["aggregate"]["val.loss"]["mean"] < high
    diff = report["comparison"]["arms"]["near"]["differences"]["val.loss"]
    assert diff["n"] == 2 and isinstance(diff["significant"], bool)
    assert "per_seed" in report["comparison"]["arms"]["near"]["data_equivalent_factor"]


def test_evaluate_any_checkpoint_on_the_experiment_sets(finished, capsys):
    report = json.loads((finished / "tiny" / "report.json").read_text())
    checkpoint = report["arms"]["near"]["replicates"][0]["checkpoints"]["final"]
    assert main(["evaluate", f"output_dir={finished}", *TINY, "--checkpoint", checkpoint]) == 0
    (metrics_file,) = (finished / "tiny" / "checkpoints").glob("*/metrics.json")
    metrics = json.loads(metrics_file.read_text())
    arm_val = report["arms"]["near"]["replicates"][0]["metrics"]["val"]
    # Same model, same documents, same tokenizer: the same numbers as the arm's own evaluation.
    assert abs(metrics["val"]["loss"] - arm_val["loss"]) < 1e-5
    assert metrics["val"]["bytes"] == arm_val["bytes"]
    assert main(["evaluate", f"output_dir={finished}", *TINY, "--checkpoint", str(finished / "nope")]) == 2


def test_chunk_level_arms_dedup_training_windows(tmp_path):
    chunk_runs = "runs=[{name: no_dedup, recipe: none}, {name: exact_chunk, recipe: exact, level: chunk}, " \
                 "{name: near_chunk, recipe: near, level: chunk}]"
    assert run(tmp_path, chunk_runs, "evaluation.tasks={}") == 0
    report = json.loads((tmp_path / "tiny" / "report.json").read_text())
    arms = report["arms"]
    base_windows = arms["no_dedup"]["packing"]["windows"]
    exact = arms["exact_chunk"]
    assert exact["level"] == "chunk"
    assert exact["curation"]["input"] == base_windows  # one decision per training window
    assert exact["packing"]["windows"] == base_windows - exact["curation"]["dropped"]
    assert exact["curation"]["dropped_by_reason"].get("exact_duplicate", 0) > 0  # repeated copies give repeated windows
    assert arms["near_chunk"]["curation"]["dropped"] >= exact["curation"]["dropped"]


def test_knobs_that_do_not_change_the_weights_do_not_retrain(finished):
    trains_before = stage_dirs(finished, "train-")
    assert run(finished, "training.num_threads=1", "training.save_every=5", "canaries.num_candidates=30") == 0
    assert stage_dirs(finished, "train-") == trains_before


def test_unusable_output_dir_and_config_folder_are_named(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert main(["run", f"output_dir={blocker}/out", *TINY]) == 2
    assert "output_dir" in capsys.readouterr().err
    assert main(["run", "--config", str(tmp_path)]) == 2
    assert "cannot read the config file" in capsys.readouterr().err


def test_each_run_is_kept_and_the_terminal_ends_with_results_and_paths(finished):
    root = finished / "tiny"
    latest = root / "runs" / "latest"
    assert latest.is_symlink() and (latest / "report.json").read_text() == (root / "report.json").read_text()
    assert (latest / "config.yaml").read_text() == (root / "config.yaml").read_text()
    log = (root / "run.log").read_text()
    tail = log[log.rindex("results (means over seeds"):]
    assert "val_ppl" in tail and "near" in tail and str(root / "report.html") in tail
    assert not (root / ".lock").exists()
