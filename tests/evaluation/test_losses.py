import math

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import torch.nn.functional as F

from corpuslab.evaluation.lm import evaluate_lm
from corpuslab.evaluation.losses import (
    UNCATEGORIZED,
    category_means,
    position_means,
    read_doc_categories,
    token_losses,
)
from corpuslab.tokens.stream import TokenStream, write_token_stream
from corpuslab.training.model import ModelConfig, build_model

pytestmark = pytest.mark.usefixtures("one_thread")  # exact float comparisons need one reduction order


# The breakdowns as the metrics compute them: one pass of per-token losses, then each view of it.
def loss_by_position(model: torch.nn.Module, stream: TokenStream, context: int, batch_size: int = 8,
                     max_tokens: int | None = None, device: torch.device | str = "cpu") -> list[float | None]:
    """Mean token loss at each position 0..context-1 of the evaluation windows: the in-context learning curve."""
    return position_means(token_losses(model, stream, context, batch_size, max_tokens, device))


def loss_by_category(model: torch.nn.Module, stream: TokenStream, doc_categories: list, context: int,
                     batch_size: int = 8, max_tokens: int | None = None,
                     device: torch.device | str = "cpu") -> dict:
    """{category: {loss, tokens, docs}}: the evaluation loss split by the category of each token's document."""
    return category_means(token_losses(model, stream, context, batch_size, max_tokens, device), doc_categories)


def analyse_losses(model: torch.nn.Module, stream: TokenStream, doc_categories: list, context: int,
                   batch_size: int = 8, max_tokens: int | None = None,
                   device: torch.device | str = "cpu") -> dict:
    """Both breakdowns from one pass over the data: {by_position, by_category}."""
    losses = token_losses(model, stream, context, batch_size, max_tokens, device)
    return {"by_position": position_means(losses), "by_category": category_means(losses, doc_categories)}


VOCAB, EOS, CONTEXT = 40, 0, 8
DOC_LENGTHS = [5, 11, 3, 17, 7]  # tokens before each doc's eos: 48 tokens in all, windows cross documents
CATEGORIES = ["science", "sports", "science", None, "sports"]


@pytest.fixture(scope="module")
def model():
    config = ModelConfig("tiny", n_layer=2, n_head=2, n_embd=16, context=CONTEXT)
    return build_model(config, VOCAB, seed=0, eos_id=EOS).eval()


@pytest.fixture
def stream(tmp_path):
    rng = np.random.default_rng(0)
    docs = [rng.integers(1, VOCAB, size=n) for n in DOC_LENGTHS]
    write_token_stream(tmp_path / "val", docs, vocab_size=VOCAB, eos_id=EOS)
    return TokenStream.open(tmp_path / "val")


@torch.no_grad()
def manual_losses(model, stream, n_tokens: int, context: int) -> np.ndarray:
    """One forward pass per target: token i sees its window's tokens before it, the first of them the token
    just before the window (an eos for the first window)."""
    tokens = np.asarray(stream.tokens[:n_tokens], dtype=np.int64)
    losses = []
    for i in range(n_tokens):
        start = (i // context) * context
        previous = int(tokens[start - 1]) if start > 0 else EOS
        inputs = torch.tensor([[previous, *tokens[start:i]]])
        logits = model(input_ids=inputs).logits[0, -1]
        losses.append(float(F.cross_entropy(logits[None], torch.tensor([int(tokens[i])]))))
    return np.array(losses)


def test_loss_by_position_has_one_finite_value_per_position_matching_a_manual_pass(model, stream):
    by_position = loss_by_position(model, stream, CONTEXT, batch_size=2)
    assert len(by_position) == CONTEXT
    assert all(v is not None and math.isfinite(v) for v in by_position)
    losses = manual_losses(model, stream, stream.n_tokens, CONTEXT)
    expected = [losses[p::CONTEXT].mean() for p in range(CONTEXT)]
    np.testing.assert_allclose(by_position, expected, rtol=1e-5)


def test_positions_weighted_by_their_tokens_give_the_evaluation_loss(model, stream):
    context = 5  # 48 tokens: 9 full windows and a 3-token tail, so positions 3 and 4 hold fewer tokens
    by_position = loss_by_position(model, stream, context)
    counts = np.bincount(np.arange(stream.n_tokens) % context)
    assert counts.tolist() == [10, 10, 10, 9, 9]
    overall = evaluate_lm(model, stream, None, context=context)["loss"]
    assert np.dot(by_position, counts) / counts.sum() == pytest.approx(overall, rel=1e-6)


def test_a_position_no_window_reaches_is_none(model, tmp_path):
    write_token_stream(tmp_path / "short", [np.array([3, 4])], vocab_size=VOCAB, eos_id=EOS)
    by_position = loss_by_position(model, TokenStream.open(tmp_path / "short"), CONTEXT)
    assert [v is None for v in by_position] == [False] * 3 + [True] * (CONTEXT - 3)


def test_loss_by_category_groups_each_token_with_its_document(model, stream):
    by_category = loss_by_category(model, stream, CATEGORIES, CONTEXT)
    losses = manual_losses(model, stream, stream.n_tokens, CONTEXT)
    doc_losses = [losses[stream.offsets[i] : stream.offsets[i + 1]] for i in range(stream.n_docs)]
    assert sorted(by_category) == sorted(["science", "sports", UNCATEGORIZED])
    for name, members in {"science": [0, 2], "sports": [1, 4], UNCATEGORIZED: [3]}.items():
        tokens = np.concatenate([doc_losses[i] for i in members])
        assert by_category[name]["tokens"] == sum(DOC_LENGTHS[i] + 1 for i in members)  # each with its eos
        assert by_category[name]["docs"] == len(members)
        assert by_category[name]["loss"] == pytest.approx(tokens.mean(), rel=1e-5)
    overall = evaluate_lm(model, stream, None, context=CONTEXT)["loss"]
    weighted = sum(c["loss"] * c["tokens"] for c in by_category.values()) / stream.n_tokens
    assert weighted == pytest.approx(overall, rel=1e-6)


def test_max_tokens_covers_the_same_whole_documents_as_evaluate_lm(model, stream):
    max_tokens = 25  # docs 0-2 (6 + 12 + 4 = 22 tokens) fit, doc 3 does not
    both = analyse_losses(model, stream, CATEGORIES, CONTEXT, max_tokens=max_tokens)
    assert sum(c["tokens"] for c in both["by_category"].values()) == 22
    assert set(both["by_category"]) == {"science", "sports"}
    losses = manual_losses(model, stream, 22, CONTEXT)
    np.testing.assert_allclose(both["by_position"], [losses[p::CONTEXT].mean() for p in range(CONTEXT)], rtol=1e-5)


def test_too_few_categories_is_an_error(model, stream):
    with pytest.raises(ValueError, match="categories"):
        loss_by_category(model, stream, CATEGORIES[:2], CONTEXT)


def test_read_doc_categories_reads_the_column_or_gives_none_for_older_tables(tmp_path):
    pq.write_table(pa.table({"id": ["a", "b"], "bytes": [1, 2], "category": ["x", None]}), tmp_path / "new.parquet")
    pq.write_table(pa.table({"id": ["a", "b"], "bytes": [1, 2]}), tmp_path / "old.parquet")
    assert read_doc_categories(tmp_path / "new.parquet") == ["x", None]
    assert read_doc_categories(tmp_path / "old.parquet") == [None, None]
