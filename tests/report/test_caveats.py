"""What makes a comparison weak (report.caveats), and statements the report may only make when it tested them."""

import copy

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from corpuslab.report.build import add_comparisons, aggregate, canary_tokens, compare_arms
from corpuslab.report.caveats import DEFAULT_CANARY_DOC_SHARE, MAX_CANARY_TOKEN_SHARE, MAX_EPOCHS, MIN_HELD_OUT_DOCS, MIN_SEEDS, comparison_warnings
from corpuslab.report.stats import best_arm, paired_difference, welch_difference
from tests.report.test_html import make_report


def one_seed(report: dict) -> dict:
    for arm in report["arms"].values():
        arm["replicates"] = arm["replicates"][:1]
        arm["aggregate"] = aggregate(arm["replicates"])
    report["comparison"] = compare_arms(report["arms"], reference="no_dedup")
    return report


def large_held_out(report: dict) -> dict:
    """Val and test scored on enough documents and tokens not to be warned about."""
    for arm in report["arms"].values():
        for replicate in arm["replicates"]:
            for split in ("val", "test"):
                replicate["metrics"][split].update(docs=400, tokens=60_000)
    return report


def kinds(report: dict) -> dict:
    return {w["kind"]: w for w in comparison_warnings(report)}


def test_one_seed_per_arm_is_warned_with_the_seeds_needed():
    warnings = kinds(one_seed(make_report()))
    assert warnings["seeds"]["figure"] == 1 and warnings["seeds"]["threshold"] == MIN_SEEDS
    assert "every arm has 1 seed" in warnings["seeds"]["message"] and "At least 2 seeds" in warnings["seeds"]["message"]
    assert "seeds" not in kinds(make_report())  # two seeds per arm: a test is possible


def test_a_tiny_held_out_set_is_warned_with_its_count_and_threshold():
    warnings = kinds(make_report())  # 5 val / 5 test documents scored
    assert warnings["val_size"]["figure"] == 5 and warnings["val_size"]["threshold"] == MIN_HELD_OUT_DOCS
    assert "5 documents scored (threshold 50)" in warnings["val_size"]["message"]
    assert "val_size" not in kinds(large_held_out(make_report()))


def test_canaries_a_large_share_of_training_are_warned():
    report = large_held_out(make_report())
    report["corpus"]["split"]["documents"]["train"] = 750
    report["corpus"]["canaries"]["documents"] = 1550  # the case: 67% of the training split
    warning = kinds(report)["canaries"]
    assert warning["figure"] == pytest.approx(1550 / 2300, abs=1e-4) and warning["threshold"] == DEFAULT_CANARY_DOC_SHARE
    assert "67.4% of the training split by documents (1,550 of 2,300; threshold 25%" in warning["message"]
    report["corpus"]["canaries"]["documents"] = 200  # 21%: within the canaries stage's default cap
    assert "canaries" not in kinds(report)
    report["corpus"]["canaries"]["max_share"] = 0.1  # the cap this run's canaries stage recorded
    assert kinds(report)["canaries"]["threshold"] == 0.1
    del report["corpus"]["canaries"]["max_share"]
    # Where the tokens stage says how many tokens the canaries are, their token share is checked too.
    report["corpus"]["canary_share"] = {"tokens": 3_000, "train_tokens": 300_000, "token_share": 0.01}
    assert "canaries" not in kinds(report)
    report["corpus"]["canary_share"] = {"tokens": 45_000, "train_tokens": 300_000, "token_share": 0.15}
    warning = kinds(report)["canaries"]
    assert "15.0% of the training split by tokens (45,000 of 300,000; threshold 10%" in warning["message"]
    assert warning["threshold"] == MAX_CANARY_TOKEN_SHARE


def test_an_arm_that_repeats_its_data_many_times_is_warned():
    report = make_report()
    assert "epochs" not in kinds(report)
    report["arms"]["near"]["aggregate"]["training.epochs_seen"]["mean"] = 6.5
    warnings = [w for w in comparison_warnings(report) if w["kind"] == "epochs"]
    assert len(warnings) == 1 and warnings[0]["figure"] == 6.5 and warnings[0]["threshold"] == MAX_EPOCHS
    assert "Arm near repeats its data 6.5 times" in warnings[0]["message"]


