"""corpuslab.evaluation.tasks against lm-evaluation-harness itself: same requests, log-likelihoods, scores, stderrs.

A tiny random GPT-2 and a 300-token BPE are saved to disk; each task gets a few documents in its
Hugging Face field format, written to local files. The harness runs its own task YAMLs (dataset
pointed at those files) through HFLM and `evaluator.evaluate`; corpuslab runs `run_tasks`. The model's
context (64 tokens) is short enough that some requests are left-truncated.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

lm_eval = pytest.importorskip(
    "lm_eval", reason="lm-evaluation-harness (pip install 'lm-eval[hf]') is not installed"
)
pytest.importorskip("accelerate", reason="the harness's HFLM needs accelerate (pip install 'lm-eval[hf]')")

from corpuslab.evaluation.tasks import TaskConfig, run_tasks  # noqa: E402
from corpuslab.tokens.tokenizer import TokenizerConfig, build_tokenizer  # noqa: E402
from corpuslab.training.model import ModelConfig, build_model  # noqa: E402

TOLERANCE = 1e-4
BOOTSTRAP_ITERS = 2000  # the harness's default is 100000; fewer keeps the test fast, the method is the same
LONG = (
    "The river ran high all spring and the old mill by the bridge turned day and night while the "
    "miller counted sacks of flour and wondered when the rain would stop and the roads would dry"
)

DOCS: dict[str, list[dict]] = {
    "lambada_openai": [
        {"text": "she put the kettle on and waited for the water to boil"},
        {"text": "he opened the door and the dog ran out into the garden"},
        {"text": LONG + " so he could sell his flour"},  # longer than the model's context: left-truncated
        {"text": "they walked along the beach until the sun  set"},  # two spaces: context ends in a space
        {"text": "after the storm the village counted the fallen trees"},
    ],
    "piqa": [
        {
            "goal": "How do I open a stuck jar lid?",
            "sol1": "Run the lid under hot water, then twist.",
            "sol2": "Put the jar in the freezer overnight.",
            "label": 0,
        },
        {
            "goal": "To dry wet shoes quickly,",
            "sol1": "fill them with rice and seal them in a bag.",
            "sol2": "stuff them with newspaper and leave them by a fan.",
            "label": 1,
        },
        {
            "goal": "keep bread fresh ",
            "sol1": "store it in the fridge",
            "sol2": "store it in a bread box",
            "label": 1,
        },
        {
            "goal": "How can I remove a splinter?",
            "sol1": "Use clean tweezers.",
            "sol2": "Use a hammer.",
            "label": 0,
        },
        {
            "goal": "Make a paper boat float longer",
            "sol1": "coat it with wax",
            "sol2": "fold it twice",
            "label": 0,
        },
    ],
    "hellaswag": [
        {
            "ind": 4,
            "activity_label": "Removing ice from car",
            "ctx_a": "Then, the man writes over the snow.",
            "ctx_b": "then",
            "ctx": "",
            "endings": [
                "the man walks away.",
                "the man scrapes the window [step] clean.",
                "the man sits down.",
                "the man drives off.",
            ],
            "source_id": "a",
            "split": "val",
            "split_type": "indomain",
            "label": "1",
        },
        {
            "ind": 7,
            "activity_label": "Baking cookies",
            "ctx_a": "A woman mixes flour and sugar in a bowl.",
            "ctx_b": "she",
            "ctx": "",
            "endings": ["adds eggs and stirs.", "paints the wall.", "goes swimming.", "reads a book."],
            "source_id": "b",
            "split": "val",
            "split_type": "indomain",
            "label": "0",
        },
        {
            "ind": 9,
            "activity_label": "Home and Garden",
            "ctx_a": "[header] How to plant tulips [title] Pick a sunny spot.",
            "ctx_b": "",
            "ctx": "",
            "endings": [
                "[step] Dig a hole twice as deep as the bulb.",
                "Eat the bulb.",
                "Throw the bulb [substeps] away.",
                "Sing to the bulb.",
            ],
            "source_id": "c",
            "split": "val",
            "split_type": "zeroshot",
            "label": "0",
        },
        {
            "ind": 11,
            "activity_label": "Playing guitar",
            "ctx_a": "A man sits on a chair holding a guitar.",
            "ctx_b": "he",
            "ctx": "",
            "endings": [
                "strums the strings.",
                "eats the guitar.",
                "jumps on the guitar.",
                "throws the chair.",
            ],
            "source_id": "d",
            "split": "val",
            "split_type": "indomain",
            "label": "0",
        },
    ],
    "arc_easy": [
        {
            "id": "q1",
            "question": "Which gas do plants take in from the air?",
            "choices": {
                "text": ["oxygen", "carbon dioxide", "nitrogen", "helium"],
                "label": ["A", "B", "C", "D"],
            },
            "answerKey": "B",
        },
        {
            "id": "q2",
            "question": "What is the boiling point of water at sea level?",
            "choices": {"text": ["50 C", "100 C", "150 C"], "label": ["1", "2", "3"]},
            "answerKey": "2",
        },
        {
            "id": "q3",
            "question": "Which of these is a mammal?",
            "choices": {"text": ["shark", "whale", "trout", "eel"], "label": ["A", "B", "C", "D"]},
            "answerKey": "B",
        },
        {
            "id": "q4",
            "question": "What makes the moon shine?",
            "choices": {
                "text": ["its own fire", "reflected sunlight", "city lights", "stars behind it"],
                "label": ["A", "B", "C", "D"],
            },
            "answerKey": "B",
        },
    ],
    "arc_challenge": [
        {
            "id": "c1",
            "question": "A student drops a ball. Which force pulls it down?",
            "choices": {
                "text": ["friction", "gravity", "magnetism", "tension"],
                "label": ["A", "B", "C", "D"],
            },
            "answerKey": "B",
        },
        {
            "id": "c2",
            "question": "Which process forms sedimentary rock?",
            "choices": {
                "text": ["melting", "compaction", "evaporation", "erosion only"],
                "label": ["A", "B", "C", "D"],
            },
            "answerKey": "B",
        },
        {
            "id": "c3",
            "question": "Why do we see lightning before we hear thunder?",
            "choices": {
                "text": ["light travels faster than sound", "sound travels faster than light"],
                "label": ["A", "B"],
            },
            "answerKey": "A",
        },
    ],
    "winogrande": [
        {
            "sentence": "The trophy doesn't fit into the suitcase because the _ is too large.",
            "option1": "trophy",
            "option2": "suitcase",
            "answer": "1",
        },
        {
            "sentence": "Sarah lent Maria her car because _ had to get to work.",
            "option1": "Sarah",
            "option2": "Maria",
            "answer": "2",
        },
        {
            "sentence": "The dog chased the cat until _'s legs gave out.",
            "option1": "the dog",
            "option2": "the cat",
            "answer": "1",
        },
        {
            "sentence": "Ian gave Tom his umbrella, since _ was going out into the rain.",
            "option1": "Ian",
            "option2": "Tom",
            "answer": "2",
        },
    ],
}
BLIMP = {
    "anaphor_gender_agreement": [
        ("Katherine can't help herself.", "Katherine can't help himself."),
        ("Craig saw himself.", "Craig saw herself."),
        ("The women praised themselves.", "The women praised itself."),
    ],
    "determiner_noun_agreement_1": [
        ("Raymond is selling this sketch.", "Raymond is selling this sketches."),
        ("Those dogs bark.", "Those dog bark."),
        ("This cup is broken.", "These cup is broken."),
        ("These books are new.", "This books are new."),
    ],
}
SPLITS = {
    "lambada_openai": "test",
    "piqa": "validation",
    "hellaswag": "validation",
    "arc_easy": "test",
    "arc_challenge": "test",
    "winogrande": "validation",
}
YAMLS = {
    "lambada_openai": "lambada/lambada_openai.yaml",
    "piqa": "piqa/piqa.yaml",
    "hellaswag": "hellaswag/hellaswag.yaml",
    "arc_easy": "arc/arc_easy.yaml",
    "arc_challenge": "arc/arc_challenge.yaml",
    "winogrande": "winogrande/default.yaml",
}


def _write_jsonl(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return str(path)


def _blimp_rows(paradigm: str) -> list[dict]:
    return [
        {
            "sentence_good": good,
            "sentence_bad": bad,
            "UID": paradigm,
            "pair_id": i,
            "field": "syntax",
            "linguistics_term": "x",
            "simple_LM_method": True,
            "one_prefix_method": False,
            "two_prefix_method": False,
            "lexically_identical": False,
        }
        for i, (good, bad) in enumerate(BLIMP[paradigm])
    ]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("parity")
    files = {name: _write_jsonl(root / f"{name}.jsonl", docs) for name, docs in DOCS.items()}
    blimp_files = {p: _write_jsonl(root / f"blimp_{p}.jsonl", _blimp_rows(p)) for p in BLIMP}
    files["blimp"] = _write_jsonl(root / "blimp.jsonl", [row for p in BLIMP for row in _blimp_rows(p)])
    texts = [json.dumps(doc) for docs in DOCS.values() for doc in docs] + [LONG] * 3
    tokenizer = build_tokenizer(TokenizerConfig(kind="bpe", vocab_size=300, min_frequency=1), texts)
    model = build_model(
        ModelConfig("tiny", n_layer=2, n_head=2, n_embd=32, context=64),
        len(tokenizer),
        seed=3,
        eos_id=tokenizer.eos_token_id,
    )
    _memorise(model, tokenizer, [doc["text"] for doc in DOCS["lambada_openai"]])
    model_dir = root / "model"
    model.save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    return model_dir, files, blimp_files


def _memorise(model, tokenizer, texts: list[str], steps: int = 60) -> None:
    """A few steps on the task texts, so that some continuations are greedy: is_greedy is then compared
    on both values, and the scores are not all at chance."""
    import torch

    ids = [tokenizer.encode(text)[-64:] for text in texts]
    batch = torch.zeros((len(ids), 64), dtype=torch.long)
    labels = torch.full((len(ids), 64), -100)
    for i, row in enumerate(ids):
        batch[i, : len(row)] = labels[i, : len(row)] = torch.tensor(row)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a 32-wide model gains nothing from threads and loses much on a busy machine
    try:
        for _ in range(steps):
            loss = model(input_ids=batch, labels=labels).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    finally:
        torch.set_num_threads(threads)
    model.eval()


def _harness_task(relative_yaml: str, split: str, data_file: str):
    from lm_eval.api.task import ConfigurableTask
    from lm_eval.tasks._yaml_loader import load_yaml

    cfg = load_yaml(Path(lm_eval.tasks.__file__).parent / relative_yaml, resolve_func=True)
    cfg.update(
        {
            "dataset_path": "json",
            "dataset_name": None,
            "dataset_kwargs": {"data_files": {split: data_file}},
            "training_split": None,
            "validation_split": None,
            "test_split": None,
            "fewshot_split": None,
        }
    )
    # BLiMP's only split is "train", which the harness evaluates as its validation split.
    cfg["test_split" if split == "test" else "validation_split"] = split
    for key in ("tag", "group"):
        cfg.pop(key, None)
    return ConfigurableTask(config=cfg)


def _run_harness(model_dir: Path, files: dict[str, str], blimp_files: dict[str, str]):
    """The harness end to end; also records the token ids it scored."""
    from lm_eval.api.group import Group
    from lm_eval.config.group import GroupConfig
    from lm_eval.evaluator import evaluate
    from lm_eval.models.huggingface import HFLM

    tasks = {name: _harness_task(YAMLS[name], SPLITS[name], files[name]) for name in YAMLS}
    blimp_names = [f"blimp_{p}" for p in blimp_files]
    for paradigm, path in blimp_files.items():
        tasks[f"blimp_{paradigm}"] = _harness_task(f"blimp/{paradigm}.yaml", "train", path)
    group = Group.from_config(
        GroupConfig(
            group="blimp",
            task=blimp_names,
            aggregate_metric_list=[{"metric": "acc", "aggregation": "mean", "weight_by_size": False}],
        )
    )
    for name in blimp_names:
        group.add(tasks[name])
    lm = HFLM(pretrained=str(model_dir), device="cpu", batch_size=3)
    scored_tokens: dict[tuple[str, str], tuple] = {}
    original = lm._loglikelihood_tokens

    def recording(requests, **kwargs):
        for strings, context_enc, continuation_enc in requests:
            scored_tokens[tuple(strings)] = (tuple(context_enc), tuple(continuation_enc))
        return original(requests, **kwargs)

    lm._loglikelihood_tokens = recording
    task_dict = {"tasks": tasks, "groups": {"blimp": group}, "group_map": {"blimp": blimp_names}}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DISABLE_MULTIPROC", "1")  # the bootstrap's single-process path: same seeds, no pool
        output = evaluate(lm, task_dict, bootstrap_iters=BOOTSTRAP_ITERS, log_samples=True, verbosity="ERROR")
    return output, scored_tokens


@pytest.fixture(scope="module")
def both(setup):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_dir, files, blimp_files = setup
    harness, harness_tokens = _run_harness(model_dir, files, blimp_files)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    names = [*YAMLS, "blimp"]
    cfg = TaskConfig(
        tasks={name: None for name in names},
        data_files={n: files[n] for n in names},
        batch_size=4,
        bootstrap_iters=BOOTSTRAP_ITERS,
    )
    ours = run_tasks(model, tokenizer, cfg, "cpu", seed=0)
    return harness, harness_tokens, ours, tokenizer


def _harness_samples(harness, name: str) -> list[dict]:
    return sorted(harness["samples"][name], key=lambda sample: sample["doc_id"])


def _our_examples(ours, name: str):
    if name.startswith("blimp_"):
        group = name.removeprefix("blimp_")
        return [s for s in ours["blimp"].scored if s.example.group == group]
    return list(ours[name].scored)


ALL_TASKS = [*YAMLS, *(f"blimp_{p}" for p in BLIMP)]


@pytest.mark.parametrize("name", ALL_TASKS)
def test_same_requests_and_loglikelihoods(both, name):
    harness, _, ours, _ = both
    samples, scored = _harness_samples(harness, name), _our_examples(ours, name)
    assert len(samples) == len(scored)
    for sample, item in zip(samples, scored, strict=True):
        harness_requests = [tuple(args) for args in sample["arguments"]]
        assert harness_requests == [(r.context, r.continuation) for r in item.example.requests]
        harness_results = [tuple(resp[0]) for resp in sample["resps"]]
        for (theirs, their_greedy), (mine, my_greedy) in zip(harness_results, item.results, strict=True):
            assert abs(theirs - mine) < TOLERANCE
            assert their_greedy == my_greedy


def test_same_token_ids(both):
    """Context and continuation ids, including the trailing-space move and the empty-context prefix."""
    _, harness_tokens, ours, tokenizer = both
    from corpuslab.evaluation.tasks import HarnessEncoder

    encoder = HarnessEncoder(tokenizer)
    requests = [r for run in ours.values() for s in run.scored for r in s.example.requests]
    assert len(requests) == len(harness_tokens)
    for request in requests:
        encoded = encoder.encode_request(request)
        assert (encoded.context, encoded.continuation) == harness_tokens[
            (request.context, request.continuation)
        ]


@pytest.mark.parametrize("name", [*ALL_TASKS, "blimp"])
def test_same_scores_and_stderrs(both, name):
    harness, _, ours, _ = both
    theirs = harness["results"][name]
    mine = ours["blimp"].results[name] if name.startswith("blimp") else ours[name].results[name]
    metrics = [key for key in mine if key != "n" and not key.endswith("_stderr")]
    assert metrics and all(f"{metric},none" in theirs for metric in metrics)
    for metric in metrics:
        for key in (metric, f"{metric}_stderr"):
            expected = theirs[f"{key},none"]
            if expected == "N/A":
                assert mine[key] is None
            else:
                # perplexity of a random model is large: compare relative to its size
                assert abs(mine[key] - expected) <= TOLERANCE * max(1.0, abs(expected)), key
    assert mine["n"] == (theirs.get("sample_len") if name != "blimp" else sum(len(v) for v in BLIMP.values()))


def test_max_abs_difference_is_reported(both, capsys):
    """Not a check of its own: prints the largest per-request difference for the record."""
    harness, _, ours, _ = both
    worst = 0.0
    for name in ALL_TASKS:
        for sample, item in zip(_harness_samples(harness, name), _our_examples(ours, name), strict=True):
            for resp, (mine, _) in zip(sample["resps"], item.results, strict=True):
                worst = max(worst, abs(resp[0][0] - mine))
    with capsys.disabled():
        print(f"\nmax |loglikelihood difference| vs lm-evaluation-harness: {worst:.3g}")
    assert worst < TOLERANCE
    greedy = [g for run in ours.values() for item in run.scored for _, g in item.results]
    assert any(greedy) and not all(greedy)  # both outcomes of the greedy check were compared
    assert os.environ.get("DISABLE_MULTIPROC") is None  # the fixture restored the environment
