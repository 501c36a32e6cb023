"""Optional experiment tracking: the training curve, as it grows, sent to Weights & Biases.

A `train()` callback, so the loop knows nothing about it (attach with `train(..., callbacks=[...])`).
It logs every record of `trainer.curve` once, when the step that made it ends: the built-in callbacks
(validation, rate logging) run before user callbacks and fill the record first. A resumed run logs
the records it restored too, so a fresh W&B run shows the whole curve; `wandb` is imported only
when a callback is built, and is not a corpuslab dependency.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from corpuslab.errors import CorpuslabError
from corpuslab.training.callbacks import Callback

if TYPE_CHECKING:
    from corpuslab.training.trainer import Trainer

# Curve fields logged under "train/"; the rest (val_loss) under "val/".
TRAIN_FIELDS = ("loss", "lr", "grad_norm", "grad_norm_clipped", "param_norm", "tokens")


class WandbCallback(Callback):
    """Logs each curve record to a W&B run named `run_name` in `project`, with `config_dict` as its config."""

    def __init__(self, project: str, run_name: str, config_dict: dict[str, Any] | None = None, **init_kwargs: Any):
        self.wandb = require_wandb()
        self.project, self.run_name = project, run_name
        self.config = dict(config_dict or {})
        self.init_kwargs = init_kwargs  # e.g. group=<experiment>, mode="offline", dir=<stage folder>
        self.run = None
        self.logged_steps: set[int] = set()

    def on_train_start(self, trainer: Trainer) -> None:
        self.run = self.wandb.init(project=self.project, name=self.run_name, config=self.config, **self.init_kwargs)
        self._log_new(trainer)

    def on_step_end(self, trainer: Trainer) -> None:
        self._log_new(trainer)

    def on_train_end(self, trainer: Trainer) -> None:
        self._log_new(trainer)
        if self.run is not None:
            self.run.summary.update({"steps": trainer.step, "tokens_seen": trainer.tokens_seen,
                                     "best_val_loss": trainer.best_val_loss, "best_step": trainer.best_step})
            self.run.finish()
            self.run = None

    def _log_new(self, trainer: Trainer) -> None:
        for entry in trainer.curve:
            if entry["step"] in self.logged_steps:
                continue
            self.run.log(curve_metrics(entry), step=int(entry["step"]))
            self.logged_steps.add(entry["step"])


def curve_metrics(entry: dict[str, Any]) -> dict[str, float]:
    """One curve record as W&B metrics; fields that are None (no validation at this step) are left out."""
    metrics = {f"train/{key}": entry[key] for key in TRAIN_FIELDS if entry.get(key) is not None}
    if entry.get("val_loss") is not None:
        metrics["val/loss"] = entry["val_loss"]
    return metrics


def require_wandb():
    """The wandb module, or a CorpuslabError saying how to get it (call at config load to fail before any work)."""
    try:
        import wandb
    except ImportError:
        raise CorpuslabError("Weights & Biases logging needs the wandb package: pip install wandb "
                             "(or turn the logging off)") from None
    return wandb
