"""report.html states only what it could compute: warnings at the top, untested differences said so, "best" only
when significant, per-seed spread, reasons for missing figures, readable axes, and a page that fits a phone."""

import re

import pytest

from corpuslab.report.build import add_comparisons
from corpuslab.report.html import render_html
from corpuslab.report.page import CSS, Page
from corpuslab.report.plots import svg
from corpuslab.report.sections import page_sections
from corpuslab.report.sections.canaries import Canaries
from corpuslab.report.sections.overview import Corpus, Header
from corpuslab.report.sections.results import Comparison, Metrics, _plot_curves
from corpuslab.report.sections.tasks import Tasks, _plot_tasks, task_table
from tests.report.test_caveats import one_seed
from tests.report.test_html import make_report


def page_of(report: dict) -> Page:
    add_comparisons(report, reference_arm="no_dedup")
    return Page(report, page_sections(report))


def test_the_warning_box_is_at_the_top_with_each_figure():
    page = page_of(one_seed(make_report()))
    header = Header().render(page)
    assert header.index('class="warnings"') < header.index('id="glance"')
    assert "Read with care: 3 warnings" in header
    assert "every arm has 1 seed" in header and "5 documents scored (threshold 50)" in header
    page.report["corpus"]["canaries"]["documents"] = 1550
    assert "88.8% of the training split by documents (1,550 of 1,746; threshold 25%" in Header().render(page_of(page.report))
    assert "Too few seeds" not in Header().render(page_of(make_report()))  # two seeds: a test was possible


def test_one_seed_says_not_tested_and_bolds_no_arm():
    page = page_of(one_seed(make_report()))
    header = Header().render(page)
    assert "not tested: one seed per arm" in header
    assert "no difference is significant" not in header
    metrics = Metrics().render(page)
    assert 'class="best"' not in metrics and "not tested: one seed per arm" in metrics
    assert "not tested: one seed per arm" in Comparison().render(page)  # every difference cell says why


def test_two_seeds_bold_only_a_significant_leader_and_show_each_seeds_range():
    report = make_report()  # near is ahead of both other arms by the same amount on both seeds
    page = page_of(report)
    metrics = Metrics().render(page)
    near = report["arms"]["near"]["aggregate"]["val.loss"]["mean"]
    assert f'<span class="best">{near:.4f}' in metrics
    seeds = [r["metrics"]["val"]["loss"] for r in report["arms"]["near"]["replicates"]]
    assert f"seeds {min(seeds):.4f}–{max(seeds):.4f}" in metrics
    header = Header().render(page)
    assert "not tested" not in header.split('id="glance"')[1]
    assert "seeds -0.0300–-0.0300" in Comparison().render(page)  # near − no_dedup on each seed
    assert "seeds 0.3300–0.3400" in Tasks().render(page)  # near's arc_easy accuracy on each seed
    # Make near's lead over exact noise: seed 1 swaps who is ahead.
    for replicate in report["arms"]["near"]["replicates"]:
        if replicate["seed"] == 1:
            for c in replicate["curve"]:
                c["val_loss"] = c["val_loss"] and c["val_loss"] + 0.05
            replicate["metrics"]["val"]["loss"] += 0.05
    from corpuslab.report.build import aggregate

    report["arms"]["near"]["aggregate"] = aggregate(report["arms"]["near"]["replicates"])
    metrics = Metrics().render(page_of(report))
    row = next(r for r in metrics.split("<tr>") if r.startswith("<td>val loss"))
    assert 'class="best"' not in row


def test_an_unavailable_data_equivalent_factor_says_why():
    report = make_report()
    for replicate in report["arms"]["near"]["replicates"]:  # worse than the reference's first evaluation
        replicate["curve"][-1]["val_loss"] = 99.0
    comparison = Comparison().render(page_of(report))
    assert "not available: arm is worse than the reference&#x27;s first evaluation" in comparison
    assert report["comparison"]["arms"]["near"]["data_equivalent_factor"]["unavailable"] == (
        "arm is worse than the reference's first evaluation")


def test_a_precision_without_removals_says_why():
    from corpuslab.report.sections.curation import Detection

    detection = Detection().render(page_of(make_report()))
    assert "not available: nothing dropped" in detection  # no_dedup removed nothing: no precision to score


def test_the_validation_curve_shows_the_spread_of_two_seeds():
    two = page_of(make_report())
    one = page_of(one_seed(make_report()))
    # fill_between adds one band per arm to the loss panels, and one per compared arm to the difference panel
    assert [len(ax.collections) for ax in _plot_curves(two).axes[:3]] == [3, 3, 2]
    assert [len(ax.collections) for ax in _plot_curves(one).axes[:3]] == [0, 0, 0]


