"""The toy data and model the training tests share: a repetitive sentence, a 2-layer 32-wide GPT-2."""

import numpy as np

from corpuslab.tokens.stream import TokenStream, write_token_stream
from corpuslab.training.callbacks import Callback
from corpuslab.training.model import ModelConfig, build_model
from corpuslab.training.trainer import TrainingConfig, train

TEXT = "the quick brown fox jumps over the lazy dog. "
ALPHABET = sorted(set(TEXT))
VOCAB = len(ALPHABET) + 1  # id 0 is eos
MODEL = ModelConfig("tiny", n_layer=2, n_head=2, n_embd=32, context=32)


def encode(text: str) -> np.ndarray:
    return np.array([ALPHABET.index(c) + 1 for c in text], dtype=np.int64)


def write_streams(root) -> tuple[TokenStream, TokenStream]:
    write_token_stream(root / "train", [encode(TEXT * 3)] * 4, vocab_size=VOCAB, eos_id=0)
    write_token_stream(root / "val", [encode(TEXT * 2)] * 2, vocab_size=VOCAB, eos_id=0)
    return TokenStream.open(root / "train"), TokenStream.open(root / "val")


def config(**overrides) -> TrainingConfig:
    base = dict(chunk_len=16, batch_size=8, max_steps=12, lr=3e-3, warmup_steps=2, log_interval=4,
                eval_interval=6, eval_batches=2, seed=1, num_threads=1)
    return TrainingConfig(**{**base, **overrides})


def run(streams, out_dir, cfg, model=None, log=lambda line: None, **kwargs):
    """(model, TrainResult) of training a fresh toy model (seed 0) on `streams` into `out_dir`."""
    train_stream, val_stream = streams
    model = model if model is not None else build_model(MODEL, VOCAB, seed=0, eos_id=0)
    result = train(model, train_stream, train_stream.windows(cfg.chunk_len, cfg.stride), val_stream,
                   val_stream.windows(cfg.chunk_len), cfg, out_dir, log=log, **kwargs)
    return model, result


class Crash(Callback):
    """Raises at `hook` of the update that completes step `step` (a kill, as far as the trainer knows)."""

    def __init__(self, hook: str, step: int):
        self.hook, self.step = hook, step

    def on_batch_loss(self, trainer, loss, tokens):
        if self.hook == "on_batch_loss" and trainer.step + 1 == self.step:
            raise KeyboardInterrupt("killed mid-step")

    def on_step_end(self, trainer):
        if self.hook == "on_step_end" and trainer.step == self.step:
            raise KeyboardInterrupt("killed at a save point, before the save")
