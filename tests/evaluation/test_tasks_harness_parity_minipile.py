"""MMLU and LAMBADA standard (the MiniPile benchmark set) against lm-evaluation-harness itself.

The same method as `test_tasks_harness_parity.py`: a tiny random GPT-2 saved to disk, a few documents per
task in the Hugging Face dataset's fields (`cais/mmlu`, `cimec/lambada`) written to local files, the
harness running its own YAMLs (`mmlu/default/mmlu_<subject>.yaml`, `lambada/lambada_standard.yaml`) and
its own nested MMLU groups (`_mmlu.yaml`: all subjects weighted by size; `_mmlu_<category>.yaml`)
through HFLM and `evaluator.evaluate`. Three subjects in two categories, of unequal sizes, so the
size-weighted means and pooled standard errors differ from unweighted ones.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

lm_eval = pytest.importorskip("lm_eval", reason="lm-evaluation-harness (pip install 'lm-eval[hf]') is not installed")
pytest.importorskip("accelerate", reason="the harness's HFLM needs accelerate (pip install 'lm-eval[hf]')")

from corpuslab.evaluation.tasks import TaskConfig, run_tasks  # noqa: E402
from corpuslab.tokens.tokenizer import TokenizerConfig, build_tokenizer  # noqa: E402
from corpuslab.training.model import ModelConfig, build_model  # noqa: E402
from tests.evaluation.test_tasks_harness_parity import _harness_task, _memorise, _write_jsonl  # noqa: E402

TOLERANCE = 1e-4
BOOTSTRAP_ITERS = 2000


def _q(subject: str, question: str, choices: list[str], answer: int) -> dict:
    return {"question": question, "subject": subject, "choices": choices, "answer": answer}


MMLU = {
    "anatomy": [
        _q("anatomy", "Which bone protects the brain?", ["femur", "skull", "rib", "tibia"], 1),
        _q("anatomy", "  How many chambers has the human heart? ", ["two", "three", "four", "five"], 2),
        _q("anatomy", "Where is the patella?", ["knee", "elbow", "skull", "hip"], 0),
        _q("anatomy", "Which organ filters blood?", ["lung", "kidney", "skin", "eye"], 1),
    ],
    "astronomy": [
        _q("astronomy", "Which planet is closest to the sun?", ["Venus", "Earth", "Mercury", "Mars"], 2),
        _q("astronomy", "What is the sun?", ["a planet", "a moon", "a comet", "a star"], 3),
    ],
    "high_school_us_history": [
        _q("high_school_us_history", "Who was the first US president?", ["Washington", "Lincoln", "Adams", "Grant"], 0),
        _q("high_school_us_history", "In which year was the Declaration of Independence signed?",
           ["1776", "1812", "1865", "1492"], 0),
        _q("high_school_us_history", "Which war ended in 1865?", ["War of 1812", "Civil War", "Korean War", "Boer War"], 1),
    ],
}
LAMBADA = [
    {"text": "the baker lit the oven before dawn and by noon the shop smelled of fresh bread"},
    {"text": "when the train finally arrived the crowd on the platform  cheered"},
    {"text": "she wrote the letter twice before she was happy with it and then she posted it"},
    {"text": "the cat slept on the warm windowsill all afternoon"},
]


def _group(name: str, children: list[str]):
    """A group as the harness's MMLU YAML states it: its aggregate_metric_list from `_<name>.yaml`."""
    from lm_eval.api.group import Group
    from lm_eval.config.group import GroupConfig
    from lm_eval.tasks._yaml_loader import load_yaml

    cfg = load_yaml(Path(lm_eval.tasks.__file__).parent / f"mmlu/default/_{name}.yaml", resolve_func=True)
    assert all(metric["weight_by_size"] for metric in cfg["aggregate_metric_list"])  # the harness's weighting
    return Group.from_config(GroupConfig(group=name, task=children, aggregate_metric_list=cfg["aggregate_metric_list"]))


