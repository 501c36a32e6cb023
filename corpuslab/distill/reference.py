"""The loss sampler's reference model: trained here on a random half of the corpus (as the MiniCorpus seed
did), or any checkpoint folder / Hugging Face name, and how each is identified in a curate fingerprint.

`reference_stage` trains a small corpuslab GPT-2 (byte-level BPE fitted on the half, `build_model`, AdamW on
random windows) as a cached stage of its own, keyed by its settings and the documents it reads:

    <stage>/model/       the checkpoint (save_pretrained: config, weights, tokenizer)
    <stage>/half.npy     the rows (corpus order) it was trained on; the loss sampler scores the other half
    <stage>/manifest.json  documents, tokens, steps, first and last training loss

`reference_identity` is what a `loss` arm's fingerprint records of its reference: the training settings
(the corpus is already among the curate stage's inputs), the SHA-256 of every file of a checkpoint folder,
or a hub name (not pinned: download it to a folder to fingerprint its weights).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from corpuslab.artifacts import Stage, StageRunner
from corpuslab.schema import require, require_int, to_dict

REFERENCE_VERSION = 1
SELF = "self"  # `reference: self`: train the reference model on a random half of the corpus


@dataclass(frozen=True)
class ReferenceTrainConfig:
    """The self-trained reference model (`reference: self`).

    fraction: share of the documents it trains on (a seeded random draw; the rest are the ones scored).
    steps, batch_size, context, lr: AdamW on random windows of `context` tokens, linear warmup over 10% of steps.
    n_layer, n_head, n_embd: the GPT-2's shape; vocab_size: its byte-level BPE, fitted on the same half.
    """

    fraction: float = 0.5
    steps: int = 300
    batch_size: int = 16
    context: int = 128
    lr: float = 3e-3
    n_layer: int = 2
    n_head: int = 2
    n_embd: int = 64
    vocab_size: int = 1024
    seed: int = 0

    def validate(self, prefix: str) -> None:
        require(0 < self.fraction < 1, f"{prefix}.fraction", self.fraction, "a fraction in (0, 1)")
        for key in ("steps", "batch_size", "context", "n_layer", "n_head", "n_embd"):
            require_int(getattr(self, key), f"{prefix}.{key}", 1)
        require(self.n_embd % self.n_head == 0, f"{prefix}.n_embd", self.n_embd, f"a multiple of n_head ({self.n_head})")
        require(self.lr > 0, f"{prefix}.lr", self.lr, "a positive learning rate")
        require_int(self.vocab_size, f"{prefix}.vocab_size", 257)
        require_int(self.seed, f"{prefix}.seed", 0)


def half_rows(n_docs: int, cfg: ReferenceTrainConfig) -> np.ndarray:
    """The rows the reference trains on: round(fraction x n) drawn without replacement, sorted."""
    size = min(n_docs - 1, max(1, int(round(cfg.fraction * n_docs))))
    return np.sort(np.random.default_rng([cfg.seed, 7]).choice(n_docs, size=size, replace=False))


def reference_stage(stages: StageRunner, cfg: ReferenceTrainConfig, items: list[Path], log: Callable[[str], None]) -> Stage:
    from corpuslab.distill.embed import items_key

    stage = stages.stage("reference", REFERENCE_VERSION, to_dict(cfg), items_key(items))
    stages.run(stage, lambda work: train_reference(work, cfg, items, log), label="reference model (trained on a half)")
    return stage


def train_reference(work: Path, cfg: ReferenceTrainConfig, items: list[Path], log: Callable[[str], None]) -> dict[str, Any]:
    import torch

    from corpuslab.shards import read_documents
    from corpuslab.tokens.tokenizer import TokenizerConfig, build_tokenizer
    from corpuslab.training.config import ModelConfig
    from corpuslab.training.model import build_model

    texts = [d.text for d in read_documents(items, columns=["text"])]
    if len(texts) < 2:
        raise ValueError("the reference model needs at least 2 documents")
    rows = half_rows(len(texts), cfg)
    np.save(work / "half.npy", rows)
    half = [texts[r] for r in rows.tolist()]
    tokenizer = build_tokenizer(TokenizerConfig(kind="bpe", vocab_size=cfg.vocab_size, min_frequency=2), half)
    eos = tokenizer.eos_token_id
    stream = np.fromiter((t for ids in tokenizer(half)["input_ids"] for t in [*ids, eos]), dtype=np.int64)
    if len(stream) < cfg.context + 2:
        stream = np.resize(stream, cfg.context + 2)  # a tiny corpus: repeat it rather than fail
    model = build_model(ModelConfig("tiny", n_layer=cfg.n_layer, n_head=cfg.n_head, n_embd=cfg.n_embd, context=cfg.context),
                        len(tokenizer), seed=cfg.seed, eos_id=eos)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.0)
    warmup = max(1, cfg.steps // 10)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / warmup))
    rng = np.random.default_rng([cfg.seed, 11])
    data = torch.from_numpy(stream)
    losses = []
    for _ in range(cfg.steps):
        starts = rng.integers(0, len(stream) - cfg.context - 1, cfg.batch_size)
        batch = torch.stack([data[s : s + cfg.context] for s in starts.tolist()])
        loss = model(input_ids=batch, labels=batch).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        losses.append(float(loss.detach()))
    model.eval()
    model.save_pretrained(work / "model")
    tokenizer.save_pretrained(work / "model")
    tail = float(np.mean(losses[-max(1, len(losses) // 10):]))
    log(f"  reference model: {len(rows)} of {len(texts)} documents ({len(stream):,} tokens), {cfg.steps} steps, "
        f"loss {losses[0]:.3f} -> {tail:.3f}")
    return {"documents": int(len(rows)), "tokens": int(len(stream)), "steps": cfg.steps, "first_loss": losses[0],
            "last_loss": tail}


_FOLDER_HASHES: dict[tuple, str] = {}


def folder_hash(folder: Path) -> str:
    """SHA-256 over every file's relative path and contents (cached per process by names, sizes and mtimes)."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts))
    key = (str(folder.resolve()), *((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files))
    if key not in _FOLDER_HASHES:
        digest = hashlib.sha256()
        for path in files:
            digest.update(str(path.relative_to(folder)).encode() + b"\0")
            with open(path, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
        _FOLDER_HASHES[key] = digest.hexdigest()
    return _FOLDER_HASHES[key]


def reference_identity(reference: str, train: ReferenceTrainConfig) -> dict[str, Any]:
    """What identifies the reference model in a fingerprint (see the module docstring)."""
    if reference == SELF:
        return {"trained_on_half": to_dict(train)}
    if Path(reference).is_dir():
        return {"folder_sha256": folder_hash(Path(reference))}
    return {"hub": reference}
