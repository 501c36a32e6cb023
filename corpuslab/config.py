"""The experiment config: YAML files merged in order, dotted overrides last, validated before any work.

Each concern owns its dataclass (`SplitConfig` in split.py, `MinHashConfig` next to MinHash, ...);
`ExperimentConfig` only composes them and checks what spans sections (a chunk longer than the model's
context, an arm whose recipe needs settings that are missing).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml

from corpuslab.corpus.canaries import CanaryConfig
from corpuslab.corpus.split import SplitConfig
from corpuslab.curation.dedup.minhash import MinHashConfig
from corpuslab.curation.dedup.normalize import NormalizeConfig
from corpuslab.errors import ConfigError, InputError
from corpuslab.schema import from_dict, require, to_dict
from corpuslab.sources.hf import HFConfig
from corpuslab.sources.local import LocalConfig
from corpuslab.sources.synthetic import SyntheticConfig
from corpuslab.tokens.tokenizer import TokenizerConfig
from corpuslab.training.model import ModelConfig
from corpuslab.training.trainer import TrainingConfig


@dataclass(frozen=True)
class DatasetConfig:
    """Where documents come from: the built-in `synthetic` corpus, `local` files or a Hugging Face (`hf`) dataset.

    max_docs caps how many documents are ingested (after bad-input skips), whatever the source.
    """

    source: Literal["synthetic", "local", "hf"] = "synthetic"
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    local: LocalConfig | None = None
    hf: HFConfig | None = None
    max_docs: int | None = None

    def validate(self, prefix: str = "dataset") -> None:
        if self.source == "local":
            require(self.local is not None, f"{prefix}.local", None, "a `local:` section with `paths` when source is 'local'")
        if self.source == "hf":
            require(self.hf is not None, f"{prefix}.hf", None, "an `hf:` section with `name` when source is 'hf'")
        require(self.max_docs is None or self.max_docs > 0, f"{prefix}.max_docs", self.max_docs, "a positive integer or null")


@dataclass(frozen=True)
class CurationConfig:
    """Settings shared by every arm; an arm may override `minhash` keys.

    decontaminate: remove val/test documents that duplicate a train document before any arm trains
    (`near` = exact and near duplicates, `exact` = exact only, `none` = keep them).
    """

    normalize: NormalizeConfig = field(default_factory=NormalizeConfig)
    minhash: MinHashConfig = field(default_factory=MinHashConfig)
    decontaminate: Literal["none", "exact", "near"] = "near"
    workers: int | None = None


@dataclass(frozen=True)
class RunConfig:
    """One arm of the experiment: a curation recipe applied to the shared train split.

    recipe: `none` keeps everything, `exact` drops all but the earliest copy of identical normalized
    text, `near` runs `exact` then MinHash LSH with verified Jaccard. level: `doc` dedups whole
    documents, `chunk` dedups the fixed-length training windows. minhash: keys of `curation.minhash`
    to change for this arm only (e.g. `{threshold: 0.9}`).
    """

    name: str
    recipe: Literal["none", "exact", "near"] = "none"
    level: Literal["doc", "chunk"] = "doc"
    minhash: dict[str, Any] = field(default_factory=dict)

    def validate(self, prefix: str) -> None:
        require(bool(self.name) and "/" not in self.name, f"{prefix}.name", self.name, "a non-empty name without '/'")


@dataclass(frozen=True)
class EvaluationConfig:
    """batch_size: windows (or task requests) per forward pass. max_tokens: cap on val/test tokens evaluated
    (whole documents are kept so bits per byte stays exact). splits: which held-out splits to score.
    tasks: zero-shot task -> number of examples (null = all), scored as lm-evaluation-harness scores them:
    lambada_openai, piqa, hellaswag, arc_easy, arc_challenge, winogrande, blimp (or blimp_<paradigm>), and
    the built-in synthetic_cloze / synthetic_choice. task_files: task -> local JSONL/Parquet file with the
    Hugging Face dataset's fields, used instead of the hub.
    """

    batch_size: int = 32
    max_tokens: int | None = 200_000
    splits: list[str] = field(default_factory=lambda: ["val", "test"])
    tasks: dict[str, int | None] = field(default_factory=dict)
    task_files: dict[str, str] = field(default_factory=dict)

    def task_config(self, categories: tuple[str, ...] | int) -> Any:
        from corpuslab.evaluation.tasks import TaskConfig

        return from_dict(TaskConfig, {"tasks": self.tasks, "data_files": self.task_files, "categories": categories,
                                      "batch_size": self.batch_size}, "evaluation")

    def validate(self, prefix: str = "evaluation") -> None:
        require(self.batch_size > 0, f"{prefix}.batch_size", self.batch_size, "a positive integer")
        require(self.max_tokens is None or self.max_tokens > 0, f"{prefix}.max_tokens", self.max_tokens, "a positive integer or null")
        for split in self.splits:
            require(split in ("val", "test"), f"{prefix}.splits", self.splits, "a list drawn from 'val', 'test'")
        self.task_config(4)  # names, counts and files are checked now, before any work


@dataclass(frozen=True)
class LoggingConfig:
    """Optional experiment tracking. wandb: send training curves to Weights & Biases (needs `pip install
    wandb`); never part of a stage fingerprint, so turning it on retrains nothing (cached arms log nothing).
    """

    wandb: bool = False
    project: str = "corpuslab"
    mode: Literal["online", "offline", "disabled"] = "online"

    def validate(self, prefix: str = "logging") -> None:
        if self.wandb:
            from corpuslab.training.tracking import require_wandb

            require_wandb()


@dataclass(frozen=True)
class ExperimentConfig:
    experiment: str = "default"
    seed: int = 0
    output_dir: str = "outputs"
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    curation: CurationConfig = field(default_factory=CurationConfig)
    canaries: CanaryConfig = field(default_factory=CanaryConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    runs: list[RunConfig] = field(default_factory=list)
    seeds: list[int] | None = None
    logging: LoggingConfig = field(default_factory=LoggingConfig)

    @property
    def replicate_seeds(self) -> list[int]:
        """Training replicates per arm: each seed sets the model's initialisation and the data order
        (it replaces `training.seed`); the corpus, split and curation use `seed` alone, so every
        replicate of every arm sees the same decisions."""
        return list(self.seeds) if self.seeds else [self.seed]

    def validate(self, prefix: str = "") -> None:
        require(bool(self.experiment) and "/" not in self.experiment, "experiment", self.experiment, "a non-empty name without '/'")
        require(len(self.runs) > 0, "runs", self.runs, "a list of at least one arm, e.g. [{name: no_dedup, recipe: none}]")
        if self.seeds is not None:
            require(len(self.seeds) > 0 and len(set(self.seeds)) == len(self.seeds), "seeds", self.seeds,
                    "a non-empty list of distinct integers, or null for [seed]")
        names = [run.name for run in self.runs]
        require(len(set(names)) == len(names), "runs", names, "arms with distinct names")
        for index in range(len(self.runs)):
            self.arm_minhash(index)  # an arm's minhash overrides are checked now, not when it runs
        context = self.model.resolved().context
        require(
            self.training.chunk_len <= context,
            "training.chunk_len",
            self.training.chunk_len,
            f"at most the model context ({context}, model.context)",
        )

    def arm_minhash(self, index: int) -> MinHashConfig:
        """The MinHash settings of arm `index`: `curation.minhash` with the arm's overrides applied."""
        run = self.runs[index]
        merged = {**to_dict(self.curation.minhash), **run.minhash}
        return from_dict(MinHashConfig, merged, f"runs[{index}].minhash")


