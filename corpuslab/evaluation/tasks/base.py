"""The shapes every task shares: a request, an example (one document's requests), a task spec.

A task turns each document of its dataset into an `Example` exactly as lm-evaluation-harness builds its
requests, so scores computed from the same log-likelihoods agree with the harness's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

OutputType = Literal["loglikelihood", "multiple_choice"]
GroupWeighting = Literal["equal", "size"]
Doc = Mapping[str, Any]

# The harness's default `target_delimiter`: the space between a context and each continuation belongs
# to the continuation, so the context's last token is not changed by which choice follows it.
TARGET_DELIMITER = " "


@dataclass(frozen=True)
class Request:
    """One query: log p(continuation | context). Word-boundary spaces belong to the continuation."""

    context: str
    continuation: str


@dataclass(frozen=True)
class Example:
    """One document, ready to score.

    requests: one per choice (multiple choice), or a single one (loglikelihood).
    gold: index of the correct request (multiple choice).
    choices: what the harness's `doc_to_choice` returns; acc_norm divides by their lengths.
    group: the subtask an example counts towards (a BLiMP paradigm), or None.
    """

    requests: tuple[Request, ...]
    gold: int = 0
    choices: tuple[str, ...] = ()
    group: str | None = None


@dataclass(frozen=True)
class HFSource:
    """Where the harness loads a task from: `datasets.load_dataset(path, name, split=split)`."""

    path: str
    name: str | None
    split: str


@dataclass(frozen=True)
class TaskSpec:
    """A task: how one document becomes an Example, which metrics it reports, where its data lives.

    `hf` is None for tasks generated locally (the synthetic ones). `grouped` tasks report every group
    (BLiMP paradigm, MMLU subject) as its own subtask plus an aggregate under the task's own name:
    `weighting` "equal" is the unweighted mean of the groups (the harness's `blimp`), "size" the mean
    weighted by the groups' sizes with the pooled standard error (the harness's `mmlu`, weight_by_size).
    `categories` maps a group to the category it also counts towards (MMLU's stem, humanities, ...):
    each category is reported as `<task>_<category>`, aggregated over its groups the same way.
    """

    name: str
    output: OutputType
    metrics: tuple[str, ...]
    to_example: Callable[[Doc], Example]
    hf: HFSource | None = None
    grouped: bool = False
    description: str = ""
    weighting: GroupWeighting = "equal"
    categories: tuple[tuple[str, str], ...] = ()  # (group, category) pairs; a tuple keeps the spec hashable


@dataclass(frozen=True)
class ScoredExample:
    """An example with one (log-likelihood, is_greedy) result per request."""

    example: Example
    results: tuple[tuple[float, bool], ...]

    @property
    def loglikelihoods(self) -> tuple[float, ...]:
        return tuple(ll for ll, _ in self.results)


def multiple_choice(
    context: str, choices: list[str] | tuple[str, ...], gold: int, group: str | None = None
) -> Example:
    """The harness's multiple-choice requests: one (context, " " + choice) per choice."""
    requests = tuple(Request(context, TARGET_DELIMITER + choice) for choice in choices)
    return Example(requests, gold, tuple(choices), group)
