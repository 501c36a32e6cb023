"""Training procedures: how a run trains, beyond the shared loop (AdamW, schedule, clipping, resume).

A procedure is a plug-in (`procedures` registry) chosen per run in the config:

    procedure: standard                                       # shuffled windows, nothing else
    procedure: {name: standard, sampler: sequential}
    procedure: {name: standard, sampler: {name: random_window}}

It supplies the batch sampler and the callbacks that change training itself (loss terms, gradient masks,
pruning, code-length accounting), each with resumable state. Its fingerprint covers the resolved sampler
(name, version, config), so two spellings of one procedure (`standard`, `{name: standard, sampler:
shuffled}`) key the same train stage, while any change to what it does keys a new one.

A new procedure subclasses `Procedure`, gives its `Config` the `sampler` field (inherit `ProcedureConfig`)
and returns its callbacks from `callbacks()`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from corpuslab.artifacts import fingerprint
from corpuslab.registry import Plugin, Registry
from corpuslab.training.callbacks import Callback
from corpuslab.training.samplers import DEFAULT_SAMPLER, Sampler, samplers


@dataclass(frozen=True)
class ProcedureConfig:
    """Settings every procedure has; a procedure's own Config inherits them."""

    sampler: str | dict[str, Any] | None = None  # a sampler name or {name: ..., <its parameters>}; None: shuffled

    def validate(self, prefix: str = "procedure") -> ProcedureConfig:
        build_sampler(self.sampler, f"{prefix}.sampler")  # unknown names and parameters fail at config load
        return self


def build_sampler(spec: str | dict[str, Any] | None, key: str) -> Sampler:
    return samplers.build(spec, key, default=DEFAULT_SAMPLER)


class Procedure(Plugin):
    """Base of training procedures: the sampler from the config, no extra callbacks."""

    Config = ProcedureConfig

    def __init__(self, config: Any = None):
        super().__init__(config)
        self.sampler = build_sampler(self.config.sampler, "procedure.sampler")

    def callbacks(self) -> list[Callback]:
        """Fresh callbacks for one `train()` call (they carry that run's state); run before the built-in
        ones at every hook."""
        return []

    def describe(self) -> dict[str, Any]:
        described = super().describe()
        described["config"]["sampler"] = self.sampler.describe()
        return described

    def fingerprint(self, *inputs: Any) -> str:
        return fingerprint(type(self).__name__, self.describe(), *inputs)


procedures: Registry[Procedure] = Registry("procedure", Procedure)


@procedures.register
class Standard(Procedure):
    """Plain next-token training on the sampler's batches (default: shuffled windows)."""

    name = "standard"
