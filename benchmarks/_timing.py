"""The step timer the training benchmarks share: a corpuslab callback that ticks a clock when the timed
steps start (after `warmup` updates) and when the last update ends, so corpuslab's `train()` is timed
between the same steps as the plain loop it is compared with.

    from _timing import StepTimer          # benchmarks run as scripts: their folder is on sys.path
    train(..., callbacks=[StepTimer(args.warmup, tick)])
"""

from __future__ import annotations

from collections.abc import Callable

from corpuslab.training.callbacks import Callback


class StepTimer(Callback):
    """Calls tick("start") after update `warmup` and tick("end") after the run's last update."""

    def __init__(self, warmup: int, tick: Callable[[str], None]):
        self.warmup, self.tick = warmup, tick

    def on_step_end(self, trainer) -> None:
        if trainer.step == self.warmup:
            self.tick("start")
        if trainer.step == trainer.total_steps:
            self.tick("end")
