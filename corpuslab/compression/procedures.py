"""Training procedures of the compression seed: vanilla, RL1, DRR and PMMP, with TAMADE pruning.

Every procedure trains in three phases over fixed chunks in stream order (never shuffled: the online code
length needs the order of the data):

    prelude       unregularized epochs
    main          regularized epochs; after main epoch e (0-based), when pruning is on and
                  e + 1 >= first_pruning_after and (e + 1) % prune_every == 0, TAMADE sets a new mask
    fine_tuning   unregularized epochs, the mask kept

One step (ALGORITHMS.md section 3): forward, cross-entropy, backward, the regularizer's gradient term added
(main phase), optimizer step, mask applied, parameters projected (PMMP's p clamped to [0, 1]). The mask is
applied after every step, so the next forward always sees masked weights.

    procedure: {name: drr, alpha: 1.0e-4, beta: 5.0,
                prelude: {epochs: 2}, main: {epochs: 4}, fine_tuning: {epochs: 1},
                pruning: {enabled: true, first_pruning_after: 2, prune_every: 2}}

The regularizers act on every parameter (weights, biases, embeddings, LayerNorm gains), as the seed's
penalties do; TAMADE prunes every parameter whose magnitude is below the threshold.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from corpuslab.errors import ConfigError, StageError
from corpuslab.registry import Plugin
from corpuslab.schema import require, require_int
from corpuslab.training.callbacks import Callback
from corpuslab.training.procedures import Procedure, ProcedureConfig, procedures
from corpuslab.training.samplers import Sampler, SamplingData

if TYPE_CHECKING:
    import torch

    from corpuslab.training.trainer import Trainer

PHASES = ("prelude", "main", "fine_tuning")
LN2 = math.log(2.0)


# ----------------------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class PhaseConfig:
    """One phase: `epochs` passes over the chunks; each pass stops after `stop_epoch_at_batch` batches
    (null: all of them); every batch is trained on `steps_per_chunk` times in a row."""

    epochs: int = 0
    stop_epoch_at_batch: int | None = None
    steps_per_chunk: int = 1

    def validate(self, prefix: str) -> PhaseConfig:
        require_int(self.epochs, f"{prefix}.epochs", 0)
        require_int(self.stop_epoch_at_batch, f"{prefix}.stop_epoch_at_batch", 1, optional=True)
        require_int(self.steps_per_chunk, f"{prefix}.steps_per_chunk", 1)
        return self


@dataclass(frozen=True)
class PruningConfig:
    """TAMADE (threshold adaptive mask determination) during the main phase.

    The threshold is the largest eps in [0, max_threshold] whose validation loss (mean over the first
    `validation_sequences` validation chunks) stays within (1 + tolerated_relative_loss_increase) of the
    unpruned loss, found by bisection until the interval is at most `tolerance` wide or after
    `max_search_steps` halvings."""

    enabled: bool = False
    first_pruning_after: int = 1  # main-phase epochs before the first pruning
    prune_every: int = 1  # then every this many epochs
    tolerated_relative_loss_increase: float = 0.01
    validation_sequences: int = 100
    max_threshold: float = 0.8
    tolerance: float = 1e-7
    max_search_steps: int = 50

    def validate(self, prefix: str) -> PruningConfig:
        require_int(self.first_pruning_after, f"{prefix}.first_pruning_after", 1)
        require_int(self.prune_every, f"{prefix}.prune_every", 1)
        require_int(self.validation_sequences, f"{prefix}.validation_sequences", 1)
        require_int(self.max_search_steps, f"{prefix}.max_search_steps", 1)
        require(self.tolerated_relative_loss_increase >= 0, f"{prefix}.tolerated_relative_loss_increase",
                self.tolerated_relative_loss_increase, "a number >= 0")
        require(self.max_threshold > 0, f"{prefix}.max_threshold", self.max_threshold, "a positive number")
        require(self.tolerance > 0, f"{prefix}.tolerance", self.tolerance, "a positive number")
        return self


@dataclass(frozen=True)
class CompressionConfig(ProcedureConfig):
    """The phases and pruning every compression procedure has; `sampler` is fixed (chunks in order)."""

    prelude: PhaseConfig = field(default_factory=PhaseConfig)
    main: PhaseConfig = field(default_factory=lambda: PhaseConfig(epochs=1))
    fine_tuning: PhaseConfig = field(default_factory=PhaseConfig)
    pruning: PruningConfig = field(default_factory=PruningConfig)

    def validate(self, prefix: str = "procedure") -> CompressionConfig:
        if self.sampler is not None:
            raise ConfigError(f"{prefix}.sampler", self.sampler, "no sampler: compression procedures train on "
                              "the chunks in stream order (online code length needs the order)")
        for phase in PHASES:
            getattr(self, phase).validate(f"{prefix}.{phase}")
        self.pruning.validate(f"{prefix}.pruning")
        if sum(getattr(self, phase).epochs for phase in PHASES) < 1:
            raise ConfigError(f"{prefix}.main.epochs", self.main.epochs, "at least one epoch in some phase")
        if self.pruning.enabled and self.pruning.first_pruning_after > self.main.epochs:
            raise ConfigError(f"{prefix}.pruning.first_pruning_after", self.pruning.first_pruning_after,
                              f"at most main.epochs ({self.main.epochs}): pruning would start after the last "
                              "regularized epoch")
        return self


def _strength(value: float, key: str) -> None:
    require(isinstance(value, (int, float)) and math.isfinite(value) and value >= 0, key, value,
            "a regularization strength >= 0")


@dataclass(frozen=True)
class RL1Config(CompressionConfig):
    alpha: float = 1e-4  # penalty alpha * sum |theta|

    def validate(self, prefix: str = "procedure") -> RL1Config:
        _strength(self.alpha, f"{prefix}.alpha")
        return super().validate(prefix)


@dataclass(frozen=True)
class DRRConfig(CompressionConfig):
    alpha: float = 1e-4  # penalty alpha * sum(1 - exp(-beta |theta|))
    beta: float = 5.0

    def validate(self, prefix: str = "procedure") -> DRRConfig:
        _strength(self.alpha, f"{prefix}.alpha")
        require(math.isfinite(self.beta) and self.beta > 0, f"{prefix}.beta", self.beta, "a positive number")
        return super().validate(prefix)


@dataclass(frozen=True)
class PMMPConfig(CompressionConfig):
    alpha: float = 1e-4  # price of keeping a parameter: alpha * p
    initial_p_value: float = 1.0

    def validate(self, prefix: str = "procedure") -> PMMPConfig:
        _strength(self.alpha, f"{prefix}.alpha")
        require(isinstance(self.initial_p_value, (int, float)) and 0.0 <= self.initial_p_value <= 1.0,
                f"{prefix}.initial_p_value", self.initial_p_value, "a probability in [0, 1]")
        return super().validate(prefix)


# ----------------------------------------------------------------------------------------- the schedule


@dataclass(frozen=True)
class Position:
    """Where 0-based update `step` falls: phase, epoch within the phase, batch within the epoch, and which
    of the batch's `steps_per_chunk` repetitions it is."""

    phase: str
    epoch: int
    batch: int
    repeat: int
    first_pass: bool  # the run's first epoch: its first-repetition losses are the online code length
    epoch_end: bool  # the last update of this epoch