def test_synthetic_tasks_on_another_corpus_are_warned():
    report = make_report()
    for arm in report["arms"].values():
        for replicate in arm["replicates"]:
            replicate["metrics"]["tasks"]["synthetic_cloze"] = {"acc": 0.0, "perplexity": 5.6e19, "n": 8}
    report["config"]["dataset"] = {"source": "synthetic"}
    assert "synthetic_tasks" not in kinds(report)
    report["config"]["dataset"] = {"source": "local"}
    warning = kinds(report)["synthetic_tasks"]
    assert "synthetic_cloze" in warning["message"] and "local corpus" in warning["message"]


def test_the_report_records_its_warnings_and_best_arms():
    report = one_seed(make_report())
    add_comparisons(report, reference_arm="no_dedup")
    assert [w["kind"] for w in report["warnings"]] == ["seeds", "val_size", "test_size"]
    assert report["best"]["val.loss"] == {"arm": None, "reason": "not tested: one seed per arm"}
    two = make_report()
    add_comparisons(two, reference_arm="no_dedup")
    assert two["best"]["val.loss"]["arm"] == "near"  # ahead of both others on every seed


# ---- statistics that say when they could not test -----------------------------------------------------


def test_a_difference_over_one_seed_is_not_tested_rather_than_not_significant():
    out = paired_difference({0: 1.0}, {0: 1.5})
    assert out["significant"] is None and out["not_tested"] == "one seed per arm"
    assert paired_difference({0: 1.0, 1: 1.1}, {2: 1.5, 3: 1.4})["not_tested"] == "no seed in common with the reference"
    assert paired_difference({0: 1.0, 1: 1.1}, {1: 1.5, 3: 1.4})["not_tested"] == "one seed in common with the reference"
    assert "not_tested" not in paired_difference({0: 1.0, 1: 1.1}, {0: 1.5, 1: 1.4})
    assert welch_difference([1.0], [2.0])["not_tested"] == "one replicate per group"


def test_best_arm_only_when_its_lead_is_significant():
    clear = {"a": {0: 1.0, 1: 1.1, 2: 1.05}, "b": {0: 1.5, 1: 1.6, 2: 1.56}, "c": {0: 1.4, 1: 1.52, 2: 1.43}}
    assert best_arm(clear, lower_is_better=True)["arm"] == "a"
    assert best_arm(clear, lower_is_better=False)["arm"] == "b"
    noisy = copy.deepcopy(clear)
    noisy["c"] = {0: 0.9, 1: 1.3, 2: 1.0}  # mean 1.067: a's lead over c is within the noise
    out = best_arm(noisy, lower_is_better=True)
    assert out["arm"] is None and "not significant" in out["reason"]
    assert best_arm({"a": {0: 1.0}, "b": {0: 2.0}}, lower_is_better=True) == {"arm": None,
                                                                              "reason": "not tested: one seed per arm"}


def test_canary_tokens_are_read_from_the_tokens_stage(tmp_path):
    lengths = [100, 20, 20, 60]
    canary = [False, True, True, False]
    pq.write_table(pa.table({"id": ["a", "c1", "c2", "b"], "bytes": pa.array([400, 50, 50, 240], pa.int64()),
                             "category": ["x", None, None, "x"], "canary": canary}), tmp_path / "train.docs.parquet")
    np.save(tmp_path / "train.idx.npy", np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64))
    share = canary_tokens(tmp_path)
    assert share["documents"] == 2 and share["tokens"] == 40 and share["train_tokens"] == 200
    assert share["token_share"] == pytest.approx(0.2) and share["bytes"] == 100 and share["train_bytes"] == 740
    pq.write_table(pa.table({"id": ["a"], "bytes": [1]}), tmp_path / "train.docs.parquet")  # an older stage
    assert canary_tokens(tmp_path) is None
