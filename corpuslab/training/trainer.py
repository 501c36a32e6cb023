"""Training: AdamW, warmup + cosine, gradient clipping, exact resume.

Determinism is by construction, not by luck:
- the batch of step s is a pure function of (seed, s), whatever the sampler (see `samplers`): resuming
  needs only the step, never a pickled data loader.
- the learning rate is a pure function of the step, so "scheduler state" is the step.
- the trainer state (optimizer tensors, RNG states, step, progress, callbacks' state) is saved with
  `torch.save` of tensors and plain containers only, loaded with `weights_only=True`: nothing arbitrary
  is unpickled.

Extras (rate logging, evaluation + best checkpoint, periodic checkpoints, loss terms, masks, anything a
user adds) are callbacks (`callbacks`); a training procedure (`procedures`) supplies the sampler and its
own callbacks. The loop itself only steps.

Under torchrun (`distributed`) every process runs this loop: the global batch of each step is the
sampler's, each rank reads its equal share of it (in micro-batches of training.micro_batch_size, their
gradients accumulated) and DistributedDataParallel averages the gradients, so the curve is the one a single
process draws, within float tolerance, for any number of processes. Rank 0 alone logs, evaluates and saves;
a save resumes under any number of processes.

Saves survive a full disk (a clear error, the previous save intact) and resumes survive a damaged save
(the next older loadable one is used, or the error says which folder to delete).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import math
import os
import random
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file

from corpuslab.atomic import replace_dir, temp_path
from corpuslab.errors import ConfigError, CorpuslabError, StageError
from corpuslab.evaluation.lm import mean_window_loss
from corpuslab.tokens.stream import TokenStream
from corpuslab.training import distributed
from corpuslab.training.allocator import reuse_freed_memory
from corpuslab.training.callbacks import (  # noqa: F401  (Callback re-exported: the public place it was)
    Callback,
    Evaluate,
    LogRate,
    PeriodicCheckpoint,
    snapshots,
)
from corpuslab.training.config import TrainingConfig, learning_rate  # noqa: F401  (re-exported)
from corpuslab.training.model import resolve_device
from corpuslab.training.procedures import Procedure, Standard
from corpuslab.training.samplers import Sampler, SamplingData, WindowSampler  # noqa: F401  (re-exported)

STATE_FILE = "trainer_state.pt"
STATE_FORMAT = 1
# Trainer attributes that make up the run's progress, saved so a resumed run continues its curve exactly.
PROGRESS_FIELDS = (
    "curve", "best_val_loss", "best_step", "loss_sum", "loss_count", "last_lr", "last_grad_norm",
    "last_grad_norm_clipped",
)
NONFINITE_PREFIX = "nonfinite-step-"  # folder holding the batch and norms of a step whose loss was not finite
# Settings that may change between an interrupted run and its resumption: they do not alter the
# weights. Any other difference would silently splice two different runs together.
RESUMABLE_CHANGES = frozenset(
    {"device", "log_interval", "eval_interval", "eval_batches", "save_every", "keep_last", "resume",
     "num_threads", "check_logits", "detect_anomaly", "micro_batch_size", "compile"}
)


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
    procedure: dict[str, Any] = field(default_factory=dict)  # what trained: name, version, config (sampler resolved)
    sampler_stats: dict[str, Any] = field(default_factory=dict)  # what the sampler drew from and skipped

    def to_dict(self) -> dict:
        out = asdict(self)
        out["final_path"] = str(self.final_path)
        out["best_path"] = str(self.best_path) if self.best_path else None
        return out


# The CPU keeps torch's default (foreach) AdamW, whose numbers the default run was made with; tests set this
# to take the CUDA path's fused AdamW and deferred checks on the CPU.
FUSED_ON_CPU = False


class _Readback:
    """A small device tensor on its way to the host: copied without blocking, read when needed."""

    def __init__(self, values: torch.Tensor):
        if values.device.type == "cuda":
            self.host = torch.empty(values.shape, dtype=values.dtype, pin_memory=True)
            self.host.copy_(values, non_blocking=True)
            self.ready = torch.cuda.Event()
            self.ready.record()
        else:
            self.host, self.ready = values, None

    def values(self) -> list:
        if self.ready is not None:
            self.ready.synchronize()
        return self.host.tolist()


@dataclass
class _Batch:
    """One step's batch and what is known of it so far, for the report of a non-finite step."""

    inputs: torch.Tensor
    targets: torch.Tensor
    starts: np.ndarray
    update: int
    lr: float
    logits: torch.Tensor | None = None
    loss: float = float("nan")
    grad_norm: float | None = None
    anomaly: str | None = None


