"""The experiment, stage by stage. The order of the pipeline lives here and nowhere else:

    ingest -> split -> canaries -> decontaminate -> tokenizer -> tokens     (shared by every arm: `prepare`)
    curate -> pack -> train -> evaluate                                     (per arm)
    report

Every stage reads the manifests of the stages it depends on and writes one folder named by a
fingerprint of its config slice and of those inputs, so a changed knob recomputes only what depends
on it and a rerun reuses the rest.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from corpuslab.artifacts import Stage, os_error_as_stage_error, read_json, write_json_atomic
from corpuslab.atomic import file_set, write_text_atomic
from corpuslab.config import ExperimentConfig, dump_config
from corpuslab.corpus import canaries as canary_lib
from corpuslab.corpus.split import SPLITS, assign_splits
from corpuslab.curation.decisions import DecisionWriter
from corpuslab.curation.recipes import CurationContext, Recipe
from corpuslab.documents import Document
from corpuslab.errors import ConfigError, InputError, StageError
from corpuslab.executor import build_executor
from corpuslab.paths import is_url, join, local_output_dir, publish, relocate, staged_locations
from corpuslab.progress import progress
from corpuslab.schema import to_dict
from corpuslab.shard_log import shard_log
from corpuslab.shards import ShardWriter, read_documents, shard_paths
from corpuslab.sources import open_source
from corpuslab.stage_cache import open_cache
from corpuslab.tokens.encode import encoded_batches
from corpuslab.tokens.pack import document_repeats, pack_documents, repeat_array, tokenize_documents
from corpuslab.tokens.stream import TokenStream
from corpuslab.tokens.tokenizer import build_tokenizer, load_tokenizer
from corpuslab.training import distributed

# Bumped when a stage's code changes what it writes, so folders made by older code are not reused.
TOKENS_VERSION = 2  # 2: train.docs.parquet marks canaries
PACK_VERSION = 2  # 2: repeat counts, stream kind in the manifest


@dataclass
class Prepared:
    """Manifests of the shared stages, which every arm reads."""

    ingest: Stage
    split: Stage
    canaries: Stage
    decontaminate: Stage
    tokenizer: Stage
    tokens: Stage

    def train_shards(self, with_canaries: bool) -> list[Path]:
        paths = shard_paths(self.split.path / "train")
        return paths + (shard_paths(self.canaries.path) if with_canaries else [])


@dataclass
class ArmRun:
    """One training replicate of an arm."""

    seed: int
    train: Stage
    evaluate: Stage


@dataclass
class ArmStages:
    curate: Stage
    pack: Stage
    replicates: list[ArmRun]


# The pipeline, in order: `corpuslab run` walks all of it, each stage command (`prepare`, `curate`, `train`,
# `evaluate`, `report`) walks it up to its own stage, building what is missing and reusing the rest.
SHARED_STAGES = ("ingest", "split", "canaries", "decontaminate", "tokenizer", "tokens")  # every arm reads them
ARM_STAGES = ("curate", "pack", "train", "evaluate")  # per arm (train and evaluate per seed)
PIPELINE = (*SHARED_STAGES, *ARM_STAGES, "report")
COMMAND_TARGETS = {"prepare": "tokens", "curate": "curate", "train": "train", "evaluate": "evaluate",
                   "report": "report", "run": "report"}


class Experiment:
    """One experiment: its config, its output folder, and the stages that fill it."""

    def __init__(self, cfg: ExperimentConfig, log: Callable[[str], None]):
        self.cfg = cfg
        self.log = log
        # A URL output_dir (s3://...) works in a local staging folder: its stages go to the shared cache,
        # its report files are uploaded when written (corpuslab.paths, corpuslab.stage_cache).
        self.root = local_output_dir(cfg.output_dir) / cfg.experiment
        # Under torchrun only rank 0 builds stages (and fills the shared cache); the other ranks wait for
        # them (on another node, possibly from the cache) and join in training.
        self.stages = distributed.stage_runner(self.root / "stages", log, open_cache(cfg.cache.url, cfg.output_dir, cfg.experiment))
        self._executor: Any = None

    @property
    def executor(self) -> Any:
        """The `curation.executor` (a local process pool, or Ray), started on first use."""
        if self._executor is None:
            curation = self.cfg.curation
            self._executor = build_executor(curation.executor, {"ray": curation.ray}, curation.workers)
        return self._executor

    def artifact_locations(self) -> dict[str, str]:
        """{local folder: URL} for a URL output_dir: stages live in the stage cache, the run's files under
        `<output_dir>/<experiment>`; the report lists those, not the local staging folder. {} otherwise."""
        return staged_locations(self.root, self.cfg.output_dir, self.cfg.experiment, self.stages.root, getattr(self.stages, "cache", None))

    def close(self, interrupted: bool = False) -> None:
        if self._executor is not None:
            self._executor.close(interrupted=interrupted)
            self._executor = None

    # ------------------------------------------------------------------ shared stages

    def prepare(self) -> Prepared:
        cfg = self.cfg
        ingest = self.stages.stage("ingest", cfg.dataset, cfg.seed, open_source(cfg.dataset, cfg.seed).inputs_fingerprint())
        self.stages.run(ingest, self._build_ingest)
        split = self.stages.stage("split", ingest.fingerprint, cfg.split, cfg.seed)
        self.stages.run(split, lambda work: self._build_split(work, ingest))
        # Only what shapes the canary documents; scoring knobs (num_candidates, decode_tokens) key evaluation.
        # The split is an input too: the count is scaled to the training split's size (canaries.max_share).
        canary_docs = (cfg.canaries.count, cfg.canaries.copies, cfg.canaries.secret_length, cfg.canaries.max_share)
        canaries = self.stages.stage("canaries", canary_docs, cfg.seed, split.fingerprint)
        self.stages.run(canaries, lambda work: self._build_canaries(work, split))
        decontaminate = self.stages.stage(
            "decontaminate", split.fingerprint, cfg.curation.normalize, cfg.curation.minhash, cfg.curation.decontaminate
        )
        self.stages.run(decontaminate, lambda work: self._build_decontaminate(work, split, decontaminate))
        tokenizer = self.stages.stage("tokenizer", split.fingerprint, cfg.tokenizer, cfg.seed)
        self.stages.run(tokenizer, lambda work: self._build_tokenizer(work, split))
        tokens = self.stages.stage("tokens", TOKENS_VERSION, tokenizer.fingerprint, split.fingerprint, canaries.fingerprint, decontaminate.fingerprint)
        prepared = Prepared(ingest, split, canaries, decontaminate, tokenizer, tokens)
        self.stages.run(tokens, lambda work: self._build_tokens(work, prepared, tokens))
        return prepared

    def _build_ingest(self, work: Path) -> dict[str, Any]:
        from corpuslab.sources.identity import INPUTS_FILE, changes_since_newest

        cfg = self.cfg.dataset
        source = open_source(cfg, self.cfg.seed)
        # What this ingest reads, taken again here rather than trusted from the stage key: it is what the
        # documents below come from, and what the next run compares against.
        inputs = source.identity()
        write_json_atomic(work / INPUTS_FILE, inputs)
        since = changes_since_newest(self.stages.root, "ingest", inputs)
        if since is not None and since.changes:
            self.log(f"  inputs differ from {since.previous}: {since.summary()}")
        from corpuslab.seen_ids import SeenIds

        seen_ids = SeenIds()  # ids must be unique: decision tables and splits are keyed by them (~30 B per id)
        n_bytes = 0
        with ShardWriter(work / "docs") as writer:
            for doc in seen_ids.documents(progress(source.documents(), "ingest", unit="doc"), cfg.max_docs):
                writer.write(doc)
                n_bytes += len(doc.text.encode("utf-8"))
            n_docs = writer.count
        renamed = seen_ids.renamed
        changed = source.changed_during_read(inputs)
        if changed:  # the documents would match neither the old nor the new files
            raise StageError("ingest", f"input files changed while they were read ({', '.join(changed[:5])}); rerun once they are stable")
        if renamed:
            self.log(f"  {renamed} documents repeated an earlier id and were renamed '<id>#<n>'")
        bad_input = source.bad_input_summary()
        write_json_atomic(work / "bad_input.json", bad_input)
        if n_docs == 0:
            raise StageError("ingest", f"the source produced no documents ({source.description()}); bad input: {bad_input}")
        return {"documents": n_docs, "bytes": n_bytes, "source": source.description(), "bad_input": bad_input,
                "renamed_duplicate_ids": renamed, "inputs_fingerprint": source.inputs_fingerprint(inputs),
                "inputs_changed": since.to_dict() if since is not None else None}

    def _build_split(self, work: Path, ingest: Stage) -> dict[str, Any]:
        docs_dir = ingest.path / "docs"
        pairs = ((d.id, d.category) for d in read_documents(shard_paths(docs_dir), columns=["id", "category"]))
        assignment = assign_splits(pairs, self.cfg.split, self.cfg.seed)
        writers = {name: ShardWriter(work / name) for name in SPLITS}
        per_category: dict[str, Counter[str]] = {name: Counter() for name in SPLITS}
        for doc in read_documents(shard_paths(docs_dir)):
            name = assignment[doc.id]
            writers[name].write(doc)
            per_category[name][str(doc.category)] += 1
        counts = {name: writers[name].count for name in SPLITS}
        for writer in writers.values():
            writer.close()
        return {"documents": counts, "categories": {k: dict(v) for k, v in per_category.items()}}

    def _build_canaries(self, work: Path, split: Stage) -> dict[str, Any]:
        cfg = self.cfg.canaries
        train = split.manifest()["documents"]["train"]
        count = canary_lib.scaled_count(cfg, train)
        if count < cfg.count:
            self.log(f"canaries: {count} instead of canaries.count={cfg.count}, so that canary documents stay within "
                     f"canaries.max_share={cfg.max_share:g} of the {train:,}-document training split")
        canaries = canary_lib.make_canaries(dataclasses.replace(cfg, count=count), self.cfg.seed)
        with ShardWriter(work) as writer:
            writer.write_all(canary_lib.canary_documents(canaries))
        write_json_atomic(work / "canaries.json", [to_dict(c) for c in canaries])
        share = writer.count / (train + writer.count) if train + writer.count else 0.0
        if share > cfg.max_share:
            self.log(f"canaries: warning: even one canary is {share:.0%} of the training split; its memorization is not representative")
        return {"canaries": len(canaries), "requested": cfg.count, "documents": writer.count, "placement": cfg.placement,
                "train_documents": train, "share_of_train": round(share, 4), "max_share": cfg.max_share}

    def _build_decontaminate(self, work: Path, split: Stage, stage: Stage) -> dict[str, Any]:
        from corpuslab.curation.decontaminate import decontaminate

        cfg = self.cfg.curation
        with shard_log(self.executor, stage, self.log) as executor:  # a killed run keeps its finished shards
            result = decontaminate(
                train=shard_paths(split.path / "train"),
                held_out={name: shard_paths(split.path / name) for name in ("val", "test")},
                mode=cfg.decontaminate,
                minhash=cfg.minhash,
                normalize=cfg.normalize,
                executor=executor,
                out_dir=work,
            )
        return result

    def _build_tokenizer(self, work: Path, split: Stage) -> dict[str, Any]:
        texts = (d.text for d in read_documents(shard_paths(split.path / "train"), columns=["text"]))
        tokenizer = build_tokenizer(self.cfg.tokenizer, texts)
        tokenizer.save_pretrained(str(work))
        return {"vocab_size": len(tokenizer), "eos_id": tokenizer.eos_token_id, "kind": self.cfg.tokenizer.kind}

    def _build_tokens(self, work: Path, prepared: Prepared, stage: Stage) -> dict[str, Any]:
        tokenizer = load_tokenizer(prepared.tokenizer.path)
        clean = prepared.decontaminate.path
        sources = {
            "train": prepared.train_shards(with_canaries=True),
            "val": shard_paths(clean / "val"),
            "test": shard_paths(clean / "test"),
        }
        summary = {}
        with shard_log(self.executor, stage, self.log) as executor:  # a killed run keeps its finished shards
            for name, paths in sources.items():
                summary[name] = self._tokenize_split(tokenizer, paths, work / name, name, executor)
        return {"splits": summary, "vocab_size": len(tokenizer)}

    def _tokenize_split(self, tokenizer, paths: list[Path], prefix: Path, name: str, executor: Any = None) -> dict[str, Any]:
        # One executor task per document shard (local pool or Ray) from encode.PARALLEL_MIN_DOCS documents;
        # results are written in shard order, so the stream is the same whichever executor ran them.
        return tokenize_documents(tokenizer, paths, prefix, f"tokenize {name}",
                                  encoded=encoded_batches(executor or self.executor, paths, tokenizer.name_or_path))

    # ------------------------------------------------------------------ per-arm stages

    def curate(self, prepared: Prepared, index: int) -> Stage:
        cfg, run = self.cfg, self.cfg.runs[index]
        recipe = cfg.arm_recipe(index)
        with_canaries = cfg.canaries.placement == "before_curation"
        # What the recipe reads: the train split (with the canaries when curation sees them), or its windows.
        inputs: list[Any] = [prepared.split.fingerprint, prepared.canaries.fingerprint if with_canaries else None, run.level]
        if run.level == "chunk":
            inputs += [prepared.tokens.fingerprint, cfg.training.chunk_len, cfg.training.stride]
        stage = self.stages.plugin_stage(f"curate-{recipe.name}-{run.level}", recipe, *inputs)
        self.stages.run(stage, lambda work: self._build_curate(work, prepared, index, recipe, with_canaries, stage),
                        label=f"curate {run.name}")
        return stage

    def _build_curate(self, work: Path, prepared: Prepared, index: int, recipe: Recipe, with_canaries: bool,
                      stage: Stage) -> dict[str, Any]:
        run = self.cfg.runs[index]
        items = self._write_chunk_items(work / "chunks", prepared) if run.level == "chunk" else prepared.train_shards(with_canaries)
        with shard_log(self.executor, stage, self.log) as executor:  # a killed run keeps its finished shards
            spill = Path(self.cfg.curation.spill_dir) if self.cfg.curation.spill_dir else None
            context = CurationContext(executor, self.log, self.cfg.seed, work / "scratch", stages=self.stages, spill_dir=spill)
            decided = {d.id: d for d in recipe.decide(items, {"documents": prepared.split.path}, context)}
        writer = DecisionWriter(work)
        used = writer.write_all((d.id for d in read_documents(items, columns=["id"])), decided)
        counts = writer.close()
        if used != len(decided):
            raise StageError(f"curate {run.name}", f"recipe '{recipe.name}' decided {len(decided) - used} ids that are "
                             "not among its items")
        stats = {"recipe": recipe.name, **counts, **context.stats}
        truth = recipe.grade(items, {d.id for d in decided.values() if not d.kept})
        if truth is not None:
            stats["ground_truth"] = truth
        write_json_atomic(work / "stats.json", stats)
        return {"recipe": recipe.describe(), "level": run.level, "stats": stats}

    def _write_chunk_items(self, folder: Path, prepared: Prepared) -> list[Path]:
        """Chunk-level curation curates the training windows themselves: one item per window, its decoded
        text, in window order (the pack stage reads the decisions back in that order)."""
        tokenizer = load_tokenizer(prepared.tokenizer.path)
        stream = TokenStream.open(prepared.tokens.path / "train")
        chunk_len = self.cfg.training.chunk_len
        starts = stream.windows(chunk_len, self.cfg.training.stride or chunk_len)
        with ShardWriter(folder) as writer:
            for start in progress(starts, "decode chunks", unit="chunk"):
                text = tokenizer.decode(stream.tokens[start : start + chunk_len].tolist())
                writer.write(Document(f"chunk-{int(start)}", text, {"window_start": int(start)}))
        return writer.paths

    def pack(self, prepared: Prepared, index: int, curate: Stage) -> Stage:
        cfg, run = self.cfg, self.cfg.runs[index]
        stage = self.stages.stage("pack", PACK_VERSION, prepared.tokens.fingerprint, curate.fingerprint, run.level,
                                  cfg.canaries.placement, cfg.training.chunk_len, cfg.training.stride)
        self.stages.run(stage, lambda work: self._build_pack(work, prepared, index, curate), label=f"pack {run.name}")
        return stage

    def _build_pack(self, work: Path, prepared: Prepared, index: int, curate: Stage) -> dict[str, Any]:
        run, training = self.cfg.runs[index], self.cfg.training
        stream = TokenStream.open(prepared.tokens.path / "train")
        stride = training.stride or training.chunk_len
        canaries_kept = self.cfg.canaries.placement == "after_curation"  # curation never saw them: always train on them
        if run.level == "chunk":
            starts = stream.windows(training.chunk_len, stride)
            _, times = repeat_array(curate.path)
            if len(times) != len(starts):
                raise StageError(f"pack {run.name}", f"the decision table has {len(times)} rows for {len(starts)} windows")
            times = np.asarray(times, dtype=np.int64)
            if canaries_kept:  # canary documents sit at the end of the train stream
                touches_canary = starts + training.chunk_len > _first_canary_offset(prepared.tokens.path, stream)
                times[touches_canary] = np.maximum(times[touches_canary], 1)
            windows = np.repeat(starts, times)
            np.save(work / "windows.npy", windows)
            return {"stream": "shared", "windows": int(len(windows)), "tokens_in_windows": _covered_tokens(windows, training.chunk_len),
                    "documents_kept": None, "windows_dropped": int((times == 0).sum())}
        docs = pq.read_table(prepared.tokens.path / "train.docs.parquet", columns=["id", "canary"])
        repeats = document_repeats(docs.column("id"), curate.path, _canary_column(docs) if canaries_kept else None)
        meta = pack_documents(stream, repeats, work / "train")
        arm_stream = TokenStream.open(work / "train")
        starts = arm_stream.windows(training.chunk_len, stride)
        np.save(work / "windows.npy", starts)
        return {"stream": "arm", "windows": int(len(starts)), "tokens_in_windows": _covered_tokens(starts, training.chunk_len),
                "documents_kept": int(np.count_nonzero(repeats)), "tokens_kept": int(meta["n_tokens"])}

    def train(self, prepared: Prepared, index: int, pack: Stage, seed: int) -> Stage:
        from corpuslab.training.model import build_model
        from corpuslab.training.trainer import train

        cfg, run = self.cfg, self.cfg.runs[index]
        training = dataclasses.replace(cfg.training, seed=seed)
        procedure = cfg.arm_procedure(index)
        stage = self.stages.stage("train", pack.fingerprint, prepared.tokens.fingerprint, cfg.model, _weights_key(training), seed,
                                  procedure.fingerprint())
        label = f"train {run.name}" + (f" seed {seed}" if len(cfg.replicate_seeds) > 1 else "")

        def build(work: Path) -> dict[str, Any]:
            tokenizer = load_tokenizer(prepared.tokenizer.path)
            model = build_model(cfg.model, vocab_size=len(tokenizer), seed=seed, eos_id=tokenizer.eos_token_id)
            # Doc-level arms pack their own stream; chunk-level arms select windows of the shared one.
            own = pack.manifest()["stream"] == "arm"
            stream = TokenStream.open(pack.path / "train" if own else prepared.tokens.path / "train")
            windows = np.load(pack.path / "windows.npy")
            if len(windows) == 0:
                raise StageError(f"train {run.name}", "the arm kept no training windows; lower training.chunk_len or keep more data")
            val = TokenStream.open(prepared.tokens.path / "val")
            val_windows = val.windows(cfg.training.chunk_len, cfg.training.chunk_len)
            result = train(model, stream, windows, val, val_windows, training, work, log=self.log,
                           callbacks=self._tracking_callbacks(run.name, seed, work), procedure=procedure)
            if not distributed.is_main():  # under torchrun rank 0 writes the stage
                return {}
            for name in ("final", "best"):
                if (work / name).exists():
                    tokenizer.save_pretrained(str(work / name))
            write_json_atomic(work / "curve.json", result.curve)
            # Checkpoint paths point into the work folder, which is renamed on completion: report them from the stage.
            summary = {k: v for k, v in to_dict(result).items() if k not in ("curve", "final_path", "best_path")}
            return {"arm": run.name, "seed": seed, "result": summary}

        self.stages.run(stage, build, label=label, resumable=True)
        distributed.barrier()  # under torchrun: every rank sees the stage complete before going on
        return stage

    def _tracking_callbacks(self, arm: str, seed: int, work: Path) -> list:
        if not self.cfg.logging.wandb or not distributed.is_main():
            return []
        from corpuslab.training.tracking import WandbCallback

        cfg = self.cfg
        return [WandbCallback(cfg.logging.project, f"{cfg.experiment}-{arm}-s{seed}",
                              {**to_dict(cfg), "arm": arm, "seed": seed},
                              group=cfg.experiment, mode=cfg.logging.mode, dir=str(work))]

    def evaluate(self, prepared: Prepared, index: int, trained: Stage, seed: int) -> Stage:
        cfg, run = self.cfg, self.cfg.runs[index]
        stage = self.stages.stage("evaluate", trained.fingerprint, prepared.tokens.fingerprint, prepared.canaries.fingerprint,
                                  cfg.evaluation, cfg.canaries, cfg.seed)
        label = f"evaluate {run.name}" + (f" seed {seed}" if len(cfg.replicate_seeds) > 1 else "")
        self.stages.run(stage, lambda work: self._build_evaluate(work, prepared, trained), label=label)
        return stage

    def _build_evaluate(self, work: Path, prepared: Prepared, trained: Stage) -> dict[str, Any]:
        from corpuslab.evaluation.lm import load_checkpoint
        from corpuslab.evaluation.metrics import EvalData, SplitData, evaluate_model, experiment_metrics

        cfg = self.cfg
        model, tokenizer, device = load_checkpoint(trained.path / "final", cfg.training.device)
        data = EvalData([SplitData.open(prepared.tokens.path, split) for split in cfg.evaluation.splits],
                        context=cfg.training.chunk_len, batch_size=cfg.evaluation.batch_size,
                        max_tokens=cfg.evaluation.max_tokens, seed=cfg.seed,
                        canaries=[canary_lib.Canary(**c) for c in read_json(prepared.canaries.path / "canaries.json")],
                        task_categories=cfg.dataset.synthetic.categories)
        metrics = experiment_metrics(cfg.evaluation, cfg.canaries)
        evaluation = evaluate_model(model, tokenizer, device, data, metrics, self.log)
        evaluation.write(work)
        return {"metrics": evaluation.metrics, "computed_by": [metric.describe() for metric in metrics]}

    def evaluate_checkpoint(self, prepared: Prepared, checkpoint: str) -> dict[str, Any]:
        """Score any causal LM (a saved checkpoint folder, or a Hugging Face model name) on this experiment's
        clean val/test documents, tokenized with the model's own tokenizer; bits per byte stays comparable.
        The model never saw this experiment's canaries, so they are not measured."""
        import tempfile

        from corpuslab.evaluation.lm import load_any_checkpoint
        from corpuslab.evaluation.metrics import EvalData, SplitData, evaluate_model, experiment_metrics

        cfg = self.cfg
        model, tokenizer, device = load_any_checkpoint(checkpoint, cfg.training.device)
        context = min(cfg.training.chunk_len, getattr(model.config, "n_positions", None)
                      or getattr(model.config, "max_position_embeddings", cfg.training.chunk_len))
        with tempfile.TemporaryDirectory(dir=self.root) as tmp:
            for split in cfg.evaluation.splits:
                self._tokenize_split(tokenizer, shard_paths(prepared.decontaminate.path / split), Path(tmp) / split, split)
            data = EvalData([SplitData.open(tmp, split) for split in cfg.evaluation.splits], context=context,
                            batch_size=cfg.evaluation.batch_size, max_tokens=cfg.evaluation.max_tokens, seed=cfg.seed,
                            task_categories=cfg.dataset.synthetic.categories)
            evaluation = evaluate_model(model, tokenizer, device, data, experiment_metrics(cfg.evaluation, cfg.canaries),
                                        self.log)
        metrics: dict[str, Any] = {"checkpoint": checkpoint, "context": context, **evaluation.metrics}
        out = self.root / "checkpoints" / _safe_name(checkpoint)
        out.mkdir(parents=True, exist_ok=True)
        write_json_atomic(out / "metrics.json", metrics)
        self.log(f"metrics: {out / 'metrics.json'}")
        return metrics

    # ------------------------------------------------------------------ the whole thing

    def preflight(self, until: str = "report", checkpoint: str | None = None) -> None:
        """Check what the run will need before the first stage, so a typo fails in seconds, not after
        training: task files exist and parse, a pretrained tokenizer and a checkpoint to score resolve."""
        from corpuslab.evaluation.tasks.data import load_local_docs

        cfg = self.cfg
        if PIPELINE.index(until) >= PIPELINE.index("evaluate") or checkpoint:
            for task, path in cfg.evaluation.task_files.items():
                if not load_local_docs(path):
                    raise InputError(path, f"task file for '{task}' (evaluation.task_files.{task}) holds no documents")
        if cfg.tokenizer.kind == "pretrained":
            _resolve_pretrained(cfg.tokenizer.name, "tokenizer.name", "tokenizer")
        if checkpoint:
            _resolve_pretrained(checkpoint, "--checkpoint", "model")
        check = getattr(self.executor, "check", None)  # a cluster address that does not answer (curation.ray.address)
        if check is not None:
            check()

    def build(self, until: str = "report", arms: list[int] | None = None, jobs: int = 1) -> dict[str, Any] | None:
        """Walk the pipeline (`PIPELINE`) up to and including stage `until`, for the given arms (all by
        default), reusing every finished stage. `until="report"` is the whole experiment. `jobs` > 1 trains
        that many arms at once in separate processes (`training.parallel`). Under torchrun, ranks other than
        0 go as far as training: evaluation and the report are rank 0's."""
        if until not in PIPELINE:
            raise ConfigError("stage", until, f"one of {list(PIPELINE)}")
        if not distributed.is_main() and PIPELINE.index(until) > PIPELINE.index("train"):
            until = "train"
        # A torchrun world size that does not divide the global batch, or a bad --jobs, stops now, not after
        # the shared stages.
        distributed.check_batch(self.cfg.training.batch_size, self.cfg.training.micro_batch_size)
        if jobs != 1:
            from corpuslab.training.parallel import check_jobs

            check_jobs(jobs)
        start = time.time()
        self.preflight(until)
        prepared = self.prepare()
        if until in SHARED_STAGES:
            return None
        # Training validates on val and every arm is scored on val and test: an empty one stops here,
        # with why, not at the first evaluation. (`prepare` alone may still inspect a tiny corpus.)
        _require_eval_documents(prepared.decontaminate.manifest(), prepared.split.manifest())
        self._check_arms(prepared, arms)
        if jobs > 1 and PIPELINE.index(until) >= PIPELINE.index("train"):
            from corpuslab.training.parallel import train_arms

            train_arms(self, prepared, arms if arms is not None else list(range(len(self.cfg.runs))), jobs)
        arm_stages = {}
        for index in arms if arms is not None else range(len(self.cfg.runs)):
            arm_stages[self.cfg.runs[index].name] = self._build_arm(prepared, index, until)
        if until != "report":
            return None
        from corpuslab.report.build import write_report

        try:
            # The report, its tables and the config it describes are one set: all replace the previous
            # run's files together, so a failure halfway (a full disk) leaves the old set whole.
            with file_set(self.root) as files:
                report = write_report(self, prepared, arm_stages, files)
                write_text_atomic(files.path("config.yaml"), dump_config(self.cfg))
            kept = _keep_run(self.root)
            if is_url(self.cfg.output_dir):
                published = publish(self.root, [*RUN_OUTPUTS, "run.log", f"runs/{kept.name}"], join(self.cfg.output_dir, self.cfg.experiment))
                self.log(f"uploaded {len(published)} result files to {join(self.cfg.output_dir, self.cfg.experiment)}")
        except OSError as err:  # a full disk: the same message as in a stage; the report is rebuilt on the rerun
            raise os_error_as_stage_error("report", err, self.root) from err
        self.log("results (means over seeds; every column in summary.tsv, intervals in report.html):\n"
                 + _results_table(report))
        shown = self.artifact_locations()  # a URL output_dir: the uploaded files, not the staging folder
        self.log(f"report: {relocate(str(self.root / 'report.html'), shown)}\n        {relocate(str(self.root / 'report.json'), shown)} "
                 f"(this run's copy: {relocate(str(kept), shown)}; {time.time() - start:.1f}s)")
        return report

    def _check_arms(self, prepared: Prepared, arms: list[int] | None) -> None:
        """Each arm's recipe checks the prepared corpus (its categories per split) before any arm trains."""
        from corpuslab.curation.recipes.categories import category_counts

        counts = None
        for index in arms if arms is not None else range(len(self.cfg.runs)):
            recipe = self.cfg.arm_recipe(index)
            if type(recipe).check is not Recipe.check:  # read the corpus only for a recipe that looks at it
                counts = counts or category_counts(prepared.tokens.path, evaluated_tokens=self.cfg.evaluation.max_tokens)
                recipe.check(counts, f"runs[{index}]")

    def _build_arm(self, prepared: Prepared, index: int, until: str) -> ArmStages | None:
        run = self.cfg.runs[index]
        self.log(f"== arm {run.name} ({run.recipe}, {run.level})")
        curate = self.curate(prepared, index)
        if until == "curate":
            return None
        pack = self.pack(prepared, index, curate)
        replicates = []
        for seed in self.cfg.replicate_seeds:
            trained = self.train(prepared, index, pack, seed)
            if until != "train":
                replicates.append(ArmRun(seed, trained, self.evaluate(prepared, index, trained, seed)))
        return ArmStages(curate, pack, replicates)

    def run(self, arms: list[int] | None = None) -> dict[str, Any]:
        """The whole experiment: every stage, every arm, then the report."""
        report = self.build("report", arms)
        assert report is not None
        return report


