"""Evaluation metrics as plug-ins, all computed by one entry point: `evaluate_model`.

Two kinds of metric:

- a `SplitMetric` derives its numbers from a split's per-token losses (`losses.token_losses`). The
  losses of a split are computed once, in one pass of the model, and every split metric reads them:
  loss / perplexity / bits per byte (`lm`), loss by position in the window (`in_context`), loss by
  document category (`categories`). Their breakdowns therefore add up to the headline loss.
- a `ModelMetric` needs the model itself: canary memorization (`canaries`), zero-shot tasks (`tasks`).

Each metric writes its own keys of `metrics.json` (`lm`: `val`, `test`; `in_context`: `val_by_position`;
`categories`: `val_by_category`; `tasks`: `tasks`; `canaries`: `canaries`), declares the summary.tsv
columns it contributes (`columns`: the mean over an arm's seeds of one flattened key) and the report
section that renders it (`section`; a metric whose section is not registered gets a generic table).

Which metrics run comes from the config, `evaluation.metrics`: a list of names or `{name: ..., <params>}`
mappings, or null for the default set (`experiment_metrics`). A user's metric is a few lines in a
module listed under `plugins`:

    import numpy as np
    from corpuslab.evaluation.metrics import Evaluation, SplitMetric, SummaryColumn, metrics

    @metrics.register
    class WorstDocument(SplitMetric):
        name = "worst_document"
        columns = (SummaryColumn("val_worst_doc", "val_worst_document.loss", "worst val document loss"),)

        def compute(self, split, losses, log):
            per_doc = np.add.reduceat(losses.losses, losses.offsets[:-1]) / np.diff(losses.offsets)
            return Evaluation({f"{split.name}_worst_document": {"loss": float(per_doc.max())}})
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pyarrow.parquet as pq

from corpuslab.artifacts import write_json_atomic
from corpuslab.errors import ConfigError
from corpuslab.evaluation.losses import (
    TokenLosses,
    category_means,
    lm_numbers,
    position_means,
    read_doc_categories,
    token_losses,
)
from corpuslab.registry import Plugin, Registry, split_spec
from corpuslab.schema import from_dict, require, require_int
from corpuslab.tokens.stream import TokenStream

if TYPE_CHECKING:
    import torch

    from corpuslab.corpus.canaries import Canary, CanaryConfig

Log = Callable[[str], None]
SPLIT_NAMES = ("val", "test")


# ---------------------------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class SplitData:
    """One held-out split as the tokens stage wrote it: the token stream and, per document, bytes and category."""

    name: str
    stream: TokenStream
    doc_bytes: np.ndarray | None
    doc_categories: list[str | None]

    @classmethod
    def open(cls, folder: str | Path, name: str) -> SplitData:
        """The split `name` of a tokens folder (`<name>.meta.json`, `<name>.docs.parquet`, ...)."""
        prefix = Path(folder) / name
        docs = f"{prefix}.docs.parquet"
        doc_bytes = pq.read_table(docs, columns=["bytes"]).column("bytes").to_numpy()
        return cls(name, TokenStream.open(prefix), doc_bytes, read_doc_categories(docs))


@dataclass(frozen=True)
class EvalData:
    """What the metrics are computed on, besides the model.

    context: targets per evaluation window. canaries: the canaries planted in the model's training data;
    None for a model trained elsewhere (the `canaries` metric then has nothing to measure).
    task_categories: the synthetic corpus's categories (names or a count), which its built-in tasks use.
    """

    splits: Sequence[SplitData]
    context: int
    batch_size: int = 32
    max_tokens: int | None = None
    seed: int = 0
    canaries: Sequence[Canary] | None = None
    task_categories: tuple[str, ...] | int = 4


@dataclass
class Evaluation:
    """What metrics produce: `metrics` becomes metrics.json; `files` are other JSON files written next to it."""

    metrics: dict[str, Any] = field(default_factory=dict)
    files: dict[str, Any] = field(default_factory=dict)

    def add(self, other: Evaluation, by: str) -> None:
        """Merge `other` (made by metric `by`); two metrics writing one key is a config error, not a silent overwrite."""
        for mine, theirs, what in ((self.metrics, other.metrics, "metrics.json key"), (self.files, other.files, "file")):
            clash = sorted(set(mine) & set(theirs))
            if clash:
                raise ConfigError("evaluation.metrics", by, f"metrics that write different keys ({what} {clash} "
                                  "is written twice)")
            mine.update(theirs)

    def write(self, folder: str | Path) -> None:
        for name, content in self.files.items():
            write_json_atomic(Path(folder) / name, content)
        write_json_atomic(Path(folder) / "metrics.json", self.metrics)


# ---------------------------------------------------------------------------------------------- plug-in base


@dataclass(frozen=True)
class SummaryColumn:
    """A summary.tsv column a metric contributes: the mean over an arm's seeds of one aggregate key.

    key: the metrics.json path flattened with dots (`val.loss`; an entry with an `overall` part, like
    `canaries`, is flattened from that part: `canaries.exact_rate`). order: the column's place in
    summary.tsv; the report's own columns use 0-99, so a plug-in's default of 100 puts it after them.
    compare: whether arms and groups are compared on it (False for a number another column fixes, such
    as perplexity = exp(loss)).
    """

    name: str
    key: str
    label: str
    order: float = 100.0
    compare: bool = True


class Metric(Plugin, abc.ABC):
    """Base of every metric: subclass `SplitMetric` or `ModelMetric`, not this."""

    section: ClassVar[str] = ""  # the report section that renders it; "" or unregistered: a generic table
    columns: ClassVar[tuple[SummaryColumn, ...]] = ()


class SplitMetric(Metric):
    """Numbers derived from one split's per-token losses; runs on the splits in `config.splits` (None: all)."""

    def wants(self, split: str) -> bool:
        splits = getattr(self.config, "splits", None)
        return splits is None or split in splits

    @abc.abstractmethod
    def compute(self, split: SplitData, losses: TokenLosses, log: Log) -> Evaluation:
        """This metric's part of metrics.json for `split`."""


