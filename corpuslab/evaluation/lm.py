"""Language-model evaluation: loss, perplexity and bits per byte over a token stream.

Method (`evaluate_lm`):

1. Coverage. With `max_tokens`, only whole documents are evaluated: the first k documents whose tokens
   (each with its trailing eos) fit in `max_tokens`. Whole documents keep the byte count exact, so
   bits per byte is not biased by a document cut in half.
2. Windows. The covered tokens t[0..N) are split into non-overlapping windows of `context` targets
   (the last one shorter). Every covered token, eos included, is a target exactly once. The input for
   target t[i] is the `context`-window ending at t[i-1]; for t[0] the input is a single eos, the same
   separator every other document start is conditioned on. So the first document is scored like the
   others and there is no unscored first token.
   Non-overlapping windows give tokens at the start of a window little context, so the loss is a little
   higher than a sliding-window evaluation would report; it is cheaper by a factor of `context`, and
   every arm is measured the same way, which is what a comparison needs.
3. Numbers. total_nats = sum over targets of -ln p(target | input).
   loss = total_nats / N (nats per token), perplexity = exp(loss),
   bits_per_byte = total_nats / ln 2 / n_bytes, where n_bytes is the UTF-8 byte count of the covered
   documents' text. Bits per byte does not depend on the tokenizer, so arms with different
   tokenizers compare; the eos targets carry no bytes, but their code length is counted, as a
   compressor would have to encode the document boundaries too.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from corpuslab.errors import ConfigError, InputError, StageError
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


def _window_block(stream: TokenStream, starts: np.ndarray, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and targets for windows whose targets are `[s, s + length)`; position -1 reads as eos."""
    positions = np.asarray(starts, dtype=np.int64)[:, None] + np.arange(-1, length)
    block = stream.tokens[np.maximum(positions, 0)].astype(np.int64)
    block[positions < 0] = stream.eos_id
    block = torch.from_numpy(block)
    return block[:, :-1], block[:, 1:]


def _covered_bytes(n_bytes: int | Sequence[int] | np.ndarray | None, n_docs: int) -> int | None:
    if n_bytes is None:
        return None
    if isinstance(n_bytes, (int, np.integer)):
        return int(n_bytes)
    return int(np.sum(np.asarray(n_bytes[:n_docs], dtype=np.int64)))


def _model_context(model: torch.nn.Module) -> int | None:
    config = getattr(model, "config", None)
    return getattr(config, "n_positions", None) or getattr(config, "max_position_embeddings", None)


@torch.no_grad()
def evaluate_lm(
    model: torch.nn.Module,
    stream: TokenStream,
    n_bytes: int | Sequence[int] | np.ndarray | None,
    context: int,
    batch_size: int = 8,
    max_tokens: int | None = None,
    device: torch.device | str = "cpu",
) -> dict:
    """Loss, perplexity and bits per byte of `model` on `stream` (method in the module docstring).

    `n_bytes` is either the UTF-8 byte count of the covered documents, or a per-document sequence of
    byte counts (then the covered ones are summed, the simplest correct choice with `max_tokens`);
    None gives bits_per_byte None. Use `stream.docs_within(max_tokens)` to know which documents an
    int must cover. Returns {loss, perplexity, bits_per_byte, tokens, docs, bytes}.
    """
    model_context = _model_context(model)
    if context < 1 or (model_context is not None and context > model_context):
        expected = f"an integer in [1, {model_context}] (the model's context)"
        raise ConfigError("evaluation.context", context, expected)
    n_docs = stream.docs_within(max_tokens)
    if n_docs == 0:
        raise StageError("evaluate", f"no whole document fits in max_tokens={max_tokens} "
                         f"(the stream has {stream.n_docs} documents)")
    n_tokens = int(stream.offsets[n_docs])
    was_training = model.training
    model.eval()
    starts = np.arange(0, n_tokens, context, dtype=np.int64)
    full = starts[starts + context <= n_tokens]
    total_nats = 0.0
    for first in range(0, len(full), batch_size):
        inputs, targets = _window_block(stream, full[first : first + batch_size], context)
        total_nats += nll_sum(model, inputs.to(device), targets.to(device))
    if len(full) < len(starts):  # the shorter last window
        tail = starts[len(full) :]
        inputs, targets = _window_block(stream, tail, n_tokens - int(tail[0]))
        total_nats += nll_sum(model, inputs.to(device), targets.to(device))
    model.train(was_training)
    covered_bytes = _covered_bytes(n_bytes, n_docs)
    loss = total_nats / n_tokens
    return {
        "loss": loss,
        "perplexity": math.exp(loss),
        "bits_per_byte": total_nats / math.log(2) / covered_bytes if covered_bytes else None,
        "tokens": n_tokens,
        "docs": n_docs,
        "bytes": covered_bytes,
    }


def load_checkpoint(folder: str | Path, device: str = "auto") -> tuple[torch.nn.Module, Any, torch.device]:
    """(model in eval mode on the device, its tokenizer, the device) from a Hugging Face folder such as
    a run's `final` or `best`."""
    from transformers import AutoModelForCausalLM

    from corpuslab.tokens.tokenizer import load_tokenizer

    folder = Path(folder)
    if not (folder / "config.json").exists():
        raise InputError(str(folder), "not a checkpoint folder (no config.json)")
    torch_device = resolve_device(device)
    model = AutoModelForCausalLM.from_pretrained(folder).to(torch_device).eval()
    return model, load_tokenizer(folder), torch_device


def load_any_checkpoint(name_or_path: str, device: str = "auto") -> tuple[torch.nn.Module, Any, torch.device]:
    """A local checkpoint folder, or any Hugging Face causal LM by name (weights load as safetensors, or
    through transformers' weights-only torch.load; no model code from the hub is executed)."""
    if Path(name_or_path).exists():
        return load_checkpoint(name_or_path, device)
    import os

    from transformers import AutoModelForCausalLM, AutoTokenizer

    token = os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN")
    try:
        model = AutoModelForCausalLM.from_pretrained(name_or_path, token=token, trust_remote_code=False)
        tokenizer = AutoTokenizer.from_pretrained(name_or_path, token=token)
    except OSError as err:
        raise InputError(name_or_path, "neither a local checkpoint folder nor a model the Hugging Face hub "
                         f"could provide ({err.__class__.__name__}); give a folder, or set HF_HUB_OFFLINE=1 "
                         "with the model in the local cache") from None
    torch_device = resolve_device(device)
    return model.to(torch_device).eval(), tokenizer, torch_device
