"""GPU paths (CUDA, bf16 autocast). Skipped cleanly where no CUDA device exists, as in CI."""

import numpy as np
import pytest
import torch

from corpuslab.tokens.stream import TokenStream, write_token_stream
from corpuslab.training.model import ModelConfig, build_model
from corpuslab.training.trainer import TrainingConfig, train

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


def _train_tiny(tmp_path, **overrides):
    """A 2-layer model on a repetitive stream, 60 steps on CUDA in bf16: the loss must fall well below its start."""
    rng = np.random.default_rng(0)
    docs = [np.tile(rng.integers(1, 50, size=16), 8) for _ in range(20)]
    write_token_stream(tmp_path / "train", docs, vocab_size=64, eos_id=0)
    stream = TokenStream.open(tmp_path / "train")
    model = build_model(ModelConfig(n_layer=2, n_head=2, n_embd=64, context=32), vocab_size=64, seed=0, eos_id=0)
    cfg = TrainingConfig(chunk_len=32, batch_size=8, max_steps=60, lr=3e-3, warmup_steps=5, precision="bf16",
                         device="cuda", log_interval=10, eval_interval=30, **overrides)
    result = train(model, stream, stream.windows(32), stream, stream.windows(32), cfg, tmp_path / "run", log=lambda m: None)
    return model, result


def test_bf16_training_on_cuda_lowers_the_loss(tmp_path):
    model, result = _train_tiny(tmp_path)
    assert result.curve[-1]["loss"] < result.curve[0]["loss"] * 0.7
    assert next(model.parameters()).device.type == "cuda"


def test_compiled_bf16_training_on_cuda_uses_the_fast_paths(tmp_path):
    model, result = _train_tiny(tmp_path, compile=True, micro_batch_size=4)
    assert result.curve[-1]["loss"] < result.curve[0]["loss"] * 0.7
    assert model.config._attn_implementation == "sdpa"
