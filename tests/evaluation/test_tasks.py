import json
import math
import random

import numpy as np
import pytest
import torch

from corpuslab.errors import ConfigError, InputError, StageError
from corpuslab.evaluation.tasks import (
    HarnessEncoder,
    Request,
    TaskConfig,
    data,
    evaluate_tasks,
    load_examples,
    loglikelihoods,
    metrics,
    run_tasks,
    synthetic,
    task_spec,
)
from corpuslab.evaluation.tasks.harness import (
    arc_example,
    blimp_example,
    hellaswag_example,
    lambada_example,
    piqa_example,
    winogrande_example,
)
from corpuslab.schema import from_dict
from corpuslab.sources.synthetic import SyntheticConfig, generate, grammar_for
from corpuslab.tokens.tokenizer import TokenizerConfig, build_tokenizer
from corpuslab.training.model import ModelConfig, build_model

CONTEXT = 48
CATEGORIES = ("recipes", "sports", "weather", "science")


@pytest.fixture(scope="module")
def lm():
    texts = [doc.text for doc in generate(SyntheticConfig(num_docs=60, words_per_doc=60), seed=0)]
    tokenizer = build_tokenizer(TokenizerConfig(kind="bpe", vocab_size=400, min_frequency=1), texts)
    model = build_model(
        ModelConfig("tiny", n_layer=2, n_head=2, n_embd=32, context=CONTEXT),
        len(tokenizer),
        seed=0,
        eos_id=tokenizer.eos_token_id,
    ).eval()
    return model, tokenizer


def _reference_loglikelihood(model, context_ids, continuation_ids, max_length=CONTEXT):
    """One request, unbatched, written out: the harness's slicing of `_loglikelihood_tokens`."""
    tokens = (list(context_ids) + list(continuation_ids))[-(max_length + 1) :]
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([tokens[:-1]])).logits[0].float()
    logprobs = torch.log_softmax(logits, -1)[-len(continuation_ids) :]
    targets = torch.tensor(continuation_ids)
    return float(logprobs.gather(1, targets[:, None]).sum()), bool((logprobs.argmax(-1) == targets).all())


# ---- request building ------------------------------------------------------------------------------


def test_lambada_splits_off_the_last_word_with_its_space():
    assert lambada_example({"text": "he fed the dog"}).requests == (Request("he fed the", " dog"),)


def test_multiple_choice_continuations_start_with_the_delimiter():
    example = piqa_example({"goal": "open a jar", "sol1": "twist", "sol2": "kick", "label": 1})
    assert [r.continuation for r in example.requests] == [" twist", " kick"]
    assert {r.context for r in example.requests} == {"Question: open a jar\nAnswer:"}
    assert example.gold == 1 and example.choices == ("twist", "kick")


def test_hellaswag_preprocessing():
    doc = {
        "activity_label": "Home",
        "ctx_a": "[header] Plant tulips [title] Dig.",
        "ctx_b": "then",
        "endings": ["[step] Water them.", "b", "c", "d"],
        "label": "2",
    }
    example = hellaswag_example(doc)
    assert example.requests[0].context == "Home: Plant tulips. Dig. Then"
    # The harness strips before removing brackets, so a leading "[step]" leaves a space (kept, for parity).
    assert example.choices[0] == " Water them." and example.gold == 2


def test_arc_gold_is_the_index_of_the_answer_key():
    doc = {"question": "q?", "choices": {"text": ["a", "b", "c"], "label": ["1", "2", "3"]}, "answerKey": "3"}
    example = arc_example(doc)
    assert example.gold == 2 and example.requests[2] == Request("Question: q?\nAnswer:", " c")


def test_winogrande_scores_the_rest_of_the_sentence_after_each_option():
    doc = {
        "sentence": "Ann thanked Bea because _ had helped.",
        "option1": "Ann",
        "option2": "Bea",
        "answer": "2",
    }
    example = winogrande_example(doc)
    assert [r.context for r in example.requests] == [
        "Ann thanked Bea because Ann",
        "Ann thanked Bea because Bea",
    ]
    assert {r.continuation for r in example.requests} == {" had helped."}
    assert example.gold == 1


def test_blimp_has_an_empty_context_and_the_good_sentence_first():
    example = blimp_example({"sentence_good": "Cats run.", "sentence_bad": "Cats runs.", "UID": "p"})
    assert example.requests == (Request("", " Cats run."), Request("", " Cats runs.")) and example.gold == 0
    assert example.group == "p"


# ---- tokenization and scoring ----------------------------------------------------------------------


