"""Run a list of tasks on a model: load or generate documents, sample, score, summarise."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from corpuslab.errors import InputError
from corpuslab.evaluation.tasks import metrics as m
from corpuslab.evaluation.tasks import synthetic
from corpuslab.evaluation.tasks.base import Doc, Example, HFSource, ScoredExample, TaskSpec, multiple_choice
from corpuslab.evaluation.tasks.data import load_hf_docs, load_local_docs, sample_indices
from corpuslab.evaluation.tasks.harness import (
    BLIMP_HF_PATH,
    BLIMP_PARADIGMS,
    BLIMP_SPLIT,
    HARNESS_TASKS,
    MMLU_HF_PATH,
    MMLU_SPLIT,
    MMLU_SUBJECTS,
    blimp_paradigm_spec,
    lambada_example,
    mmlu_subject_spec,
)
from corpuslab.schema import require
from corpuslab.sources.synthetic import SyntheticConfig

if TYPE_CHECKING:  # torch loads when a model is scored, not when a config names tasks
    import torch

    from corpuslab.evaluation.tasks.scoring import HarnessEncoder

Metrics = dict[str, float | int | None]


def _choice_example(doc: Doc) -> Example:
    return multiple_choice(doc["query"], list(doc["choices"]), int(doc["label"]))


SYNTHETIC_TASKS: dict[str, TaskSpec] = {
    "synthetic_cloze": TaskSpec(
        "synthetic_cloze",
        "loglikelihood",
        ("acc", "perplexity"),
        lambada_example,
        description="copy a document's topic name from context (LAMBADA-style)",
    ),
    "synthetic_choice": TaskSpec(
        "synthetic_choice",
        "multiple_choice",
        ("acc", "acc_norm"),
        _choice_example,
        description="pick the on-topic next sentence among four (HellaSwag-style)",
    ),
}
_GENERATORS = {"synthetic_cloze": synthetic.cloze_docs, "synthetic_choice": synthetic.choice_docs}
TASKS: dict[str, TaskSpec] = {**HARNESS_TASKS, **SYNTHETIC_TASKS}


def register_task(spec: TaskSpec) -> TaskSpec:
    """Make a task known by name, as the built-in ones are (call it from a module listed under `plugins`).
    A name that is taken is refused, so a user's task never silently replaces a built-in one."""
    existing = TASKS.get(spec.name)
    if existing is not None and existing != spec:
        raise TypeError(f"task '{spec.name}' is already registered")
    TASKS[spec.name] = spec
    return spec


def task_spec(name: str) -> TaskSpec | None:
    """The spec of a task name: one of TASKS, `blimp_<paradigm>` or `mmlu_<subject>`; None if unknown."""
    return TASKS.get(name) or blimp_paradigm_spec(name) or mmlu_subject_spec(name)


@dataclass(frozen=True)
class TaskConfig:
    """Which downstream tasks to run and on how many documents.

    tasks: task name -> number of documents (None: all; for a synthetic task, `synthetic.DEFAULT_SIZE`).
        A number draws a seeded sample, the same for every model given the same seed; for `blimp` it
        is per paradigm, for `mmlu` per subject. Names: see `corpuslab.evaluation.tasks.TASKS`, plus
        `blimp_<paradigm>` and `mmlu_<subject>`.
    data_files: task name -> a local JSON Lines or Parquet file with the Hugging Face dataset's fields,
        used instead of downloading (`blimp` reads the paradigm of each row from its `UID` field, `mmlu`
        the subject from its `subject` field, as in `cais/mmlu`).
    batch_size: requests per forward pass.
    bootstrap_iters: resamples for perplexity's standard error (the harness's default, 100000).
    categories: the synthetic corpus's categories, which the synthetic tasks are written in.
    """

    tasks: dict[str, int | None] = field(
        default_factory=lambda: {"synthetic_cloze": 500, "synthetic_choice": 500}
    )
    data_files: dict[str, str] = field(default_factory=dict)
    batch_size: int = 32
    bootstrap_iters: int = 100_000
    categories: tuple[str, ...] | int = ("recipes", "sports", "weather", "science")

    def __post_init__(self) -> None:
        if isinstance(self.categories, list):  # YAML gives lists
            object.__setattr__(self, "categories", tuple(self.categories))

    def validate(self, prefix: str = "tasks") -> TaskConfig:
        for name, count in self.tasks.items():
            require(
                task_spec(name) is not None,
                f"{prefix}.tasks.{name}",
                name,
                f"a task name: one of {sorted(TASKS)}, blimp_<paradigm> or mmlu_<subject>",
            )
            require(
                count is None or (isinstance(count, int) and count >= 1),
                f"{prefix}.tasks.{name}",
                count,
                "a positive number of documents, or null for all",
            )
        for name, path in self.data_files.items():
            require(
                name in self.tasks, f"{prefix}.data_files.{name}", path, "a file for a task listed in tasks"
            )
        require(self.batch_size >= 1, f"{prefix}.batch_size", self.batch_size, "a positive integer")
        require(
            self.bootstrap_iters >= 0, f"{prefix}.bootstrap_iters", self.bootstrap_iters, "an integer >= 0"
        )
        SyntheticConfig(categories=self.categories).validate(prefix)
        return self

    @property
    def category_names(self) -> tuple[str, ...]:
        return SyntheticConfig(categories=self.categories).category_names


