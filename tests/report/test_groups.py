"""Groups of arms: replicates pooled per group, compared with the reference group; groups.tsv and the page."""

import csv
import json
import math

import pytest
from scipy import stats as scipy_stats

from corpuslab.atomic import file_set
from corpuslab.report.build import add_comparisons, write_outputs
from corpuslab.report.build import aggregate as aggregate_seeds
from corpuslab.report.html import render_html
from corpuslab.report.pooling import PAIRED, UNPAIRED, compare_groups, pool_groups
from corpuslab.report.stats import welch_difference
from tests.report.test_html import make_report


def arm(group: str, losses: dict[int, float]) -> dict:
    """An arm entry with one replicate per seed, whose val loss is given."""
    replicates = [{"seed": seed, "training": {"tokens_seen": 1000, "epochs_seen": 1.0}, "curve": [],
                   "metrics": {"val": {"loss": loss}}} for seed, loss in losses.items()]
    return {"recipe": "none", "level": "doc", "group": group, "curation": {}, "packing": {}, "replicates": replicates,
            "aggregate": aggregate_seeds(replicates)}


def test_a_group_pools_the_replicates_of_its_arms():
    arms = {"base": arm("base", {0: 2.0, 1: 2.2}),
            "dedup_t80": arm("dedup", {0: 1.8, 1: 1.9}), "dedup_t90": arm("dedup", {0: 1.7, 1: 2.1})}
    groups = pool_groups(arms)
    assert list(groups) == ["base", "dedup"]
    assert groups["dedup"]["arms"] == ["dedup_t80", "dedup_t90"] and groups["dedup"]["replicates"] == 4
    pooled = groups["dedup"]["aggregate"]["val.loss"]
    # By hand: values 1.8 1.9 1.7 2.1, mean 1.875; squared deviations .005625 .000625 .030625 .050625 sum to
    # .0875, variance .0875 / 3; half-width t(3 df) = 3.182 times sqrt(variance / 4).
    half = 3.182 * math.sqrt(0.0875 / 3 / 4)
    assert pooled["mean"] == pytest.approx(1.875) and pooled["n"] == 4
    assert pooled["ci95"] == pytest.approx([1.875 - half, 1.875 + half])


def test_groups_that_do_not_pair_up_by_seed_are_compared_by_welch():
    arms = {"base": arm("base", {0: 2.0, 1: 2.2}),
            "dedup_t80": arm("dedup", {0: 1.8, 1: 1.9}), "dedup_t90": arm("dedup", {0: 1.7, 1: 2.1})}
    comparison = compare_groups(arms, "base", ["val.loss"])
    versus = comparison["groups"]["dedup"]
    assert versus["pairing"] == UNPAIRED  # seed 0 twice in dedup, once in base
    difference = versus["differences"]["val.loss"]
    # By hand: 1.875 - 2.1; squared standard errors (.0875 / 3) / 4 and .02 / 2; Welch-Satterthwaite df
    # = (a + b)^2 / (a^2 / 3 + b^2 / 1) = 2.54, rounded down to 2: t = 4.303.
    a, b = 0.0875 / 3 / 4, 0.02 / 2
    df = (a + b) ** 2 / (a**2 / 3 + b**2 / 1)
    half = 4.303 * math.sqrt(a + b)
    assert difference["mean"] == pytest.approx(-0.225)
    assert difference["df"] == pytest.approx(df) == pytest.approx(2.5399, abs=1e-4)
    assert difference["ci95"] == pytest.approx([-0.225 - half, -0.225 + half])
    assert difference["significant"] is False and (difference["n"], difference["n_reference"]) == (4, 2)
    scipy_result = scipy_stats.ttest_ind([1.8, 1.9, 1.7, 2.1], [2.0, 2.2], equal_var=False)
    assert difference["df"] == pytest.approx(scipy_result.df)


def test_groups_whose_replicates_pair_up_by_seed_are_compared_pairwise():
    arms = {"base": arm("base", {0: 2.0, 1: 2.2}), "d_a": arm("dedup", {0: 1.8}), "d_b": arm("dedup", {1: 1.9})}
    versus = compare_groups(arms, "base", ["val.loss"])["groups"]["dedup"]
    assert versus["pairing"] == PAIRED
    difference = versus["differences"]["val.loss"]
    # By hand: differences 1.8 - 2.0 = -0.2 and 1.9 - 2.2 = -0.3; mean -0.25, sd 0.0707, se 0.05, t(1 df) 12.706.
    assert difference["mean"] == pytest.approx(-0.25) and difference["n"] == 2
    assert difference["ci95"] == pytest.approx([-0.25 - 12.706 * 0.05, -0.25 + 12.706 * 0.05])


