"""The category-subset recipe: which K categories, the corpus checks before training, and a tiny K x seed grid
end to end through the CLI (per-category loss, in-context curves, the report's diversity section)."""

import json
from pathlib import Path

import pytest

from corpuslab.cli import main
from corpuslab.config import load_config
from corpuslab.curation.recipes.categories import CategorySubset, choose_categories
from corpuslab.errors import ConfigError, InputError
from tests.conftest import TINY

CATEGORIES = [f"cat{i}" for i in range(8)]


def test_choice_is_deterministic_nested_and_depends_only_on_k_seed_and_the_set():
    for seed in range(5):
        chosen = {k: choose_categories(k, seed, CATEGORIES) for k in range(1, 9)}
        for k in range(1, 8):
            assert len(chosen[k]) == k and set(chosen[k]) < set(chosen[k + 1])  # nested
        assert chosen[8] == sorted(CATEGORIES) == choose_categories("all", seed, CATEGORIES)
        assert choose_categories(3, seed, reversed(CATEGORIES + CATEGORIES)) == chosen[3]  # order and repeats ignored
    draws = {tuple(choose_categories(2, seed, CATEGORIES)) for seed in range(20)}
    assert len(draws) > 5  # the seed matters
    # Not nested: a fresh draw per K, so some smaller K is not inside the larger one.
    fresh = [(choose_categories(k, s, CATEGORIES, nested=False), choose_categories(k + 1, s, CATEGORIES, nested=False))
             for s in range(10) for k in range(1, 7)]
    assert any(not set(small) < set(large) for small, large in fresh)
    with pytest.raises(ValueError):
        choose_categories(9, 0, CATEGORIES)


def test_the_seed_keys_the_stage_unless_every_category_is_kept():
    def key(**config):
        return CategorySubset(CategorySubset.Config(**config)).fingerprint("inputs")

    assert key(k=2, seed=0) != key(k=2, seed=1) and key(k=2) != key(k=2, nested=False)
    assert key(k="all", seed=0) == key(k="all", seed=1) == key(k="all", nested=False) != key(k=2)


@pytest.mark.parametrize("k, expected", [(0, "an integer >= 1"), ("some", "an integer >= 1 or 'all'")])
def test_k_of_zero_or_a_word_stops_at_load_naming_the_key(k, expected):
    with pytest.raises(ConfigError) as error:
        load_config(overrides=["runs=[{name: a, recipe: category_subset}]", f"runs.0.k={k}"])
    assert error.value.key == "runs[0].k" and expected in str(error.value)


COUNTS = {"train": {"a": 50, "b": 40, "c": 30}, "val": {"a": 3, "b": 2, "c": 2}, "test": {"a": 4, "b": 3, "c": 2},
          "test_evaluated": {"a": 4, "b": 3, "c": 2}}


def _check(counts=COUNTS, **config):
    CategorySubset(CategorySubset.Config(**config)).check(counts, "runs[2]")


def test_corpus_checks_name_the_key_and_the_categories_found():
    _check(k=3)
    _check(k="all")
    with pytest.raises(ConfigError, match=r"runs\[2\]\.k.*got 4.*at most the number of categories, 3 \(found: a \(50\), b \(40\), c \(30\)\)"):
        _check(k=4)
    with pytest.raises(ConfigError, match=r"runs\[2\]\.categories.*\['d'\] not found"):
        _check(k=1, categories=["a", "d"])
    _check(k=2, categories=["a", "b"])  # a pool of two: K=2 is all of it
    no_test = {**COUNTS, "test": {"a": 4, "b": 3}, "test_evaluated": {"a": 4, "b": 3}}
    with pytest.raises(ConfigError, match=r"split\.test.*no test documents for \['c'\].*a \(4\), b \(3\)"):
        _check(no_test, k=1)
    _check(no_test, k=1, categories=["a", "b"])  # leaving the category out of the pool is the fix the message names
    cut = {**COUNTS, "test_evaluated": {"a": 4}}
    with pytest.raises(ConfigError, match=r"evaluation\.max_tokens.*none evaluated for \['b', 'c'\]"):
        _check(cut, k=1)
    with pytest.raises(InputError, match=r"runs\[2\].*no category.*found: none|runs\[2\].*has none"):
        _check({"train": {None: 90}, "test": {None: 5}}, k=1)


# ---- end to end ------------------------------------------------------------------------------------

GRID = [*TINY, "dataset.synthetic.categories=4", "dataset.synthetic.exact_dup_fraction=0",
        "dataset.synthetic.near_dup_fraction=0", "dataset.synthetic.boilerplate_fraction=0",
        "split={train: 0.8, val: 0.1, test: 0.1}", "evaluation.max_tokens=null", "runs=[]",
        "evaluation.metrics=[lm, {name: categories, splits: [test]}, category_context]",
        "sweeps=[{name: div, arm: {recipe: category_subset}, grid: {k: [1, all]}, replicates: {seed: [0, 1]}}]"]


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    out = tmp_path_factory.mktemp("diversity")
    assert main(["run", f"output_dir={out}", *GRID]) == 0
    return out


