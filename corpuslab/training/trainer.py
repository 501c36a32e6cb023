"""Training: AdamW, warmup + cosine, gradient clipping, exact resume.

Determinism is by construction, not by luck:
- the batch of step s is a pure function of (seed, s): sample index i = s * batch_size + j lives in epoch
  i // n_windows, at position i % n_windows of that epoch's permutation, drawn from a generator seeded
  with (seed, epoch). Resuming needs only the step, never a pickled data loader.
- the learning rate is a pure function of the step, so "scheduler state" is the step.
- the trainer state (optimizer tensors, RNG states, step, progress) is saved with `torch.save` of
  tensors and plain containers only, loaded with `weights_only=True`: nothing arbitrary is unpickled.

Extras (rate logging, evaluation + best checkpoint, periodic checkpoints, anything a user adds) are
callbacks; the loop itself only steps.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from corpuslab.atomic import replace_dir, temp_path
from corpuslab.errors import ConfigError, StageError
from corpuslab.evaluation.lm import mean_window_loss
from corpuslab.schema import require, require_int
from corpuslab.tokens.stream import TokenStream
from corpuslab.training.model import resolve_device

STATE_FILE = "trainer_state.pt"
STATE_FORMAT = 1
# Trainer attributes that make up the run's progress, saved so a resumed run continues its curve exactly.
PROGRESS_FIELDS = (
    "curve", "best_val_loss", "best_step", "loss_sum", "loss_count", "last_lr", "last_grad_norm",
)
# Settings that may change between an interrupted run and its resumption: they do not alter the
# weights. Any other difference would silently splice two different runs together.
RESUMABLE_CHANGES = frozenset(
    {"device", "log_interval", "eval_interval", "eval_batches", "save_every", "keep_last", "resume",
     "num_threads"}
)


@dataclass(frozen=True)
class TrainingConfig:
    """How to train. Steps = min(max_steps, max_train_tokens // (batch_size * chunk_len))."""

    chunk_len: int = 128  # tokens per training window (targets), at most the model's context
    stride: int | None = None  # distance between window starts; None = chunk_len (no overlap)
    batch_size: int = 32
    max_train_tokens: int | None = None
    max_steps: int | None = None
    lr: float = 1e-3
    min_lr_ratio: float = 0.1  # cosine decays to lr * min_lr_ratio at the last step
    warmup_steps: int = 100
    weight_decay: float = 0.1  # applied to matrices and embeddings only, never biases or LayerNorm
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float = 1.0  # max global grad norm; 0 turns clipping off
    precision: Literal["fp32", "bf16"] = "fp32"  # bf16: autocast forward; fp32 weights and optimizer
    device: str = "auto"  # "auto" = cuda when available; "cpu"; "cuda" or "cuda:N"
    log_interval: int = 50
    eval_interval: int = 200
    eval_batches: int = 20
    save_every: int | None = None  # steps between resumable saves (out_dir/last, out_dir/step-N)
    keep_last: int = 2  # how many out_dir/step-N snapshots to keep
    resume: Literal["auto", "never"] = "auto"  # auto: continue from out_dir/last if present; never: fresh
    seed: int = 0
    num_threads: int | None = None  # torch CPU threads during training; None keeps torch's default

    def __post_init__(self) -> None:
        object.__setattr__(self, "betas", tuple(self.betas))  # YAML gives lists

    @property
    def tokens_per_step(self) -> int:
        return self.batch_size * self.chunk_len

    def total_steps(self) -> int:
        limits = [self.max_steps] if self.max_steps is not None else []
        if self.max_train_tokens is not None:
            limits.append(self.max_train_tokens // self.tokens_per_step)
        return min(limits)

    def validate(self, prefix: str = "training") -> TrainingConfig:
        for key in ("chunk_len", "batch_size", "log_interval", "eval_interval", "eval_batches"):
            require_int(getattr(self, key), f"{prefix}.{key}", 1)
        for key in ("stride", "max_train_tokens", "max_steps", "save_every", "num_threads"):
            require_int(getattr(self, key), f"{prefix}.{key}", 1, optional=True)
        for key in ("warmup_steps", "keep_last", "seed"):
            require_int(getattr(self, key), f"{prefix}.{key}", 0)
        if self.max_steps is None and self.max_train_tokens is None:
            raise ConfigError(f"{prefix}.max_steps", None, "an integer when max_train_tokens is not set")
        if self.total_steps() < 1:
            one_step = f">= one step ({self.tokens_per_step} tokens)"
            raise ConfigError(f"{prefix}.max_train_tokens", self.max_train_tokens, one_step)
        require(self.lr > 0 and math.isfinite(self.lr), f"{prefix}.lr", self.lr, "a positive number")
        require(0 <= self.min_lr_ratio <= 1, f"{prefix}.min_lr_ratio", self.min_lr_ratio, "a number in [0, 1]")
        require(self.weight_decay >= 0, f"{prefix}.weight_decay", self.weight_decay, "a number >= 0")
        require(self.grad_clip >= 0, f"{prefix}.grad_clip", self.grad_clip, "a number >= 0 (0 = off)")
        require(
            len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas),
            f"{prefix}.betas", list(self.betas), "two numbers in [0, 1)",
        )
        require(self.precision in ("fp32", "bf16"), f"{prefix}.precision", self.precision, "'fp32' or 'bf16'")
        require(
            self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:"),
            f"{prefix}.device", self.device, "'auto', 'cpu', 'cuda' or 'cuda:N'",
        )
        require(self.resume in ("auto", "never"), f"{prefix}.resume", self.resume, "'auto' or 'never'")
        return self


def learning_rate(update: int, cfg: TrainingConfig, total_steps: int) -> float:
    """LR of the 0-based optimizer update `update`: linear warmup, then cosine down to lr * min_lr_ratio."""
    if update < cfg.warmup_steps:
        return cfg.lr * (update + 1) / cfg.warmup_steps
    decay_updates = max(1, total_steps - 1 - cfg.warmup_steps)
    progress = min(1.0, (update - cfg.warmup_steps) / decay_updates)
    min_lr = cfg.lr * cfg.min_lr_ratio
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (cfg.lr - min_lr)


class WindowSampler:
    """Window indices of each step's batch: a pure function of (seed, step), see the module docstring."""

    def __init__(self, n_windows: int, batch_size: int, seed: int):
        self.n_windows, self.batch_size, self.seed = n_windows, batch_size, seed
        self._permutations: dict[int, np.ndarray] = {}

    def _permutation(self, epoch: int) -> np.ndarray:
        if epoch not in self._permutations:
            if len(self._permutations) >= 2:  # a batch spans at most two epochs... unless tiny data
                self._permutations.pop(min(self._permutations))
            rng = np.random.default_rng([self.seed, epoch])
            self._permutations[epoch] = rng.permutation(self.n_windows)
        return self._permutations[epoch]

    def batch_indices(self, update: int) -> np.ndarray:
        samples = np.arange(update * self.batch_size, (update + 1) * self.batch_size, dtype=np.int64)
        epochs, positions = np.divmod(samples, self.n_windows)
        indices = np.empty(self.batch_size, dtype=np.int64)
        for epoch in np.unique(epochs):
            mask = epochs == epoch
            indices[mask] = self._permutation(int(epoch))[positions[mask]]
        return indices


@dataclass
class TrainResult:
    steps: int
    tokens_seen: int
    epochs_seen: float  # tokens seen / tokens in the training windows
    curve: list[dict]
    best_val_loss: float | None
    best_step: int | None
    final_path: Path
    best_path: Path | None
    tokens_per_second: float  # training compute only (eval and checkpoint time excluded), this call
    resumed_from_step: int | None = None

    def to_dict(self) -> dict:
        out = asdict(self)
        out["final_path"] = str(self.final_path)
        out["best_path"] = str(self.best_path) if self.best_path else None
        return out


def _decay_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Decay matrices and embeddings; biases and LayerNorm gains (all 1-D) are not decayed."""
    decay, no_decay = [], []
    for _, param in model.named_parameters():  # tied weights appear once
        if param.requires_grad:
            (decay if param.dim() >= 2 else no_decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _windows_fingerprint(windows: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(windows, dtype=np.int64).tobytes()).hexdigest()[:16]


def _rng_states() -> dict:
    _, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        # numpy arrays are not weights_only-loadable; a tensor of the same keys is.
        "numpy": {"keys": torch.from_numpy(np_keys.astype(np.int64)), "pos": np_pos,
                  "has_gauss": np_has_gauss, "gauss": np_gauss},
        "python": random.getstate(),
    }


def _set_rng_states(states: dict) -> None:
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    numpy_state = states["numpy"]
    np.random.set_state(("MT19937", numpy_state["keys"].numpy().astype(np.uint32), numpy_state["pos"],
                         numpy_state["has_gauss"], numpy_state["gauss"]))
    random.setstate(states["python"])


def _tmp_dir(target: Path) -> Path:
    tmp = temp_path(target)
    shutil.rmtree(tmp, ignore_errors=True)
    return tmp


def _find_state(out_dir: Path) -> Path | None:
    for candidate in (out_dir / "last", out_dir / "last.old"):
        if (candidate / STATE_FILE).exists():
            return candidate
    return None


class Trainer:
    """The training loop's state and its primitive operations; `train()` wires it to callbacks."""

    def __init__(self, model: torch.nn.Module, train_stream: TokenStream, train_windows: np.ndarray,
                 val_stream: TokenStream | None, val_windows: np.ndarray | None, cfg: TrainingConfig,
                 out_dir: Path, log: Callable[[str], None]):
        self.cfg, self.out_dir, self.log = cfg, Path(out_dir), log
        self.device = resolve_device(cfg.device)
        self.model = model.to(self.device)
        self.train_stream, self.train_windows = train_stream, np.asarray(train_windows, dtype=np.int64)
        self.val_stream = val_stream
        self.val_windows = np.asarray(val_windows if val_windows is not None else [], dtype=np.int64)
        self.total_steps = cfg.total_steps()
        self.sampler = WindowSampler(len(self.train_windows), cfg.batch_size, cfg.seed)
        self.optimizer = torch.optim.AdamW(_decay_groups(model, cfg.weight_decay), lr=cfg.lr, betas=cfg.betas)
        self.params = [p for group in self.optimizer.param_groups for p in group["params"]]
        self.autocast_dtype = torch.bfloat16 if cfg.precision == "bf16" else None
        # Progress, all of it saved in the trainer state so a resumed run continues it exactly.
        self.step = 0  # completed optimizer updates
        self.curve: list[dict] = []
        self.best_val_loss: float | None = None
        self.best_step: int | None = None
        self.loss_sum, self.loss_count = 0.0, 0  # training losses since the last curve entry
        self.last_lr = self.last_grad_norm = float("nan")
        self.train_seconds = 0.0  # compute time of this call's steps, for tokens/s

    @property
    def tokens_seen(self) -> int:
        return self.step * self.cfg.tokens_per_step

    @property
    def epochs_seen(self) -> float:
        return self.tokens_seen / (len(self.train_windows) * self.cfg.chunk_len)

    def train_step(self) -> None:
        """One optimizer update: batch of step `self.step`, forward, backward, clip, AdamW."""
        started = time.perf_counter()
        update = self.step  # 0-based; it completes step `update + 1`
        starts = self.train_windows[self.sampler.batch_indices(update)]
        inputs, targets = self.train_stream.batch(starts, self.cfg.chunk_len)
        inputs = inputs.to(self.device, non_blocking=True)
        targets = targets.to(self.device, non_blocking=True)
        lr = learning_rate(update, self.cfg, self.total_steps)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast_dtype is not None):
            logits = self.model(input_ids=inputs, use_cache=False).logits
        loss = F.cross_entropy(logits.float().flatten(0, 1), targets.flatten())
        loss_value = loss.item()  # one host sync per step; it buys a non-finite check naming the step
        if not math.isfinite(loss_value):
            raise StageError("train", f"non-finite loss at step {update + 1} (loss={loss_value}); "
                             f"{self._advice()}")
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.params, self.cfg.grad_clip or float("inf")).item()
        if not math.isfinite(grad_norm):
            raise StageError("train", f"non-finite gradient norm at step {update + 1} ({grad_norm}); "
                             f"{self._advice()}")
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        self.loss_sum, self.loss_count = self.loss_sum + loss_value, self.loss_count + 1
        self.last_lr, self.last_grad_norm = lr, grad_norm
        self.train_seconds += time.perf_counter() - started

    def _advice(self) -> str:
        saved = _find_state(self.out_dir)
        where = f"the last saved state is in {saved}" if saved else "no resumable state was saved"
        return f"lower training.lr (now {self.cfg.lr}) or use fp32; {where}"

    def curve_entry(self) -> dict:
        """The curve record of the current step, created on first use. Its loss is the mean training
        loss over the steps since the previous record."""
        if self.curve and self.curve[-1]["step"] == self.step:
            return self.curve[-1]
        entry = {
            "step": self.step, "tokens": self.tokens_seen,
            "loss": self.loss_sum / self.loss_count if self.loss_count else None,
            "lr": self.last_lr, "grad_norm": self.last_grad_norm, "val_loss": None,
        }
        self.loss_sum, self.loss_count = 0.0, 0
        self.curve.append(entry)
        return entry

    def val_loss(self) -> float | None:
        starts = self.val_windows[: self.cfg.eval_batches * self.cfg.batch_size]
        if self.val_stream is None or len(starts) == 0:
            return None
        return mean_window_loss(self.model, self.val_stream, starts, self.cfg.chunk_len,
                                self.cfg.batch_size, self.device, self.autocast_dtype)

    def save_snapshot(self, target: Path) -> Path:
        """Hugging Face checkpoint (config.json + model.safetensors) plus the training config."""
        tmp = _tmp_dir(target)
        self.model.save_pretrained(tmp, safe_serialization=True)
        (tmp / "training_config.json").write_text(json.dumps(asdict(self.cfg), indent=2))
        replace_dir(tmp, target)
        return target

    def save_state(self, target: Path) -> Path:
        """Everything an exact resume needs; the state file is written last inside a temp folder."""
        tmp = _tmp_dir(target)
        self.model.save_pretrained(tmp, safe_serialization=True)
        torch.save(self._state_dict(), tmp / STATE_FILE)
        replace_dir(tmp, target)
        return target

    def _state_dict(self) -> dict:
        return {
            "format": STATE_FORMAT,
            "step": self.step,
            "optimizer": self.optimizer.state_dict(),
            "rng": _rng_states(),
            "data": {
                "n_windows": len(self.train_windows),
                "windows": _windows_fingerprint(self.train_windows),
                "next_sample": self.step * self.cfg.batch_size,
            },
            "config": asdict(self.cfg),
            "progress": {key: getattr(self, key) for key in PROGRESS_FIELDS},
        }

    def load_state(self, source: Path) -> None:
        state = torch.load(source / STATE_FILE, map_location="cpu", weights_only=True)
        self._check_compatible(state, source)
        self._load_weights(source)
        self.optimizer.load_state_dict(state["optimizer"])
        _set_rng_states(state["rng"])
        self.step = state["step"]
        for key in PROGRESS_FIELDS:
            setattr(self, key, state["progress"][key])

    def _check_compatible(self, state: dict, source: Path) -> None:
        saved, now = state["config"], asdict(self.cfg)
        saved["betas"] = tuple(saved["betas"])
        changed = sorted(k for k in now if k not in RESUMABLE_CHANGES and saved.get(k) != now[k])
        if state["data"]["windows"] != _windows_fingerprint(self.train_windows):
            changed.append("training windows (the token stream or chunking)")
        if changed:
            raise StageError("train", f"cannot resume from {source}: it was made with different "
                             f"{', '.join(changed)}; use training.resume=never or another output folder")

    def _load_weights(self, source: Path) -> None:
        weights = load_file(source / "model.safetensors", device=str(self.device))
        missing, unexpected = self.model.load_state_dict(weights, strict=False)
        tied = set(getattr(self.model, "_tied_weights_keys", None) or ())  # saved once, under the input name
        if unexpected or set(missing) - tied:
            raise StageError("train", f"{source}: checkpoint does not fit the model "
                             f"(missing {sorted(set(missing) - tied)}, unexpected {sorted(unexpected)})")
        self.model.tie_weights()


