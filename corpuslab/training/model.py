"""The model: a standard Hugging Face GPT-2, sized by a named preset.

We use `transformers.GPT2LMHeadModel` rather than our own module so every checkpoint loads with
`AutoModelForCausalLM.from_pretrained` and plugs into lm-evaluation-harness unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from transformers import GPT2Config, GPT2LMHeadModel

from corpuslab.errors import ConfigError

# One size dial (litgpt `Config.from_name`): each preset is (n_layer, n_head, n_embd, context).
PRESETS: dict[str, dict[str, int]] = {
    "tiny": {"n_layer": 2, "n_head": 2, "n_embd": 128, "context": 128},
    "small": {"n_layer": 4, "n_head": 4, "n_embd": 256, "context": 256},
    "gpt2-124m": {"n_layer": 12, "n_head": 12, "n_embd": 768, "context": 1024},
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


def build_model(cfg: ModelConfig, vocab_size: int, seed: int, eos_id: int | None = None) -> GPT2LMHeadModel:
    """A freshly initialised GPT-2 of shape `cfg`, identical for identical (cfg, vocab_size, seed).

    The seed is applied inside a forked RNG so building a model does not disturb the caller's
    random state.
    """
    cfg = cfg.validate()
    if vocab_size < 1:
        raise ConfigError("tokenizer.vocab_size", vocab_size, "a positive integer")
    hf_config = GPT2Config(
        vocab_size=vocab_size,
        n_positions=cfg.context,
        n_embd=cfg.n_embd,
        n_layer=cfg.n_layer,
        n_head=cfg.n_head,
        resid_pdrop=cfg.dropout,
        embd_pdrop=cfg.dropout,
        attn_pdrop=cfg.dropout,
        # GPT-2's tanh-approximate GELU as one fused kernel: same function as "gelu_new" (to ~1e-7),
        # several times faster on CPU than its chain of element-wise ops.
        activation_function="gelu_pytorch_tanh",
        # GPT-2's defaults (50256) point outside a smaller vocabulary. No pad id: we never pad, and
        # pad == eos makes transformers warn about missing attention masks on every batch with an eos.
        bos_token_id=eos_id,
        eos_token_id=eos_id,
        use_cache=False,  # training and scoring never reuse a KV cache; generation turns it on
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = GPT2LMHeadModel(hf_config)
    return model


def resolve_device(name: str, key: str = "training.device") -> torch.device:
    """"auto" is CUDA when available, else CPU; asking for CUDA without it is a config error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(key, name, "'cpu' or 'auto' (no CUDA device is available)")
    return torch.device(name)


def count_parameters(model: torch.nn.Module, non_embedding: bool = False) -> int:
    """Unique parameters (tied input/output embeddings count once).

    `non_embedding=True` leaves out token and position embeddings, the count scaling laws use.
    """
    params = {id(p): p for p in model.parameters()}
    total = sum(p.numel() for p in params.values())
    if non_embedding:
        for embedding in (model.get_input_embeddings(), getattr(model.base_model, "wpe", None)):
            if embedding is not None:
                total -= embedding.weight.numel()
    return total
