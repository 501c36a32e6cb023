"""The canary config: a plain dataclass, importable without torch (`corpuslab.config` validates it before
any work); `corpuslab.corpus.canaries` re-exports it. See that module for what canaries are and measure."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from corpuslab.errors import ConfigError

PLACEMENTS = ("before_curation", "after_curation")


@dataclass(frozen=True)
class CanaryConfig:
    count: int = 100
    copies: list[int] = field(default_factory=lambda: [1, 10])  # canaries split evenly across these
    secret_length: int = 8  # random digits
    placement: Literal["before_curation", "after_curation"] = "before_curation"
    num_candidates: int = 1000  # random reference secrets the canary is ranked against (exposure)
    decode_tokens: int | None = None  # greedy tokens to generate; None = exactly the secret's tokens

    def validate(self, prefix: str = "canaries") -> CanaryConfig:
        for key in ("count", "secret_length", "num_candidates"):
            value = getattr(self, key)
            if not _positive_int(value):
                raise ConfigError(f"{prefix}.{key}", value, "a positive integer")
        if not self.copies or not all(_positive_int(c) for c in self.copies):
            raise ConfigError(f"{prefix}.copies", self.copies, "a non-empty list of positive integers")
        if self.placement not in PLACEMENTS:
            raise ConfigError(f"{prefix}.placement", self.placement, f"one of {list(PLACEMENTS)}")
        if self.decode_tokens is not None and not _positive_int(self.decode_tokens):
            raise ConfigError(f"{prefix}.decode_tokens", self.decode_tokens, "a positive integer or null")
        return self


def _positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0
