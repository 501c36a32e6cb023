from collections import Counter
from itertools import pairwise

import pytest

from corpuslab.documents import Document
from corpuslab.errors import ConfigError
from corpuslab.sources.synthetic import (
    FUNCTION_WORDS,
    SyntheticConfig,
    generate,
    grammar_for,
    plan_corpus,
    score_removals,
    shingle_jaccard,
    truth_groups,
    truth_records,
)

SMALL = SyntheticConfig(
    num_docs=120,
    words_per_doc=60,
    exact_dup_fraction=0.2,
    near_dup_fraction=0.25,
    boilerplate_fraction=0.1,
    boilerplate_templates=3,
)


@pytest.fixture(scope="module")
def docs() -> list[Document]:
    return list(generate(SMALL, seed=3))


def by_id(docs: list[Document]) -> dict[str, Document]:
    return {d.id: d for d in docs}


def planted_duplicate_ids(docs: list[Document]) -> set[str]:
    return {i for members in truth_groups(docs).values() for i in members[1:]}


def test_same_seed_same_corpus_other_seed_other_corpus(docs):
    assert list(generate(SMALL, seed=3)) == docs
    other = list(generate(SMALL, seed=4))
    assert [d.text for d in other] != [d.text for d in docs]


def test_counts_of_each_kind_follow_the_config(docs):
    kinds = Counter(d.metadata["truth_kind"] for d in docs)
    assert kinds["original"] == SMALL.num_docs
    assert kinds["near_duplicate"] == round(SMALL.near_dup_fraction * SMALL.num_docs)
    assert kinds["boilerplate"] == round(SMALL.boilerplate_fraction * SMALL.num_docs)
    copies = Counter(
        d.metadata["truth_source"] for d in docs if d.metadata["truth_kind"] == "exact_duplicate"
    )
    assert len(copies) == round(SMALL.exact_dup_fraction * SMALL.num_docs)
    assert max(copies.values()) <= SMALL.max_copies
    assert len(docs) == len(plan_corpus(SMALL, 3))


def test_ids_are_stable_unique_and_in_order(docs):
    assert [d.id for d in docs] == [f"syn-{i:06d}" for i in range(len(docs))]


def test_exact_duplicates_are_byte_identical_and_come_after_their_source(docs):
    index = {d.id: i for i, d in enumerate(docs)}
    for i, doc in enumerate(docs):
        if doc.metadata["truth_kind"] == "exact_duplicate":
            source = docs[index[doc.metadata["truth_source"]]]
            assert doc.text == source.text
            assert source.metadata["truth_kind"] == "original"
            assert index[source.id] < i
            assert doc.metadata["category"] == source.metadata["category"]


def test_near_duplicates_jaccard_matches_truth_and_falls_with_edit_rate(docs):
    texts = by_id(docs)
    mean_by_rate: dict[float, list[float]] = {}
    for doc in docs:
        if doc.metadata["truth_kind"] == "near_duplicate":
            source = texts[doc.metadata["truth_source"]]
            assert doc.text != source.text
            assert shingle_jaccard(doc.text, source.text) == pytest.approx(doc.metadata["truth_jaccard"])
            mean_by_rate.setdefault(doc.metadata["edit_rate"], []).append(doc.metadata["truth_jaccard"])
    assert set(mean_by_rate) == set(SMALL.near_dup_edit_rates)
    means = [sum(v) / len(v) for _, v in sorted(mean_by_rate.items())]
    assert means == sorted(means, reverse=True)


def test_boilerplate_groups_share_a_template_and_most_are_findable(docs):
    boilerplate = [d for d in docs if d.metadata["truth_kind"] == "boilerplate"]
    assert {d.metadata["truth_source"] for d in boilerplate} <= {f"boilerplate-{t:02d}" for t in range(3)}
    assert all(d.metadata["category"] == "boilerplate" for d in boilerplate)
    assert sum(d.metadata["truth_jaccard"] >= 0.85 for d in boilerplate) >= 0.8 * len(boilerplate)


def test_unshuffled_copies_follow_their_source():
    docs = list(
        generate(SyntheticConfig(num_docs=20, words_per_doc=40, shuffle=False, boilerplate_fraction=0), 0)
    )
    for previous, doc in pairwise(docs):
        if doc.metadata["truth_kind"] != "original":
            assert previous.metadata["truth_kind"] != "boilerplate"
            assert doc.metadata["truth_source"] in (previous.id, previous.metadata["truth_source"])


def content_words(docs: list[Document], category: str) -> set[str]:
    words = {
        w.strip(".,:;!?()").lower()
        for d in docs
        if d.metadata["category"] == category
        for w in d.text.split()
    }
    return {w for w in words if w.isalpha()} - FUNCTION_WORDS


def test_categories_have_their_own_vocabulary(docs):
    names = SMALL.category_names
    vocab = {name: content_words(docs, name) for name in names}
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            overlap = len(vocab[a] & vocab[b]) / min(len(vocab[a]), len(vocab[b]))
            assert overlap < 0.1, (a, b, sorted(vocab[a] & vocab[b]))


