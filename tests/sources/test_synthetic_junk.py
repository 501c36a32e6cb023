"""Junk-like synthetic documents with ground truth (navigation bars, product specs, entity lists, near-dup
farms), off by default, and the distillation recipes' precision/recall of junk removed by exclusion."""

from collections import Counter

import numpy as np
import pytest

from corpuslab.config import load_config
from corpuslab.curation.decisions import Decision
from corpuslab.curation.recipes.distill import Assignment, ClusteredRecipe
from corpuslab.errors import ConfigError
from corpuslab.schema import from_dict
from corpuslab.sources.synthetic import SyntheticConfig, SyntheticSource, generate, plan_corpus, shingle_jaccard
from corpuslab.sources.synthetic.junk import JUNK_KINDS, JunkConfig

ON = SyntheticConfig(num_docs=200, words_per_doc=60, junk=JunkConfig(fraction=0.2, farms=2))


def test_off_by_default_and_then_not_part_of_the_identity():
    """The default corpus and its fingerprint are what they were before the knob existed."""
    default = SyntheticConfig()
    assert not default.junk.enabled
    assert all(doc.kind != "junk" for doc in plan_corpus(default, seed=0))
    assert "junk" not in SyntheticSource(default, seed=0).identity()["config"]
    assert SyntheticSource(ON, seed=0).identity()["config"]["junk"]["fraction"] == 0.2
    assert SyntheticSource(ON, seed=0).inputs_fingerprint() != SyntheticSource(
        SyntheticConfig(num_docs=200, words_per_doc=60), seed=0).inputs_fingerprint()


def test_junk_documents_are_labelled_with_their_kind():
    docs = list(generate(ON, seed=0))
    junk = [d for d in docs if d.metadata["truth_kind"] == "junk"]
    assert Counter(d.metadata["junk_kind"] for d in junk) == {kind: 10 for kind in JUNK_KINDS}  # 0.2 x 200, in turn
    assert all(d.metadata["category"] == f"junk_{d.metadata['junk_kind']}" for d in junk)
    texts = {k: [d.text for d in junk if d.metadata["junk_kind"] == k] for k in JUNK_KINDS}
    assert all(" | " in t for t in texts["navigation"])
    assert all(sum(":" in line for line in t.splitlines()) >= 5 for t in texts["product_specs"])
    assert all(t.count(",") >= 7 for t in texts["entity_list"])
    for kind in ("navigation", "product_specs", "entity_list"):  # pages of one shape, not copies
        assert len(set(texts[kind])) == len(texts[kind])


def test_farms_are_near_duplicate_groups():
    docs = [d for d in generate(ON, seed=0) if d.metadata.get("junk_kind") == "near_dup_farm"]
    farms: dict[str, list[str]] = {}
    for d in docs:
        farms.setdefault(d.metadata["truth_source"], []).append(d.text)
    assert sorted(farms) == ["junk-farm-0", "junk-farm-1"] and all(len(v) == 5 for v in farms.values())
    for texts in farms.values():
        assert len(set(texts)) > 1 and min(shingle_jaccard(texts[0], t) for t in texts[1:]) > 0.4
    first, second = (texts[0] for texts in farms.values())
    assert shingle_jaccard(first, second) < 0.2


def test_turning_junk_on_keeps_the_other_documents_and_is_deterministic():
    off = SyntheticConfig(num_docs=200, words_per_doc=60)
    texts_off = Counter(d.text for d in generate(off, seed=0))
    docs_on = list(generate(ON, seed=0))
    assert Counter(d.text for d in docs_on if d.metadata["truth_kind"] != "junk") == texts_off
    assert [d.text for d in generate(ON, seed=0)] == [d.text for d in docs_on]


@pytest.mark.parametrize(("junk", "key"), [
    ({"fraction": 1.5}, "dataset.synthetic.junk.fraction"),
    ({"kinds": ["navigation", "adverts"]}, "dataset.synthetic.junk.kinds[1]"),
    ({"kinds": []}, "dataset.synthetic.junk.kinds"),
    ({"farms": 0}, "dataset.synthetic.junk.farms"),
])
def test_bad_junk_settings_name_the_key(junk, key):
    with pytest.raises(ConfigError) as err:
        from_dict(SyntheticConfig, {"junk": junk}, "dataset.synthetic").validate()
    assert err.value.key == key


def test_junk_category_names_are_reserved():
    with pytest.raises(ConfigError) as err:
        SyntheticConfig(categories=("recipes", "junk_stuff")).validate()
    assert err.value.key == "dataset.synthetic.categories"


def test_minipile_config_turns_junk_on():
    cfg = load_config(["configs/minipile.yaml"], [])
    assert cfg.dataset.synthetic.junk.enabled


def test_exclusion_is_graded_per_kind():
    """Cluster 0 (4 navigation + 1 original + 1 canary) is excluded: precision 4/5 (the canary has no ground
    truth and is counted apart); recall 4 of 7 junk documents."""
    categories = ["junk_navigation"] * 4 + ["recipes"] + ["junk_entity_list"] * 2 + ["boilerplate"] + ["sports"] * 2 + [None]
    clusters = np.array([0] * 5 + [1] * 3 + [2] * 2 + [0])
    ids = [f"d{i}" for i in range(len(categories))]
    assignment = Assignment(ids, clusters, np.zeros(len(ids)), categories)
    info = {"clusters": [{"cluster": c, "total_examples": int((clusters == c).sum())} for c in range(3)]}
    decisions = [Decision(i, False, "excluded_cluster", "0") for i in ids[:5] + ids[-1:]]
    decisions.append(Decision(ids[5], False, "not_sampled", "1"))
    stats = ClusteredRecipe.account(None, assignment, info, {0: "listed"}, decisions)  # type: ignore[arg-type]
    junk = stats["junk_removal"]
    assert (junk["junk_documents"], junk["excluded_documents"], junk["excluded_without_truth"]) == (7, 5, 1)
    assert junk["precision"] == pytest.approx(4 / 5) and junk["recall"] == pytest.approx(4 / 7)
    assert junk["by_kind"]["junk_navigation"]["recall"] == 1.0
    assert junk["by_kind"]["junk_entity_list"] == {"documents": 2, "excluded": 0, "recall": 0.0}  # not_sampled is no exclusion
    assert junk["by_kind"]["boilerplate"]["recall"] == 0.0