RUN_OUTPUTS = ("report.json", "summary.tsv", "groups.tsv", "report.html", "config.yaml")
# The end-of-run table leaves out what summary.tsv and the report break down further.
TERMINAL_HIDDEN = {"level", "seeds", "docs_in", "dropped_exact", "dropped_near", "kept_tokens", "train_tokens_seen",
                   "test_loss", "test_bpb", "canary_exact_rate"}


def _results_table(report: dict[str, Any]) -> str:
    from corpuslab.report.aggregate import format_table
    from corpuslab.report.build import summary_rows

    columns, rows = summary_rows(report)
    shown = [c for c in columns if c not in TERMINAL_HIDDEN]
    return format_table(shown, [{c: _terminal_value(c, row.get(c)) for c in shown} for row in rows])


def _terminal_value(column: str, value: Any) -> str:
    """One precision per kind of column, so a column's digits line up (summary.tsv keeps 4 significant)."""
    if value is None or value == "" or isinstance(value, (bool, str)):
        return "" if value is None else str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if column.endswith("_ppl") or "exposure" in column or column == "epochs":
        return f"{value:,.2f}"
    if column.endswith(("precision", "recall", "_rate")):
        return f"{value:.3f}"
    return f"{value:.4f}"


def _keep_run(root: Path) -> Path:
    """Copy this run's outputs to `runs/<UTC time>/` and point `runs/latest` at it, so a rerun with other
    settings never loses an earlier report. The copy is complete before it is renamed into place."""
    runs = root / "runs"
    runs.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    target = runs / stamp
    suffix = 1
    while target.exists():
        suffix += 1
        target = runs / f"{stamp}-{suffix}"
    tmp = runs / f".tmp-{os.getpid()}-{target.name}"
    tmp.mkdir()
    for name in RUN_OUTPUTS:
        if (root / name).exists():
            shutil.copy2(root / name, tmp / name)
    os.replace(tmp, target)
    link = runs / f".tmp-{os.getpid()}-latest"
    link.unlink(missing_ok=True)
    link.symlink_to(target.name)
    os.replace(link, runs / "latest")
    return target


