"""Tokenizers: a byte-level BPE trained on the train split (default), a pretrained one, or raw bytes.

All three are Hugging Face `tokenizers`/`transformers` objects, so the tokenizer saved next to a
checkpoint loads with `AutoTokenizer.from_pretrained`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from corpuslab.errors import InputError
from corpuslab.hub import hub_reachable
from corpuslab.schema import require

EOS = "<|endoftext|>"


@dataclass(frozen=True)
class TokenizerConfig:
    """kind: `bpe` trains a byte-level BPE of `vocab_size` on the train split; `pretrained` loads `name`
    (a hub name or a local folder, e.g. `gpt2`); `bytes` uses the 256 byte values plus an end-of-document
    token (257 ids), which makes bits per byte equal to bits per token.
    """

    kind: Literal["bpe", "pretrained", "bytes"] = "bpe"
    vocab_size: int = 4096
    name: str | None = None
    min_frequency: int = 2
    max_train_docs: int | None = 200_000

    def validate(self, prefix: str = "tokenizer") -> None:
        require(self.vocab_size >= 257, f"{prefix}.vocab_size", self.vocab_size, "an integer >= 257 (256 bytes + end of document)")
        require(self.kind != "pretrained" or bool(self.name), f"{prefix}.name", self.name, "a tokenizer name or path when kind is 'pretrained'")
        require(self.min_frequency >= 1, f"{prefix}.min_frequency", self.min_frequency, "an integer >= 1")


def build_tokenizer(cfg: TokenizerConfig, texts: Iterable[str]):
    """Return a `PreTrainedTokenizerFast` with an end-of-document token set as `eos_token`."""
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    if cfg.kind == "pretrained":
        try:
            tok = AutoTokenizer.from_pretrained(cfg.name, token=os.environ.get("HF_TOKEN"),
                                                local_files_only=not Path(cfg.name).exists() and not hub_reachable())
        except OSError as err:
            raise InputError(str(cfg.name), f"could not load the pretrained tokenizer ({err.__class__.__name__}); give a local folder or prefetch it") from err
        if tok.eos_token is None:
            tok.add_special_tokens({"eos_token": EOS})
        return tok
    vocab_size = 257 if cfg.kind == "bytes" else cfg.vocab_size
    core = _train_byte_level_bpe(texts if cfg.kind == "bpe" else [], vocab_size, cfg.min_frequency, cfg.max_train_docs)
    return PreTrainedTokenizerFast(tokenizer_object=core, eos_token=EOS, bos_token=EOS, unk_token=None)


def _train_byte_level_bpe(texts: Iterable[str], vocab_size: int, min_frequency: int, max_docs: int | None):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    core = Tokenizer(models.BPE())
    # No prefix space: documents are concatenated, and bytes must round-trip exactly for bits per byte.
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=[EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator(_capped(texts, max_docs), trainer=trainer)
    return core


def _capped(texts: Iterable[str], limit: int | None) -> Iterator[str]:
    for i, text in enumerate(texts):
        if limit is not None and i >= limit:
            return
        yield text


def load_tokenizer(folder: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(folder))


def encode_batch(tokenizer, texts: list[str]) -> list[list[int]]:
    """Token ids without special tokens; the caller adds the end-of-document separator."""
    return tokenizer(texts, add_special_tokens=False)["input_ids"] if texts else []
