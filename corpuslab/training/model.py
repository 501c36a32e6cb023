"""The model: a standard Hugging Face GPT-2, sized by a named preset.

We use `transformers.GPT2LMHeadModel` rather than our own module so every checkpoint loads with
`AutoModelForCausalLM.from_pretrained` and plugs into lm-evaluation-harness unchanged.
"""

from __future__ import annotations

import torch
from transformers import GPT2Config, GPT2LMHeadModel

from corpuslab.errors import ConfigError
from corpuslab.training.config import PRESETS, SIZE_FIELDS, ModelConfig  # noqa: F401  (re-exported)


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
        # torch's fused scaled-dot-product attention (flash / memory-efficient kernels on a GPU), said outright
        # rather than left to the transformers default.
        attn_implementation="sdpa",
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
