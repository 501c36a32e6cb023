"""Callbacks: everything the training loop does besides stepping, attached as hooks (OLMo-core style).

One optimizer update calls, in this order, on every callback in the run's list:

    on_batch_loss(trainer, loss, tokens)   the batch's cross-entropy BEFORE its update (prequential coding)
    loss(trainer, loss) -> loss            the tensor about to be backpropagated; add a penalty here
    before_optimizer_step(trainer)         gradients are computed and clipped: mask them here
    after_optimizer_step(trainer)          weights are updated: apply masks, project, prune here
    on_step_end(trainer)                   `trainer.step` counts the update: log, evaluate, save

around `on_train_start` (after a resume has restored everything) and `on_train_end` (after the final
save). A callback with state returns it from `state_dict()`; it is saved inside the trainer state file
under the callback's `name` and handed back to `load_state_dict()` on resume, so a resumed run continues
exactly. The state must be tensors and plain containers (dict, list, tuple, str, int, float, bool,
None): the file is loaded with `weights_only=True`, which unpickles nothing else.
"""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch is imported by the trainer that calls these hooks, not by a config naming them
    import torch

    from corpuslab.training.trainer import Trainer


class Callback:
    """A hook into `train()`. Override what you need; every default does nothing. Raising aborts training;
    the state on disk stays at the last save, so a later call with resume="auto" continues from there."""

    # Key of this callback's saved state; must be stable across runs and distinct among a run's stateful
    # callbacks. Empty: the class name.
    name: str = ""

    @property
    def state_key(self) -> str:
        return self.name or type(self).__name__

    def on_train_start(self, trainer: Trainer) -> None:
        pass

    def on_batch_loss(self, trainer: Trainer, loss: float, tokens: int) -> None:
        """`loss`: mean cross-entropy (nats per token) of this step's batch, computed before the update;
        `tokens`: how many target tokens it was averaged over. Overriding it costs a second host sync per
        step on a GPU (the loss is read before backward); without it the loss is read with the gradient norm."""

    def loss(self, trainer: Trainer, loss: torch.Tensor) -> torch.Tensor:
        """The loss to backpropagate; callbacks chain, each receiving the previous one's result."""
        return loss

    def before_optimizer_step(self, trainer: Trainer) -> None:
        pass

    def after_optimizer_step(self, trainer: Trainer) -> None:
        pass

    def on_step_end(self, trainer: Trainer) -> None:
        pass

    def on_train_end(self, trainer: Trainer) -> None:
        pass

    def state_dict(self) -> dict[str, Any]:
        """What a resumed run needs to continue this callback exactly; empty when it keeps none."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict()` returned in the interrupted run."""


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
    """Every `log_interval` steps and at the end: mean loss, lr, grad norm before and after clipping, parameter
    norm, tokens per second and the time left (from the wall time per step so far, evaluations and saves
    included)."""

    def on_train_start(self, trainer: Trainer) -> None:
        self.seconds, self.step = trainer.train_seconds, trainer.step
        self.started, self.first_step = time.monotonic(), trainer.step

    def on_step_end(self, trainer: Trainer) -> None:
        if trainer.step % trainer.cfg.log_interval and trainer.step != trainer.total_steps:
            return
        entry = trainer.curve_entry()
        seconds = trainer.train_seconds - self.seconds
        tokens = (trainer.step - self.step) * trainer.cfg.tokens_per_step
        rate = tokens / seconds if seconds > 0 else float("nan")
        self.seconds, self.step = trainer.train_seconds, trainer.step
        left = trainer.total_steps - trainer.step
        per_step = (time.monotonic() - self.started) / max(trainer.step - self.first_step, 1)
        eta = f" | {format_duration(left * per_step)} left" if left else ""
        trainer.log(f"step {trainer.step}/{trainer.total_steps} | loss {entry['loss']:.4f} "
                    f"| lr {entry['lr']:.2e} | grad norm {entry['grad_norm']:.3f} (clipped {entry['grad_norm_clipped']:.3f}) "
                    f"| param norm {entry['param_norm']:.1f} | {rate:,.0f} tok/s{eta}")


def format_duration(seconds: float) -> str:
    """'45s', '3m05s', '1h02m': short enough for a log line."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class PeriodicCheckpoint(Callback):
    """Every `save_every` steps: the resumable state (out_dir/last) and a snapshot out_dir/step-N, keeping
    the newest `keep_last` snapshots. Snapshots hold the trainer state too (hard links to last/'s files
    where the filesystem allows), so a damaged last/ can fall back to the newest one that loads.

    It must run after every other callback's `on_step_end`: what they change at step N belongs in the
    state saved at step N, because a resumed run does not repeat step N's hooks."""

    def on_step_end(self, trainer: Trainer) -> None:
        every = trainer.cfg.save_every
        if every is None or trainer.step % every or not trainer.is_main:  # under torchrun rank 0 saves
            return
        last = trainer.save_state(trainer.out_dir / "last")
        if trainer.cfg.keep_last > 0:
            trainer.save_snapshot(trainer.out_dir / f"step-{trainer.step}", state_from=last)
        for _, old in snapshots(trainer.out_dir)[trainer.cfg.keep_last:]:
            shutil.rmtree(old, ignore_errors=True)


def snapshots(out_dir: Path) -> list[tuple[int, Path]]:
    """The out_dir/step-N snapshot folders as (N, path), newest first. Strict names only: a `step-N.old`
    that an interrupted replacement left aside is not a snapshot."""
    found = []
    for path in out_dir.glob("step-*"):
        match = re.fullmatch(r"step-(\d+)", path.name)
        if match and path.is_dir():
            found.append((int(match.group(1)), path))
    return sorted(found, reverse=True)
