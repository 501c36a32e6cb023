"""Fixtures shared across the test tree: a tiny experiment's overrides, single-threaded torch."""

import pytest
import torch

# A whole experiment in seconds: 150 short documents, a 1-layer 32-wide model, 12 steps.
TINY = [
    "experiment=tiny",
    "dataset.synthetic.num_docs=150",
    "dataset.synthetic.words_per_doc=40",
    "tokenizer.vocab_size=320",
    "model.n_layer=1",
    "model.n_head=2",
    "model.n_embd=32",
    "model.context=64",
    "training.chunk_len=32",
    "training.batch_size=8",
    "training.max_train_tokens=null",
    "training.max_steps=12",
    "training.warmup_steps=2",
    "training.eval_interval=6",
    "training.log_interval=6",
    "canaries.count=4",
    "canaries.num_candidates=20",
    "evaluation.max_tokens=3000",
    "curation.workers=2",
    "evaluation.tasks={synthetic_cloze: 8, synthetic_choice: 8}",
]


@pytest.fixture
def one_thread():
    """Single-threaded torch, so float reductions are in one order and exact comparisons hold."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
