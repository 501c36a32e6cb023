"""MMLU and LAMBADA standard without the harness installed, and scores that do not depend on the batch size.

(Parity with lm-evaluation-harness itself: `test_tasks_harness_parity_minipile.py`.)
"""

import json
import math

import pytest

from corpuslab.errors import InputError
from corpuslab.evaluation.tasks import Request, ScoredExample, TaskConfig, load_examples, run_tasks, summarise, task_spec
from corpuslab.evaluation.tasks.harness import MMLU_CATEGORIES, MMLU_SUBJECTS, mmlu_example
from corpuslab.sources.synthetic import SyntheticConfig, generate
from corpuslab.tokens.tokenizer import TokenizerConfig, build_tokenizer
from corpuslab.training.model import ModelConfig, build_model

CONTEXT = 48


def test_mmlu_has_the_harness_57_subjects_in_4_categories():
    assert len(MMLU_SUBJECTS) == 57 and sorted(MMLU_CATEGORIES) == ["humanities", "other", "social_sciences", "stem"]
    assert [len(MMLU_CATEGORIES[c]) for c in ("stem", "other", "social_sciences", "humanities")] == [19, 13, 12, 13]


def test_mmlu_prompt_is_the_harness_zero_shot_prompt():
    doc = {"question": "  What is 2+2? ", "subject": "high_school_mathematics", "choices": ["1", "2", "4", "5"], "answer": 2}
    example = mmlu_example(doc)
    context = ("The following are multiple choice questions (with answers) about high school mathematics.\n\n"
               "What is 2+2?\nA. 1\nB. 2\nC. 4\nD. 5\nAnswer:")
    assert example.requests == tuple(Request(context, f" {letter}") for letter in "ABCD")
    assert example.gold == 2 and example.choices == ("A", "B", "C", "D") and example.group == "high_school_mathematics"


def test_mmlu_document_of_an_unknown_subject_is_an_input_error(tmp_path):
    path = tmp_path / "mmlu.jsonl"
    path.write_text(json.dumps({"question": "q", "subject": "cooking", "choices": list("abcd"), "answer": 0}) + "\n")
    with pytest.raises(InputError, match="cooking"):
        load_examples("mmlu", data_file=str(path))


def test_hub_loading_uses_the_harness_datasets(monkeypatch):
    import datasets

    calls = []

    def fake_load_dataset(path, name=None, split=None):
        calls.append((path, name, split))
        if path == "cais/mmlu":
            return [{"question": "q", "subject": name, "choices": list("abcd"), "answer": 1}] * 2
        return [{"text": "one two three"}] * 3

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    assert len(load_examples("lambada_standard")) == 3 and calls == [("cimec/lambada", None, "test")]
    calls.clear()
    examples = load_examples("mmlu", count=1, seed=0)
    assert calls == [("cais/mmlu", subject, "test") for subject in MMLU_SUBJECTS]
    assert len(examples) == 57 and {e.group for e in examples} == set(MMLU_SUBJECTS)  # count is per subject
    calls.clear()
    assert len(load_examples("mmlu_virology")) == 2 and calls == [("cais/mmlu", "virology", "test")]


def _scored(subject: str, outcomes: list[bool]) -> list[ScoredExample]:
    """Examples whose gold answer (A) wins or loses, as `outcomes` say."""
    doc = {"question": "q", "subject": subject, "choices": list("abcd"), "answer": 0}
    return [ScoredExample(mmlu_example(doc), ((-1.0 if right else -3.0, False), (-2.0, False), (-4.0, False), (-5.0, False)))
            for right in outcomes]