def test_trailing_space_of_the_context_moves_to_the_continuation(lm):
    _, tokenizer = lm
    encoder = HarnessEncoder(tokenizer)
    assert encoder.encode_request(Request("the sauce ", "simmers")) == encoder.encode_request(
        Request("the sauce", " simmers")
    )
    encoded = encoder.encode_request(Request("the sauce", " simmers"))
    assert list(encoded.context) == tokenizer.encode("the sauce")
    assert list(encoded.context + encoded.continuation) == tokenizer.encode("the sauce simmers")


def test_empty_context_is_the_prefix_token(lm):
    _, tokenizer = lm
    encoder = HarnessEncoder(tokenizer)
    eos = tokenizer.eos_token_id
    assert encoder.encode_request(Request("", " Cats run.")).context == (eos,)
    # A continuation that already starts with the prefix token gives that token as the context.
    encoded = encoder.encode_request(Request("", tokenizer.eos_token + "Cats"))
    assert encoded.context == (eos,) and encoded.continuation == tuple(tokenizer.encode("Cats"))


def test_loglikelihoods_match_an_unbatched_reference_and_keep_order(lm):
    model, tokenizer = lm
    requests = [
        Request("The striker", " scored"),
        Request("Bake for", " 20 minutes until golden"),
        Request("", " A calm morning."),
        Request("Rain", " moves"),
        Request("We measured", " the"),
    ]
    encoder = HarnessEncoder(tokenizer)
    results = loglikelihoods(model, tokenizer, requests, batch_size=2)
    for request, (ll, greedy) in zip(requests, results, strict=True):
        encoded = encoder.encode_request(request)
        ref_ll, ref_greedy = _reference_loglikelihood(model, encoded.context, encoded.continuation)
        assert ll == pytest.approx(ref_ll, abs=1e-4) and greedy == ref_greedy
    one_batch = loglikelihoods(model, tokenizer, requests, batch_size=5)
    assert [ll for ll, _ in one_batch] == pytest.approx([ll for ll, _ in results], abs=1e-4)


def test_long_contexts_are_truncated_from_the_left(lm):
    model, tokenizer = lm
    long_context = " ".join(["the chef stirs the golden sauce"] * 20)
    encoded = HarnessEncoder(tokenizer).encode_request(Request(long_context, " slowly"))
    assert len(encoded.context) + len(encoded.continuation) > CONTEXT + 1
    ((ll, _),) = loglikelihoods(model, tokenizer, [Request(long_context, " slowly")])
    assert ll == pytest.approx(
        _reference_loglikelihood(model, encoded.context, encoded.continuation)[0], abs=1e-4
    )


def test_greedy_continuation_is_recognised(lm):
    model, tokenizer = lm
    context = tokenizer.encode("Preheat the oven to")
    with torch.no_grad():
        best = int(model(input_ids=torch.tensor([context])).logits[0, -1].argmax())
    text = tokenizer.decode(context + [best])
    prefix = tokenizer.decode(context)
    assert tokenizer.encode(text)[len(context) :] == [best], "pick a context whose greedy token round-trips"
    ((_, greedy),) = loglikelihoods(model, tokenizer, [Request(prefix, text[len(prefix) :])])
    assert greedy


def test_a_continuation_longer_than_the_model_context_is_an_error(lm):
    model, tokenizer = lm
    with pytest.raises(StageError, match="more than the model's context"):
        loglikelihoods(model, tokenizer, [Request("a", " " + "golden sauce " * 60)])


# ---- metrics ---------------------------------------------------------------------------------------


def test_acc_norm_divides_by_character_length():
    # Choice 1 is less likely in total but more likely per character.
    outcome = metrics.choice_outcome([-4.0, -6.0], ["ab", "abcdef"], gold=1)
    assert outcome == {"acc": 0.0, "acc_norm": 1.0}
    # Characters, not bytes: "éé" is 2 characters and 4 bytes (-3/2 > -5/3; by bytes -3/4 < -5/3 would flip).
    assert metrics.choice_outcome([-3.0, -5.0], ["éé", "abc"], gold=0)["acc_norm"] == 1.0
    assert metrics.choice_outcome([-1.0, -1.0], ["a", "b"], gold=0)["acc"] == 1.0  # ties go to the first


def test_mean_stderr_uses_the_sample_standard_deviation():
    values = [1.0, 0.0, 1.0, 1.0]
    expected = math.sqrt(sum((v - 0.75) ** 2 for v in values) / 3) / 2
    assert metrics.mean_stderr(values) == pytest.approx(expected)
    assert metrics.mean_stderr([1.0]) is None


