"""The GPT-2 runner: the model's own numbers from its modules, packed rows (a prefix, then each request's rest under a
segment mask) scored as whole requests, batches sized by tokens, and the model's own forward where it does not apply."""

import pytest
import torch

from corpuslab.evaluation.tasks import HarnessEncoder, Request, loglikelihoods, scoring
from corpuslab.evaluation.tasks.gpt2_runner import GPT2Runner, packed_mask
from corpuslab.evaluation.tasks.scoring import _packed_rows, _row, _share_prefixes
from tests.evaluation.test_tasks_shared_context import one_thread_module, tiny_lm  # noqa: F401 (one_thread_module: a fixture)

CONTEXT = 96
TOLERANCE = 1e-5

pytestmark = pytest.mark.usefixtures("one_thread_module")


@pytest.fixture(scope="module")
def lm():
    return tiny_lm(corpus_seed=2)


def _model_forward(model, tokenizer, requests, batch_size=1):
    """Scores through the model's own forward, each request whole (the reference)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(scoring, "_runner", lambda base, device: None)
        return loglikelihoods(model, tokenizer, requests, batch_size=batch_size, share_contexts=False)


def _questions(texts, n, choices, words=1):
    requests = []
    for i in range(n):
        context = " ".join(texts[i].split()[: 5 + 3 * (i % 4)])
        requests += [Request(context, " " + " ".join(texts[(i + k) % len(texts)].split()[k : k + words + k % 3])) for k in range(choices)]
    return requests


def test_runner_gives_the_models_hidden_states_and_the_mask_separates_segments(lm):
    model, _, _ = lm
    runner = GPT2Runner.of(model.transformer, torch.device("cpu"))
    assert runner is not None
    ids = torch.randint(0, model.config.vocab_size, (3, 20), generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        expected = model.transformer(input_ids=ids, use_cache=False).last_hidden_state
        rows, cols = torch.arange(3).repeat_interleave(20), torch.arange(20).repeat(3)
        got = runner.run(ids, torch.arange(20)[None, :], rows, cols)
    assert torch.allclose(got, expected[rows, cols], atol=TOLERANCE, rtol=TOLERANCE)
    mask = packed_mask(torch.tensor([[0, 0, 1, 1, 2, -1]]))[0, 0]
    assert mask[3].tolist() == [True, True, True, True, False, False]  # the prefix and its own segment, causally
    assert mask[4].tolist() == [True, True, False, False, True, False]  # not the other continuation
    assert mask[5].all()  # padding sees everything before it


def test_a_model_the_runner_does_not_reproduce_runs_its_own_forward(lm, monkeypatch):
    """A block whose forward is not what the runner computes from its modules: the probe refuses the runner, and the
    scores are the changed model's (the runner would have given the unchanged model's)."""
    model, tokenizer, texts = lm
    requests = _questions(texts, 4, 3)
    before = loglikelihoods(model, tokenizer, requests, batch_size=4)
    block = model.transformer.h[1]
    original = block.forward
    monkeypatch.setattr(block, "forward", lambda *args, **kwargs: _changed(original(*args, **kwargs)))
    assert scoring._Model(model, torch.device("cpu"), CONTEXT, True).runner is None
    after = loglikelihoods(model, tokenizer, requests, batch_size=4)
    monkeypatch.undo()
    assert [r[0] for r in after] == pytest.approx([r[0] for r in _patched_reference(model, tokenizer, requests, block, original)], abs=TOLERANCE)
    assert max(abs(a[0] - b[0]) for a, b in zip(after, before, strict=True)) > 1e-2


def _changed(hidden: torch.Tensor) -> torch.Tensor:
    return hidden + 0.5 * hidden.roll(1, dims=-1)  # not a shift or a scale, which the final layer norm would undo


def _patched_reference(model, tokenizer, requests, block, original):
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(block, "forward", lambda *args, **kwargs: _changed(original(*args, **kwargs)))
        return _model_forward(model, tokenizer, requests)


@pytest.mark.parametrize("batch_size", [1, 64])
def test_packed_rows_score_as_whole_requests_and_a_long_group_is_split(lm, batch_size):
    """A question with 30 answers is more than two contexts' worth of tokens: its rest go in several rows, each with
    the question; the scores are the model's own on each request whole."""
    model, tokenizer, texts = lm
    requests = _questions(texts, 6, 4, words=2) + _questions(texts[10:], 1, 30, words=3)
    rows = [_row(i, e, CONTEXT) for i, e in enumerate(HarnessEncoder(tokenizer).encode_all(requests))]
    shared, _ = _share_prefixes(rows)
    big = [g for g in shared if len(g.rows) == 30]
    assert len(big) == 1
    packed = _packed_rows(big, [0, 30], 2 * CONTEXT)
    assert len(packed) > 1 and all(len(p.tokens) <= 2 * CONTEXT for p in packed)
    assert sorted(r for p in packed for r in p.requests) == list(range(30))
    expected = _model_forward(model, tokenizer, requests)
    got = loglikelihoods(model, tokenizer, requests, batch_size=batch_size)
    assert [r[0] for r in got] == pytest.approx([r[0] for r in expected], abs=TOLERANCE)
    assert [r[1] for r in got] == [r[1] for r in expected]


def test_packed_batches_are_sized_by_tokens_not_rows(lm, monkeypatch):
    """Batch size 4: a call holds more than 4 requests (a row holds a question and all its answers, and a call as many
    rows as fit the tokens of 4 of the window's longest requests), never more tokens than that."""
    model, tokenizer, texts = lm
    requests = _questions(texts, 24, 4)
    calls = []
    run = GPT2Runner.run

    def record(self, input_ids, position_ids, rows, cols, mask=None):
        if mask is not None:
            calls.append(tuple(input_ids.shape))
        return run(self, input_ids, position_ids, rows, cols, mask=mask)

    monkeypatch.setattr(GPT2Runner, "run", record)
    got = loglikelihoods(model, tokenizer, requests, batch_size=4)
    monkeypatch.undo()
    encoded = HarnessEncoder(tokenizer).encode_all(requests)
    longest = max(len(e.context) + len(e.continuation) - 1 for e in encoded)
    assert calls and all(rows * width <= 4 * longest for rows, width in calls)
    assert max(rows for rows, _ in calls) * 4 > 4  # some call scores more than batch_size requests
    assert len(calls) < len(requests) / 4
    expected = _model_forward(model, tokenizer, requests)
    assert [r[0] for r in got] == pytest.approx([r[0] for r in expected], abs=TOLERANCE)