def perplexity_page(values: dict[str, float]) -> Page:
    report = make_report()
    for name, arm in report["arms"].items():
        for replicate in arm["replicates"]:
            replicate["metrics"]["tasks"] = {"cloze": {"perplexity": values[name] + replicate["seed"], "n": 200}}
    return page_of(report)


def test_a_task_axis_is_linear_unless_its_values_span_a_factor_of_ten():
    page = perplexity_page({"no_dedup": 210.0, "exact": 170.0, "near": 130.0})
    fig = _plot_tasks(page, task_table(page))
    ax = fig.axes[0]
    assert ax.get_yscale() == "linear"
    labels = ax.yaxis.get_major_formatter().format_ticks(ax.get_yticks())
    assert len(labels) >= 3 and all(re.fullmatch(r"\d+", label) for label in labels), labels
    wide = perplexity_page({"no_dedup": 1.2e17, "exact": 300.0, "near": 130.0})
    assert _plot_tasks(wide, task_table(wide)).axes[0].get_yscale() == "log"


def test_corpus_and_canary_sections_show_the_canary_share():
    page = page_of(make_report())
    assert "24.0% of the training split's documents</b> (62 of 258)" in Corpus().render(page)
    assert "The canaries are <b>24.0% of the training split's documents</b>" in Canaries().render(page)
    page.report["corpus"]["canary_share"] = {"tokens": 3253, "train_tokens": 42509, "token_share": 3253 / 42509}
    assert "and <b>7.7% of its tokens</b> (3,253 of 42,509)" in Corpus().render(page)
    page.report["corpus"]["canaries"].update(requested=100, max_share=0.25)  # the stage lowered the count to fit
    assert "canaries.count=100 was lowered to 4 so that canary documents stay within canaries.max_share=0.25" in (
        Corpus().render(page))


@pytest.fixture(scope="module")
def full_page() -> str:
    report = make_report()
    add_comparisons(report, reference_arm="no_dedup")
    return render_html(report)


def test_the_page_reads_at_phone_width(full_page):
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in full_page
    # wide tables scroll inside their own box; plots scale to the width; narrow screens lose the wide padding
    assert re.search(r"\.scroll \{[^}]*overflow-x: auto", CSS)
    assert re.search(r"figure svg \{[^}]*max-width: 100%[^}]*height: auto", CSS)
    assert re.search(r"@media \(max-width: \d+px\) \{\s*main \{ padding: \d+px \d+px", CSS)
    assert full_page.count("<table") == full_page.count('<div class="scroll"><table') > 0
    fixed = [int(w) for w in re.findall(r"(?<![-\w])width: (\d+)px", CSS)]
    assert all(w <= 420 for w in fixed), fixed  # nothing is laid out wider than a phone except inside .scroll
    svgs = re.findall(r"<svg[^>]*>", full_page)
    assert svgs and all(re.search(r'viewBox="0 0 [\d.]+ [\d.]+"', tag) for tag in svgs)


def test_an_svg_scales_by_its_viewbox():
    page = perplexity_page({"no_dedup": 210.0, "exact": 170.0, "near": 130.0})
    text = svg(_plot_tasks(page, task_table(page)))
    tag = text[:text.index(">")]
    assert "viewBox" in tag


def test_an_unpaired_group_comparison_without_replicates_says_not_tested():
    from corpuslab.report.sections.groups import Groups

    report = one_seed(make_report())
    report["arms"]["exact"]["group"] = report["arms"]["near"]["group"] = "dedup"
    groups = Groups().render(page_of(report))  # dedup: 2 replicates of seed 0 against 1: Welch, one side short
    assert "not tested: fewer than 2 replicates on one side of an unpaired comparison" in groups
    near, exact = (report["arms"][n]["replicates"][0]["metrics"]["val"]["loss"] for n in ("near", "exact"))
    assert f"seeds {min(near, exact):.4f}–{max(near, exact):.4f}" in groups  # the dedup group's two replicates
    assert report["group_comparison"]["groups"]["dedup"]["differences"]["val.loss"]["significant"] is None


def test_a_task_an_arm_was_not_scored_on_says_so_in_its_cell():
    report = make_report()
    for name, arm in report["arms"].items():
        for replicate in arm["replicates"]:
            replicate["metrics"]["tasks"] = {"cloze": {"perplexity": 150.0 + replicate["seed"], "n": 200}}
            if name == "near":
                replicate["metrics"]["tasks"]["choice"] = {"acc": 0.5, "acc_stderr": 0.05, "n": 100}
    html = Tasks().render(page_of(report))
    assert html.count("not scored for this arm") == 2  # no_dedup and exact lack `choice`