def _run_harness(model_dir: Path, files: dict[str, str]):
    from lm_eval.evaluator import evaluate
    from lm_eval.models.huggingface import HFLM

    tasks = {f"mmlu_{s}": _harness_task(f"mmlu/default/mmlu_{s}.yaml", "test", files[s]) for s in MMLU}
    tasks["lambada_standard"] = _harness_task("lambada/lambada_standard.yaml", "test", files["lambada_standard"])
    stem = _group("mmlu_stem", ["mmlu_anatomy", "mmlu_astronomy"])
    humanities = _group("mmlu_humanities", ["mmlu_high_school_us_history"])
    top = _group("mmlu", ["mmlu_stem", "mmlu_humanities"])
    for group, names in ((stem, ["mmlu_anatomy", "mmlu_astronomy"]), (humanities, ["mmlu_high_school_us_history"])):
        for name in names:
            group.add(tasks[name])
        top.add(group)
    lm = HFLM(pretrained=str(model_dir), device="cpu", batch_size=3)
    task_dict = {"tasks": tasks, "groups": {"mmlu": top, "mmlu_stem": stem, "mmlu_humanities": humanities}}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DISABLE_MULTIPROC", "1")
        return evaluate(lm, task_dict, bootstrap_iters=BOOTSTRAP_ITERS, log_samples=True, verbosity="ERROR")


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    root = tmp_path_factory.mktemp("parity_minipile")
    files = {s: _write_jsonl(root / f"mmlu_{s}.jsonl", rows) for s, rows in MMLU.items()}
    files["lambada_standard"] = _write_jsonl(root / "lambada_standard.jsonl", LAMBADA)
    mmlu_file = _write_jsonl(root / "mmlu.jsonl", [row for rows in MMLU.values() for row in rows])
    texts = [json.dumps(row) for rows in MMLU.values() for row in rows] + [d["text"] for d in LAMBADA] * 3
    tokenizer = build_tokenizer(TokenizerConfig(kind="bpe", vocab_size=300, min_frequency=1), texts)
    model = build_model(ModelConfig("tiny", n_layer=2, n_head=2, n_embd=32, context=64), len(tokenizer), seed=5,
                        eos_id=tokenizer.eos_token_id)
    _memorise(model, tokenizer, [d["text"] for d in LAMBADA], steps=40)
    model_dir = root / "model"
    model.save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    harness = _run_harness(model_dir, files)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    cfg = TaskConfig(tasks={"mmlu": None, "lambada_standard": None, "mmlu_astronomy": None},
                     data_files={"mmlu": mmlu_file, "lambada_standard": files["lambada_standard"],
                                 "mmlu_astronomy": files["astronomy"]},
                     batch_size=4, bootstrap_iters=BOOTSTRAP_ITERS)
    return harness, run_tasks(model, tokenizer, cfg, "cpu", seed=0)


def _ours(ours, name: str):
    if name.startswith("mmlu_"):
        return [s for s in ours["mmlu"].scored if s.example.group == name.removeprefix("mmlu_")]
    return list(ours[name].scored)


LEAVES = [*(f"mmlu_{s}" for s in MMLU), "lambada_standard"]


@pytest.mark.parametrize("name", LEAVES)
def test_same_requests_and_loglikelihoods(both, name):
    harness, ours = both
    samples = sorted(harness["samples"][name], key=lambda sample: sample["doc_id"])
    scored = _ours(ours, name)
    assert len(samples) == len(scored) > 0
    for sample, item in zip(samples, scored, strict=True):
        assert [tuple(args) for args in sample["arguments"]] == [(r.context, r.continuation) for r in item.example.requests]
        for resp, (mine, my_greedy) in zip(sample["resps"], item.results, strict=True):
            assert abs(resp[0][0] - mine) < TOLERANCE
            assert resp[0][1] == my_greedy


@pytest.mark.parametrize("name", [*LEAVES, "mmlu", "mmlu_stem", "mmlu_humanities"])
def test_same_scores_and_stderrs(both, name):
    """Leaves, the two category groups and the size-weighted `mmlu` group with its pooled stderr."""
    harness, ours = both
    theirs = harness["results"][name]
    mine = ours["mmlu"].results[name] if name.startswith("mmlu") else ours[name].results[name]
    metrics = [key for key in mine if key != "n" and not key.endswith("_stderr")]
    assert metrics and all(f"{metric},none" in theirs for metric in metrics)
    for metric in metrics:
        for key in (metric, f"{metric}_stderr"):
            expected = theirs[f"{key},none"]
            assert abs(mine[key] - expected) <= TOLERANCE * max(1.0, abs(expected)), key
    assert mine["n"] == theirs["sample_len"]


def test_single_subject_task(both):
    """`mmlu_<subject>` scores one subject, with the subject from the task name."""
    _, ours = both
    assert ours["mmlu_astronomy"].results["mmlu_astronomy"] == ours["mmlu"].results["mmlu_astronomy"]
