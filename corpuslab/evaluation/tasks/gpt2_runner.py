"""A scoring forward pass for GPT-2-shaped models (corpuslab's own, and Hugging Face GPT-2 checkpoints).

The scorer (`scoring.py`) needs, per forward call, the final hidden states at the few positions a continuation is
predicted from, and for a shared prefix its keys and values. transformers' `GPT2Model.forward` computes more than
that and copies more than that:

- its last block runs the attention output projection, the MLP and the final norm at every position, where only
  the positions some continuation is predicted from are read (after the last block, nothing reads the others: the
  keys and values of all positions were computed before the block's attention). Here the last block runs its
  query/key/value projection and attention at every position, and the rest of it at those positions only; a pass
  that only builds a prefix's cache stops after the last block's key/value projection;
- on a cache it concatenates every layer's new keys and values onto the (gathered) prefix cache, and builds its
  attention mask through its masking utilities. Here each layer's keys and values go into one buffer allocated at
  prefix + rest length, the prefix part copied straight from the prefix batches that ran them (`Past`), and the
  mask (padding of shorter prefixes, causal over the rest) is built once per call.

Same modules, same weights, same kernels (`scaled_dot_product_attention` with the module's own scaling); the sums
differ from transformers' only by rounding. `GPT2Runner.of` returns a runner only for a model it recognises and whose
outputs it reproduces on a probe (within 1e-5, with and without a prefix); otherwise the scorer keeps the model's own
forward.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

PROBE_TOLERANCE = 1e-5


def packed_mask(segments: torch.Tensor) -> torch.Tensor:
    """[rows, 1, length, length] booleans, True where a query sees a key, for rows of segments [rows, length]: 0 a
    shared prefix, 1, 2, ... the continuations after it, -1 padding. A token sees the earlier tokens of the prefix
    and of its own segment; padding sees every token before it (its outputs are never read, but stay finite)."""
    length = segments.shape[1]
    causal = torch.ones((length, length), dtype=torch.bool, device=segments.device).tril_()
    keys, queries = segments[:, None, :], segments[:, :, None]
    return (((keys == 0) | (keys == queries) | (queries == -1)) & causal)[:, None]


class GPT2Runner:
    """`run` computes what the scorer reads of a GPT-2 (`GPT2Model`) forward pass; see the module docstring."""

    def __init__(self, base: torch.nn.Module) -> None:
        self.wte, self.wpe, self.blocks, self.ln_f = base.wte, base.wpe, list(base.h), base.ln_f
        self.width = base.wte.embedding_dim
        self.heads = self.blocks[0].attn.num_heads

    @classmethod
    def of(cls, base: torch.nn.Module | None, device: torch.device) -> GPT2Runner | None:
        """A runner for `base` (a model's base model, without its output layer) when it is a plain GPT-2 stack whose
        outputs this module reproduces, else None."""
        config = getattr(base, "config", None)
        if base is None or type(base).__name__ != "GPT2Model" or getattr(config, "model_type", None) != "gpt2":
            return None
        if getattr(config, "add_cross_attention", False) or base.training:
            return None
        try:
            runner = cls(base)
            if not all(hasattr(block.attn, "scaling") and block.attn.head_dim * runner.heads == runner.width for block in runner.blocks):
                return None
            return runner if runner._reproduces(base, device) else None
        except (AttributeError, TypeError, RuntimeError, ValueError):
            return None

    @torch.inference_mode()
    def _reproduces(self, base: torch.nn.Module, device: torch.device) -> bool:
        """The model's own last hidden states, on two right-padded rows run whole, and packed: one row holding their
        common first 3 tokens and each one's rest, the other the second row alone, padded."""
        vocab = self.wte.num_embeddings
        ids = (torch.arange(14, device=device).reshape(2, 7) * 7 + 3) % vocab
        ids[1, :3] = ids[0, :3]
        expected = base(input_ids=ids, use_cache=False).last_hidden_state
        rows, cols = torch.tensor([0, 0, 1, 1], device=device), torch.tensor([0, 6, 3, 6], device=device)
        whole = self.run(ids, torch.arange(7, device=device)[None, :], rows, cols)
        packed = torch.stack([torch.cat([ids[0], ids[1, 3:]]), torch.cat([ids[1], ids[1, :4]])])
        positions = torch.tensor([[0, 1, 2, 3, 4, 5, 6, 3, 4, 5, 6], [0, 1, 2, 3, 4, 5, 6, 6, 6, 6, 6]], device=device)
        segments = torch.tensor([[0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2], [0] * 7 + [-1] * 4], device=device)
        got = self.run(packed, positions, torch.tensor([0, 0, 0, 1], device=device), torch.tensor([2, 6, 10, 5], device=device), mask=packed_mask(segments))
        wanted = torch.stack([expected[0, 2], expected[0, 6], expected[1, 6], expected[1, 5]])
        return bool(
            torch.allclose(whole.float(), expected[rows, cols].float(), rtol=PROBE_TOLERANCE, atol=PROBE_TOLERANCE)
            and torch.allclose(got.float(), wanted.float(), rtol=PROBE_TOLERANCE, atol=PROBE_TOLERANCE)
        )

    def run(
        self,
        input_ids: torch.Tensor,
        position_ids: torch.Tensor,
        rows: torch.Tensor | None,
        cols: torch.Tensor | None,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The final hidden states at (rows, cols) [n, width] of `input_ids` [batch, length] at `position_ids`, under
        `mask` [batch, 1, length, length] (True: a query sees that key) or, without one, causal attention (inputs
        right-padded: padding follows every real token, no mask needed)."""
        batch, length = input_ids.shape
        heads, size = self.heads, self.width // self.heads
        hidden = self.wte(input_ids) + self.wpe(position_ids)
        if mask is not None:  # additive, converted once rather than by every layer's attention
            mask = torch.zeros(mask.shape, dtype=hidden.dtype, device=hidden.device).masked_fill_(~mask, float("-inf"))
        last = len(self.blocks) - 1
        for i, block in enumerate(self.blocks):
            attn = block.attn
            query, keys, values = attn.c_attn(block.ln_1(hidden)).split(self.width, dim=2)
            query = query.view(batch, length, heads, size).transpose(1, 2)
            keys = keys.view(batch, length, heads, size).transpose(1, 2)
            values = values.view(batch, length, heads, size).transpose(1, 2)
            if mask is not None:
                out = F.scaled_dot_product_attention(query, keys, values, attn_mask=mask, scale=attn.scaling)
            else:
                out = F.scaled_dot_product_attention(query, keys, values, is_causal=length > 1, scale=attn.scaling)
            out = out.transpose(1, 2).reshape(batch, length, self.width)
            if i == last:  # nothing after this block reads the other positions
                hidden, out = hidden[rows, cols], out[rows, cols]
            hidden = hidden + attn.c_proj(out)
            hidden = hidden + block.mlp(block.ln_2(hidden))
        return self.ln_f(hidden)