class ModelMetric(Metric):
    """Numbers that need the model itself rather than the split losses."""

    @abc.abstractmethod
    def compute(self, model: torch.nn.Module, tokenizer: Any, device: torch.device | str, data: EvalData,
                log: Log) -> Evaluation:
        """This metric's part of metrics.json."""


metrics: Registry[Metric] = Registry("metric", Metric)


# ---------------------------------------------------------------------------------------------- configs


@dataclass(frozen=True)
class SplitsConfig:
    """splits: the evaluated splits (`evaluation.splits`) this metric reads; null: all of them."""

    splits: list[str] | None = None

    def validate(self, prefix: str) -> None:
        for split in self.splits or []:
            require(split in SPLIT_NAMES, f"{prefix}.splits", self.splits, f"a list drawn from {list(SPLIT_NAMES)}")


@dataclass(frozen=True)
class ValSplitConfig(SplitsConfig):
    """splits: the evaluated splits this breakdown is computed for (`<split>_by_...` in metrics.json)."""

    splits: list[str] | None = field(default_factory=lambda: ["val"])


@dataclass(frozen=True)
class CanaryScoringConfig:
    """num_candidates: random secrets each canary is ranked against (exposure). decode_tokens: greedy tokens
    to generate; null: exactly the secret's. Both default to `canaries.*` of the experiment."""

    num_candidates: int = 1000
    decode_tokens: int | None = None

    def validate(self, prefix: str) -> None:
        require_int(self.num_candidates, f"{prefix}.num_candidates", 1)
        require_int(self.decode_tokens, f"{prefix}.decode_tokens", 1, optional=True)


@dataclass(frozen=True)
class TasksConfig:
    """tasks: zero-shot task -> examples (null: all); task_files: task -> local file. Both default to
    `evaluation.tasks` and `evaluation.task_files`."""

    tasks: dict[str, int | None] = field(default_factory=dict)
    task_files: dict[str, str] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------- built-in metrics


def _lm_columns() -> tuple[SummaryColumn, ...]:
    # The order of earlier releases' summary.tsv: val_loss val_ppl val_bpb test_loss test_ppl test_bpb.
    numbers = (("loss", "loss", "loss", True), ("ppl", "perplexity", "perplexity", False),
               ("bpb", "bits_per_byte", "bits per byte", True))
    return tuple(SummaryColumn(f"{split}_{short}", f"{split}.{key}", f"{split} {label}", order=40 + 3 * i + j,
                               compare=compare)
                 for i, split in enumerate(SPLIT_NAMES) for j, (short, key, label, compare) in enumerate(numbers))


