"""The experiment config: YAML files merged in order, dotted overrides last, validated before any work.

Each concern owns its dataclass (`SplitConfig` in split.py, `MinHashConfig` next to MinHash, ...);
`ExperimentConfig` only composes them and checks what spans sections (a chunk longer than the model's
context, an arm whose recipe needs settings that are missing).
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml

from corpuslab.corpus.canary_config import CanaryConfig
from corpuslab.corpus.split import SplitConfig
from corpuslab.curation.dedup.config import MinHashConfig, NormalizeConfig
from corpuslab.errors import ConfigError, InputError
from corpuslab.paths import check_url
from corpuslab.ray_executor import INSTALL_HINT, RayConfig, ray_installed
from corpuslab.registry import split_spec
from corpuslab.schema import from_dict, require, to_dict
from corpuslab.sources.hf import HFConfig
from corpuslab.sources.local import LocalConfig
from corpuslab.sources.synthetic import SyntheticConfig
from corpuslab.stage_cache import CacheConfig
from corpuslab.tokens.tokenizer import TokenizerConfig
from corpuslab.training.config import ModelConfig, TrainingConfig


@dataclass(frozen=True)
class DatasetConfig:
    """Where documents come from: the built-in `synthetic` corpus, `local` files or a Hugging Face (`hf`) dataset.

    max_docs caps how many documents are ingested (after bad-input skips), whatever the source.
    """

    source: str | dict[str, Any] = "synthetic"  # a registered source by name, or {name: ..., its parameters}
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    local: LocalConfig | None = None
    hf: HFConfig | None = None
    max_docs: int | None = None

    @property
    def source_name(self) -> str:
        return split_spec(self.source, "dataset.source")[0]

    def validate(self, prefix: str = "dataset") -> None:
        from corpuslab.sources.base import sources

        name, params = split_spec(self.source, f"{prefix}.source")
        cls = sources.get(name, f"{prefix}.source")  # an unknown source lists the known ones
        if params:
            from_dict(cls.Config, params, f"{prefix}.source")
        elif name in ("local", "hf"):
            require(getattr(self, name) is not None, f"{prefix}.{name}", None,
                    f"a `{name}:` section when source is '{name}' (" + ("paths" if name == "local" else "name") + ")")
        require(self.max_docs is None or self.max_docs > 0, f"{prefix}.max_docs", self.max_docs, "a positive integer or null")


@dataclass(frozen=True)
class CurationConfig:
    """Settings shared by every arm; an arm may override `minhash` keys.

    decontaminate: remove val/test documents that duplicate a train document before any arm trains
    (`near` = exact and near duplicates, `exact` = exact only, `none` = keep them).
    executor: where per-shard work runs: `local` (a pool of `workers` processes) or `ray` (Ray tasks, with
    the `ray` section's settings), by name or `{name: ray, address: auto}`. It never changes results, so it
    is not part of any stage's fingerprint.
    spill_dir: the folder under which near dedup's LSH join spills its band keys (a temporary folder per
    run, removed after). Every executor worker writes there, so on a multi-node Ray cluster it must be
    storage every node mounts. Null: the system's temporary folder. Not fingerprinted: results are the same.
    """

    normalize: NormalizeConfig = field(default_factory=NormalizeConfig)
    minhash: MinHashConfig = field(default_factory=MinHashConfig)
    decontaminate: Literal["none", "exact", "near"] = "near"
    workers: int | None = None
    executor: str | dict[str, Any] = "local"
    ray: RayConfig = field(default_factory=RayConfig)
    spill_dir: str | None = None

    def validate(self, prefix: str = "curation") -> None:
        from corpuslab.executor import executors

        if self.spill_dir is not None:
            require(bool(self.spill_dir.strip()) and "://" not in self.spill_dir, f"{prefix}.spill_dir", self.spill_dir,
                    "a local or mounted folder path (every worker writes there; not a URL), or null for the system's temporary folder")
            require(not Path(self.spill_dir).exists() or Path(self.spill_dir).is_dir(), f"{prefix}.spill_dir", self.spill_dir,
                    "a folder (or a path where one can be made); this is an existing file")

        name, params = split_spec(self.executor, f"{prefix}.executor")
        cls = executors.get(name, f"{prefix}.executor")  # an unknown executor lists the known ones
        if params:
            from_dict(cls.Config, params, f"{prefix}.executor")
        if name == "ray" and not ray_installed():
            raise ConfigError(f"{prefix}.executor", "ray", INSTALL_HINT)


@dataclass(frozen=True)
class RunConfig:
    """One arm of the experiment: a curation recipe applied to the shared train split, then trained.

    recipe: a registered recipe (`none`, `exact`, `near`, or your own), by name or as a mapping
    `{name: near, minhash: {threshold: 0.9}}`; its parameters may also sit on the arm itself
    (`{name: near_0.9, recipe: near, minhash: {threshold: 0.9}}`). Parameters the arm does not give come
    from the experiment-wide `curation` section (`normalize`, `minhash`). level: `doc` curates whole
    documents, `chunk` the fixed-length training windows. procedure: the training procedure (default
    `standard`), by name or mapping. group: arms of one group are replicates of one setting (a sweep
    fills it in); the report pools them.
    """

    EXTRA_FIELD: ClassVar[str] = "params"  # keys the arm does not know are the recipe's parameters

    name: str
    recipe: str | dict[str, Any] = "none"
    level: Literal["doc", "chunk"] = "doc"
    procedure: str | dict[str, Any] | None = None
    group: str | None = None
    params: dict[str, Any] = field(default_factory=dict)

    def validate(self, prefix: str) -> None:
        require(bool(self.name) and "/" not in self.name, f"{prefix}.name", self.name, "a non-empty name without '/'")

    @property
    def group_name(self) -> str:
        return self.group or self.name


@dataclass(frozen=True)
class SweepConfig:
    """A grid of arms. `arm` is an arm without its name (recipe, level, procedure, recipe parameters);
    `grid` maps dotted keys inside the arm to lists of values, one group per combination; `replicates`
    does the same for the axes pooled inside each group (curation-time seeds such as `minhash.seed`, a
    sampler's seed). Arms are named `<name>-<key><value>...`; replicates add `-<key><value>`.

        sweeps:
          - name: near
            arm: {recipe: near}
            grid: {minhash.threshold: [0.8, 0.9]}
            replicates: {minhash.seed: [1, 2, 3]}
    """

    name: str
    arm: dict[str, Any] = field(default_factory=dict)
    grid: dict[str, list[Any]] = field(default_factory=dict)
    replicates: dict[str, list[Any]] = field(default_factory=dict)

    def validate(self, prefix: str) -> None:
        require(bool(self.name) and "/" not in self.name, f"{prefix}.name", self.name, "a non-empty name without '/'")
        require("name" not in self.arm, f"{prefix}.arm.name", self.arm.get("name"), "no name: arms are named by the sweep")
        for axes, label in ((self.grid, "grid"), (self.replicates, "replicates")):
            for dotted, values in axes.items():
                require(len(values) > 0, f"{prefix}.{label}.{dotted}", values, "a non-empty list of values")

    def arms(self) -> list[dict[str, Any]]:
        """The arms this sweep expands into, as raw arm mappings (validated with the other arms)."""
        out = []
        for point in _product(self.grid):
            group = _label(self.name, point)
            for replicate in _product(self.replicates):
                arm = copy.deepcopy(self.arm)
                for dotted, value in {**point, **replicate}.items():
                    apply_override(arm, f"{dotted}={yaml.safe_dump(value, default_flow_style=True).strip()}")
                out.append({**arm, "name": _label(group, replicate), "group": group})
        return out


def _product(axes: dict[str, list[Any]]) -> list[dict[str, Any]]:
    points: list[dict[str, Any]] = [{}]
    for dotted, values in axes.items():
        points = [{**point, dotted: value} for point in points for value in values]
    return points


def _label(prefix: str, point: dict[str, Any]) -> str:
    return "-".join([prefix] + [f"{dotted.split('.')[-1]}{value}" for dotted, value in point.items()])


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
    tasks: dict[str, int | None] | None = None  # null: the synthetic tasks on the synthetic corpus, none otherwise
    task_files: dict[str, str] = field(default_factory=dict)
    metrics: list[str | dict[str, Any]] | None = None  # registered metrics to compute; null = the default set

    def task_config(self, categories: tuple[str, ...] | int) -> Any:
        from corpuslab.evaluation.tasks import TaskConfig

        return from_dict(TaskConfig, {"tasks": self.tasks or {}, "data_files": self.task_files, "categories": categories,
                                      "batch_size": self.batch_size}, "evaluation")

    def validate(self, prefix: str = "evaluation") -> None:
        require(self.batch_size > 0, f"{prefix}.batch_size", self.batch_size, "a positive integer")
        require(self.max_tokens is None or self.max_tokens > 0, f"{prefix}.max_tokens", self.max_tokens, "a positive integer or null")
        for split in self.splits:
            require(split in ("val", "test"), f"{prefix}.splits", self.splits, "a list drawn from 'val', 'test'")
        for task, path in self.task_files.items():
            require(Path(path).is_file(), f"{prefix}.task_files.{task}", path, "a JSONL or Parquet file that exists")
        if self.metrics is not None:  # names and parameters checked now (the default set needs no check)
            from corpuslab.evaluation.metrics import build_metrics

            build_metrics(self.metrics, f"{prefix}.metrics")
        self.task_config(4)  # names, counts and files are checked now, before any work


SYNTHETIC_TASKS = {"synthetic_cloze": 200, "synthetic_choice": 200}


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
    sweeps: list[SweepConfig] = field(default_factory=list)  # expanded into `runs` at load
    seeds: list[int] | None = None
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    plugins: list[str] = field(default_factory=list)  # your modules (files or importable names) that register plug-ins
    cache: CacheConfig = field(default_factory=CacheConfig)  # a shared stage cache (s3://...), see corpuslab.stage_cache

    def __post_init__(self) -> None:
        # `evaluation.tasks: null` means: the built-in synthetic tasks when the corpus is the synthetic one
        # (they are written in its categories), no tasks otherwise, where they would score noise.
        if self.evaluation.tasks is None:
            auto = dict(SYNTHETIC_TASKS) if self.dataset.source_name == "synthetic" else {}
            object.__setattr__(self, "evaluation", dataclasses.replace(self.evaluation, tasks=auto))

    @property
    def replicate_seeds(self) -> list[int]:
        """Training replicates per arm: each seed sets the model's initialisation and the data order
        (it replaces `training.seed`); the corpus, split and curation use `seed` alone, so every
        replicate of every arm sees the same decisions."""
        return list(self.seeds) if self.seeds else [self.seed]

    def validate(self, prefix: str = "") -> None:
        require(bool(self.experiment) and "/" not in self.experiment, "experiment", self.experiment, "a non-empty name without '/'")
        require(len(self.runs) > 0, "runs", self.runs, "a list of at least one arm, e.g. [{name: no_dedup, recipe: none}]")
        check_url("output_dir", self.output_dir)  # a URL's package (s3fs for s3://) is installed
        if self.seeds is not None:
            require(len(self.seeds) > 0 and len(set(self.seeds)) == len(self.seeds), "seeds", self.seeds,
                    "a non-empty list of distinct integers, or null for [seed]")
        names = [run.name for run in self.runs]
        require(len(set(names)) == len(names), "runs", names, "arms with distinct names")
        for index in range(len(self.runs)):
            self.arm_recipe(index)  # an arm's recipe, procedure and their parameters are checked now, not when it runs
            self.arm_procedure(index)
        context = self.model.resolved().context
        require(
            self.training.chunk_len <= context,
            "training.chunk_len",
            self.training.chunk_len,
            f"at most the model context ({context}, model.context)",
        )

    def arm_recipe(self, index: int):
        """The recipe of arm `index`, its parameters merged over the experiment-wide `curation` settings."""
        from corpuslab.curation.recipes import recipes

        run, key = self.runs[index], f"runs[{index}]"
        name, params = split_spec(run.recipe, f"{key}.recipe")
        cls = recipes.get(name, f"{key}.recipe" + (".name" if isinstance(run.recipe, dict) else ""))
        known = {f.name for f in dataclasses.fields(cls.Config)}
        shared = {"normalize": to_dict(self.curation.normalize), "minhash": to_dict(self.curation.minhash),
                  "truth_threshold": self.curation.minhash.threshold}
        for inline in run.params:
            if inline not in known:
                arm_keys = sorted(f.name for f in dataclasses.fields(RunConfig) if f.name != "params")
                raise ConfigError(f"{key}.{inline}", run.params[inline],
                                  f"one of the arm's keys {arm_keys} or the '{name}' recipe's parameters {sorted(known)}")
        merged = deep_merge(deep_merge({k: v for k, v in shared.items() if k in known}, run.params), params)
        return cls.from_params(merged, key if run.params or not isinstance(run.recipe, dict) else f"{key}.recipe")

    def arm_procedure(self, index: int):
        """The training procedure of arm `index` (`standard` unless the arm names another)."""
        from corpuslab.training.procedures import procedures

        return procedures.build(self.runs[index].procedure, f"runs[{index}].procedure", default="standard")


def default_config_path() -> Path:
    return Path(str(resources.files("corpuslab") / "configs" / "default.yaml"))


def load_config(paths: list[str] | None = None, overrides: list[str] | None = None, defaults: bool = True) -> ExperimentConfig:
    """Layer the YAML files in order on the built-in default (`defaults=False`: on nothing), apply
    `key.path=value` overrides, load the `plugins` modules they name, expand `sweeps` into arms, validate.

    Relative input paths inside a file (local data, task files, a tokenizer folder, plugin files) are
    resolved against that file's folder, so a config works from any working directory; paths given as
    command-line overrides are resolved against the working directory."""
    merged: dict[str, Any] = {}
    plugin_dirs: dict[str, Path] = {}  # a plugin file named in a config resolves against that config's folder
    default = str(default_config_path())
    files = ([default] if defaults else []) + [p for p in paths or [] if not _same_file(p, default)]
    for path in files:
        data = read_yaml(Path(path))
        folder = Path(path).resolve().parent
        _resolve_input_paths(data, folder)
        for plugin in data.get("plugins", None) or []:
            plugin_dirs.setdefault(str(plugin), folder)
        merged = deep_merge(merged, data)
    for override in overrides or []:
        apply_override(merged, override)
    load_plugins(merged.get("plugins") or [], plugin_dirs)
    merged = expand_sweeps(merged)
    return from_dict(ExperimentConfig, merged, "")


def _same_file(a: str, b: str) -> bool:
    return Path(a).resolve() == Path(b).resolve()


# Config keys holding input paths, resolved against the folder of the file that sets them.
_PATH_LISTS = (("dataset", "local", "paths"),)
_PATH_MAPS = (("evaluation", "task_files"),)
_PATH_SCALARS = (("dataset", "hf", "data_files"), ("tokenizer", "name"))


def _resolve_input_paths(data: dict[str, Any], folder: Path) -> None:
    def node(keys: tuple[str, ...]) -> tuple[dict[str, Any] | None, str]:
        current: Any = data
        for key in keys[:-1]:
            current = current.get(key) if isinstance(current, dict) else None
        return (current if isinstance(current, dict) else None), keys[-1]

    def resolve(value: Any, must_exist: bool = False) -> Any:
        if not isinstance(value, str) or not value or "://" in value or Path(value).is_absolute():
            return value
        candidate = folder / value
        if must_exist and not candidate.exists():  # a hub name such as `gpt2`, not a path
            return value
        return str(candidate)

    for keys in _PATH_LISTS:
        parent, last = node(keys)
        if parent is not None and isinstance(parent.get(last), list):
            parent[last] = [resolve(v) for v in parent[last]]
        elif parent is not None and isinstance(parent.get(last), str):
            parent[last] = resolve(parent[last])
    for keys in _PATH_MAPS:
        parent, last = node(keys)
        if parent is not None and isinstance(parent.get(last), dict):
            parent[last] = {k: resolve(v) for k, v in parent[last].items()}
    for keys in _PATH_SCALARS:
        parent, last = node(keys)
        if parent is not None and last in parent:
            value = parent[last]
            parent[last] = [resolve(v, True) for v in value] if isinstance(value, list) else resolve(value, True)


def load_plugins(plugins: Any, base_dirs: dict[str, Path] | None = None) -> None:
    """Import each plugin module (a .py file, or an importable module name) so its registrations take effect."""
    from corpuslab.plugins import load_plugin

    if not isinstance(plugins, list):
        raise ConfigError("plugins", plugins, "a list of Python files or importable module names")
    for index, plugin in enumerate(plugins):
        if not isinstance(plugin, str) or not plugin:
            raise ConfigError(f"plugins[{index}]", plugin, "a Python file path or an importable module name")
        load_plugin(plugin, (base_dirs or {}).get(plugin), f"plugins[{index}]")


def expand_sweeps(merged: dict[str, Any]) -> dict[str, Any]:
    """`sweeps` become arms appended to `runs` (validated like hand-written arms); the sweeps stay for the record."""
    sweeps = merged.get("sweeps") or []
    if not sweeps:
        return merged
    if not isinstance(sweeps, list):
        raise ConfigError("sweeps", sweeps, "a list of sweeps, each with name, arm, grid and replicates")
    runs = list(merged.get("runs") or [])
    for index, raw in enumerate(sweeps):
        runs += from_dict(SweepConfig, raw, f"sweeps[{index}]").arms()
    return {**merged, "runs": runs}


def read_yaml(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise InputError(str(path), "config file not found")
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_StrictLoader)  # noqa: S506 (a SafeLoader subclass)
    except DuplicateKeyError as err:
        raise InputError(str(path), f"key '{err.key}' is given twice (lines {err.first_line} and {err.line}); "
                         "the second would silently replace the first: merge them into one", err.line) from None
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


class DuplicateKeyError(yaml.YAMLError):
    def __init__(self, key: str, first_line: int, line: int):
        super().__init__(f"duplicate key {key!r}")
        self.key, self.first_line, self.line = key, first_line, line


class _StrictLoader(yaml.SafeLoader):
    """yaml.safe_load, except that a key given twice in one mapping is an error instead of last-wins."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise DuplicateKeyError(str(key), seen[key], line)
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


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
