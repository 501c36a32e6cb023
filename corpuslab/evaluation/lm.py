"""Language-model evaluation: loss, perplexity and bits per byte over a token stream, and checkpoint loading.

`evaluate_lm` is the `lm` metric on its own: one pass of per-token losses (`losses.token_losses`, whose
docstring states the method: coverage, windows, numbers) reduced to the headline numbers. The
experiment computes them through `evaluation.metrics`, which reuses the same pass for every breakdown.
`mean_window_loss` is the cheaper validation loss the trainer reports during training.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from corpuslab.errors import InputError
from corpuslab.evaluation.losses import lm_numbers, token_losses
from corpuslab.tokens.stream import TokenStream
from corpuslab.training.model import resolve_device


def nll_sum(
    model: torch.nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    autocast_dtype: torch.dtype | None = None,
) -> float:
    """Sum over all targets of -ln p(target | inputs), in nats (fp32 within the batch)."""
    autocast = torch.autocast(inputs.device.type, dtype=autocast_dtype or torch.bfloat16,
                              enabled=autocast_dtype is not None)
    with autocast:
        logits = model(input_ids=inputs, use_cache=False).logits
    # Loss in fp32 even under bf16 autocast: the log-softmax over a large vocabulary needs the range.
    nll = F.cross_entropy(logits.float().flatten(0, 1), targets.flatten(), reduction="sum")
    return float(nll.item())


@torch.no_grad()
def mean_window_loss(
    model: torch.nn.Module,
    stream: TokenStream,
    starts: np.ndarray,
    chunk_len: int,
    batch_size: int,
    device: torch.device | str,
    autocast_dtype: torch.dtype | None = None,
) -> float:
    """Mean token loss (nats) over the windows at `starts`: the validation loss seen during training."""
    was_training = model.training
    model.eval()
    total = 0.0
    for first in range(0, len(starts), batch_size):
        inputs, targets = stream.batch(starts[first : first + batch_size], chunk_len)
        total += nll_sum(model, inputs.to(device), targets.to(device), autocast_dtype)
    model.train(was_training)
    return total / (len(starts) * chunk_len)


def evaluate_lm(
    model: torch.nn.Module,
    stream: TokenStream,
    n_bytes: int | Sequence[int] | np.ndarray | None,
    context: int,
    batch_size: int = 8,
    max_tokens: int | None = None,
    device: torch.device | str = "cpu",
) -> dict:
    """Loss, perplexity and bits per byte of `model` on `stream` (method in `corpuslab.evaluation.losses`).

    `n_bytes` is either the UTF-8 byte count of the covered documents, or a per-document sequence of
    byte counts (then the covered ones are summed, the simplest correct choice with `max_tokens`);
    None gives bits_per_byte None. Use `stream.docs_within(max_tokens)` to know which documents an
    int must cover. Returns {loss, perplexity, bits_per_byte, tokens, docs, bytes}.
    """
    return lm_numbers(token_losses(model, stream, context, batch_size, max_tokens, device), n_bytes)


def load_checkpoint(folder: str | Path, device: str = "auto", device_key: str = "training.device") -> tuple[torch.nn.Module, Any, torch.device]:
    """(model in eval mode on the device, its tokenizer, the device) from a Hugging Face folder such as
    a run's `final` or `best`."""
    from transformers import AutoModelForCausalLM

    from corpuslab.tokens.tokenizer import load_tokenizer

    folder = Path(folder)
    if not (folder / "config.json").exists():
        raise InputError(str(folder), "not a checkpoint folder (no config.json)")
    torch_device = resolve_device(device, device_key)
    try:
        model = AutoModelForCausalLM.from_pretrained(folder).to(torch_device).eval()
        tokenizer = load_tokenizer(folder)
    except Exception as err:  # a damaged or foreign folder: config.json, weights or tokenizer unreadable
        raise InputError(str(folder), f"could not load the checkpoint ({type(err).__name__}: {_first_line(err)}); "
                         "give a folder saved by save_pretrained with its tokenizer (a run's final/ or best/)") from None
    return model, tokenizer, torch_device


def _first_line(err: Exception) -> str:
    text = str(err).strip().splitlines()
    return text[0][:200] if text else ""


def load_any_checkpoint(name_or_path: str, device: str = "auto", device_key: str = "training.device") -> tuple[torch.nn.Module, Any, torch.device]:
    """A local checkpoint folder, or any Hugging Face causal LM by name (weights load as safetensors, or
    through transformers' weights-only torch.load; no model code from the hub is executed). When the Hub cannot
    be reached (asked once per process, `corpuslab.hub`) only the local cache is read: one failed lookup, not
    huggingface_hub's five retries with backoff (~30 s), as task datasets are loaded."""
    if Path(name_or_path).exists():
        return load_checkpoint(name_or_path, device, device_key)
    import os

    from transformers import AutoModelForCausalLM, AutoTokenizer

    from corpuslab.hub import offline_unless_reachable

    token = os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN")
    offline = False
    try:
        with offline_unless_reachable() as offline:
            model = AutoModelForCausalLM.from_pretrained(name_or_path, token=token, trust_remote_code=False,
                                                         local_files_only=offline)
            tokenizer = AutoTokenizer.from_pretrained(name_or_path, token=token, local_files_only=offline)
    except OSError as err:
        where = ("the Hub is not reachable (or HF_HUB_OFFLINE is set) and it is not in the local cache"
                 if offline else f"{err.__class__.__name__}: {_first_line(err)}")
        raise InputError(name_or_path, f"neither a local checkpoint folder nor a model the Hugging Face Hub could provide "
                         f"({where}); give a checkpoint folder, or prefetch the model on a machine with network access "
                         "into the local cache") from None
    torch_device = resolve_device(device, device_key)
    return model.to(torch_device).eval(), tokenizer, torch_device