def test_invented_categories_get_a_grammar():
    cfg = SyntheticConfig(num_docs=30, words_per_doc=40, categories=6)
    assert cfg.category_names[4:] == ("topic5", "topic6")
    docs = list(generate(cfg, 0))
    assert {d.metadata["category"] for d in docs} >= {"topic5", "topic6"}
    assert not grammar_for("topic5").content_words() & grammar_for("recipes").content_words()


@pytest.mark.parametrize(
    "change, key",
    [
        ({"num_docs": -1}, "dataset.synthetic.num_docs"),
        ({"num_docs": True}, "dataset.synthetic.num_docs"),
        ({"categories": 0}, "dataset.synthetic.categories"),
        ({"categories": ()}, "dataset.synthetic.categories"),
        ({"categories": ("a", "a")}, "dataset.synthetic.categories"),
        ({"words_per_doc": 2}, "dataset.synthetic.words_per_doc"),
        ({"exact_dup_fraction": 1.5}, "dataset.synthetic.exact_dup_fraction"),
        ({"near_dup_fraction": -0.1}, "dataset.synthetic.near_dup_fraction"),
        ({"boilerplate_fraction": 2}, "dataset.synthetic.boilerplate_fraction"),
        ({"dup_copies_alpha": 1.0}, "dataset.synthetic.dup_copies_alpha"),
        ({"max_copies": 0}, "dataset.synthetic.max_copies"),
        ({"near_dup_edit_rates": (0.1, 1.0)}, "dataset.synthetic.near_dup_edit_rates[1]"),
        ({"near_dup_edit_rates": ()}, "dataset.synthetic.near_dup_edit_rates"),
        ({"boilerplate_templates": 0}, "dataset.synthetic.boilerplate_templates"),
        ({"boilerplate_templates": 7}, "dataset.synthetic.boilerplate_templates"),
    ],
)
def test_validate_names_the_bad_key(change, key):
    with pytest.raises(ConfigError) as err:
        SyntheticConfig(**change).validate()
    assert err.value.key == key


def test_defaults_validate_and_yaml_lists_become_tuples():
    SyntheticConfig().validate()
    cfg = SyntheticConfig(categories=["a", "b"], near_dup_edit_rates=[0.1])
    assert cfg.categories == ("a", "b") and hash(cfg)


def test_removing_exactly_the_planted_duplicates_scores_one(docs):
    score = score_removals(planted_duplicate_ids(docs), docs)
    assert score["precision"] == 1.0
    assert score["recall"] == 1.0 and score["recall_all_planted"] == 1.0
    assert score["wrong_removals"] == 0


def test_keeping_a_copy_instead_of_the_original_is_still_correct(docs):
    groups = truth_groups(docs)
    removed = set()
    for members in groups.values():
        removed |= set(members[:-1])  # keep the last member instead of the first
    score = score_removals(removed, docs)
    assert score["precision"] == 1.0 and score["recall_all_planted"] == 1.0


def test_wrong_removals_lower_precision_and_missed_ones_lower_recall(docs):
    planted = planted_duplicate_ids(docs)
    singletons = [
        d.id for d in docs if d.metadata["truth_kind"] == "original" and d.id not in truth_groups(docs)
    ]
    score = score_removals(planted | set(singletons[:10]), docs)
    assert score["wrong_removals"] == 10
    assert score["precision"] == pytest.approx(len(planted) / (len(planted) + 10))
    exact_only = {d.id for d in docs if d.metadata["truth_kind"] == "exact_duplicate"}
    score = score_removals(exact_only, docs)
    assert score["precision"] == 1.0 and score["recall"] < 1.0
    assert score["by_kind"]["exact_duplicate"]["recall"] == 1.0
    assert score["by_kind"]["near_duplicate"]["recalled"] == 0
    whole_group = next(iter(truth_groups(docs).values()))
    assert score_removals(whole_group, docs)["wrong_removals"] == 1  # one member had to stay
    nothing = score_removals([], docs)
    assert nothing["precision"] is None and nothing["recall"] == 0.0


def test_recall_counts_only_near_duplicates_a_threshold_detector_should_find(docs):
    near = [d for d in docs if d.metadata["truth_kind"] == "near_duplicate"]
    findable = {d.id for d in near if d.metadata["truth_jaccard"] >= 0.85}
    score = score_removals(findable, docs, threshold=0.85)
    assert score["by_kind"]["near_duplicate"]["recall"] == 1.0
    assert score["by_kind"]["near_duplicate"]["recall_all_planted"] < 1.0
    assert score["by_edit_rate"]["0.3"]["expected"] == 0 and score["by_edit_rate"]["0.3"]["recall"] is None


def test_scoring_accepts_pipeline_rows_and_ignores_docs_without_truth(docs):
    rows = [(d.id, d.metadata) for d in docs] + [("canary-0", {"category": None})]
    removed = planted_duplicate_ids(docs) | {"canary-0"}
    score = score_removals(removed, rows, threshold=0.85)
    assert score["precision"] == 1.0 and score["unknown_removed"] == 1
    tuples = [(r.id, r.truth_kind, r.truth_source) for r in truth_records(docs)]
    assert truth_groups(tuples) == truth_groups(docs)


def test_default_corpus_is_sized_for_the_cpu_experiment():
    cfg = SyntheticConfig()
    words = sum(len(d.text.split()) for d in generate(cfg, 0))
    assert 600_000 <= words <= 900_000