class Schedule:
    """The phases laid out as updates over `n_windows` chunks in batches of `batch_size` (the last batch of an
    epoch may be smaller)."""

    def __init__(self, phases: dict[str, PhaseConfig], n_windows: int, batch_size: int):
        self.n_windows, self.batch_size = n_windows, batch_size
        full = math.ceil(n_windows / batch_size)
        self.batches = {name: min(full, phases[name].stop_epoch_at_batch or full) for name in PHASES}
        self.repeats = {name: phases[name].steps_per_chunk for name in PHASES}
        self.epochs = {name: phases[name].epochs for name in PHASES}
        self.steps = {name: self.epochs[name] * self.batches[name] * self.repeats[name] for name in PHASES}
        self.total = sum(self.steps.values())
        self.first_phase = next((name for name in PHASES if self.steps[name]), "main")

    def position(self, step: int) -> Position:
        local = step
        for name in PHASES:
            if local < self.steps[name]:
                per_epoch = self.batches[name] * self.repeats[name]
                epoch, within = divmod(local, per_epoch)
                batch, repeat = divmod(within, self.repeats[name])
                return Position(name, epoch, batch, repeat, first_pass=name == self.first_phase and epoch == 0,
                                epoch_end=within == per_epoch - 1)
            local -= self.steps[name]
        raise StageError("train", f"update {step + 1} is past the procedure's {self.total} updates")

    def window_indices(self, position: Position) -> np.ndarray:
        first = position.batch * self.batch_size
        return np.arange(first, min(first + self.batch_size, self.n_windows), dtype=np.int64)