def default_config_path() -> Path:
    return Path(str(resources.files("corpuslab") / "configs" / "default.yaml"))


def load_config(paths: list[str] | None = None, overrides: list[str] | None = None) -> ExperimentConfig:
    """Merge the YAML files in order (the built-in default when none), apply `key.path=value` overrides, validate."""
    merged: dict[str, Any] = {}
    for path in paths or [str(default_config_path())]:
        merged = deep_merge(merged, read_yaml(Path(path)))
    for override in overrides or []:
        apply_override(merged, override)
    return from_dict(ExperimentConfig, merged, "")


def read_yaml(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise InputError(str(path), "config file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        raise InputError(str(path), f"not valid YAML: {getattr(err, 'problem', err)}", mark.line + 1 if mark else None) from err
    except UnicodeDecodeError as err:
        raise InputError(str(path), f"not UTF-8 text ({err.reason} at byte {err.start})") from err
    except OSError as err:
        raise InputError(str(path), f"cannot read the config file ({err.strerror})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InputError(str(path), f"expected a mapping of config keys at the top level, got {type(data).__name__}")
    return data


def deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Mappings merge key by key; everything else (lists included) is replaced by the later value."""
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def apply_override(config: dict[str, Any], override: str) -> None:
    """Apply `a.b.c=value` (value parsed as YAML; list items by index, e.g. `runs.2.minhash.threshold=0.9`)."""
    if "=" not in override:
        raise ConfigError(override, override, "an override of the form key.path=value")
    dotted, raw = override.split("=", 1)
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        value = raw
    keys = dotted.strip().split(".")
    node: Any = config
    for depth, key in enumerate(keys[:-1]):
        node = _descend(node, key, ".".join(keys[: depth + 1]))
    last = keys[-1]
    if isinstance(node, list):
        index = _list_index(node, last, dotted)
        node[index] = value
    else:
        node[last] = value


def _descend(node: Any, key: str, path: str) -> Any:
    if isinstance(node, list):
        return node[_list_index(node, key, path)]
    if not isinstance(node, dict):
        raise ConfigError(path, node, "a mapping to set keys in")
    if not isinstance(node.get(key), (dict, list)):
        node[key] = {}
    return node[key]


def _list_index(node: list, key: str, path: str) -> int:
    if not key.isdigit() or int(key) >= len(node):
        raise ConfigError(path, key, f"a list index below {len(node)}")
    return int(key)


def dump_config(cfg: ExperimentConfig) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)