def test_welch_without_spread_or_without_two_values():
    assert welch_difference([1.0, 1.0], [2.0, 2.0])["ci95"] == [-1.0, -1.0]
    assert welch_difference([1.0, 1.0], [2.0, 2.0])["significant"] is True
    assert welch_difference([1.0], [2.0, 2.5])["ci95"] is None
    assert welch_difference([], [2.0])["mean"] is None


def grid_report() -> dict:
    """The 3-arm report with its two dedup arms in one group, `dedup`."""
    report = make_report()
    report["arms"]["exact"]["group"] = report["arms"]["near"]["group"] = "dedup"
    add_comparisons(report, reference_arm="no_dedup")
    return report


def test_the_report_records_groups_and_their_comparison():
    report = grid_report()
    assert report["groups"]["dedup"]["arms"] == ["exact", "near"] and report["groups"]["dedup"]["replicates"] == 4
    assert report["groups"]["no_dedup"]["arms"] == ["no_dedup"]
    versus = report["group_comparison"]["groups"]["dedup"]
    assert report["group_comparison"]["reference"] == "no_dedup"
    assert versus["pairing"] == UNPAIRED
    assert set(versus["differences"]) == {"val.loss", "val.bits_per_byte", "test.loss", "test.bits_per_byte",
                                          "canaries.exact_rate", "canaries.mean_exposure"}


def test_groups_tsv_has_one_row_per_group_only_when_a_group_pools_arms(tmp_path):
    report = grid_report()
    with file_set(tmp_path) as files:
        write_outputs(report, files)
    with open(tmp_path / "groups.tsv") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    assert [r["group"] for r in rows] == ["no_dedup", "dedup"]
    assert rows[1]["arms"] == "exact,near" and rows[1]["replicates"] == "4" and rows[1]["vs_reference"] == UNPAIRED
    pooled = report["groups"]["dedup"]["aggregate"]["val.loss"]
    assert float(rows[1]["val_loss"]) == round(pooled["mean"], 4)
    assert float(rows[1]["val_loss_diff"]) == round(report["group_comparison"]["groups"]["dedup"]["differences"]
                                                   ["val.loss"]["mean"], 4)
    assert rows[0]["vs_reference"] == "reference" and rows[0]["val_loss_diff"] == ""
    assert "val_ppl_diff" not in rows[0]  # perplexity is fixed by the loss: not compared
    assert json.loads((tmp_path / "report.json").read_text())["groups"] == report["groups"]
    with open(tmp_path / "summary.tsv") as handle:
        assert len(list(csv.DictReader(handle, delimiter="\t"))) == 3  # still one row per arm

    single = make_report()
    add_comparisons(single, reference_arm="no_dedup")
    with file_set(tmp_path) as files:
        write_outputs(single, files)  # the same experiment rerun without groups: no stale table
    assert not (tmp_path / "groups.tsv").exists()


def test_the_page_shows_groups_when_a_group_pools_arms():
    report = grid_report()
    page = render_html(report)
    assert '<h2 id="groups">Groups</h2>' in page and '<a href="#groups">' in page
    assert "exact, near" in page and UNPAIRED in page
    assert page.count("<svg") == 7  # the six of the arms' page and the groups' dot plot
    assert 'id="groups"' not in render_html(make_report())


def test_arms_that_share_one_trained_model_count_it_once():
    """Two arms whose stages coincide (e.g. `k: all` under several category seeds) are one model: pooling
    them twice would give identical values and a zero-width interval."""
    import copy

    report = make_report()
    report["arms"]["exact"]["group"] = report["arms"]["near"]["group"] = "dedup"
    report["arms"]["near"]["replicates"] = copy.deepcopy(report["arms"]["exact"]["replicates"])
    for replicate in report["arms"]["exact"]["replicates"] + report["arms"]["near"]["replicates"]:
        replicate["artifacts"] = {"train": f"stages/train-shared-seed{replicate['seed']}"}
    add_comparisons(report, reference_arm="no_dedup")
    dedup = report["groups"]["dedup"]
    assert dedup["replicates"] == len(report["arms"]["exact"]["replicates"]) == 2
    assert dedup["aggregate"]["val.loss"]["mean"] == report["arms"]["exact"]["aggregate"]["val.loss"]["mean"]
    assert report["group_comparison"]["groups"]["dedup"]["pairing"] == PAIRED  # one partner per seed again