@dataclass(frozen=True)
class PhasesConfig:
    prelude: PhaseConfig = field(default_factory=PhaseConfig)
    main: PhaseConfig = field(default_factory=PhaseConfig)
    fine_tuning: PhaseConfig = field(default_factory=PhaseConfig)


class PhasedChunks(Sampler):
    """The chunks in stream order, phase after phase, each batch repeated `steps_per_chunk` times. Step s's
    batch is a pure function of s (the schedule), so a resumed run sees the same batches."""

    name = "phased_chunks"
    Config = PhasesConfig

    def setup(self, data: SamplingData) -> None:
        super().setup(data)
        self.schedule = Schedule({name: getattr(self.config, name) for name in PHASES}, len(data.windows), data.batch_size)

    def batch_starts(self, step: int) -> np.ndarray:
        return self.data.windows[self.schedule.window_indices(self.schedule.position(step))]

    def stats(self) -> dict[str, Any]:
        return {"windows": len(self.data.windows), "updates": self.schedule.total,
                "batches_per_epoch": self.schedule.batches}


def check_steps(schedule: Schedule, total_steps: int) -> None:
    if schedule.total != total_steps:
        raise ConfigError("training.max_steps", total_steps, f"the {schedule.total} updates the procedure's phases "
                          f"make ({schedule.steps}) on {schedule.n_windows} chunks in batches of {schedule.batch_size}")


# ----------------------------------------------------------------------------------------- the formulas


def rl1_penalty(theta: torch.Tensor, alpha: float) -> torch.Tensor:
    return alpha * theta.abs().sum()


def rl1_gradient(theta: torch.Tensor, alpha: float) -> torch.Tensor:
    return alpha * theta.sign()


def drr_penalty(theta: torch.Tensor, alpha: float, beta: float) -> torch.Tensor:
    return alpha * (1 - (-beta * theta.abs()).exp()).sum()


def drr_gradient(theta: torch.Tensor, alpha: float, beta: float) -> torch.Tensor:
    return alpha * beta * theta.sign() * (-beta * theta.abs()).exp()


def pmmp_objective(a: torch.Tensor, w: torch.Tensor, p: torch.Tensor, u: torch.Tensor, alpha: float) -> torch.Tensor:
    """The PMMP term added to the cross-entropy: minimized over a, w, p, maximized over u."""
    return (alpha * p + u * ((a - w * p) ** 2 + w**2 * p * (1 - p))).sum()