@metrics.register
class LanguageModeling(SplitMetric):
    """Loss (nats per token), perplexity and bits per byte of each split (method: `evaluation.losses`)."""

    name = "lm"
    Config = SplitsConfig
    section = "metrics"
    columns = _lm_columns()

    def compute(self, split: SplitData, losses: TokenLosses, log: Log) -> Evaluation:
        numbers = lm_numbers(losses, split.doc_bytes)
        bits = numbers["bits_per_byte"]
        log(f"  {split.name}: loss {numbers['loss']:.4f}  ppl {numbers['perplexity']:.2f}  "
            f"bpb {'–' if bits is None else f'{bits:.4f}'} ({numbers['docs']} docs)")
        return Evaluation({split.name: numbers})


@metrics.register
class InContext(SplitMetric):
    """Mean loss at each position of the evaluation window: the in-context learning curve."""

    name = "in_context"
    Config = ValSplitConfig
    section = "in_context"

    def compute(self, split: SplitData, losses: TokenLosses, log: Log) -> Evaluation:
        return Evaluation({f"{split.name}_by_position": position_means(losses)})


@metrics.register
class Categories(SplitMetric):
    """The loss split by each token's document category: {category: {loss, tokens, docs}}."""

    name = "categories"
    Config = ValSplitConfig
    section = "categories"

    def compute(self, split: SplitData, losses: TokenLosses, log: Log) -> Evaluation:
        return Evaluation({f"{split.name}_by_category": category_means(losses, split.doc_categories)})


@metrics.register
class Canaries(ModelMetric):
    """Memorization of the planted canaries: exact extraction and exposure (`evaluation.memorization`).
    Writes the per-canary results to canaries.json next to metrics.json."""

    name = "canaries"
    Config = CanaryScoringConfig
    section = "canaries"
    columns = (SummaryColumn("canary_exact_rate", "canaries.exact_rate", "canary exact rate", order=50),
               SummaryColumn("canary_mean_exposure", "canaries.mean_exposure", "canary mean exposure", order=51))

    def compute(self, model: torch.nn.Module, tokenizer: Any, device: torch.device | str, data: EvalData,
                log: Log) -> Evaluation:
        from corpuslab.corpus.canaries import CanaryConfig
        from corpuslab.evaluation import memorization

        if data.canaries is None:
            log("  canaries: none planted in this model's training data, not measured")
            return Evaluation()
        scoring = CanaryConfig(num_candidates=self.config.num_candidates, decode_tokens=self.config.decode_tokens)
        results = memorization.measure_memorization(
            model, lambda s: tokenizer(s, add_special_tokens=False)["input_ids"], tokenizer.decode,
            data.canaries, scoring, device=device, seed=data.seed,
        )
        summary = {"overall": memorization.overall(results), "by_copies": memorization.summarize(results)}
        by_copies = ", ".join(f"{g['copies']} {'copy' if g['copies'] == 1 else 'copies'} {g['mean_exposure']:.2f}"
                              for g in summary["by_copies"])
        log(f"  canaries: {len(results)} scored, {summary['overall']['exact_rate']:.0%} extracted exactly; "
            f"mean exposure {summary['overall']['mean_exposure']:.2f} bits ({by_copies})")
        return Evaluation({"canaries": summary}, {"canaries.json": results})


@metrics.register
class Tasks(ModelMetric):
    """Zero-shot downstream tasks, scored as lm-evaluation-harness scores them (`evaluation.tasks`)."""

    name = "tasks"
    Config = TasksConfig
    section = "tasks"

    def compute(self, model: torch.nn.Module, tokenizer: Any, device: torch.device | str, data: EvalData,
                log: Log) -> Evaluation:
        from corpuslab.evaluation.tasks import TaskConfig, evaluate_tasks

        if not self.config.tasks:
            log("  tasks: none configured (evaluation.tasks is empty)")
            return Evaluation()
        task_cfg = from_dict(TaskConfig, {"tasks": self.config.tasks, "data_files": self.config.task_files,
                                          "categories": data.task_categories, "batch_size": data.batch_size},
                             "evaluation")
        results = evaluate_tasks(model, tokenizer, task_cfg, device, seed=data.seed)
        for task, scores in results.items():
            # Subtasks (BLiMP's 67 paradigms, MMLU's 57 subjects) would drown the log; their group is `blimp`, `mmlu`.
            if not task.startswith(("blimp_", "mmlu_")) or task in self.config.tasks:
                log(f"  {task}: {format_scores(scores)}")
        return Evaluation({"tasks": results})