def _number(value: float | None) -> float | str | None:
    """JSON has no NaN or infinity: those are written as strings."""
    return value if value is None or math.isfinite(value) else str(value)


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


def _write_folder(target: Path, write: Callable[[Path], None]) -> Path:
    """Build `target` by `write(tmp)` in a temporary sibling and move it into place only when complete.

    A write that fails (a full disk: safetensors raises SafetensorError, torch.save RuntimeError, plain
    files OSError) leaves `target` as it was and stops training with what to do; the run's last complete
    save still resumes. Whatever fails, the temporary folder is removed."""
    tmp = _tmp_dir(target)
    try:
        write(tmp)
        replace_dir(tmp, target)
    except (OSError, RuntimeError, SafetensorError) as err:
        cause = "the disk is full" if _disk_full(err, target.parent) else f"{type(err).__name__}: {_gist(err)}"
        raise StageError("train", f"could not write the checkpoint {target} ({cause}); {_free_space(target.parent)}. "
                         "Free disk space there and rerun: training resumes from its last complete save") from err
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _disk_full(err: BaseException, folder: Path) -> bool:
    """torch.save reports a full disk as '[enforce fail at inline_container.cc] ... unexpected pos' or 'file
    write failed', safetensors as its own error: recognise them, or an (almost) empty disk, as what they are."""
    if isinstance(err, OSError) and err.errno == errno.ENOSPC:
        return True
    text = str(err)
    if any(sign in text for sign in ("No space left", "file write failed", "unexpected pos", "inline_container")):
        return True
    try:
        return shutil.disk_usage(folder).free < 2**20
    except OSError:
        return False


def _free_space(folder: Path) -> str:
    try:
        return f"{shutil.disk_usage(folder).free / 2**20:,.0f} MiB are free in {folder}"
    except OSError:
        return f"the free space in {folder} is unknown"


def _link_files(source: Path, target: Path) -> None:
    """Hard-link every file of `source` into the new folder `target`, copying where links are not
    supported. Links cost no space; files are never rewritten in place, so the two folders stay
    independent."""
    target.mkdir(parents=True)
    for path in source.iterdir():
        try:
            os.link(path, target / path.name)
        except OSError:
            shutil.copy2(path, target / path.name)


def _gist(err: BaseException, limit: int = 160) -> str:
    """The gist of an error for a one-paragraph message: torch's run on for several sentences."""
    lines = str(err).strip().splitlines()
    return (lines[0] if lines else "").split(". ")[0][:limit]


def _state_candidates(out_dir: Path) -> list[Path]:
    """Folders holding a trainer state, in the order a resume tries them: the last save, the copy an
    interrupted replacement moved aside, then the step-N snapshots, newest first."""
    folders = [out_dir / "last", out_dir / "last.old", *(path for _, path in snapshots(out_dir))]
    return [folder for folder in folders if (folder / STATE_FILE).is_file()]


def _is_stateful(callback: Callback) -> bool:
    return type(callback).state_dict is not Callback.state_dict


_PLAIN_TYPES = (str, int, float, bool, type(None))


def _check_plain(value: Any, where: str) -> None:
    """Raise unless `value` is tensors and plain containers: anything else would be saved by torch.save
    and then refused by the `weights_only=True` load, making the save useless for resume."""
    if isinstance(value, dict):
        for key, item in value.items():
            if type(key) not in (str, int):
                raise TypeError(f"{where}: key {key!r} must be a str or int")
            _check_plain(item, f"{where}[{key!r}]")
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _check_plain(item, f"{where}[{index}]")
    elif not (type(value) in _PLAIN_TYPES or isinstance(value, torch.Tensor)):
        raise TypeError(f"{where} is a {type(value).__name__}; a callback's state must be tensors and "
                        "dict/list/tuple/str/int/float/bool/None (it is loaded with weights_only=True)")


