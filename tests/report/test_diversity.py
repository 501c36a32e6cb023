"""The diversity numbers and sentence, computed from a report dict with known per-category losses."""

import pytest

from corpuslab.report.diversity import diversity_summary
from corpuslab.report.html import render_html

CATEGORIES = ["a", "b", "c", "d"]


def _arm(k, seed, selected, seen_loss, unseen_loss, epochs):
    losses = {c: {"loss": seen_loss if c in selected else unseen_loss, "tokens": 100, "docs": 2} for c in CATEGORIES}
    curve = [4.0, 3.0, 2.5]
    return {
        "recipe": {"name": "category_subset", "version": 1, "config": {"k": k, "seed": seed}},
        "group": f"div-k{k}", "level": "doc",
        "curation": {"k": len(selected), "n": 4, "selected": selected, "unseen": [c for c in CATEGORIES if c not in selected]},
        "replicates": [{"seed": 0, "training": {"epochs_seen": epochs, "tokens_seen": 1000, "procedure": {"name": "standard"}},
                        "metrics": {"test_by_category": losses,
                                    "test_by_category_context": {"all": curve, "categories": {c: curve for c in CATEGORIES}}},
                        "curve": []}],
        "aggregate": {},
    }


def _report():
    arms = {
        "k1-s0": _arm(1, 0, ["a"], 2.0, 5.0, 4.0), "k1-s1": _arm(1, 1, ["b"], 2.2, 5.2, 4.0),
        "k1-s2": _arm(1, 2, ["c"], 2.1, 5.1, 4.0),
        "k2-s0": _arm(2, 0, ["a", "b"], 2.5, 4.0, 2.0), "k2-s1": _arm(2, 1, ["b", "c"], 2.6, 4.1, 2.0),
        "k2-s2": _arm(2, 2, ["a", "d"], 2.4, 3.9, 2.0),
        "kall-s0": _arm("all", 0, CATEGORIES, 2.8, None, 1.0), "kall-s1": _arm("all", 1, CATEGORIES, 2.8, None, 1.0),
    }
    return {"experiment": "x", "config": {}, "arms": arms}


def test_summary_pools_per_k_and_counts_a_shared_model_once():
    summary = diversity_summary(_report())
    by_k = {e["k"]: e for e in summary["by_k"]}
    assert by_k[1]["seen"]["mean"] == pytest.approx(2.1) and by_k[1]["unseen"]["mean"] == pytest.approx(5.1)
    assert by_k[1]["models"] == 3 and by_k[1]["seen"]["ci95"] is not None
    assert by_k[4]["models"] == 1 and by_k[4]["unseen"]["mean"] is None  # k: all: one model, nothing unseen
    assert by_k[2]["epochs"]["mean"] == 2.0


def test_sentence_states_the_direction_size_and_evidence():
    text = diversity_summary(_report())["sentence"]
    assert text.startswith("From K = 1 to K = 4 of 4 categories, the test loss on the categories an arm trained on "
                           "rises from 2.100 to 2.800 (+33.3%)")
    assert "on the categories it did not train on it falls from 5.100 to 4.000 (-21.6%) from K = 1 to K = 2" in text
    assert "excludes 0" in text  # three seeds each, a 1.1-nat drop with 0.1 spread
    assert "+3.000 at K = 1, +1.500 at K = 2" in text and "epochs K = 1: 4.00, K = 2: 2.00, K = 4: 1.00" in text


def test_the_page_has_the_section():
    html = render_html(_report())
    assert 'id="diversity"' in html and "outlined in orange" in html and "In-context curves" in html