def test_mmlu_group_is_weighted_by_size_with_a_pooled_stderr():
    """anatomy 4/4 right, astronomy 0/2, philosophy 1/3: the size-weighted mean is 5/9 (unweighted: 4/9);
    the stderr pools the subjects' sample variances, as the harness's `pooled_sample_stderr`."""
    scored = _scored("anatomy", [True] * 4) + _scored("astronomy", [False] * 2) + _scored("philosophy", [True, False, False])
    results = summarise(task_spec("mmlu"), scored, bootstrap_iters=0)
    assert list(results)[:3] == ["mmlu", "mmlu_stem", "mmlu_humanities"]
    assert results["mmlu"]["acc"] == pytest.approx(5 / 9) and results["mmlu"]["n"] == 9
    assert results["mmlu_stem"]["acc"] == pytest.approx(4 / 6) and results["mmlu_humanities"]["acc"] == pytest.approx(1 / 3)
    se_philosophy = math.sqrt((4 / 9 + 2 * 1 / 9) / 2) / math.sqrt(3)  # values 1, 0, 0: mean 1/3, se 1/3
    assert results["mmlu_philosophy"]["acc_stderr"] == pytest.approx(se_philosophy)
    pooled = math.sqrt((2 * se_philosophy**2 * 3) / (9 - 3) / 9)  # the other two subjects have no variance
    assert results["mmlu"]["acc_stderr"] == pytest.approx(pooled)


# ------------------------------------------------------------------------------------ batch-size independence


@pytest.fixture(scope="module")
def lm():
    texts = [doc.text for doc in generate(SyntheticConfig(num_docs=60, words_per_doc=60), seed=1)]
    tokenizer = build_tokenizer(TokenizerConfig(kind="bpe", vocab_size=400, min_frequency=1), texts)
    model = build_model(ModelConfig("tiny", n_layer=2, n_head=2, n_embd=32, context=CONTEXT), len(tokenizer), seed=1,
                        eos_id=tokenizer.eos_token_id).eval()
    return model, tokenizer


def test_scores_do_not_depend_on_the_batch_size(lm, tmp_path, one_thread):
    """The harness's most reported reproducibility complaint: the same examples scored one at a time and
    64 at a time (right padding, rows of very different lengths, some longer than the model's context
    and left-truncated) give the same per-request log-likelihoods and greedy flags, hence the same scores."""
    model, tokenizer = lm
    subjects = ["anatomy", "philosophy", "virology"]
    rows = [{"question": "why " * (i % 7) + f"question {i}?" + " and more" * (3 * (i % 5)), "subject": subjects[i % 3],
             "choices": [f"option {i}", "yes", "no " * (i % 4) + "maybe", "a much longer option text"], "answer": i % 4}
            for i in range(30)]
    path = tmp_path / "mmlu.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    texts = [doc.text for doc in generate(SyntheticConfig(num_docs=30, words_per_doc=60), seed=2)]
    passages = tmp_path / "lambada.jsonl"
    passages.write_text("".join(json.dumps({"text": " ".join(t.split()[: 3 + 2 * i])}) + "\n" for i, t in enumerate(texts)))
    tasks = {"mmlu": None, "lambada_standard": None, "synthetic_cloze": 40}
    files = {"mmlu": str(path), "lambada_standard": str(passages)}
    runs = {batch: run_tasks(model, tokenizer, TaskConfig(tasks=tasks, data_files=files, batch_size=batch,
                                                          bootstrap_iters=0), "cpu", seed=0)
            for batch in (1, 64)}
    widths = set()
    for name in tasks:
        one, many = runs[1][name], runs[64][name]
        assert len(one.scored) == len(many.scored) > 0
        for a, b in zip(one.scored, many.scored, strict=True):
            assert a.example == b.example
            for (ll_a, greedy_a), (ll_b, greedy_b) in zip(a.results, b.results, strict=True):
                assert ll_a == pytest.approx(ll_b, abs=2e-5, rel=1e-6)
                assert greedy_a == greedy_b
            widths.update(len(tokenizer.encode(r.context + r.continuation)) for r in a.example.requests)
        for key, value in one.results.items():
            assert {k: v for k, v in value.items() if "perplexity" not in k} == \
                {k: v for k, v in many.results[key].items() if "perplexity" not in k}, key
            if "perplexity" in value:
                assert value["perplexity"] == pytest.approx(many.results[key]["perplexity"], rel=1e-5)
    assert min(widths) < CONTEXT // 2 and max(widths) > CONTEXT  # real padding, and left truncation