class Callback:
    """A hook into `train()`. Override what you need. Raising aborts training; the state on disk stays
    at the last save, so a later call with resume="auto" continues from there."""

    def on_train_start(self, trainer: Trainer) -> None:
        pass

    def on_step_end(self, trainer: Trainer) -> None:
        pass

    def on_train_end(self, trainer: Trainer) -> None:
        pass


class Evaluate(Callback):
    """Validation loss every `eval_interval` steps and at the end; keeps the best model in out_dir/best."""

    def on_step_end(self, trainer: Trainer) -> None:
        if trainer.step % trainer.cfg.eval_interval and trainer.step != trainer.total_steps:
            return
        val_loss = trainer.val_loss()
        if val_loss is None:
            return
        trainer.curve_entry()["val_loss"] = val_loss
        improved = trainer.best_val_loss is None or val_loss < trainer.best_val_loss
        if improved:
            trainer.best_val_loss, trainer.best_step = val_loss, trainer.step
            trainer.save_snapshot(trainer.out_dir / "best")
        best = " (best)" if improved else ""
        trainer.log(f"step {trainer.step}/{trainer.total_steps} | val loss {val_loss:.4f}{best}")


class LogRate(Callback):
    """Every `log_interval` steps and at the end: mean loss, lr, grad norm and tokens per second."""

    def on_train_start(self, trainer: Trainer) -> None:
        self.seconds, self.step = trainer.train_seconds, trainer.step

    def on_step_end(self, trainer: Trainer) -> None:
        if trainer.step % trainer.cfg.log_interval and trainer.step != trainer.total_steps:
            return
        entry = trainer.curve_entry()
        seconds = trainer.train_seconds - self.seconds
        tokens = (trainer.step - self.step) * trainer.cfg.tokens_per_step
        rate = tokens / seconds if seconds > 0 else float("nan")
        self.seconds, self.step = trainer.train_seconds, trainer.step
        trainer.log(f"step {trainer.step}/{trainer.total_steps} | loss {entry['loss']:.4f} "
                    f"| lr {entry['lr']:.3e} | grad norm {entry['grad_norm']:.3f} | {rate:,.0f} tok/s")