def format_scores(scores: dict[str, Any]) -> str:
    """'acc 0.125  acc_norm 0.250 (8 examples)': a task's scores for a log line, with their precision."""
    shown = []
    for key, value in scores.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or key.endswith("stderr"):
            continue
        if key in ("n", "examples", "num_examples", "samples"):
            continue
        shown.append(f"{key} {value:.3g}" if "perplexity" in key or abs(value) >= 1000 else f"{key} {value:.3f}")
    count = next((scores[k] for k in ("n", "examples", "num_examples", "samples") if isinstance(scores.get(k), int)), None)
    return "  ".join(shown) + (f" ({count:,} examples)" if count is not None else "")


# ---------------------------------------------------------------------------------------------- running them

# metrics.json keys follow this order, which is that of earlier releases: val, val_by_position, ..., tasks, canaries.
DEFAULT_METRICS = ("lm", "in_context", "categories", "tasks", "canaries")


def build_metrics(specs: Sequence[str | dict[str, Any]] | None, key: str = "evaluation.metrics",
                  shared: Mapping[str, dict[str, Any]] | None = None) -> list[Metric]:
    """Metric plug-ins from config specs (a name, or `{name: ..., <params>}`); None gives `DEFAULT_METRICS`.
    `shared[name]` are experiment-wide parameters of metric `name` that its spec overrides key by key."""
    if specs is None:
        specs = DEFAULT_METRICS
    if not isinstance(specs, (list, tuple)):
        raise ConfigError(key, specs, "a list of metric names or {name: ..., <params>} mappings, or null")
    built = []
    for index, spec in enumerate(specs):
        name, _ = split_spec(spec, f"{key}[{index}]")
        metric = metrics.build(spec, f"{key}[{index}]", defaults=(shared or {}).get(name))
        if not isinstance(metric, (SplitMetric, ModelMetric)):
            raise ConfigError(f"{key}[{index}]", name, "a metric subclassing SplitMetric or ModelMetric")
        built.append(metric)
    return built


def experiment_metrics(evaluation: Any, canaries: CanaryConfig) -> list[Metric]:
    """The metrics an experiment's config asks for: `evaluation.metrics`, or by default lm, in_context,
    categories, tasks (when `evaluation.tasks` names any) and canaries. `canaries.num_candidates` /
    `decode_tokens` and `evaluation.tasks` / `task_files` are the defaults of those metrics' parameters."""
    shared = {
        "tasks": {"tasks": dict(evaluation.tasks), "task_files": dict(evaluation.task_files)},
        "canaries": {"num_candidates": canaries.num_candidates, "decode_tokens": canaries.decode_tokens},
    }
    specs = getattr(evaluation, "metrics", None)
    if specs is None:
        specs = [name for name in DEFAULT_METRICS if name != "tasks" or evaluation.tasks]
    return build_metrics(specs, "evaluation.metrics", shared)


def evaluate_model(model: torch.nn.Module, tokenizer: Any, device: torch.device | str, data: EvalData,
                   metrics_to_run: Sequence[Metric], log: Log = print) -> Evaluation:
    """Run `metrics_to_run` on `model`: per split that any split metric wants, one pass of per-token losses
    that every split metric derives from; then the model-level metrics. Each kind runs in list order."""
    result = Evaluation()
    split_metrics = [m for m in metrics_to_run if isinstance(m, SplitMetric)]
    for split in data.splits:
        wanted = [m for m in split_metrics if m.wants(split.name)]
        if not wanted:
            continue
        losses = token_losses(model, split.stream, data.context, data.batch_size, data.max_tokens, device)
        for metric in wanted:
            result.add(metric.compute(split, losses, log), metric.name)
    _log_unevaluated_splits(split_metrics, data, log)
    for metric in metrics_to_run:
        if isinstance(metric, ModelMetric):
            result.add(metric.compute(model, tokenizer, device, data, log), metric.name)
    return result


def _log_unevaluated_splits(split_metrics: Sequence[SplitMetric], data: EvalData, log: Log) -> None:
    """A metric asked for a split the evaluation does not score: say so rather than leave its numbers out silently."""
    evaluated = {split.name for split in data.splits}
    for metric in split_metrics:
        missing = [s for s in (getattr(metric.config, "splits", None) or []) if s not in evaluated]
        if missing:
            log(f"  {metric.name}: split {', '.join(missing)} not evaluated (evaluation.splits), left out")


from corpuslab.evaluation import category_curves  # noqa: E402, F401  (registers `category_context`)
