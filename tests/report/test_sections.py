"""Report sections: the summary columns they declare, and sections or metrics added without report code."""

import copy
import csv
import subprocess
import sys
from dataclasses import dataclass

import pytest

from corpuslab.evaluation.metrics import Evaluation, ModelMetric, SummaryColumn, metrics
from corpuslab.report.build import aggregate as aggregate_seeds
from corpuslab.report.build import summary_rows, write_summary
from corpuslab.report.html import render_html
from corpuslab.report.page import Page
from corpuslab.report.sections import Column, Section, page_sections, recipe_name, sections, summary_columns
from tests.report.test_html import make_report

# The header earlier releases wrote for the dedup experiment; the default run must keep it.
DEFAULT_COLUMNS = ("arm recipe level seeds docs_in dropped dropped_exact dropped_near kept_tokens train_tokens_seen "
                   "epochs val_loss val_ppl val_bpb test_loss test_ppl test_bpb canary_exact_rate "
                   "canary_mean_exposure dup_precision dup_recall").split()


def test_the_dedup_experiment_has_the_summary_columns_of_earlier_releases(tmp_path):
    report = make_report()
    assert [c.name for c in summary_columns(report)] == DEFAULT_COLUMNS
    write_summary(tmp_path / "summary.tsv", report)
    with open(tmp_path / "summary.tsv") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    assert list(rows[0]) == DEFAULT_COLUMNS
    near = rows[2]
    assert (near["dropped_exact"], near["dropped_near"], near["dup_precision"], near["dup_recall"]) == ("92", "5", "1.0",
                                                                                                         "0.87")
    assert rows[0]["dup_precision"] == ""  # none dropped: no precision
    assert near["train_tokens_seen"] == "10240" and float(near["val_ppl"]) > 1


def without_dedup(report: dict) -> dict:
    for arm in report["arms"].values():
        arm["curation"].pop("ground_truth")
    return report


def test_arms_without_duplicate_detection_get_no_dedup_columns_or_section():
    report = without_dedup(make_report())
    names = [c.name for c in summary_columns(report)]
    assert not {"dropped_exact", "dropped_near", "dup_precision", "dup_recall"} & set(names)
    assert names[:6] == ["arm", "recipe", "level", "seeds", "docs_in", "dropped"]
    assert 'id="detection"' not in render_html(report)


def test_an_lsh_engine_alone_brings_the_detection_section_and_its_columns():
    report = without_dedup(make_report())
    report["arms"]["near"]["curation"]["engine"] = {"method": "minhash_lsh", "candidate_pairs": 12, "verified_pairs": 9,
                                                   "clusters": 3, "cluster_size_histogram": {"2": 3}}
    assert "dup_recall" in [c.name for c in summary_columns(report)]
    page = render_html(report)
    assert 'id="detection"' in page and "minhash_lsh" in page


def test_a_recipe_described_as_a_plugin_is_read_by_name():
    report = make_report()
    report["arms"]["near"]["recipe"] = {"name": "near", "version": 2, "config": {"threshold": 0.8}}
    assert recipe_name(report["arms"]["near"]) == "near"
    _, rows = summary_rows(report)
    assert rows[2]["recipe"] == "near"
    assert ">near</td>" in render_html(report)


def test_sections_follow_their_order_and_the_navigation_links_the_shown_ones():
    report = make_report(tasks=False)
    shown = page_sections(report)
    assert [s.order for s in shown] == sorted(s.order for s in shown)
    assert "tasks" not in [s.name for s in shown]
    page = render_html(report)
    assert '<a href="#canaries">' in page and '<a href="#tasks">' not in page


def test_a_column_declared_twice_is_an_error():
    class Twice(Section):
        name = "twice"
        columns = (Column("val_loss", 5, lambda name, arm: 0),)

        def render(self, page):
            return ""

    with pytest.raises(ValueError, match="val_loss"):
        summary_columns(make_report(), [*page_sections(make_report()), Twice()])


def test_the_report_does_not_import_the_experiment():
    code = ("import sys, corpuslab.report.build, corpuslab.report.aggregate; "
            "sys.exit('corpuslab.experiment' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


# ---- a section and a metric registered from outside the report's code ------------------------------


@sections.register
class MarkerRate(Section):
    """A user's section: applies only to reports whose training records `test_marker_rate`."""

    name = "test_marker_rate"
    title = "Marker rate"
    anchor = "marker-rate"
    order = 65
    columns = (Column("marker_rate", 60, lambda name, arm: arm["replicates"][0]["training"].get("test_marker_rate")),)

    def applies(self, report):
        return any("test_marker_rate" in r["training"] for arm in report["arms"].values() for r in arm.get("replicates", []))

    def render(self, page: Page) -> str:
        rates = ", ".join(f"{n}: {page.replicates(n)[0]['training']['test_marker_rate']}" for n in page.names)
        return f'<h2 id="marker-rate">Marker rate</h2><p>{rates}</p>'


@metrics.register
class ModelSize(ModelMetric):
    """Parameters of the model: a user's metric with a summary column and no section of its own."""

    name = "test_model_size"
    columns = (SummaryColumn("parameters", "model_size.parameters", "model parameters", compare=False),)

    @dataclass(frozen=True)
    class Config:
        pass

    def compute(self, model, tokenizer, device, data, log):
        return Evaluation({"model_size": {"parameters": sum(p.numel() for p in model.parameters())}})


def test_a_registered_section_brings_its_column_and_its_part_of_the_page():
    report = make_report()
    assert "marker_rate" not in [c.name for c in summary_columns(report)]  # nothing to show: not there
    for i, arm in enumerate(report["arms"].values()):
        for replicate in arm["replicates"]:
            replicate["training"]["test_marker_rate"] = 0.5 + i
    names = [c.name for c in summary_columns(report)]
    assert names.index("marker_rate") == names.index("canary_mean_exposure") + 1  # order 60: after 50-51, before 90
    _, rows = summary_rows(report)
    assert [row["marker_rate"] for row in rows] == [0.5, 1.5, 2.5]
    page = render_html(report)
    assert '<h2 id="marker-rate">' in page and "near: 2.5" in page and '<a href="#marker-rate">Marker rate</a>' in page


def test_a_registered_metric_without_a_section_gets_a_column_and_a_generic_table():
    report = copy.deepcopy(make_report())
    for i, arm in enumerate(report["arms"].values()):
        for replicate in arm["replicates"]:
            replicate["metrics"]["model_size"] = {"parameters": 1000 * (i + 1)}
        arm["aggregate"] = aggregate_seeds(arm["replicates"])
    columns, rows = summary_rows(report)
    assert columns[-1] == "parameters"  # order 100 by default: after every built-in column
    assert [row["parameters"] for row in rows] == [1000.0, 2000.0, 3000.0]
    page = render_html(report)
    assert 'id="metric-test_model_size"' in page and "model parameters" in page and "3,000" in page
