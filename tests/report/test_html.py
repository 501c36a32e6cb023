"""report.html, the cross-experiment table (`corpuslab report DIR...`) and the W&B callback."""

import csv
import json
import re
import sys
import types

import pytest

from corpuslab.cli import main
from corpuslab.errors import CorpuslabError, InputError
from corpuslab.report.aggregate import aggregate, find_experiments
from corpuslab.report.build import aggregate as aggregate_seeds
from corpuslab.report.build import compare_arms, write_summary
from corpuslab.report.html import render_html, write_html_report
from corpuslab.training.tracking import WandbCallback

ARMS = {"no_dedup": ("none", 0.0), "exact": ("exact", -0.02), "near": ("near", -0.03)}
SEEDS = [0, 1]


def replicate(seed: int, shift: float, tasks: bool) -> dict:
    """One replicate shaped like report.json's (3 arms x 2 seeds, as in a tiny synthetic run)."""
    noise = 0.01 * seed
    curve = [{"step": s, "tokens": s * 256, "loss": 6.0 - 0.03 * s + shift + noise, "lr": 1e-3, "grad_norm": 0.9,
              "val_loss": 6.1 - 0.03 * s + shift + noise if s % 10 == 0 else None} for s in range(5, 45, 5)]
    val_loss = curve[-1]["val_loss"]
    metrics = {
        "val": {"loss": val_loss, "perplexity": 2.718 ** val_loss, "bits_per_byte": val_loss * 0.93, "tokens": 927,
                "docs": 5, "bytes": 1435},
        "test": {"loss": val_loss + 0.01, "perplexity": 2.718 ** (val_loss + 0.01), "bits_per_byte": val_loss * 0.97,
                 "tokens": 720, "docs": 5, "bytes": 1063},
        "val_by_position": [val_loss + 0.3 / (p + 1) for p in range(32)],
        "val_by_category": {"science": {"loss": val_loss - 0.05, "tokens": 600, "docs": 3},
                            "sports": {"loss": val_loss + 0.09, "tokens": 327, "docs": 2}},
        "canaries": {"overall": {"canaries": 4, "exact_rate": 0.25, "mean_exposure": 2.0 + shift},
                     "by_copies": [{"copies": 1, "canaries": 2, "exact_rate": 0.0, "mean_exposure": 1.2 + noise},
                                   {"copies": 30, "canaries": 2, "exact_rate": 0.5, "mean_exposure": 3.1 + shift}]},
    }
    if tasks:
        metrics["tasks"] = {"arc_easy": {"acc": 0.3 - shift + noise, "acc_stderr": 0.02, "n": 500},
                            "piqa": {"acc": 0.55 - shift, "acc_stderr": 0.021, "acc_norm": 0.56, "n": 400},
                            "cloze": {"perplexity": 1.2e17, "perplexity_stderr": 3e17, "n": 200},
                            "blimp": {"acc": 0.6, "acc_stderr": 0.02, "n": 200},  # a group and its subtasks
                            "blimp_island_effects": {"acc": 0.61, "acc_stderr": 0.03, "n": 100},
                            "blimp_npi_licensing": {"acc": 0.59, "acc_stderr": 0.03, "n": 100}}
    examples = [{"id": "canary-0001", "copies": 30, "secret": "9 6 8 6 7 3 8 1", "generation": "9 6 8 6 7 3 8 1",
                 "exact": True, "rank": 1, "exposure": 4.39, "num_candidates": 20, "log_perplexity": 10.0},
                {"id": "canary-0002", "copies": 1, "secret": "8 2 2 7 6 0 0 3", "generation": "  <tag>  ",
                 "exact": False, "rank": 6, "exposure": 1.8, "num_candidates": 20, "log_perplexity": 99.0}]
    return {"seed": seed, "training": {"steps": 40, "tokens_seen": 10240, "epochs_seen": 0.25 - shift},
            "curve": curve, "metrics": metrics, "canary_examples": examples, "checkpoints": {}, "artifacts": {}}


