"""The compression experiment: one config, fingerprinted stages, one results row per run.

    bytes (per training size)  ->  per run: train -> evaluate  ->  runs.tsv, results.json, report.html

- bytes: the leading N bytes of `dataset` cut into chunks (`data`), written as uint8 token streams, and the
  gzip / bzip2 / xz / zstd baselines on exactly the training bytes. Validation and test are the source's own
  splits when it has them, else the bytes after the training bytes (`data.held_out`; the manifest and every
  results row say which).
- train: the run's procedure (vanilla / rl1 / drr / pmmp, or any registered compression procedure) for the
  updates its phases make; `use_pretrained_model` starts from an earlier run's final model and pruning mask
  (`mask.safetensors`: what it pruned stays zero and masked); `max_runtime`
  saves the state and stops the run cleanly (a rerun continues it), `checkpoint_time` saves every N seconds.
- evaluate: test and train bits per byte, non-zero parameters, model bytes, description length, ratios.

The training loop is corpuslab's (`training.trainer.train`): the same resume, checkpoints and callbacks.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from corpuslab.artifacts import Stage, StageRunner, exclusive_lock, write_json_atomic
from corpuslab.atomic import write_text_atomic
from corpuslab.config import DatasetConfig, _resolve_input_paths, apply_override, deep_merge, load_plugins, read_yaml
from corpuslab.errors import ConfigError, CorpuslabError
from corpuslab.paths import check_url, is_url, join, local_output_dir, publish, relocate, staged_locations
from corpuslab.schema import from_dict, require, to_dict
from corpuslab.stage_cache import CacheConfig, open_cache
from corpuslab.training.callbacks import Callback
from corpuslab.training.config import ModelConfig, TrainingConfig

from . import packaged  # noqa: F401  (registers the packaged_text source)
from .data import SIZE_PRESETS, VOCAB, BytesConfig
from .procedures import CompressionProcedure

BYTES_VERSION = 2  # 2: validation and test from the source's own splits when it has them (data.held_out)
TRAIN_VERSION = 2  # 2: the run's pruning mask is saved (mask.safetensors) and carried by use_pretrained_model
MASK_FILE = "mask.safetensors"
TRAINING_DEFAULTS: dict[str, Any] = {
    # The seed trains with plain Adam at a constant learning rate, no clipping: so do these defaults.
    "batch_size": 8, "lr": 1e-3, "weight_decay": 0.0, "warmup_steps": 0, "min_lr_ratio": 1.0, "grad_clip": 0.0,
    "betas": [0.9, 0.999], "log_interval": 50, "eval_interval": 1_000_000, "eval_batches": 4, "device": "auto",
}
SET_BY_RUNNER = ("chunk_len", "max_steps", "max_train_tokens", "stride", "seed")


@dataclass(frozen=True)
class CompressionRun:
    name: str
    procedure: str | dict[str, Any] = "vanilla"
    size: str | int | None = None  # this run's training bytes; None: data.size
    use_pretrained_model: str | None = None  # an earlier run of this config: start from its final model

    def validate(self, prefix: str) -> None:
        require(bool(self.name) and "/" not in self.name, f"{prefix}.name", self.name, "a non-empty name without '/'")


@dataclass(frozen=True)
class CompressionEvaluation:
    test_chunks: int | None = None  # test chunks scored; None: all
    train_chunks: int | None = None  # training chunks scored for the train loss (description length); None: all
    batch_size: int = 16
    chunked_baseline_bytes: int = 512  # the seed's per-chunk baseline, reported labelled as such

    def validate(self, prefix: str = "evaluation") -> None:
        for key in ("test_chunks", "train_chunks"):
            require(getattr(self, key) is None or getattr(self, key) >= 1, f"{prefix}.{key}", getattr(self, key),
                    "a positive integer or null")
        require(self.batch_size >= 1, f"{prefix}.batch_size", self.batch_size, "a positive integer")
        require(self.chunked_baseline_bytes >= 1, f"{prefix}.chunked_baseline_bytes", self.chunked_baseline_bytes,
                "a positive integer")


@dataclass(frozen=True)
class CompressionExperiment:
    runs: list[CompressionRun] = field(default_factory=list)
    experiment: str = "compression"
    output_dir: str = "outputs"
    seed: int = 858
    dataset: DatasetConfig = field(default_factory=lambda: DatasetConfig(source="packaged_text"))
    data: BytesConfig = field(default_factory=BytesConfig)
    model: ModelConfig = field(default_factory=lambda: ModelConfig(preset="transformer200k"))
    training: TrainingConfig = field(default_factory=lambda: TrainingConfig(max_steps=1))
    evaluation: CompressionEvaluation = field(default_factory=CompressionEvaluation)
    max_runtime: float | None = None  # seconds a run trains in this call before it saves and stops
    checkpoint_time: float | None = None  # seconds between resumable saves
    plugins: list[str] = field(default_factory=list)
    # Procedure parameters every run shares (phases, pruning); a run's own procedure parameters override them.
    procedure_defaults: dict[str, Any] = field(default_factory=dict)
    cache: CacheConfig = field(default_factory=CacheConfig)  # a shared stage cache (s3://...), as for experiments

    def validate(self, prefix: str = "") -> None:
        check_url("output_dir", self.output_dir)
        context = self.model.validate().context
        require(self.data.chunk_bytes - 1 <= context, "data.chunk_bytes", self.data.chunk_bytes,
                f"at most the model context + 1 ({context + 1}, model.context): a chunk gives chunk_bytes - 1 inputs")
        for key in ("max_runtime", "checkpoint_time"):
            value = getattr(self, key)
            require(value is None or (math.isfinite(value) and value > 0), key, value, "a positive number of seconds or null")
        require(bool(self.runs), "runs", self.runs, "at least one run")
        names: list[str] = []
        for index, run in enumerate(self.runs):
            if run.name in names:
                raise ConfigError(f"runs[{index}].name", run.name, "a name no earlier run has")
            if run.size is not None:
                dataclasses.replace(self.data, size=run.size).validate(f"runs[{index}].size")
            if run.use_pretrained_model is not None and run.use_pretrained_model not in names:
                raise ConfigError(f"runs[{index}].use_pretrained_model", run.use_pretrained_model,
                                  f"the name of an earlier run ({names or 'none yet'})")
            self.procedure(index)
            names.append(run.name)

    def procedure(self, index: int) -> CompressionProcedure:
        from corpuslab.training.procedures import procedures

        key = f"runs[{index}].procedure"
        procedure = procedures.build(self.runs[index].procedure, key, default="vanilla", defaults=self.procedure_defaults)
        if not isinstance(procedure, CompressionProcedure):
            raise ConfigError(key, self.runs[index].procedure, "a compression procedure (vanilla, rl1, drr, pmmp or "
                              "a registered CompressionProcedure)")
        return procedure

    def run_data(self, index: int) -> BytesConfig:
        size = self.runs[index].size
        return self.data if size is None else dataclasses.replace(self.data, size=size)


def load_compression_config(paths: list[str], overrides: list[str] | None = None) -> CompressionExperiment:
    """YAML files layered in order, then `key.path=value` overrides, plugins loaded, validated."""
    merged: dict[str, Any] = {"training": dict(TRAINING_DEFAULTS)}
    for path in paths:
        data = read_yaml(Path(path))
        _resolve_input_paths(data, Path(path).resolve().parent)
        _resolve_split_paths(data, Path(path).resolve().parent)
        merged = deep_merge(merged, data)
    for override in overrides or []:
        apply_override(merged, override)
    training = merged.get("training")
    if isinstance(training, dict):
        for key in SET_BY_RUNNER:
            if training.get(key) is not None:
                raise ConfigError(f"training.{key}", training[key], "not set: the compression runner derives it "
                                  "(chunk_len from data.chunk_bytes, steps from the procedure's phases, seed from `seed`)")
        merged["training"] = {**training, "max_steps": 1}  # a placeholder; each run's phases set the real count
    load_plugins(merged.get("plugins") or [])
    return from_dict(CompressionExperiment, merged, "")


def _resolve_split_paths(data: dict[str, Any], folder: Path) -> None:
    """data.val_paths / data.test_paths relative to the config file, as dataset.local.paths are."""
    section = data.get("data")
    for key in ("val_paths", "test_paths"):
        value = section.get(key) if isinstance(section, dict) else None
        if isinstance(value, list):
            section[key] = [str(folder / v) if isinstance(v, str) and v and not Path(v).is_absolute() else v for v in value]


class RunStopped(CorpuslabError):
    """A run reached max_runtime: its state is saved and a rerun continues it."""


class RuntimeLimit(Callback):
    """Saves the resumable state every `checkpoint_time` seconds, and at `max_runtime` saves and stops."""

    def __init__(self, max_runtime: float | None, checkpoint_time: float | None):
        self.max_runtime, self.checkpoint_time = max_runtime, checkpoint_time

    def on_train_start(self, trainer) -> None:
        self.started = self.saved = time.monotonic()

    def on_step_end(self, trainer) -> None:
        now = time.monotonic()
        if self.checkpoint_time is not None and now - self.saved >= self.checkpoint_time:
            trainer.save_state(trainer.out_dir / "last")
            self.saved = now
        if self.max_runtime is not None and now - self.started >= self.max_runtime and trainer.step < trainer.total_steps:
            trainer.save_state(trainer.out_dir / "last")
            raise RunStopped(f"max_runtime ({self.max_runtime:g} s) reached at update {trainer.step}/{trainer.total_steps}; "
                             "the state is saved: rerun to continue")


class CompressionExperimentRunner:
    def __init__(self, cfg: CompressionExperiment, log: Callable[[str], None] = print):
        self.cfg, self.log = cfg, log
        self.root = local_output_dir(cfg.output_dir) / cfg.experiment  # a URL: a local staging folder, uploaded
        self.stages = StageRunner(self.root / "stages", log, open_cache(cfg.cache.url, cfg.output_dir, cfg.experiment))

    # ------------------------------------------------------------------ bytes

    def bytes_stage(self, data_cfg: BytesConfig, key: str = "data.size") -> Stage:
        from corpuslab.sources import open_source

        from .heldout import resolve_held_out

        source = open_source(self.cfg.dataset, self.cfg.seed)
        held_out = resolve_held_out(source, data_cfg)
        stage = self.stages.stage("bytes", BYTES_VERSION, self.cfg.dataset, source.inputs_fingerprint(), data_cfg,
                                  held_out.mode, held_out.fingerprints())
        self.stages.run(stage, lambda work: self._build_bytes(work, source, held_out, data_cfg, key),
                        label=f"bytes {data_cfg.size}")
        return stage

    def _build_bytes(self, work: Path, source: Any, held_out: Any, data_cfg: BytesConfig, key: str) -> dict[str, Any]:
        from .data import leading_bytes, read_split, split_bytes, write_byte_stream
        from .metrics import baselines

        train = data_cfg.train_bytes()
        if held_out.mode == "stream":
            limit = None if train is None else train + data_cfg.val_bytes + data_cfg.test_bytes
            head = leading_bytes(source.documents(), limit)
            splits = split_bytes(head, data_cfg, complete=limit is None or len(head) < limit, key=key)
        else:
            value_of = {"val": data_cfg.val_bytes, "test": data_cfg.test_bytes}
            splits = {"train": read_split(source.documents(), train, key, data_cfg.size,
                                          f"the training source ({source.description()})")}
            for name, split_source in (("val", held_out.val), ("test", held_out.test)):
                splits[name] = read_split(split_source.documents(), data_cfg.held_out_bytes(name), f"data.{name}_bytes",
                                          value_of[name], split_source.description())
        meta = {name: write_byte_stream(work / name, data, data_cfg.chunk_bytes) for name, data in splits.items()}
        compared = baselines(splits["train"], self.cfg.evaluation.chunked_baseline_bytes)
        write_json_atomic(work / "baselines.json", compared)
        return {"splits": meta, "baselines": compared, "source": source.description(),
                "held_out": held_out.describe(data_cfg)}

    # ------------------------------------------------------------------ train

    def train_stage(self, index: int, data: Stage, pretrained: Stage | None) -> tuple[Stage, str | None]:
        from corpuslab.experiment import _weights_key

        cfg, run = self.cfg, self.cfg.runs[index]
        procedure = cfg.procedure(index)
        training = self._training(procedure, data)
        stage = self.stages.stage("train", TRAIN_VERSION, data.fingerprint, cfg.model, _weights_key(training), procedure.fingerprint(),
                                  pretrained.fingerprint if pretrained else None)
        try:
            self.stages.run(stage, lambda work: self._build_train(work, procedure, training, data, pretrained),
                            label=f"train {run.name}", resumable=True)
        except RunStopped as stopped:
            self.log(f"[train {run.name}] {stopped}")
            return stage, str(stopped)
        return stage, None

    def _training(self, procedure: CompressionProcedure, data: Stage) -> TrainingConfig:
        chunks = data.manifest()["splits"]["train"]["chunks"]
        batch = self.cfg.training.batch_size
        return dataclasses.replace(self.cfg.training, chunk_len=self.cfg.data.chunk_bytes - 1, seed=self.cfg.seed,
                                   max_steps=procedure.total_steps(chunks, batch), max_train_tokens=None, stride=None)

    def _build_train(self, work: Path, procedure: CompressionProcedure, training: TrainingConfig, data: Stage,
                     pretrained: Stage | None) -> dict[str, Any]:
        from safetensors.torch import load_file

        from corpuslab.tokens.stream import TokenStream
        from corpuslab.training.model import build_model
        from corpuslab.training.trainer import train

        from .data import chunk_starts

        model = build_model(self.cfg.model, vocab_size=VOCAB, seed=self.cfg.seed)
        inherited = 0
        if pretrained is not None:
            model.load_state_dict(load_file(pretrained.path / "final" / "model.safetensors"), strict=False)
            model.tie_weights()
            masks = read_mask(pretrained.path / MASK_FILE, model)
            procedure.inherit_mask(masks)
            inherited = sum(int((~m).sum()) for m in masks or [])
        splits = data.manifest()["splits"]
        chunk = self.cfg.data.chunk_bytes
        stream, val = TokenStream.open(data.path / "train"), TokenStream.open(data.path / "val")
        result = train(model, stream, chunk_starts(splits["train"]["chunks"], chunk), val,
                       chunk_starts(splits["val"]["chunks"], chunk), training, work, log=self.log,
                       callbacks=[RuntimeLimit(self.cfg.max_runtime, self.cfg.checkpoint_time)], procedure=procedure)
        callbacks = {getattr(c, "name", ""): c for c in procedure.created}
        code = callbacks["code_length"]
        masks = callbacks["pruning"].masks
        if masks:  # a later run that continues this model (use_pretrained_model) starts from this mask
            write_mask(work / MASK_FILE, model, masks)
        record = {"online_code_length_bits": code.online_bits, "online_code_length_tokens": code.online_tokens,
                  "epochs": code.epochs, "pruning": callbacks["pruning"].history,
                  "inherited_masked_params": inherited, "masked_params": sum(int((~m).sum()) for m in masks),
                  **(callbacks["pmmp"].summary() if "pmmp" in callbacks else {})}
        write_json_atomic(work / "curve.json", result.curve)
        write_json_atomic(work / "compression.json", record)
        summary = {k: v for k, v in to_dict(result).items() if k not in ("curve", "final_path", "best_path")}
        return {"result": summary, "compression": {k: v for k, v in record.items() if k != "epochs"}}

    # ------------------------------------------------------------------ evaluate

    def evaluate_stage(self, index: int, data: Stage, trained: Stage) -> Stage:
        stage = self.stages.stage("evaluate", trained.fingerprint, data.fingerprint, self.cfg.evaluation)
        self.stages.run(stage, lambda work: self._build_evaluate(data, trained), label=f"evaluate {self.cfg.runs[index].name}")
        return stage

    def _build_evaluate(self, data: Stage, trained: Stage) -> dict[str, Any]:
        import torch
        from transformers import AutoModelForCausalLM

        from corpuslab.evaluation.lm import mean_window_loss
        from corpuslab.tokens.stream import TokenStream
        from corpuslab.training.model import count_parameters, resolve_device

        from .data import chunk_starts
        from .metrics import bits_per_byte, description_length_bytes, model_bytes, nonzero_parameters

        cfg = self.cfg.evaluation
        if self.cfg.training.num_threads:
            torch.set_num_threads(self.cfg.training.num_threads)
        device = resolve_device(self.cfg.training.device)
        model = AutoModelForCausalLM.from_pretrained(trained.path / "final").to(device).eval()
        splits, chunk = data.manifest()["splits"], self.cfg.data.chunk_bytes

        def loss(split: str, limit: int | None) -> float:
            starts = chunk_starts(splits[split]["chunks"], chunk)[:limit]
            return mean_window_loss(model, TokenStream.open(data.path / split), starts, chunk - 1, cfg.batch_size, device)

        test_loss, train_loss = loss("test", cfg.test_chunks), loss("train", cfg.train_chunks)
        nonzero = nonzero_parameters(model)
        size = model_bytes(nonzero)
        dataset_bytes = splits["train"]["bytes"]
        online_bits = trained.manifest()["compression"]["online_code_length_bits"]
        description = description_length_bytes(size, train_loss, dataset_bytes)
        return {"metrics": {
            "test_loss": test_loss, "test_bpb": bits_per_byte(test_loss),
            "train_loss": train_loss, "train_bpb": bits_per_byte(train_loss),
            "parameters": count_parameters(model), "nonzero_params": nonzero, "model_bytes": size,
            "dataset_bytes": dataset_bytes, "online_code_length_bits": online_bits,
            "online_bpb": online_bits / dataset_bytes,
            "online_compression_ratio": 8 * dataset_bytes / online_bits if online_bits else None,
            "description_length_bytes": description, "compression_ratio": dataset_bytes / description,
        }}

    # ------------------------------------------------------------------ the whole thing

    def run(self) -> dict[str, Any]:
        from .report import write_results

        cfg = self.cfg
        start = time.time()
        with exclusive_lock(self.root):
            data_stages: dict[Any, Stage] = {}
            trained: dict[str, Stage] = {}
            rows = []
            for index, run in enumerate(cfg.runs):
                data_cfg = cfg.run_data(index)
                if data_cfg not in data_stages:
                    data_stages[data_cfg] = self.bytes_stage(data_cfg, "data.size" if run.size is None else f"runs[{index}].size")
                data = data_stages[data_cfg]
                pretrained = trained.get(run.use_pretrained_model) if run.use_pretrained_model else None
                if run.use_pretrained_model and pretrained is None:
                    rows.append(self._row(index, data, None, None, f"skipped: run '{run.use_pretrained_model}' is not finished"))
                    continue
                train_stage, stopped = self.train_stage(index, data, pretrained)
                if stopped:
                    rows.append(self._row(index, data, None, None, f"incomplete: {stopped}"))
                    continue
                trained[run.name] = train_stage
                rows.append(self._row(index, data, train_stage, self.evaluate_stage(index, data, train_stage), "done"))
            results = {"experiment": cfg.experiment, "config": to_dict(cfg), "runs": rows,
                       "baselines": {str(k.size): v.manifest()["baselines"] for k, v in data_stages.items()}}
            # A URL output_dir: the rows name the stages' URLs in the stage cache, not the local staging folder.
            results = relocate(results, staged_locations(self.root, cfg.output_dir, cfg.experiment, self.stages.root, self.stages.cache))
            write_results(self.root, results)
            write_text_atomic(self.root / "config.json", json.dumps(to_dict(cfg), indent=2))
            if is_url(cfg.output_dir):
                publish(self.root, ["results.json", "runs.tsv", "report.html", "config.json"], join(cfg.output_dir, cfg.experiment))
        self.log(f"results: {self.root / 'runs.tsv'}\n         {self.root / 'report.html'} ({time.time() - start:.1f}s)")
        return results

    def _row(self, index: int, data: Stage, trained: Stage | None, evaluated: Stage | None, status: str) -> dict[str, Any]:
        run, procedure = self.cfg.runs[index], self.cfg.procedure(index)
        row: dict[str, Any] = {"run": run.name, "status": status, "procedure": procedure.describe(),
                               "size": self.cfg.run_data(index).size,
                               "dataset_bytes": data.manifest()["splits"]["train"]["bytes"],
                               "held_out": data.manifest()["held_out"],
                               "model": self.cfg.model.preset, "use_pretrained_model": run.use_pretrained_model,
                               "baselines": data.manifest()["baselines"]}
        if trained is not None:
            manifest = trained.manifest()
            row["train_stage"] = str(trained.path)
            row["model_path"] = str(trained.path / "final")
            row["tokens_per_second"] = manifest["result"]["tokens_per_second"]
            row["updates"] = manifest["result"]["steps"]
            row["pruning"] = manifest["compression"]["pruning"]
            row["inherited_masked_params"] = manifest["compression"]["inherited_masked_params"]
            row["pmmp"] = {k: v for k, v in manifest["compression"].items() if k.startswith("pmmp_")}
            compression = json.loads((trained.path / "compression.json").read_text())
            row["epochs"] = compression["epochs"]
            row["curve"] = json.loads((trained.path / "curve.json").read_text())
        if evaluated is not None:
            row["metrics"] = evaluated.manifest()["metrics"]
        return row


def write_mask(path: Path, model: Any, masks: list[Any]) -> None:
    """The pruning mask as {parameter name: bool tensor} (`named_parameters()` order and names)."""
    from safetensors.torch import save_file

    names = [name for name, _ in model.named_parameters()]
    save_file({name: mask.detach().cpu().contiguous() for name, mask in zip(names, masks, strict=True)}, str(path))


def read_mask(path: Path, model: Any) -> list[Any] | None:
    """The mask `write_mask` saved, in the order of `model.named_parameters()`; None when the run pruned nothing."""
    if not path.exists():
        return None
    from safetensors.torch import load_file

    saved = load_file(str(path))
    named = list(model.named_parameters())
    if sorted(saved) != sorted(name for name, _ in named) or any(saved[n].shape != p.shape for n, p in named):
        raise CorpuslabError(f"{path}: the pruning mask does not fit the model (parameters {sorted(saved)[:4]}...); "
                             "use_pretrained_model needs a run of the same model preset")
    return [saved[name].bool() for name, _ in named]


def size_label(size: str | int) -> str:
    return size if isinstance(size, str) else f"{size:,} B"


__all__ = ["SIZE_PRESETS", "CompressionExperiment", "CompressionExperimentRunner", "load_compression_config", "size_label"]
