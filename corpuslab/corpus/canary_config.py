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
    # Canary documents are at most this share of the training split (canaries included): on a small corpus
    # `count` is lowered to fit, and the log and report say so. 1.0 keeps `count` whatever the corpus.
    max_share: float = 0.25

    def validate(self, prefix: str = "canaries") -> CanaryConfig:
        for key in ("count", "secret_length", "num_candidates"):
            value = getattr(self, key)
            if not _positive_int(value):
                raise ConfigError(f"{prefix}.{key}", value, "a positive integer")
        if not self.copies or not all(_positive_int(c) for c in self.copies):
            raise ConfigError(f"{prefix}.copies", self.copies, "a non-empty list of positive integers")
        if self.placement not in PLACEMENTS:
            raise ConfigError(f"{prefix}.placement", self.placement, f"one of {list(PLACEMENTS)}")
        share = self.max_share
        if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 < share <= 1:
            raise ConfigError(f"{prefix}.max_share", share, "a number in (0, 1]: the largest share of the training split canaries may be")
        if self.decode_tokens is not None and not _positive_int(self.decode_tokens):
            raise ConfigError(f"{prefix}.decode_tokens", self.decode_tokens, "a positive integer or null")
        return self


def documents_for(count: int, copies: list[int]) -> int:
    """Canary documents made by `count` canaries: canary i has copies[i % len(copies)] copies."""
    return sum(copies[i % len(copies)] for i in range(count))


def scaled_count(cfg: CanaryConfig, train_documents: int) -> int:
    """The largest count <= cfg.count whose documents are at most cfg.max_share of the training split with
    them in it; never below 1 (one canary still measures something, and the report warns)."""
    count = cfg.count
    while count > 1:
        documents = documents_for(count, cfg.copies)
        if documents <= cfg.max_share * (train_documents + documents):
            break
        count -= 1
    return count


def _positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0