@dataclass(frozen=True)
class TaskRun:
    """One task's scored examples and its results: {task or subtask: {metric, metric_stderr, n}}."""

    spec: TaskSpec
    scored: tuple[ScoredExample, ...]
    results: dict[str, Metrics]


# ---------------------------------------------------------------------------------------------- documents


def task_docs(
    spec: TaskSpec, count: int | None, seed: int, data_file: str | None, categories: Sequence[str]
) -> list[dict[str, Any]]:
    """The task's documents: from `data_file`, generated (synthetic), or from Hugging Face."""
    if data_file is not None:
        return load_local_docs(data_file)
    if spec.name in _GENERATORS:
        return _GENERATORS[spec.name](categories, count or synthetic.DEFAULT_SIZE, seed)
    if spec.name == "blimp":
        return [doc for p in BLIMP_PARADIGMS for doc in load_hf_docs(HFSource(BLIMP_HF_PATH, p, BLIMP_SPLIT), spec.name)]
    if spec.name == "mmlu":  # the harness loads each subject's config; `cais/mmlu` rows carry their subject
        return [doc for s in MMLU_SUBJECTS for doc in load_hf_docs(HFSource(MMLU_HF_PATH, s, MMLU_SPLIT), spec.name)]
    assert spec.hf is not None, spec.name
    return load_hf_docs(spec.hf, spec.name)


def build_examples(spec: TaskSpec, docs: Sequence[Doc], source: str) -> list[Example]:
    examples = []
    for number, doc in enumerate(docs, start=1):
        try:
            examples.append(spec.to_example(doc))
        except (KeyError, ValueError, TypeError, AttributeError) as err:
            raise InputError(
                source, f"document {number} does not fit task {spec.name} ({err.__class__.__name__}: {err})"
            ) from err
    if not examples:
        raise InputError(source, f"no documents for task {spec.name}")
    return examples


def sample_examples(spec: TaskSpec, examples: list[Example], count: int | None, seed: int) -> list[Example]:
    """A seeded sample of `count` examples; for a grouped task, `count` per group."""
    if not spec.grouped:
        return [examples[i] for i in sample_indices(len(examples), count, seed, spec.name)]
    by_group: dict[str, list[Example]] = {}
    for example in examples:
        by_group.setdefault(str(example.group), []).append(example)
    picked = []
    for group, members in by_group.items():
        picked += [members[i] for i in sample_indices(len(members), count, seed, f"{spec.name}_{group}")]
    return picked


def load_examples(
    name: str,
    count: int | None = None,
    seed: int = 0,
    data_file: str | None = None,
    categories: Sequence[str] = ("recipes", "sports", "weather", "science"),
) -> list[Example]:
    """The examples a run of task `name` scores."""
    spec = task_spec(name)
    if spec is None:
        raise InputError(name, f"unknown task; known: {sorted(TASKS)}, blimp_<paradigm> and mmlu_<subject>")
    docs = task_docs(spec, count, seed, data_file, categories)
    examples = build_examples(spec, docs, data_file or f"task {name}")
    return sample_examples(spec, examples, count, seed)


# ---------------------------------------------------------------------------------------------- scoring


def score_examples(
    model: torch.nn.Module,
    tokenizer,
    examples: Sequence[Example],
    batch_size: int,
    device: torch.device | str,
    encoder: HarnessEncoder | None = None,
) -> list[ScoredExample]:
    """Score every request of every example in one batched pass."""
    from corpuslab.evaluation.tasks.scoring import loglikelihoods

    requests = [request for example in examples for request in example.requests]
    results = loglikelihoods(model, tokenizer, requests, batch_size, device, encoder)
    scored, first = [], 0
    for example in examples:
        last = first + len(example.requests)
        scored.append(ScoredExample(example, tuple(results[first:last])))
        first = last
    return scored