def next_token_loss(model: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean cross-entropy in fp32, logits) of one batch: the unit `training.compile` compiles, so the fp32
    upcast of the logits fuses into the loss instead of materialising a copy of them."""
    logits = model(input_ids=inputs, use_cache=False).logits
    return F.cross_entropy(logits.float().flatten(0, 1), targets.flatten()), logits


class Trainer:
    """The training loop's state and its primitive operations; `train()` wires it to callbacks."""

    def __init__(self, model: torch.nn.Module, train_stream: TokenStream, train_windows: np.ndarray,
                 val_stream: TokenStream | None, val_windows: np.ndarray | None, cfg: TrainingConfig,
                 out_dir: Path, log: Callable[[str], None], procedure: Procedure | None = None,
                 callbacks: Sequence[Callback] = ()):
        # Each process's share of the global batch; a world size that does not divide it stops here.
        self.share, self.micro_batches = distributed.check_batch(cfg.batch_size, cfg.micro_batch_size)
        self.rank, self.world = distributed.rank(), distributed.world_size()
        self.is_main = self.rank == 0
        self.cfg, self.out_dir = cfg, Path(out_dir)
        self.log = log if self.is_main else (lambda line: None)
        self.device = resolve_device(distributed.training_device(cfg.device))
        self.model = model.to(self.device)
        self.forward_model = self._wrap(self.model)
        self._forward_loss = torch.compile(next_token_loss) if cfg.compile else next_token_loss
        self.vocab_size = model.get_input_embeddings().num_embeddings
        self.train_stream, self.train_windows = train_stream, np.asarray(train_windows, dtype=np.int64)
        self.val_stream = val_stream
        self.val_windows = np.asarray(val_windows if val_windows is not None else [], dtype=np.int64)
        self.total_steps = cfg.total_steps()
        self.procedure = procedure if procedure is not None else Standard()
        self.sampler: Sampler = self.procedure.sampler
        self.sampler.setup(SamplingData(train_stream, self.train_windows, cfg.chunk_len, cfg.batch_size, cfg.seed))
        self.callbacks = list(callbacks)
        self.stateful = _stateful_by_key(self.callbacks)
        # Callbacks that read each batch's loss before backward (on_batch_loss); without any, the loss
        # is read in the step's one host sync, together with the gradient norm.
        self.loss_listeners = [c for c in self.callbacks if type(c).on_batch_loss is not Callback.on_batch_loss]
        # Fused AdamW on CUDA: one kernel for every parameter's update instead of a dozen per tensor group.
        self.fused = self.device.type == "cuda" or FUSED_ON_CPU
        self.optimizer = torch.optim.AdamW(_decay_groups(model, cfg.weight_decay), lr=cfg.lr, betas=cfg.betas,
                                           eps=cfg.adam_eps, fused=self.fused)
        self.params = [p for group in self.optimizer.param_groups for p in group["params"]]
        self.autocast_dtype = torch.bfloat16 if cfg.precision == "bf16" else None
        # Progress, all of it saved in the trainer state so a resumed run continues it exactly.
        self.step = 0  # completed optimizer updates
        self.curve: list[dict] = []
        self.best_val_loss: float | None = None
        self.best_step: int | None = None
        self.loss_sum, self.loss_count = 0.0, 0  # training losses since the last curve entry
        self.last_lr = self.last_grad_norm = self.last_grad_norm_clipped = float("nan")
        self.train_seconds = 0.0  # compute time of this call's steps, for tokens/s
        self.resumed_from: Path | None = None  # the saved state this call continued from
        # On CUDA, without callbacks that read each loss before backward, a step never waits for the device:
        # its loss and norm are checked one step late (`_settle`) and a non-finite step is skipped on the device.
        self.deferred = self.fused and not self.loss_listeners
        self._pending: tuple[_Batch, _Readback] | None = None

    def _wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """The module the forward pass calls: DistributedDataParallel under torchrun (gradients averaged
        across processes during backward), the model itself otherwise."""
        if not distributed.init():
            return model
        from torch.nn.parallel import DistributedDataParallel

        device_ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=device_ids)

    @property
    def tokens_seen(self) -> int:
        return self.step * self.cfg.tokens_per_step

    @property
    def epochs_seen(self) -> float:
        return self.tokens_seen / (len(self.train_windows) * self.cfg.chunk_len)

    def train_step(self) -> None:
        """One optimizer update: the sampler's batch of step `self.step`, forward, the callbacks' loss
        terms, backward, clip, AdamW, each with its callback hook (see `callbacks`)."""
        started = time.perf_counter()
        update = self.step  # 0-based; it completes step `update + 1`
        # This process's share of the step's global batch (all of it in a single process).
        starts = self.sampler.batch_starts(update)[self.rank * self.share:(self.rank + 1) * self.share]
        inputs, targets = self.train_stream.batch(starts, self.cfg.chunk_len)
        self._check_token_ids(inputs, targets, starts, update)
        inputs = inputs.to(self.device, non_blocking=True)
        targets = targets.to(self.device, non_blocking=True)
        lr = learning_rate(update, self.cfg, self.total_steps)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        batch = _Batch(inputs, targets, starts, update, lr)
        with self._anomaly_mode(batch):
            batch_loss = self._forward_backward(batch)
        norm = torch.nn.utils.clip_grad_norm_(self.params, self.cfg.grad_clip or float("inf"))
        both = torch.stack([batch_loss.double(), norm.to(batch_loss.device, torch.float64)])
        if self.deferred:
            # No host sync: the device skips the update itself when the loss or norm is not finite (fused
            # AdamW's found_inf), and the numbers are read one step late, when the device is long past them.
            self.optimizer.found_inf = (~torch.isfinite(both).all()).float()
            batch.logits = None
            self._settle()
            self._pending = (batch, _Readback(both))
        else:
            # One host sync per step (two with on_batch_loss listeners): it buys the non-finite checks naming
            # the step, before the optimizer touches the weights.
            if self.loss_listeners:
                loss_value, grad_norm = batch.loss, norm.item()
            else:
                loss_value, grad_norm = both.tolist()
            self._record(batch, loss_value, grad_norm)
        batch.logits = None
        for callback in self.callbacks:
            callback.before_optimizer_step(self)
        self.optimizer.step()
        for callback in self.callbacks:
            callback.after_optimizer_step(self)
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        self.train_seconds += time.perf_counter() - started

    def _record(self, batch: _Batch, loss_value: float, grad_norm: float) -> None:
        """Check a step's loss and gradient norm (stopping at a non-finite one) and add them to the progress."""
        self._finite_loss(loss_value, batch)
        batch.loss, batch.grad_norm = loss_value, grad_norm
        if not math.isfinite(grad_norm):
            self._stop_non_finite(batch, "gradient norm")
        self.loss_sum, self.loss_count = self.loss_sum + loss_value, self.loss_count + 1
        self.last_lr, self.last_grad_norm = batch.lr, grad_norm
        # What clip_grad_norm_ scaled the gradients to (it multiplies by min(1, clip / (norm + 1e-6))).
        clip = self.cfg.grad_clip
        self.last_grad_norm_clipped = grad_norm * min(1.0, clip / (grad_norm + 1e-6)) if clip else grad_norm

    def _settle(self) -> None:
        """Record the step whose numbers are still on their way from the device (deferred checks). Called
        before anything reads the progress: a curve entry, a save, the end of training."""
        if self._pending is not None:
            batch, readback = self._pending
            self._pending = None
            self._record(batch, *readback.values())

    def _forward_backward(self, batch: _Batch) -> torch.Tensor:
        """Forward, the callbacks' loss terms and backward of each micro-batch of this process's share;
        returns the global batch's mean loss (a device tensor, averaged over processes). The gradients
        are the global batch's: accumulated over micro-batches, averaged over processes by DDP when the
        last micro-batch's backward runs."""
        size = self.share // self.micro_batches
        losses = []
        for index in range(self.micro_batches):
            last = index == self.micro_batches - 1
            window = slice(index * size, (index + 1) * size)
            sync = contextlib.nullcontext() if last or self.forward_model is self.model else self.forward_model.no_sync()
            with sync:
                with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast_dtype is not None):
                    loss, logits = self._forward_loss(self.forward_model, batch.inputs[window], batch.targets[window])
                batch.logits = logits
                if self.cfg.check_logits and not bool(torch.isfinite(logits).all()):
                    self._stop_non_finite(batch, "logits")
                losses.append(loss.detach())
                if last and self.loss_listeners:  # handed the loss before the update: a host sync of its own
                    self._tell_listeners(batch, losses)
                for callback in self.callbacks:
                    loss = callback.loss(self, loss)
                (loss / self.micro_batches if self.micro_batches > 1 else loss).backward()
        return self._global_mean(losses)

    def _global_mean(self, losses: list[torch.Tensor]) -> torch.Tensor:
        """The mean of the micro-batches' losses over every process (equal shares: the global batch's mean)."""
        mean = losses[0] if len(losses) == 1 else torch.stack(losses).mean()
        if self.world > 1:
            mean = mean.clone()
            torch.distributed.all_reduce(mean)  # SUM: gloo has no AVG
            mean /= self.world
        return mean

    def _tell_listeners(self, batch: _Batch, losses: list[torch.Tensor]) -> None:
        loss_value = self._finite_loss(self._global_mean(losses).item(), batch)
        batch.loss = loss_value
        for callback in self.loss_listeners:
            callback.on_batch_loss(self, loss_value, self.cfg.batch_size * self.cfg.chunk_len)

    def _finite_loss(self, loss_value: float, batch: _Batch) -> float:
        if not math.isfinite(loss_value):
            batch.loss = loss_value
            self._stop_non_finite(batch, "loss")
        return loss_value

    @contextlib.contextmanager
    def _anomaly_mode(self, batch: _Batch) -> Iterator[None]:
        """With training.detect_anomaly, autograd names the operation whose backward made a NaN; the step
        then stops like any other non-finite step (batch and norms saved)."""
        if not self.cfg.detect_anomaly:
            yield
            return
        with torch.autograd.detect_anomaly(check_nan=True):
            try:
                yield
            except RuntimeError as err:
                if "returned nan" not in str(err).lower() and "nan values" not in str(err).lower():
                    raise
                batch.anomaly = _gist(err, 300)
                self._stop_non_finite(batch, "backward (anomaly detection)")

    def parameter_norm(self) -> float:
        """Global L2 norm of the trained parameters."""
        with torch.no_grad():
            return float(torch.linalg.vector_norm(torch.stack(torch._foreach_norm(self.params))).item())

    def _stop_non_finite(self, batch: _Batch, what: str) -> None:
        """Stop at a non-finite step, naming it, after saving what reproduces it: the batch (inputs, targets,
        window starts) and the norms, with which parameters and whether the logits were already non-finite."""
        step = batch.update + 1
        with torch.no_grad():
            bad_params = [name for name, p in self.model.named_parameters() if not bool(torch.isfinite(p).all())]
            logits_finite = None if batch.logits is None else bool(torch.isfinite(batch.logits).all())
        diagnostics = {
            "step": step, "what": what, "loss": _number(batch.loss), "lr": batch.lr,
            "grad_norm_before_clip": _number(batch.grad_norm), "grad_clip": self.cfg.grad_clip,
            "parameter_norm": _number(self.parameter_norm()), "non_finite_parameters": bad_params,
            "logits_finite": logits_finite, "anomaly": batch.anomaly, "adam_eps": self.cfg.adam_eps,
            "precision": self.cfg.precision, "previous": self.curve[-1] if self.curve else None,
            "window_starts": [int(x) for x in batch.starts],
        }
        folder = self.out_dir / f"{NONFINITE_PREFIX}{step}"
        try:
            if not self.is_main:  # every process stops at the same step; rank 0 saves the evidence
                raise OSError(errno.EEXIST, "saved by rank 0")
            folder.mkdir(parents=True, exist_ok=True)
            torch.save({"inputs": batch.inputs.cpu(), "targets": batch.targets.cpu(),
                        "starts": torch.from_numpy(np.asarray(batch.starts, dtype=np.int64))}, folder / "batch.pt")
            (folder / "diagnostics.json").write_text(json.dumps(diagnostics, indent=2))
            saved = f"its batch and norms are in {folder}"
        except OSError as err:
            saved = f"its batch could not be saved ({err.strerror})"
        cause = (f"parameters already non-finite before this step: {', '.join(bad_params[:4])}" if bad_params
                 else "the logits were already non-finite (forward pass)" if logits_finite is False else "")
        detail = "; ".join(part for part in (cause, batch.anomaly or "") if part)
        raise StageError("train", f"non-finite {what} at step {step} (loss={batch.loss}, grad norm before clipping="
                         f"{batch.grad_norm}){f'; {detail}' if detail else ''}; {saved}; "
                         f"{self._advice()}, raise training.adam_eps (now {self.cfg.adam_eps}), or rerun with "
                         "training.detect_anomaly=true to name the operation")

    def _check_token_ids(self, inputs: torch.Tensor, targets: torch.Tensor, starts: np.ndarray, update: int) -> None:
        """Every id of the batch must index the model's embedding table. On CUDA an id past it fails with
        an opaque device-side assert, or worse reads garbage and turns the loss NaN steps later (the arXiv
        seed lost days to this), so the batch is checked on the host, before it moves."""
        largest = torch.maximum(inputs.amax(dim=1), targets[:, -1])  # the window's tokens: inputs + last target
        if int(largest.max()) < self.vocab_size:
            return
        row = int(torch.argmax(largest))
        raise StageError("train", f"step {update + 1}: the window at token offset {int(starts[row])} holds "
                         f"token id {int(largest[row])}, outside the model's vocabulary of {self.vocab_size} "
                         f"(the token stream declares {self.train_stream.vocab_size}); the tokens do not match "
                         "the model: rebuild them with this tokenizer or size the model to the stream")

    def _advice(self) -> str:
        saved = _state_candidates(self.out_dir)
        where = f"the last saved state is in {saved[0]}" if saved else "no resumable state was saved"
        return f"{where}; lower training.lr (now {self.cfg.lr}) or use fp32"

    def curve_entry(self) -> dict:
        """The curve record of the current step, created on first use. Its loss is the mean training
        loss over the steps since the previous record."""
        self._settle()
        if self.curve and self.curve[-1]["step"] == self.step:
            return self.curve[-1]
        entry = {
            "step": self.step, "tokens": self.tokens_seen,
            "loss": self.loss_sum / self.loss_count if self.loss_count else None,
            "lr": self.last_lr, "grad_norm": self.last_grad_norm, "val_loss": None,
            "grad_norm_clipped": self.last_grad_norm_clipped, "param_norm": self.parameter_norm(),
        }
        self.loss_sum, self.loss_count = 0.0, 0
        self.curve.append(entry)
        return entry

    def val_loss(self) -> float | None:
        """The validation loss (rank 0 only: under torchrun the other ranks get None and wait at the next step)."""
        starts = self.val_windows[: self.cfg.eval_batches * self.cfg.batch_size]
        if self.val_stream is None or len(starts) == 0 or not self.is_main:
            return None
        return mean_window_loss(self.model, self.val_stream, starts, self.cfg.chunk_len,
                                self.cfg.batch_size, self.device, self.autocast_dtype)

    def save_snapshot(self, target: Path, state_from: Path | None = None) -> Path:
        """Hugging Face checkpoint (config.json + model.safetensors) plus the training config. With
        `state_from`, a folder `save_state` wrote at this very step, its files are linked in instead of
        written again: the snapshot is then resumable too. Only rank 0 writes."""
        if not self.is_main:
            return target

        def write(tmp: Path) -> None:
            if state_from is None:
                self.model.save_pretrained(tmp, safe_serialization=True)
            else:
                _link_files(state_from, tmp)
            (tmp / "training_config.json").write_text(json.dumps(asdict(self.cfg), indent=2))

        return _write_folder(target, write)

    def save_state(self, target: Path) -> Path:
        """Everything an exact resume needs; the state file is written last inside a temp folder. Only rank 0
        writes: every rank holds the same weights, optimizer state and progress."""
        self._settle()
        if not self.is_main:
            return target
        state = self._state_dict()  # first: a callback state that cannot be saved fails before any write

        def write(tmp: Path) -> None:
            self.model.save_pretrained(tmp, safe_serialization=True)
            torch.save(state, tmp / STATE_FILE)

        return _write_folder(target, write)

    def _state_dict(self) -> dict:
        callbacks = {key: callback.state_dict() for key, callback in self.stateful.items()}
        for key, state in callbacks.items():
            _check_plain(state, f"the state of callback '{key}'")
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
            "procedure": self.procedure.describe(),
            "progress": {key: getattr(self, key) for key in PROGRESS_FIELDS},
            "callbacks": callbacks,
        }

    def load_state(self, source: Path) -> None:
        """Continue from the state saved in `source`. A StageError when it belongs to a differently
        configured run; any other error means the files are damaged."""
        state = torch.load(source / STATE_FILE, map_location="cpu", weights_only=True)
        if not isinstance(state, dict):
            raise TypeError(f"{STATE_FILE} holds a {type(state).__name__}, not a trainer state")
        self._check_compatible(state, source)
        self._load_weights(source)
        self.optimizer.load_state_dict(state["optimizer"])
        _set_rng_states(state["rng"])
        self.step = state["step"]
        for key in PROGRESS_FIELDS:  # a state saved before a field existed leaves it at its start value
            if key in state["progress"]:
                setattr(self, key, state["progress"][key])
        for key, callback in self.stateful.items():
            callback.load_state_dict(state["callbacks"][key])

    def _check_compatible(self, state: dict, source: Path) -> None:
        saved, now = state["config"], asdict(self.cfg)
        saved["betas"] = tuple(saved["betas"])
        changed = sorted(k for k in now if k not in RESUMABLE_CHANGES and saved.get(k) != now[k])
        if state["data"]["windows"] != _windows_fingerprint(self.train_windows):
            changed.append("training windows (the token stream or chunking)")
        # States saved before procedures existed were made by the standard one.
        if state.get("procedure", Standard().describe()) != self.procedure.describe():
            changed.append(f"training procedure (saved: {state.get('procedure', 'standard')})")
        saved_callbacks = sorted(state.get("callbacks", {}))
        if saved_callbacks != sorted(self.stateful):
            changed.append(f"stateful callbacks (saved: {saved_callbacks}, now: {sorted(self.stateful)})")
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


