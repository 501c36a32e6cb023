"""The training and model configs: plain dataclasses, importable without torch.

`corpuslab.config` reads them to validate an experiment before any work, so a mistyped key is reported in
a fraction of a second instead of after importing torch and transformers. The code that uses them
(`training.model`, `training.trainer`) re-exports them from where they were first defined.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal

from corpuslab.errors import ConfigError
from corpuslab.schema import require, require_int

# One size dial (litgpt `Config.from_name`): each preset is (n_layer, n_head, n_embd, context).
PRESETS: dict[str, dict[str, int]] = {
    "tiny": {"n_layer": 2, "n_head": 2, "n_embd": 128, "context": 128},
    "small": {"n_layer": 4, "n_head": 4, "n_embd": 256, "context": 256},
    "gpt2-124m": {"n_layer": 12, "n_head": 12, "n_embd": 768, "context": 1024},
    # The compression seed's byte-level models (feed-forward 4d, context 2048; the name counts the blocks'
    # weights, GPT-2's learned position table adds context x n_embd).
    "transformer200k": {"n_layer": 4, "n_head": 4, "n_embd": 64, "context": 2048},
    "transformer800k": {"n_layer": 4, "n_head": 4, "n_embd": 128, "context": 2048},
    "transformer3.2m": {"n_layer": 4, "n_head": 8, "n_embd": 256, "context": 2048},
    "transformer4.1m": {"n_layer": 5, "n_head": 8, "n_embd": 256, "context": 2048},
}
SIZE_FIELDS = ("n_layer", "n_head", "n_embd", "context")


@dataclass(frozen=True)
class ModelConfig:
    """Model shape: a preset name, with any of its sizes overridden."""

    preset: str = "tiny"
    n_layer: int | None = None
    n_head: int | None = None
    n_embd: int | None = None
    context: int | None = None  # maximum sequence length (GPT-2's n_positions)
    dropout: float = 0.0

    def resolved(self) -> ModelConfig:
        """A copy with every size filled in: the preset's value unless overridden."""
        if self.preset not in PRESETS:
            raise ConfigError("model.preset", self.preset, f"one of {sorted(PRESETS)}")
        preset = PRESETS[self.preset]
        overrides = {key: getattr(self, key) for key in SIZE_FIELDS if getattr(self, key) is not None}
        sizes = {**preset, **overrides}
        return replace(self, **sizes)

    def validate(self, prefix: str = "model") -> ModelConfig:
        """Check every value; returns the resolved config so callers can chain."""
        if self.preset not in PRESETS:
            raise ConfigError(f"{prefix}.preset", self.preset, f"one of {sorted(PRESETS)}")
        cfg = self.resolved()
        for key in SIZE_FIELDS:
            value = getattr(cfg, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{prefix}.{key}", value, "a positive integer")
        if cfg.n_embd % cfg.n_head:
            raise ConfigError(f"{prefix}.n_embd", cfg.n_embd, f"a multiple of n_head ({cfg.n_head})")
        if not 0.0 <= cfg.dropout < 1.0:
            raise ConfigError(f"{prefix}.dropout", cfg.dropout, "a number in [0, 1)")
        return cfg



@dataclass(frozen=True)
class TrainingConfig:
    """How to train. Steps = min(max_steps, max_train_tokens // (batch_size * chunk_len))."""

    chunk_len: int = 128  # tokens per training window (targets), at most the model's context
    stride: int | None = None  # distance between window starts; None = chunk_len (no overlap)
    batch_size: int = 32  # windows per optimizer step, summed over every torchrun process (the global batch)
    micro_batch_size: int | None = None  # windows per forward pass and process; None: a process's whole share (no accumulation)
    max_train_tokens: int | None = None
    max_steps: int | None = None
    lr: float = 1e-3
    min_lr_ratio: float = 0.1  # cosine decays to lr * min_lr_ratio at the last step
    warmup_steps: int = 100
    weight_decay: float = 0.1  # applied to matrices and embeddings only, never biases or LayerNorm
    betas: tuple[float, float] = (0.9, 0.95)
    adam_eps: float = 1e-8  # AdamW's epsilon (torch's default); the arXiv seed needed 1e-6 to stop a NaN at step 1
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
    check_logits: bool = False  # check every step's logits for NaN/inf (one extra pass over them); off: only on a failure
    detect_anomaly: bool = False  # torch.autograd.detect_anomaly: names the op that made a NaN in backward (slow)
    compile: bool = False  # torch.compile the forward pass and loss (minutes of compiling, then faster steps on a GPU)

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
        for key in ("stride", "max_train_tokens", "max_steps", "save_every", "num_threads", "micro_batch_size"):
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
        require(self.adam_eps > 0 and math.isfinite(self.adam_eps), f"{prefix}.adam_eps", self.adam_eps, "a positive number")
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
        require(isinstance(self.compile, bool), f"{prefix}.compile", self.compile, "true or false")
        if self.micro_batch_size is not None and self.batch_size % self.micro_batch_size:
            raise ConfigError(f"{prefix}.micro_batch_size", self.micro_batch_size,
                              f"a divisor of training.batch_size ({self.batch_size})")
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