def pmmp_gradients(a: torch.Tensor, w: torch.Tensor, p: torch.Tensor, u: torch.Tensor,
                   alpha: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(d/da, d/dw, d/dp, -d/du) of `pmmp_objective`: u's is negated so that a descent step ascends u."""
    gap = a - w * p
    spread = p * (1 - p)
    grad_a = 2 * u * gap
    grad_w = -2 * u * gap * p + 2 * u * w * spread
    grad_p = -2 * u * gap * w + u * w**2 * (1 - 2 * p) + alpha
    grad_u = -(gap**2 + w**2 * spread)
    return grad_a, grad_w, grad_p, grad_u


def tamade_threshold(loss_at: Callable[[float], float], baseline: float, tolerated_increase: float,
                     high: float = 0.8, tolerance: float = 1e-7, max_steps: int = 50) -> tuple[float, float, int]:
    """Bisection for the largest eps in [0, high] with loss_at(eps) <= baseline * (1 + tolerated_increase).
    Returns (eps, its loss, halvings). eps = 0 (nothing pruned) always qualifies."""
    target = baseline * (1 + tolerated_increase)
    low, low_loss, steps = 0.0, baseline, 0
    while high - low > tolerance and steps < max_steps:
        middle = (low + high) / 2
        loss = loss_at(middle)
        if loss <= target:
            low, low_loss = middle, loss
        else:
            high = middle
        steps += 1
    return low, low_loss, steps


# ----------------------------------------------------------------------------------------- callbacks


class _Phased(Callback):
    """A callback that knows the phase of each update from the procedure's sampler."""

    def __init__(self, sampler: PhasedChunks):
        self.sampler = sampler

    def position(self, update: int) -> Position:
        return self.sampler.schedule.position(update)

    def on_train_start(self, trainer: Trainer) -> None:
        check_steps(self.sampler.schedule, trainer.total_steps)


class GradientRegularizer(_Phased):
    """Adds `gradient(theta)` to every parameter's gradient in the main phase (RL1, DRR)."""

    def __init__(self, sampler: PhasedChunks, gradient: Callable[[torch.Tensor], torch.Tensor]):
        super().__init__(sampler)
        self.gradient = gradient

    def before_optimizer_step(self, trainer: Trainer) -> None:
        if self.position(trainer.step).phase != "main":
            return
        for param in trainer.params:
            if param.grad is not None:
                param.grad.add_(self.gradient(param.detach()))


class PMMPVariables(_Phased):
    """PMMP's auxiliaries w, p, u per parameter, created at the first main-phase update (w = a, p = initial_p_value,
    u = 0) and stepped by Adam with the model's learning rate and betas (Adam is element-wise, so its own
    instance updates them exactly as the model's optimizer would); p is clamped to [0, 1] after each step."""

    name = "pmmp"

    def __init__(self, sampler: PhasedChunks, alpha: float, initial_p: float):
        super().__init__(sampler)
        self.alpha, self.initial_p = alpha, initial_p
        self.names: list[str] = []
        self.w: list[torch.Tensor] = []
        self.p: list[torch.Tensor] = []
        self.u: list[torch.Tensor] = []
        self.optimizer: torch.optim.Optimizer | None = None
        self._saved: dict[str, Any] | None = None

    def on_train_start(self, trainer: Trainer) -> None:
        super().on_train_start(trainer)
        if self._saved is not None and self._saved["initialised"]:
            saved = self._saved
            self.names = list(saved["names"])
            self.w, self.p, self.u = ([t.to(trainer.device) for t in saved[key]] for key in ("w", "p", "u"))
            self._build_optimizer(trainer)
            self.optimizer.load_state_dict(saved["optimizer"])

    def _named(self, trainer: Trainer) -> list[tuple[str, torch.Tensor]]:
        return list(trainer.model.named_parameters())

    def _initialise(self, trainer: Trainer) -> None:
        import torch

        named = self._named(trainer)
        self.names = [name for name, _ in named]
        self.w = [param.detach().clone() for _, param in named]
        self.p = [torch.full_like(param, self.initial_p) for _, param in named]
        self.u = [torch.zeros_like(param) for _, param in named]
        self._build_optimizer(trainer)

    def _build_optimizer(self, trainer: Trainer) -> None:
        import torch

        for tensor in (*self.w, *self.p, *self.u):
            tensor.requires_grad_(True)
        self.optimizer = torch.optim.Adam([*self.w, *self.p, *self.u], lr=trainer.cfg.lr, betas=trainer.cfg.betas)

    def before_optimizer_step(self, trainer: Trainer) -> None:
        if self.position(trainer.step).phase != "main":
            return
        if self.optimizer is None:
            self._initialise(trainer)
        for (_, a), w, p, u in zip(self._named(trainer), self.w, self.p, self.u):
            grad_a, w.grad, p.grad, u.grad = pmmp_gradients(a.detach(), w.detach(), p.detach(), u.detach(), self.alpha)
            a.grad.add_(grad_a)

    def after_optimizer_step(self, trainer: Trainer) -> None:
        if self.position(trainer.step).phase != "main":
            return
        for group in self.optimizer.param_groups:
            group["lr"] = trainer.optimizer.param_groups[0]["lr"]
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        for p in self.p:
            p.data.clamp_(0.0, 1.0)

    def state_dict(self) -> dict[str, Any]:
        if self.optimizer is None:
            return {"initialised": False}
        return {"initialised": True, "names": list(self.names),
                "w": [t.detach().cpu().clone() for t in self.w], "p": [t.detach().cpu().clone() for t in self.p],
                "u": [t.detach().cpu().clone() for t in self.u], "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._saved = state

    def summary(self) -> dict[str, Any]:
        if not self.p:
            return {}
        import torch

        p = torch.cat([t.detach().flatten() for t in self.p])
        return {"pmmp_mean_p": float(p.mean()), "pmmp_p_zero_fraction": float((p == 0).double().mean())}


class MaskPruning(_Phased):
    """TAMADE on the main phase's schedule; the mask (|theta| > eps, and-ed with the previous one) is applied
    after every update from the first pruning on, fine-tuning included.

    `masks` (one bool tensor per parameter, in `named_parameters()` order) is a mask the run starts with: an
    earlier run's, when it continues that run's model (`use_pretrained_model`). It is applied before the first
    update and after every update, and later prunings and-ed with it, so what it pruned stays zero."""

    name = "pruning"

    def __init__(self, sampler: PhasedChunks, config: PruningConfig, masks: list[torch.Tensor] | None = None):
        super().__init__(sampler)
        self.config = config
        self.masks: list[torch.Tensor] = list(masks or [])
        self.history: list[dict[str, Any]] = []

    def after_optimizer_step(self, trainer: Trainer) -> None:
        self.apply(trainer)

    def apply(self, trainer: Trainer) -> None:
        if self.masks:
            for (_, param), mask in zip(trainer.model.named_parameters(), self.masks):
                param.data.mul_(mask)

    def on_step_end(self, trainer: Trainer) -> None:
        position = self.position(trainer.step - 1)
        done = position.epoch + 1
        if (not self.config.enabled or position.phase != "main" or not position.epoch_end
                or done < self.config.first_pruning_after or done % self.config.prune_every):
            return
        self.prune(trainer, f"main epoch {done}")

    def prune(self, trainer: Trainer, when: str) -> float:
        import torch

        from corpuslab.evaluation.lm import mean_window_loss

        cfg = self.config
        starts = trainer.val_windows[: cfg.validation_sequences]
        if trainer.val_stream is None or len(starts) == 0:
            raise StageError("train", "TAMADE pruning needs validation chunks; the run has none")
        params = [param for _, param in trainer.model.named_parameters()]
        originals = [param.detach().clone() for param in params]

        def loss_at(eps: float) -> float:
            with torch.no_grad():
                for param, original in zip(params, originals):
                    param.copy_(original * (original.abs() >= eps))
            loss = mean_window_loss(trainer.model, trainer.val_stream, starts, trainer.cfg.chunk_len,
                                    trainer.cfg.batch_size, trainer.device, trainer.autocast_dtype)
            return loss

        baseline = loss_at(0.0)
        eps, loss, steps = tamade_threshold(loss_at, baseline, cfg.tolerated_relative_loss_increase,
                                            cfg.max_threshold, cfg.tolerance, cfg.max_search_steps)
        with torch.no_grad():
            new = [original.abs() > eps for original in originals]
            self.masks = [m & n for m, n in zip(self.masks, new)] if self.masks else new
            for param, original in zip(params, originals):
                param.copy_(original)
        self.apply(trainer)
        nonzero = sum(int(torch.count_nonzero(param)) for param in params)
        record = {"step": trainer.step, "when": when, "threshold": eps, "baseline_loss": baseline, "loss": loss,
                  "search_steps": steps, "nonzero_params": nonzero}
        self.history.append(record)
        trainer.log(f"TAMADE after {when}: threshold {eps:.3g} ({steps} halvings), val loss {baseline:.4f} -> "
                    f"{loss:.4f}, {nonzero:,} non-zero parameters")
        return eps

    def state_dict(self) -> dict[str, Any]:
        return {"masks": [m.cpu().clone() for m in self.masks], "history": [dict(r) for r in self.history]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.masks, self.history = list(state["masks"]), [dict(r) for r in state["history"]]

    def on_train_start(self, trainer: Trainer) -> None:
        super().on_train_start(trainer)
        self.masks = [m.to(trainer.device) for m in self.masks]
        shapes = [tuple(param.shape) for param in trainer.model.parameters()]
        if self.masks and [tuple(m.shape) for m in self.masks] != shapes:
            raise StageError("train", f"the pruning mask has {len(self.masks)} tensors that do not match the model's "
                             f"{len(shapes)} parameters: was it made for another model?")
        self.apply(trainer)  # a mask carried over from an earlier run holds from the first forward on


class CodeLength(_Phased):
    """The online (prequential) code length: each batch's loss before its update, in bits, summed over the
    run's first pass over the data (the first repetition of each batch); per epoch sums for the curves."""

    name = "code_length"

    def __init__(self, sampler: PhasedChunks):
        super().__init__(sampler)
        self.online_bits, self.online_tokens = 0.0, 0
        self.epochs: list[dict[str, Any]] = []  # {phase, epoch, bits, tokens}: the loss curve per epoch

    def on_batch_loss(self, trainer: Trainer, loss: float, tokens: int) -> None:
        position = self.position(trainer.step)
        if position.repeat:
            return
        bits = loss / LN2 * tokens
        if position.first_pass:
            self.online_bits += bits
            self.online_tokens += tokens
        if not self.epochs or (self.epochs[-1]["phase"], self.epochs[-1]["epoch"]) != (position.phase, position.epoch):
            self.epochs.append({"phase": position.phase, "epoch": position.epoch, "bits": 0.0, "tokens": 0})
        self.epochs[-1]["bits"] += bits
        self.epochs[-1]["tokens"] += tokens

    def state_dict(self) -> dict[str, Any]:
        return {"online_bits": self.online_bits, "online_tokens": self.online_tokens,
                "epochs": [dict(e) for e in self.epochs]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.online_bits, self.online_tokens = state["online_bits"], state["online_tokens"]
        self.epochs = [dict(e) for e in state["epochs"]]


# ----------------------------------------------------------------------------------------- procedures


class CompressionProcedure(Procedure):
    """Base of the compression procedures: the phased chunk sampler, pruning and code-length callbacks."""

    Config = CompressionConfig

    def __init__(self, config: Any = None):
        Plugin.__init__(self, config)
        self.sampler = PhasedChunks(PhasesConfig(self.config.prelude, self.config.main, self.config.fine_tuning))
        self.initial_masks: list[torch.Tensor] | None = None

    def inherit_mask(self, masks: list[torch.Tensor] | None) -> None:
        """Start from an earlier run's pruning mask (one bool tensor per parameter, `named_parameters()` order)."""
        self.initial_masks = list(masks) if masks else None

    def regularizers(self) -> list[Callback]:
        return []

    def callbacks(self) -> list[Callback]:
        # Kept so the runner can read the run's code length, pruning history and PMMP summary after training.
        self.created = [*self.regularizers(), MaskPruning(self.sampler, self.config.pruning, self.initial_masks),
                        CodeLength(self.sampler)]
        return self.created

    def total_steps(self, n_windows: int, batch_size: int) -> int:
        return Schedule({name: getattr(self.config, name) for name in PHASES}, n_windows, batch_size).total


@procedures.register
class Vanilla(CompressionProcedure):
    """No regularizer: cross-entropy only (pruning by TAMADE still possible)."""

    name = "vanilla"


@procedures.register
class RL1(CompressionProcedure):
    """L1 regularization in the main phase: gradient term alpha * sign(theta)."""

    name = "rl1"
    Config = RL1Config

    def regularizers(self) -> list[Callback]:
        alpha = self.config.alpha
        return [GradientRegularizer(self.sampler, lambda theta: rl1_gradient(theta, alpha))]


@procedures.register
class DRR(CompressionProcedure):
    """Smooth L0 (DRR) in the main phase: gradient term alpha * beta * sign(theta) * exp(-beta |theta|)."""

    name = "drr"
    Config = DRRConfig

    def regularizers(self) -> list[Callback]:
        alpha, beta = self.config.alpha, self.config.beta
        return [GradientRegularizer(self.sampler, lambda theta: drr_gradient(theta, alpha, beta))]


@procedures.register
class PMMP(CompressionProcedure):
    """Probabilistic minimax pruning in the main phase (auxiliaries w, p, u per parameter)."""

    name = "pmmp"
    Config = PMMPConfig

    def regularizers(self) -> list[Callback]:
        return [PMMPVariables(self.sampler, self.config.alpha, self.config.initial_p_value)]