def _stateful_by_key(callbacks: Sequence[Callback]) -> dict[str, Callback]:
    """The callbacks that keep state, by the key their state is saved under (which must be unique)."""
    stateful: dict[str, Callback] = {}
    for callback in callbacks:
        if not _is_stateful(callback):
            continue
        if callback.state_key in stateful:
            raise ValueError(f"two callbacks save their state under '{callback.state_key}': give them "
                             "distinct `name`s")
        stateful[callback.state_key] = callback
    return stateful


def _clear_run_artifacts(out_dir: Path) -> list[str]:
    """Remove what an earlier run left in `out_dir`: a fresh run must not leave a stale `best`, `final` or
    `step-N` that looks like its own."""
    names = ("last", "last.old", "best", "final")
    stale = [p for p in out_dir.iterdir() if p.name in names or p.name.startswith("step-")]
    for path in stale:
        shutil.rmtree(path)
    return sorted(p.name for p in stale)


def _start(trainer: Trainer) -> int | None:
    """Rank 0 chooses what to resume from (`_resume`) and every other rank loads the same folder."""
    if trainer.world == 1:
        return _resume(trainer)
    source = distributed.broadcast(str(trainer.resumed_from) if trainer.is_main and _resume(trainer) is not None else None)
    if source is None:
        return None
    if not trainer.is_main:
        trainer.load_state(Path(source))
    return trainer.step