class PeriodicCheckpoint(Callback):
    """Every `save_every` steps: the resumable state (out_dir/last) and a snapshot out_dir/step-N,
    keeping the newest `keep_last` snapshots."""

    def on_step_end(self, trainer: Trainer) -> None:
        every = trainer.cfg.save_every
        if every is None or trainer.step % every:
            return
        trainer.save_state(trainer.out_dir / "last")
        if trainer.cfg.keep_last > 0:
            trainer.save_snapshot(trainer.out_dir / f"step-{trainer.step}")
        self._prune(trainer.out_dir, trainer.cfg.keep_last)

    @staticmethod
    def _prune(out_dir: Path, keep_last: int) -> None:
        snapshots = sorted(out_dir.glob("step-*"), key=lambda p: int(p.name.split("-")[1]))
        for old in snapshots[: max(0, len(snapshots) - keep_last)]:
            shutil.rmtree(old, ignore_errors=True)


def _clear_run_artifacts(out_dir: Path) -> list[str]:
    """Remove what an earlier run left in `out_dir`: a fresh run must not leave a stale `best`, `final` or
    `step-N` that looks like its own."""
    names = ("last", "last.old", "best", "final")
    stale = [p for p in out_dir.iterdir() if p.name in names or p.name.startswith("step-")]
    for path in stale:
        shutil.rmtree(path)
    return sorted(p.name for p in stale)