def _require_eval_documents(decontaminated: dict[str, Any], split: dict[str, Any]) -> None:
    """Every arm is scored on val and test: an empty one stops here, with why, not at the first evaluation."""
    for name in ("val", "test"):
        stats = decontaminated.get(name) or {"input": split["documents"][name], "kept": split["documents"][name]}
        if stats["kept"] == 0:
            removed = ", ".join(f"{k} {v}" for k, v in (stats.get("removed_by_reason") or {}).items())
            why = (f"decontamination removed all {stats['input']} ({removed}): they copy training documents"
                   if stats["input"] else f"the split gave it none of {sum(split['documents'].values())} documents")
            raise StageError("decontaminate", f"the {name} split is empty: {why}. Give more or less duplicated "
                             f"data, or a larger split.{name} fraction")


def _resolve_pretrained(name: str, key: str, what: str) -> None:
    """A local folder with a config/tokenizer, or a name the Hugging Face hub (or its local cache) knows."""
    folder = Path(name)
    if folder.exists():
        wanted = ("config.json",) if what == "model" else ("tokenizer.json", "tokenizer_config.json", "vocab.json")
        if not any((folder / f).exists() for f in wanted):
            raise InputError(name, f"not a {what} folder (none of {', '.join(wanted)} in it) [{key}]")
        if what == "model":  # a damaged config.json is found now, not after the shared stages
            try:
                json.loads((folder / "config.json").read_text(encoding="utf-8"))
            except (ValueError, OSError) as err:
                raise InputError(str(folder / "config.json"), f"{key}: not a readable JSON model config "
                                 f"({type(err).__name__}: {err}); give a folder saved by save_pretrained") from None
        return
    import os

    from transformers import AutoConfig

    from corpuslab.hub import hub_reachable

    try:
        AutoConfig.from_pretrained(name, token=os.environ.get("HF_TOKEN"), local_files_only=not hub_reachable())
    except Exception as err:  # offline, misspelt, gated: the same advice
        raise InputError(name, f"{key}: neither a local folder nor a {what} the Hugging Face hub or its cache "
                         f"knows ({type(err).__name__}); give a local folder, or prefetch it and set HF_HUB_OFFLINE=1") from None