def _resume(trainer: Trainer) -> int | None:
    """Resume from the newest loadable saved state when asked and present; returns the step resumed from.

    A damaged state (truncated, corrupt, not written by corpuslab) must not block the run: the next older
    one is tried (last.old, then step-N snapshots, newest first). When none loads, training stops with
    one message naming the folder and the fix; a state from a differently configured run stops it at once."""
    candidates = _state_candidates(trainer.out_dir) if trainer.cfg.resume == "auto" else []
    if not candidates:
        removed = _clear_run_artifacts(trainer.out_dir)
        if removed:
            trainer.log(f"starting fresh in {trainer.out_dir}: removed {', '.join(removed)} "
                        "of an earlier run")
        return None
    damaged: list[str] = []
    for source in candidates:
        try:
            trainer.load_state(source)
        except CorpuslabError:
            raise  # made by a differently configured run: an older state of it would not fit either
        except Exception as err:  # noqa: BLE001 - damage takes many forms (zip, pickle, shape, key errors)
            damaged.append(f"{source.name}: {type(err).__name__}: {_gist(err)}")
            continue
        trainer.resumed_from = source
        if damaged:
            trainer.log(f"could not load the saved state in {'; '.join(damaged)}; using {source.name} instead")
        trainer.log(f"resumed from {source} at step {trainer.step}/{trainer.total_steps}")
        return trainer.step
    raise StageError("train", f"cannot resume the run in {trainer.out_dir}: none of its saved states loads "
                     f"({'; '.join(damaged)}). They are damaged (an interrupted copy, a full disk) or were "
                     f"not written by corpuslab. To train this run from the start, delete {trainer.out_dir} "
                     "or set training.resume=never.")


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
    procedure: Procedure | None = None,
) -> TrainResult:
    """Train `model` in place on `train_windows` of `train_stream` (window starts, each chunk_len + 1
    tokens) the way `procedure` says (None: standard, shuffled windows); evaluate on the first
    eval_batches * batch_size `val_windows`. Writes out_dir/final, out_dir/best (when there is validation
    data), out_dir/last (resumable) and out_dir/step-N.

    Callbacks run in this order at every hook: the procedure's, validation, rate logging, `callbacks`,
    then the periodic checkpoint, so a save at step N holds everything the others did at step N."""
    cfg.validate()
    context = getattr(model.config, "n_positions", None)
    if context is not None and cfg.chunk_len > context:
        raise ConfigError("training.chunk_len", cfg.chunk_len, f"<= the model context ({context})")
    if len(train_windows) == 0:
        raise StageError("train", f"no training windows: the stream has {train_stream.n_tokens} tokens, "
                         f"a window needs chunk_len + 1 = {cfg.chunk_len + 1}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    procedure = procedure if procedure is not None else Standard()
    previous_threads = torch.get_num_threads()
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    was_training = model.training
    try:
        # The step's rate line is logged before its validation line, so a log reads in step order.
        every = [*procedure.callbacks(), LogRate(), Evaluate(), *callbacks, PeriodicCheckpoint()]
        trainer = Trainer(model, train_stream, train_windows, val_stream, val_windows, cfg, out_dir, log,
                          procedure, every)
        resumed_from = _start(trainer)
        # On the CPU a step's large buffers are reused instead of mapped afresh every step (`allocator`).
        with reuse_freed_memory(trainer.device.type == "cpu"):
            return _run(trainer, resumed_from)
    finally:
        torch.set_num_threads(previous_threads)
        model.train(was_training)


def _layout(trainer: Trainer) -> str:
    """How the global batch is split, when it is: processes and micro-batches."""
    parts = []
    if trainer.world > 1:
        parts.append(f"{trainer.world} processes x {trainer.share} windows")
    if trainer.micro_batches > 1:
        parts.append(f"{trainer.micro_batches} micro-batches of {trainer.share // trainer.micro_batches} accumulated")
    if trainer.cfg.compile:
        parts.append("compiled")
    return f", {', '.join(parts)}" if parts else ""


def _run(trainer: Trainer, resumed_from: int | None) -> TrainResult:
    cfg = trainer.cfg
    epochs = trainer.total_steps * cfg.tokens_per_step / (len(trainer.train_windows) * cfg.chunk_len)
    # The sampler's own counts, less the window count already on the line (samplers that skip or draw
    # differently say how here).
    sampler_stats = trainer.sampler.stats()
    drawn = ", ".join(f"{key} {value:,}" if isinstance(value, int) else f"{key} {value}"
                      for key, value in sampler_stats.items() if key != "windows")
    trainer.log(f"training {trainer.total_steps:,} steps x {cfg.tokens_per_step:,} tokens on {trainer.device} "
                f"({len(trainer.train_windows):,} windows, {epochs:.2f} epochs){_layout(trainer)}; procedure {trainer.procedure.name}, "
                f"sampler {trainer.sampler.name}" + (f" ({drawn})" if drawn else ""))
    trainer.forward_model.train()
    for callback in trainer.callbacks:
        callback.on_train_start(trainer)
    while trainer.step < trainer.total_steps:
        trainer.train_step()
        for callback in trainer.callbacks:
            callback.on_step_end(trainer)
    trainer._settle()  # the last step's numbers, and its non-finite check
    final_path = trainer.save_snapshot(trainer.out_dir / "final")
    trainer.save_state(trainer.out_dir / "last")  # a rerun with resume="auto" finds the run complete
    for callback in trainer.callbacks:
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
        procedure=trainer.procedure.describe(),
        sampler_stats=sampler_stats,
    )