def make_report(tasks: bool = True) -> dict:
    arms = {}
    for name, (recipe, shift) in ARMS.items():
        replicates = [replicate(seed, shift, tasks) for seed in SEEDS]
        dropped = {"none": {}, "exact": {"exact_duplicate": 92},
                   "near": {"exact_duplicate": 92, "near_duplicate": 5}}[recipe]
        curation = {"recipe": recipe, "input": 258, "dropped_by_reason": dropped, "dropped": sum(dropped.values()),
                    "kept": 258 - sum(dropped.values()),
                    "ground_truth": {"precision": 1.0 if dropped else None, "recall": 0.87 if dropped else 0.0}}
        arms[name] = {"recipe": recipe, "level": "doc", "curation": curation,
                      "packing": {"windows": 1000, "tokens_in_windows": 32000, "documents_kept": curation["kept"]},
                      "artifacts": {}, "replicates": replicates, "aggregate": aggregate_seeds(replicates)}
    return {
        "experiment": "tiny",
        "config": {"experiment": "tiny", "canaries": {"num_candidates": 20}, "training": {"max_steps": 40}},
        "corpus": {
            "ingest": {"documents": 212, "bytes": 62831, "source": "synthetic corpus (seed 0)",
                       "bad_input": {"total": 0}},
            "split": {"documents": {"train": 196, "val": 8, "test": 8},
                      "categories": {"train": {"science": 100, "sports": 96}, "val": {"science": 4, "sports": 4}}},
            "decontamination": {"mode": "near",
                                "val": {"input": 8, "kept": 5, "removed_by_reason": {"exact_duplicate": 3}}},
            "tokens": {"splits": {"train": {"documents": 258, "tokens": 42509, "bytes": 62555}}},
            "canaries": {"canaries": 4, "documents": 62, "placement": "before_curation"},
        },
        "arms": arms,
        "comparison": compare_arms(arms, reference="no_dedup"),
    }


def test_the_page_is_self_contained_with_one_svg_per_plot(tmp_path):
    path = write_html_report(make_report(), tmp_path / "report.html")
    page = path.read_text()
    # funnel, loss curves, in-context curve, categories, canaries, tasks
    assert page.count("<svg") == page.count("<figure>") == 6
    assert page.count("</svg>") == 6
    assert "http://" not in page and "https://" not in page
    assert not re.search(r"<script|<link|<img|\bsrc=|@import|url\((?!#)", page)  # url(#clip) is in-page


def test_the_page_shows_every_arm_and_its_numbers(tmp_path):
    report = make_report()
    page = render_html(report)
    for name, arm in report["arms"].items():
        assert name in page
        assert f"{arm['aggregate']['val.loss']['mean']:.4f}" in page
        assert f"{arm['aggregate']['val_by_category.sports.loss']['mean']:.4f}" in page
    factor = report["comparison"]["arms"]["near"]["data_equivalent_factor"]["mean"]
    assert f"{factor:.3g}×" in page
    assert "arc_easy" in page and "acc_norm" in page and "(n=500)" in page
    assert "Subtasks (2)" in page and "blimp_npi_licensing" in page  # folded away, still there
    assert "1.2e+17" in page  # a huge perplexity in scientific notation, not 30 digits
    assert "9 6 8 6 7 3 8 1" in page and "&lt;tag&gt;" in page  # generations are escaped
    assert "max_steps: 40" in page  # the config, inside <details>


def test_sections_without_data_are_left_out_or_explained():
    report = make_report(tasks=False)
    for arm in report["arms"].values():
        for replicate_ in arm["replicates"]:
            del replicate_["metrics"]["val_by_position"]
    page = render_html(report)
    assert page.count("<svg") == 4  # no tasks, no in-context curve
    assert "predate the per-position loss" in page
    assert 'id="tasks"' not in page


def test_an_identical_report_gives_an_identical_page():
    assert render_html(make_report()) == render_html(make_report())


def test_one_seed_and_a_single_arm_render():
    report = make_report()
    arm = report["arms"]["no_dedup"]
    arm["replicates"] = arm["replicates"][:1]
    arm["aggregate"] = aggregate_seeds(arm["replicates"])
    report["arms"] = {"no_dedup": arm}
    report["comparison"] = compare_arms(report["arms"], reference="no_dedup")
    page = render_html(report)
    assert "Too few seeds: every arm has 1 seed" in page and page.count("<svg") == 6


# ---- corpuslab report DIR... ------------------------------------------------------------------------


def experiment_dir(root, name: str, with_report: bool = True):
    folder = root / name
    folder.mkdir(parents=True)
    report = make_report()
    report["experiment"] = name
    write_summary(folder / "summary.tsv", report)
    if with_report:
        (folder / "report.json").write_text(json.dumps(report))
    return folder


