"""The distillation report section: R per seed against the full arm, token/doc shares, paired differences, cards."""

import math

import pytest

from corpuslab.report.page import Page
from corpuslab.report.sections.base import page_sections
from corpuslab.report.sections.distill import Distillation, random_arm, retained

VOCAB = 400
L0 = math.log(VOCAB)


def _replicate(seed, loss):
    metrics = {"val": {"loss": loss}, "val_by_category": {"sports": {"loss": loss + 0.5}}}
    return {"seed": seed, "metrics": metrics, "training": {"tokens_seen": 1000, "epochs_seen": 1.0}}


def _arm(recipe, losses, kept, tokens, settings=None, clusters=None):
    curation = {"input": 100, "kept": kept, "dropped": 100 - kept}
    if settings is not None:
        curation["settings"] = settings
    if clusters is not None:
        curation["clusters"] = clusters
        curation["clustering"] = {"k": len(clusters), "cluster": "cluster-abc", "purity": 0.9, "nmi": 0.8}
        curation["junk_removal"] = {"junk_documents": 5, "excluded_documents": 6, "excluded_without_truth": 2,
                                    "precision": 5 / 6, "recall": 1.0,
                                    "by_kind": {"junk_navigation": {"documents": 4, "excluded": 4, "recall": 1.0},
                                                "junk_entity_list": {"documents": 1, "excluded": 0, "recall": 0.0}}}
    return {"recipe": recipe, "curation": curation, "packing": {"tokens_kept": tokens},
            "replicates": [_replicate(s, v) for s, v in enumerate(losses)],
            "aggregate": {"val.loss": {"mean": sum(losses) / len(losses), "ci95": None, "n": len(losses)},
                          "val_by_category.sports.loss": {"mean": sum(losses) / len(losses) + 0.5, "ci95": None, "n": len(losses)}}}


CARD = {"cluster": 0, "total_examples": 60, "sum_distance": 12.0, "average_distance": 0.2, "duplicate_rate": 0.95,
        "top_terms": ["cookie", "privacy"], "categories": {"boilerplate": 5}, "excluded": "listed",
        "closest": [{"id": "a", "distance": 0.1, "text": "Cookie <notice>"}], "farthest": [{"id": "b", "distance": 0.4, "text": "x"}]}


@pytest.fixture
def report():
    return {"corpus": {"tokens": {"vocab_size": VOCAB}}, "arms": {
        "full": _arm("none", [4.0, 4.2, 4.1], 100, 10000),
        "random": _arm("minipile", [4.5, 4.6, 4.5], 25, 2400, {"sampler": "random", "target": 0.25}, [dict(CARD, excluded=None)]),
        "uniform": _arm("minipile", [4.3, 4.4, 4.4], 25, 2600, {"sampler": "uniform", "target": 0.25, "exclude": [0]}, [CARD]),
    }}


def test_r_is_the_share_of_the_full_arms_improvement_paired_by_seed(report):
    r = retained(report, "uniform")
    expected = [(L0 - a) / (L0 - f) for a, f in zip([4.3, 4.4, 4.4], [4.0, 4.2, 4.1])]
    assert r["n"] == 3 and r["mean"] == pytest.approx(sum(expected) / 3)
    assert r["ci95"][0] < r["mean"] < r["ci95"][1]
    assert retained(report, "full")["mean"] == pytest.approx(1.0)
    sports = retained(report, "uniform", "val_by_category.sports.loss")
    assert sports["mean"] == pytest.approx(sum((L0 - a - 0.5) / (L0 - f - 0.5) for a, f in zip([4.3, 4.4, 4.4], [4.0, 4.2, 4.1])) / 3)
    assert random_arm(report) == "random"


def test_section_shows_shares_r_differences_and_cluster_cards(report):
    assert any(isinstance(s, Distillation) for s in page_sections(report))
    html = Distillation().render(Page(report))
    assert "25.0%" in html and "26.0%" in html  # documents kept, tokens kept against the full arm
    assert "val loss − full" in html and "val loss − random" in html
    assert "minipile uniform 0.25, excluding [0]" in html
    assert "excluded by uniform (listed)" in html and "Cookie &lt;notice&gt;" in html  # escaped excerpt
    assert "precision" in html and "0.8333" in html
    assert "recall: navigation" in html and "recall: entity_list" in html and "excluded without truth" in html
    assert "R per category (val)" in html and "sports" in html


def test_section_is_absent_without_distillation_arms():
    plain = {"corpus": {}, "arms": {"full": _arm("none", [4.0], 100, 100)}}
    assert not Distillation().applies(plain)