def _safe_name(checkpoint: str) -> str:
    """A folder name for a checkpoint path or hub name: its last two path parts, filesystem-safe."""
    parts = [p for p in Path(checkpoint).parts if p not in ("/", ".", "..")][-2:]
    return "__".join("".join(c if c.isalnum() or c in "-_." else "_" for c in part) for part in parts) or "checkpoint"


def _weights_key(training) -> Any:
    """The training config without the settings that cannot change the weights (train.RESUMABLE_CHANGES minus the
    ones that shape the curve or the best checkpoint), so changing threads or save cadence neither retrains nor
    orphans a resumable run."""
    neutral = {"num_threads": None, "save_every": None, "keep_last": 2, "resume": "auto", "device": "auto",
               "check_logits": False, "detect_anomaly": False}
    key = to_dict(dataclasses.replace(training, **neutral))
    # How the global batch is computed (micro-batches, a compiled forward) changes float rounding only: left out
    # of the key, as if the settings did not exist, so folders made before them are still found.
    for name in ("micro_batch_size", "compile"):
        del key[name]
    return key


def _first_canary_offset(tokens_dir: Path, stream: TokenStream) -> int:
    is_canary = _canary_column(pq.read_table(tokens_dir / "train.docs.parquet", columns=["canary"]))
    first = int(np.argmax(is_canary)) if is_canary.any() else len(is_canary)
    return int(stream.offsets[first])


def _canary_column(docs: pa.Table) -> np.ndarray:
    """Which documents of a tokens stage are canaries (marked by metadata when the stage tokenized them)."""
    return docs.column("canary").to_numpy().astype(bool)


def _covered_tokens(starts: np.ndarray, chunk_len: int) -> int:
    """Distinct target tokens the windows cover (overlapping windows, stride < chunk_len, count once)."""
    if len(starts) == 0:
        return 0
    gaps = np.minimum(np.diff(np.sort(starts)), chunk_len)
    return int(gaps.sum()) + chunk_len