def test_aggregate_stacks_the_arms_of_every_experiment(tmp_path):
    first = experiment_dir(tmp_path / "out", "first")
    second = experiment_dir(tmp_path / "out", "second", with_report=False)
    columns, rows = aggregate([first, second])
    assert [(r["experiment"], r["arm"]) for r in rows] == [(e, a) for e in ("first", "second") for a in ARMS]
    assert columns[:2] == ["experiment", "arm"] and columns[-1] == "dir"
    assert columns.index("val_bpb_ci95") == columns.index("val_bpb") + 1
    assert rows[0]["val_bpb_ci95"] > 0 and "val_bpb_ci95" not in rows[3]  # only where report.json has intervals
    assert find_experiments([tmp_path / "out"]) == [first, second]  # a parent folder expands to its experiments


def test_report_command_prints_the_table_and_writes_tsv(tmp_path, capsys):
    first = experiment_dir(tmp_path, "first")
    second = experiment_dir(tmp_path, "second")
    out = tmp_path / "all.tsv"
    assert main(["report", str(first), str(second), "--out", str(out)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].split()[:2] == ["experiment", "arm"] and len(printed) == 2 + 6
    with open(out) as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    assert [r["arm"] for r in rows] == list(ARMS) * 2
    assert rows[0]["experiment"] == "first" and float(rows[0]["val_loss"]) > 0


def test_report_command_refuses_a_folder_without_results(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="holds no summary.tsv"):
        find_experiments([tmp_path / "empty"])
    assert main(["report", str(tmp_path / "empty")]) == 2
    assert "holds no summary.tsv" in capsys.readouterr().err


# ---- W&B callback -----------------------------------------------------------------------------------


class FakeRun:
    def __init__(self):
        self.logged, self.summary, self.finished = [], {}, False

    def log(self, metrics, step):
        self.logged.append((step, metrics))

    def finish(self):
        self.finished = True


def test_wandb_callback_logs_each_curve_record_once(monkeypatch):
    run = FakeRun()
    fake = types.SimpleNamespace(init=lambda **kwargs: run.__setattr__("init", kwargs) or run)
    monkeypatch.setitem(sys.modules, "wandb", fake)
    callback = WandbCallback("lab", "tiny-near-s0", {"lr": 1e-3}, mode="offline")
    first = {"step": 5, "tokens": 1280, "loss": 5.0, "lr": 1e-3, "grad_norm": 1.0, "val_loss": None}
    trainer = types.SimpleNamespace(curve=[first], step=5, tokens_seen=1280, best_val_loss=4.9, best_step=10)
    callback.on_train_start(trainer)  # a resumed run's restored records are logged too
    callback.on_step_end(trainer)  # nothing new
    trainer.curve.append({"step": 10, "tokens": 2560, "loss": 4.8, "lr": 1e-3, "grad_norm": 0.8, "val_loss": 4.9})
    callback.on_step_end(trainer)
    callback.on_train_end(trainer)
    assert run.init == {"project": "lab", "name": "tiny-near-s0", "config": {"lr": 1e-3}, "mode": "offline"}
    assert [step for step, _ in run.logged] == [5, 10]
    assert "val/loss" not in run.logged[0][1] and run.logged[1][1]["val/loss"] == 4.9
    assert run.logged[1][1]["train/loss"] == 4.8 and run.finished and run.summary["best_val_loss"] == 4.9


def test_wandb_callback_without_wandb_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # makes `import wandb` raise ImportError
    with pytest.raises(CorpuslabError, match="pip install wandb"):
        WandbCallback("lab", "run")


def test_runs_of_one_experiment_are_labelled_by_what_differs(tmp_path):
    import json

    from corpuslab.report.aggregate import aggregate

    for folder, seeds in (("a", [0]), ("b", [0, 1])):
        (tmp_path / folder).mkdir()
        report = {"experiment": "default", "config": {"seeds": seeds, "output_dir": str(tmp_path / folder),
                                                       "training": {"lr": 0.002}}, "arms": {}}
        (tmp_path / folder / "report.json").write_text(json.dumps(report))
        (tmp_path / folder / "summary.tsv").write_text("arm\tval_loss\nnear\t1.5\n")
    _, rows = aggregate([tmp_path])
    assert [row["experiment"] for row in rows] == ["default (seeds=[0])", "default (seeds=[0, 1])"]