def _start(trainer: Trainer) -> int | None:
    """Resume from out_dir/last when asked and present; returns the step resumed from."""
    source = _find_state(trainer.out_dir) if trainer.cfg.resume == "auto" else None
    if source is None:
        removed = _clear_run_artifacts(trainer.out_dir)
        if removed:
            trainer.log(f"starting fresh in {trainer.out_dir}: removed {', '.join(removed)} "
                        "of an earlier run")
        return None
    trainer.load_state(source)
    trainer.log(f"resumed from {source} at step {trainer.step}/{trainer.total_steps}")
    return trainer.step


def train(
    model: torch.nn.Module,
    train_stream: TokenStream,
    train_windows: np.ndarray,
    val_stream: TokenStream | None,
    val_windows: np.ndarray | None,
    cfg: TrainingConfig,
    out_dir: Path,
    log: Callable[[str], None] = print,
    callbacks: Sequence[Callback] = (),
) -> TrainResult:
    """Train `model` in place on `train_windows` of `train_stream` (window starts, each chunk_len + 1
    tokens); evaluate on the first eval_batches * batch_size `val_windows`. Writes out_dir/final,
    out_dir/best (when there is validation data), out_dir/last (resumable) and out_dir/step-N."""
    cfg.validate()
    context = getattr(model.config, "n_positions", None)
    if context is not None and cfg.chunk_len > context:
        raise ConfigError("training.chunk_len", cfg.chunk_len, f"<= the model context ({context})")
    if len(train_windows) == 0:
        raise StageError("train", f"no training windows: the stream has {train_stream.n_tokens} tokens, "
                         f"a window needs chunk_len + 1 = {cfg.chunk_len + 1}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    previous_threads = torch.get_num_threads()
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    was_training = model.training
    try:
        trainer = Trainer(model, train_stream, train_windows, val_stream, val_windows, cfg, out_dir, log)
        resumed_from = _start(trainer)
        return _run(trainer, [Evaluate(), LogRate(), PeriodicCheckpoint(), *callbacks], resumed_from)
    finally:
        torch.set_num_threads(previous_threads)
        model.train(was_training)


def _run(trainer: Trainer, callbacks: list[Callback], resumed_from: int | None) -> TrainResult:
    cfg = trainer.cfg
    epochs = trainer.total_steps * cfg.tokens_per_step / (len(trainer.train_windows) * cfg.chunk_len)
    trainer.log(f"training {trainer.total_steps} steps x {cfg.tokens_per_step} tokens on {trainer.device} "
                f"({len(trainer.train_windows)} windows, {epochs:.2f} epochs)")
    trainer.model.train()
    for callback in callbacks:
        callback.on_train_start(trainer)
    while trainer.step < trainer.total_steps:
        trainer.train_step()
        for callback in callbacks:
            callback.on_step_end(trainer)
    final_path = trainer.save_snapshot(trainer.out_dir / "final")
    trainer.save_state(trainer.out_dir / "last")  # a rerun with resume="auto" finds the run complete
    for callback in callbacks:
        callback.on_train_end(trainer)
    trained = (trainer.step - (resumed_from or 0)) * cfg.tokens_per_step
    best = trainer.out_dir / "best"
    return TrainResult(
        steps=trainer.step,
        tokens_seen=trainer.tokens_seen,
        epochs_seen=trainer.epochs_seen,
        curve=trainer.curve,
        best_val_loss=trainer.best_val_loss,
        best_step=trainer.best_step,
        final_path=final_path,
        best_path=best if trainer.best_step is not None else None,
        tokens_per_second=trained / trainer.train_seconds if trainer.train_seconds > 0 else 0.0,
        resumed_from_step=resumed_from,
    )
