"""Zero-shot downstream tasks, scored exactly as lm-evaluation-harness (v0.4.13) scores them.

Tasks (`TASKS`; their documents come from the Hugging Face dataset the harness uses, or from a local
file with the same fields via `TaskConfig.data_files`):

    lambada_openai   acc (every token of the last word greedy), perplexity of the last word
    lambada_standard the same on the original LAMBADA release (`cimec/lambada`)
    mmlu             acc per subject (`mmlu_<subject>`, 57), per category (`mmlu_stem`, `mmlu_humanities`,
                     `mmlu_social_sciences`, `mmlu_other`) and over all subjects, weighted by size
    piqa, hellaswag, arc_easy, arc_challenge      acc, acc_norm
    winogrande       acc, partial scoring (the options fill the blank; the rest of the sentence is scored)
    blimp            acc per paradigm (`blimp_<paradigm>`) and their unweighted mean (`blimp`)
    synthetic_cloze, synthetic_choice   generated from the synthetic corpus's grammars (see `synthetic`)

Every score comes with its standard error as the harness computes it (`metrics`), and log-likelihoods
with the harness's tokenization, truncation and greedy check (`scoring`). The test
`tests/test_tasks_harness_parity.py` checks both against the harness itself.

Differences from the harness, all deliberate:
- a sample count draws a seeded random sample (in dataset order); the harness's `--limit` takes the
  first documents. With no count (None) both score every document;
- zero-shot only: no few-shot examples, chat templates or decontamination;
- the output layer and log-probabilities only at continuation positions, the common prefix of requests'
  tokens run once (a shared context, WinoGrande's two contexts before the blank, a BLiMP pair; its key/value
  cache reused for every request), batches formed differently (the harness also reuses logits of
  single-token continuations): same numbers up to float rounding (at most 2.9e-5 on the parity test's
  data; see `scoring`).

Use:
    results = evaluate_tasks(model, tokenizer, TaskConfig(tasks={"piqa": 500}), device, seed=0)
    results["piqa"] == {"acc": ..., "acc_stderr": ..., "acc_norm": ..., "acc_norm_stderr": ..., "n": 500}
"""

from corpuslab.evaluation.tasks.base import (
    Example,
    HFSource,
    Request,
    ScoredExample,
    TaskSpec,
)
from corpuslab.evaluation.tasks.runner import (
    TASKS,
    TaskConfig,
    TaskRun,
    evaluate_tasks,
    load_examples,
    register_task,
    run_tasks,
    score_examples,
    summarise,
    task_spec,
)

# The scoring functions import torch; they load on first use, so a config naming tasks validates without it.
_SCORING = ("HarnessEncoder", "loglikelihoods", "model_max_length")


def __getattr__(name: str):
    if name in _SCORING:
        from corpuslab.evaluation.tasks import scoring

        return getattr(scoring, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "TASKS",
    "Example",
    "HFSource",
    "HarnessEncoder",
    "Request",
    "ScoredExample",
    "TaskConfig",
    "TaskRun",
    "TaskSpec",
    "evaluate_tasks",
    "load_examples",
    "loglikelihoods",
    "model_max_length",
    "register_task",
    "run_tasks",
    "score_examples",
    "summarise",
    "task_spec",
]
