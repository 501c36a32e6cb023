"""A model2vec static model distilled from a Hugging Face encoder (e.g. all-MiniLM-L6-v2), without model2vec's
`distill` extra (which pins transformers<5.4 and needs `skeletoken`).

The method is model2vec 0.10's `distill` with the encoder's own vocabulary (no vocabulary re-modelling):
each token of the vocabulary goes through the encoder on its own, with the tokenizer's special tokens around
it (`[CLS] token [SEP]` for BERT), and its vector is the mean of the output over those positions; the vectors
are reduced by PCA to `pca_dims` and weighted by SIF, `sif / (sif + p_i)` with p_i Zipf's law over the
vocabulary order (`compute_weights`). The result is saved by `StaticModel.save_pretrained`, so the
`model2vec` embedder (and model2vec itself) loads it. Built once as a cached stage (`static-*`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def sif_weights(n: int, sif: float) -> np.ndarray:
    """model2vec's `compute_weights`: Zipf probabilities by rank (vocabulary order), then sif / (sif + p)."""
    inv_rank = 1 / np.arange(2, n + 2)
    proba = inv_rank / inv_rank.sum()
    return sif / (sif + proba)


def pca(x: np.ndarray, dims: int) -> np.ndarray:
    """Centre, then project on the top `dims` principal axes (eigenvectors of the covariance), as model2vec does."""
    if dims >= x.shape[0] or dims > x.shape[1]:
        return x
    centred = x - x.mean(axis=0)
    values, vectors = np.linalg.eigh((centred.T @ centred) / (x.shape[0] - 1))
    order = np.argsort(values)[::-1][:dims]
    return centred @ vectors[:, order]


def special_frame(tokenizer: Any) -> tuple[list[int], list[int]]:
    """The special tokens the tokenizer puts before and after a text ([CLS] and [SEP] for BERT), found by
    encoding a word with and without them."""
    full = tokenizer("hello", add_special_tokens=True)["input_ids"]
    plain = tokenizer("hello", add_special_tokens=False)["input_ids"]
    for start in range(len(full) - len(plain) + 1):
        if full[start:start + len(plain)] == plain:
            return full[:start], full[start + len(plain):]
    return [], []


def distill_static(encoder: str, out: Path, pca_dims: int, sif: float, log: Callable[[str], None],
                   batch_size: int = 512) -> dict[str, Any]:
    import torch
    from model2vec import StaticModel
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(encoder)
    model = AutoModel.from_pretrained(encoder).eval()
    ids = list(range(len(tokenizer)))
    # Each token with the tokenizer's special tokens around it, as the encoder saw tokens in training.
    prefix, suffix = special_frame(tokenizer)
    sequences = [[*prefix, i, *suffix] for i in ids]
    width = max(len(s) for s in sequences)
    pad = tokenizer.pad_token_id or 0
    vectors = np.zeros((len(ids), model.config.hidden_size), np.float32)
    with torch.inference_mode():
        for first in range(0, len(sequences), batch_size):
            chunk = sequences[first:first + batch_size]
            batch = torch.full((len(chunk), width), pad, dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for row, seq in enumerate(chunk):
                batch[row, : len(seq)] = torch.tensor(seq)
                mask[row, : len(seq)] = 1
            hidden = model(input_ids=batch, attention_mask=mask).last_hidden_state
            weights = mask.float() / mask.sum(1, keepdim=True).float()
            vectors[first:first + len(chunk)] = torch.bmm(weights[:, None, :], hidden).squeeze(1).numpy()
    reduced = pca(vectors.astype(np.float64), pca_dims) * sif_weights(len(ids), sif)[:, None]
    static = StaticModel(reduced.astype(np.float32), tokenizer.backend_tokenizer, normalize=True,
                         base_model_name=str(encoder))
    static.save_pretrained(out)
    log(f"  model2vec static model distilled from {encoder}: {len(ids):,} tokens x {reduced.shape[1]} dims")
    return {"tokens": len(ids), "dims": int(reduced.shape[1]), "encoder": str(encoder)}