def test_grid_scores_every_arm_on_every_category_and_reports_seen_and_unseen(grid):
    report = json.loads((grid / "tiny" / "report.json").read_text())
    assert list(report["arms"]) == ["div-k1-seed0", "div-k1-seed1", "div-kall-seed0", "div-kall-seed1"]
    categories = ["recipes", "science", "sports", "weather"]
    for name, arm in report["arms"].items():
        stats = arm["curation"]
        assert stats["categories"] == categories and sorted(stats["selected"] + stats["unseen"]) == categories
        assert len(stats["selected"]) == (1 if "k1" in name else 4)
        kept = sum(stats["kept_docs_by_category"].values())
        assert stats["dropped_by_reason"].get("category_not_selected", 0) == sum(stats["docs_by_category"].values()) - kept
        (replicate,) = arm["replicates"]
        assert replicate["training"]["tokens_seen"] == 12 * 8 * 32  # one budget for every arm
        assert sorted(replicate["metrics"]["test_by_category"]) == categories
        curves = replicate["metrics"]["test_by_category_context"]
        assert sorted(curves["categories"]) == categories and len(curves["all"]) == 33  # 0..chunk_len tokens in view
    one, every = report["arms"]["div-k1-seed0"], report["arms"]["div-kall-seed0"]
    assert one["replicates"][0]["training"]["epochs_seen"] > every["replicates"][0]["training"]["epochs_seen"]
    # k: all ignores the seed: both arms share one trained model.
    assert every["replicates"][0]["artifacts"]["train"] == report["arms"]["div-kall-seed1"]["replicates"][0]["artifacts"]["train"]
    html = (grid / "tiny" / "report.html").read_text()
    assert 'id="diversity"' in html and "seen categories" in html and "From K = 1 to K = 4 of 4 categories" in html
    header = (grid / "tiny" / "summary.tsv").read_text().splitlines()[0].split("\t")
    assert "seen_loss" in header and "unseen_loss" in header


def test_k_larger_than_the_corpus_stops_before_any_training(grid, capsys):
    stages = grid / "tiny" / "stages"
    before = {p.name for p in stages.iterdir()}
    code = main(["run", f"output_dir={grid}", *GRID[:-1],
                 "sweeps=[{name: big, arm: {recipe: category_subset}, grid: {k: [2, 5]}}]"])
    assert code == 2
    error = capsys.readouterr().err
    assert "runs[1].k" in error and "at most the number of categories, 4" in error and "weather (" in error
    assert not any(p.startswith(("curate", "train")) for p in {p.name for p in stages.iterdir()} - before)


def test_a_checkpoint_scored_on_the_experiment_is_the_reports_baseline(grid):
    report = json.loads((grid / "tiny" / "report.json").read_text())
    checkpoint = Path(report["arms"]["div-kall-seed0"]["replicates"][0]["checkpoints"]["final"])
    assert main(["evaluate", f"output_dir={grid}", *GRID, "--checkpoint", str(checkpoint)]) == 0
    assert main(["report", f"output_dir={grid}", *GRID]) == 0
    report = json.loads((grid / "tiny" / "report.json").read_text())
    (name, baseline), = report["baselines"].items()
    assert name == str(checkpoint)
    own = report["arms"]["div-kall-seed0"]["replicates"][0]["metrics"]["test_by_category_context"]
    # The same model on the same documents, tokenized by its own (the same) tokenizer: the same curves.
    assert baseline["test_by_category_context"]["all"] == pytest.approx(own["all"], rel=1e-5)
    assert "Dashed black" in (grid / "tiny" / "report.html").read_text()


def test_evaluate_checkpoint_gives_the_curves_for_another_architecture(grid):
    """A GPT-NeoX model (Pythia's architecture), not trained by corpuslab, scored on the experiment's test set."""
    transformers = pytest.importorskip("transformers")
    from corpuslab.tokens.tokenizer import load_tokenizer

    report = json.loads((grid / "tiny" / "report.json").read_text())
    tokenizer = load_tokenizer(report["arms"]["div-k1-seed0"]["replicates"][0]["checkpoints"]["final"])
    config = transformers.GPTNeoXConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1,
                                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=24)
    folder = grid / "neox"
    transformers.GPTNeoXForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(str(folder))
    assert main(["evaluate", f"output_dir={grid}", *GRID, "--checkpoint", str(folder)]) == 0
    (metrics_file,) = (grid / "tiny" / "checkpoints").glob("*neox*/metrics.json")
    metrics = json.loads(metrics_file.read_text())
    curves = metrics["test_by_category_context"]
    assert metrics["context"] == 24 and len(curves["all"]) == 25  # the model's own context: 0..24 tokens in view
    assert sorted(curves["categories"]) == ["recipes", "science", "sports", "weather"]
    assert sorted(metrics["test_by_category"]) == ["recipes", "science", "sports", "weather"]