def task_metrics(spec: TaskSpec, scored: Sequence[ScoredExample], bootstrap_iters: int) -> Metrics:
    """Scores of one (sub)task with their standard errors, the harness's way (see `metrics`)."""
    out: Metrics = {}
    if spec.output == "loglikelihood":
        lls = [s.results[0][0] for s in scored]
        accs = [float(s.results[0][1]) for s in scored]
        values = {
            "acc": (m.mean(accs), m.mean_stderr(accs)),
            "perplexity": (m.perplexity(lls), m.bootstrap_perplexity_stderr(lls, bootstrap_iters)),
        }
    else:
        outcomes = [m.choice_outcome(s.loglikelihoods, s.example.choices, s.example.gold) for s in scored]
        values = {}
        for metric in spec.metrics:
            per_example = [o[metric] for o in outcomes]
            values[metric] = (m.mean(per_example), m.mean_stderr(per_example))
    for metric in spec.metrics:
        out[metric], out[f"{metric}_stderr"] = values[metric]
    out["n"] = len(scored)
    return out


def summarise(spec: TaskSpec, scored: Sequence[ScoredExample], bootstrap_iters: int) -> dict[str, Metrics]:
    """{task: metrics}; a grouped task adds {task_<group>: metrics} per group (and {task_<category>:
    metrics} per category, for a spec with categories) and reports their aggregate under its own name:
    the unweighted mean (weighting "equal") or the size-weighted mean over every group ("size")."""
    if not spec.grouped:
        return {spec.name: task_metrics(spec, scored, bootstrap_iters)}
    by_group: dict[str, list[ScoredExample]] = {}
    for item in scored:
        by_group.setdefault(str(item.example.group), []).append(item)
    results = {
        f"{spec.name}_{g}": task_metrics(spec, items, bootstrap_iters) for g, items in by_group.items()
    }
    category_of = dict(spec.categories)
    by_category: dict[str, list[Metrics]] = {}
    for group in by_group:
        if group in category_of:
            by_category.setdefault(category_of[group], []).append(results[f"{spec.name}_{group}"])
    categories = {f"{spec.name}_{c}": _aggregate(spec, members) for c, members in by_category.items()}
    return {spec.name: _aggregate(spec, list(results.values())), **categories, **results}


def _aggregate(spec: TaskSpec, subtasks: list[Metrics]) -> Metrics:
    """A group's metrics over its leaf subtasks, as the harness's `Group.aggregate` computes them."""
    sizes = [int(r["n"] or 0) for r in subtasks]
    group: Metrics = {}
    for metric in spec.metrics:
        values = [r[metric] for r in subtasks]
        stderrs = [r[f"{metric}_stderr"] for r in subtasks]
        if spec.weighting == "size":
            group[metric] = m.weighted_group_mean(values, sizes)  # type: ignore[arg-type]
            group[f"{metric}_stderr"] = m.pooled_group_stderr(stderrs, sizes)  # type: ignore[arg-type]
        else:
            group[metric] = m.group_mean(values)  # type: ignore[arg-type]
            group[f"{metric}_stderr"] = m.group_stderr(stderrs)  # type: ignore[arg-type]
    group["n"] = sum(sizes)
    return group


def run_tasks(
    model: torch.nn.Module, tokenizer, cfg: TaskConfig, device: torch.device | str, seed: int
) -> dict[str, TaskRun]:
    """Every task of `cfg`, with its per-example log-likelihoods kept for inspection and tests."""
    from corpuslab.evaluation.tasks.scoring import HarnessEncoder

    cfg.validate()
    encoder = HarnessEncoder(tokenizer)
    runs = {}
    for name, count in cfg.tasks.items():
        spec = task_spec(name)
        assert spec is not None  # validate() checked
        examples = load_examples(name, count, seed, cfg.data_files.get(name), cfg.category_names)
        scored = score_examples(model, tokenizer, examples, cfg.batch_size, device, encoder)
        runs[name] = TaskRun(spec, tuple(scored), summarise(spec, scored, cfg.bootstrap_iters))
    return runs


def evaluate_tasks(
    model: torch.nn.Module, tokenizer, cfg: TaskConfig, device: torch.device | str, seed: int
) -> dict[str, Metrics]:
    """{task (or subtask): {metric: value, metric_stderr: value, n: documents}} for every task of `cfg`.

    Give every model of a comparison the same seed: it fixes the sampled and generated documents.
    """
    results: dict[str, Metrics] = {}
    for run in run_tasks(model, tokenizer, cfg, device, seed).values():
        results.update(run.results)
    return results