def _python_bootstrap(values, iters):
    """lm_eval.api.metrics.bootstrap_stderr(perplexity, ...) in plain Python, chunk seeds 0, 1, ..."""
    replicates = []
    chunk = min(1000, iters)
    for seed in range(iters // chunk):
        rnd = random.Random(seed)
        for _ in range(chunk):
            sample = rnd.choices(values, k=len(values))
            replicates.append(math.exp(-sum(sample) / len(sample)))
    mu = sum(replicates) / len(replicates)
    return math.sqrt(sum((r - mu) ** 2 for r in replicates) / (len(replicates) - 1))


def test_bootstrap_perplexity_stderr_replays_the_harness_draws():
    values = [-1.5, -0.2, -3.1, -2.2, -0.9, -4.0, -1.1]
    assert metrics.bootstrap_perplexity_stderr(values, 2000) == pytest.approx(
        _python_bootstrap(values, 2000), rel=1e-12
    )
    assert metrics.bootstrap_perplexity_stderr(values, 300) == pytest.approx(
        _python_bootstrap(values, 300), rel=1e-12
    )
    assert metrics.bootstrap_perplexity_stderr([-1.0], 1000) is None


def test_group_stderr_of_an_unweighted_mean():
    assert metrics.group_stderr([0.3, 0.4]) == pytest.approx(0.25)
    assert metrics.group_stderr([0.3, None]) is None


# ---- data and sampling -----------------------------------------------------------------------------


def test_sampling_is_seeded_sorted_and_task_specific():
    first = data.sample_indices(100, 10, seed=1, name="piqa")
    assert (
        first == data.sample_indices(100, 10, seed=1, name="piqa") == sorted(first) and len(set(first)) == 10
    )
    assert first != data.sample_indices(100, 10, seed=2, name="piqa")
    assert first != data.sample_indices(100, 10, seed=1, name="arc_easy")
    assert data.sample_indices(5, None, 0, "x") == data.sample_indices(5, 9, 0, "x") == list(range(5))


def test_hugging_face_loading_uses_the_harness_dataset(monkeypatch):
    import datasets

    calls = []

    def fake_load_dataset(path, name=None, split=None):
        calls.append((path, name, split))
        return [{"goal": "g", "sol1": "a", "sol2": "b", "label": 0}] * 3

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    examples = load_examples("piqa", count=2, seed=0)
    assert calls == [("baber/piqa", None, "validation")] and len(examples) == 2


def test_unreachable_hub_says_to_use_a_local_file(monkeypatch):
    import datasets

    def offline(*args, **kwargs):
        raise ConnectionError("no network")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(InputError, match=r"evaluation\.task_files\.arc_easy"):
        load_examples("arc_easy")


def test_local_parquet_and_blimp_sampled_per_paradigm(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [
        {"sentence_good": f"good {i}", "sentence_bad": f"bad {i}", "UID": uid}
        for uid in ("p1", "p2")
        for i in range(5)
    ]
    path = tmp_path / "blimp.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    examples = load_examples("blimp", count=3, seed=0, data_file=str(path))
    assert sorted(e.group for e in examples) == ["p1"] * 3 + ["p2"] * 3


def test_one_blimp_paradigm_reports_only_itself(lm, tmp_path):
    model, tokenizer = lm
    path = tmp_path / "passive_1.jsonl"
    path.write_text('{"sentence_good": "The cake was eaten.", "sentence_bad": "The cake was ate."}\n' * 3)
    cfg = TaskConfig(tasks={"blimp_passive_1": None}, data_files={"blimp_passive_1": str(path)})
    results = evaluate_tasks(model, tokenizer, cfg, "cpu", seed=0)
    assert list(results) == ["blimp_passive_1"] and results["blimp_passive_1"]["n"] == 3


def test_a_document_without_the_task_fields_is_an_input_error(tmp_path):
    path = tmp_path / "piqa.jsonl"
    path.write_text('{"question": "wrong fields"}\n')
    with pytest.raises(InputError, match="does not fit task piqa"):
        load_examples("piqa", data_file=str(path))


# ---- synthetic tasks -------------------------------------------------------------------------------


def test_synthetic_tasks_are_deterministic_in_the_seed():
    assert synthetic.cloze_docs(CATEGORIES, 8, seed=3) == synthetic.cloze_docs(CATEGORIES, 8, seed=3)
    assert synthetic.cloze_docs(CATEGORIES, 8, seed=3) != synthetic.cloze_docs(CATEGORIES, 8, seed=4)
    assert synthetic.choice_docs(CATEGORIES, 8, seed=3) == synthetic.choice_docs(CATEGORIES, 8, seed=3)


def test_cloze_target_ends_the_passage_and_is_named_before():
    for doc in synthetic.cloze_docs(CATEGORIES + ("topic5",), 40, seed=0):
        context, target = lambada_example(doc).requests[0].context, doc["target"]
        assert doc["text"].split(" ")[-1] == target
        assert target in [w.rstrip(".,;:!?") for w in context.split(" ")]
        assert target in {t.split(" ")[0] for t in grammar_for(doc["category"]).pools["topic"]}


def test_choice_has_one_in_category_continuation():
    for doc in synthetic.choice_docs(CATEGORIES, 40, seed=0):
        assert len(doc["choices"]) == synthetic.N_CHOICES and len(set(doc["choices"])) == synthetic.N_CHOICES
        own = grammar_for(doc["category"]).content_words()
        overlap = [len(own & {w.strip(".,").lower() for w in c.split()}) for c in doc["choices"]]
        assert int(np.argmax(overlap)) == doc["label"]


def test_synthetic_choice_with_one_category_draws_distractors_from_other_documents():
    docs = synthetic.choice_docs(("recipes",), 5, seed=0)
    assert all(d["category"] == "recipes" and len(d["choices"]) == synthetic.N_CHOICES for d in docs)


# ---- config and the whole run ----------------------------------------------------------------------


def test_task_config_validation():
    with pytest.raises(ConfigError, match="tasks.tasks.nope"):
        TaskConfig(tasks={"nope": 5}).validate()
    with pytest.raises(ConfigError, match="tasks.tasks.piqa"):
        TaskConfig(tasks={"piqa": 0}).validate()
    with pytest.raises(ConfigError, match="tasks.data_files.piqa"):
        TaskConfig(tasks={"arc_easy": 5}, data_files={"piqa": "x.jsonl"}).validate()
    with pytest.raises(ConfigError, match="tasks.batch_size"):
        TaskConfig(batch_size=0).validate()
    cfg = from_dict(
        TaskConfig, {"tasks": {"blimp_passive_1": None, "synthetic_cloze": 10}, "categories": 2}, "tasks"
    )
    assert cfg.category_names == ("recipes", "sports") and task_spec("blimp_passive_1") is not None


def test_evaluate_tasks_on_the_synthetic_tasks(lm):
    model, tokenizer = lm
    cfg = TaskConfig(
        tasks={"synthetic_cloze": 12, "synthetic_choice": 12}, batch_size=8, bootstrap_iters=1000
    )
    results = evaluate_tasks(model, tokenizer, cfg, "cpu", seed=0)
    assert set(results) == {"synthetic_cloze", "synthetic_choice"}
    assert set(results["synthetic_cloze"]) == {"acc", "acc_stderr", "perplexity", "perplexity_stderr", "n"}
    assert set(results["synthetic_choice"]) == {"acc", "acc_stderr", "acc_norm", "acc_norm_stderr", "n"}
    assert results["synthetic_choice"]["n"] == 12 and 0 <= results["synthetic_choice"]["acc"] <= 1
    runs = run_tasks(model, tokenizer, cfg, "cpu", seed=0)
    assert [len(s.results) for s in runs["synthetic_choice"].scored] == [synthetic.N_CHOICES] * 12
    assert (
        runs["synthetic_cloze"].results["synthetic_cloze"] == results["synthetic_cloze"]
    )  # same seed, same run


def test_a_registered_task_is_known_by_name_and_scored(lm, tmp_path):
    from corpuslab.evaluation.tasks import TaskSpec, register_task
    from corpuslab.evaluation.tasks.base import multiple_choice
    from corpuslab.evaluation.tasks.runner import TASKS

    spec = TaskSpec("yes_no_test", "multiple_choice", ("acc",),
                    lambda doc: multiple_choice(doc["question"], ["yes", "no"], doc["label"]))
    register_task(spec)
    try:
        data = tmp_path / "yes_no.jsonl"
        data.write_text("".join(json.dumps({"question": f"is {i} even?", "label": i % 2}) + "\n" for i in range(6)))
        cfg = TaskConfig(tasks={"yes_no_test": None}, data_files={"yes_no_test": str(data)}, batch_size=4)
        model, tokenizer = lm
        results = evaluate_tasks(model, tokenizer, cfg.validate(), "cpu", seed=0)
        assert results["yes_no_test"]["n"] == 6 and 0 <= results["yes_no_test"]["acc"] <= 1
        with pytest.raises(TypeError, match="already registered"):
            register_task(TaskSpec("yes_no_test", "loglikelihood", ("acc",), spec.to_example))
    finally:
        TASKS.pop("yes_no_test")
