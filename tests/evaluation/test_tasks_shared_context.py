"""Scoring a shared context once (key/value cache reuse) gives the numbers of scoring every request whole."""

from pathlib import Path

import pytest
import torch

from corpuslab.evaluation.tasks import HarnessEncoder, Request, loglikelihoods, scoring
from corpuslab.evaluation.tasks.scoring import _pack, _row, _share_prefixes
from corpuslab.sources.synthetic import SyntheticConfig, generate
from corpuslab.tokens.tokenizer import TokenizerConfig, build_tokenizer
from corpuslab.training.model import ModelConfig, build_model

CONTEXT = 96
# Rounding only: the cached path adds masked-out keys and runs the continuation in its own matmuls.
TOLERANCE = 1e-5


@pytest.fixture(scope="module", autouse=True)
def one_thread_module():
    """One torch thread: a 32-wide model gains nothing from threads and loses much on a busy machine."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def tiny_lm(corpus_seed: int):
    """A random 2-layer, 32-wide model with a BPE tokenizer trained on 60 synthetic documents: (model, tokenizer, texts)."""
    texts = [doc.text for doc in generate(SyntheticConfig(num_docs=60, words_per_doc=60), seed=corpus_seed)]
    tokenizer = build_tokenizer(TokenizerConfig(kind="bpe", vocab_size=400, min_frequency=1), texts)
    model = build_model(
        ModelConfig("tiny", n_layer=2, n_head=2, n_embd=32, context=CONTEXT), len(tokenizer), seed=0, eos_id=tokenizer.eos_token_id
    ).eval()
    return model, tokenizer, texts


@pytest.fixture(scope="module")
def lm(one_thread_module):
    return tiny_lm(corpus_seed=0)


def _requests(texts: list[str]) -> list[Request]:
    """Questions of 2-4 choices with contexts of many lengths, a truncated one, single requests, an empty context."""
    requests = []
    for i, text in enumerate(texts[:12]):
        words = text.split()
        context = " ".join(words[: 2 + i])
        endings = [" " + " ".join(texts[(i + k) % len(texts)].split()[k : k + 1 + (i + k) % 5]) for k in range(2 + i % 3)]
        requests += [Request(context, ending) for ending in endings]
    requests.append(Request(" ".join(texts[20].split()[:40]), " and then some more words"))  # alone
    long_context = " ".join(texts[21].split()[:90])  # longer than the model: left-truncated
    requests += [Request(long_context, " the"), Request(long_context, " a much longer ending of many words")]
    requests += [Request("", " A calm morning."), Request("", " The rain stops.")]
    # A context near the model's end with one-word endings, batched with long endings: the padding of the
    # short ones runs past the last position.
    near_end = " ".join(texts[22].split()[:25])
    requests += [Request(near_end, " the"), Request(near_end, " salt")]
    requests += [Request("It", " " + " ".join(texts[23].split()[:6])), Request("It", " " + " ".join(texts[24].split()[:6]))]
    return requests


def test_requests_cover_shared_truncated_and_single_rows(lm):
    model, tokenizer, texts = lm
    rows = [_row(i, e, CONTEXT) for i, e in enumerate(HarnessEncoder(tokenizer).encode_all(_requests(texts)))]
    shared, alone = _share_prefixes(rows)
    assert len(shared) >= 10 and any(row.context is None for row in alone)
    assert len({len(g.prefix) for g in shared}) >= 8  # prefixes of many lengths share a batch: padding is masked
    longest = max(shared, key=lambda g: len(g.prefix))
    longest_tail = max(len(row.continuation) for g in shared for row in g.rows)
    assert len(longest.prefix) + longest_tail > CONTEXT and len(longest.prefix) + 2 <= CONTEXT
    for batch in _pack(shared, 7):
        assert sum(len(g.rows) for g in batch) <= 7 or len(batch) == 1


@pytest.fixture(scope="module")
def whole(lm):
    """Every request run whole and alone through the model's own forward (no GPT-2 runner): the harness's computation,
    no padding at all."""
    model, tokenizer, texts = lm
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(scoring, "_runner", lambda base, device: None)
        return loglikelihoods(model, tokenizer, _requests(texts), batch_size=1, share_contexts=False)


@pytest.mark.parametrize("batch_size", [1, 5, 64])
def test_shared_contexts_score_as_whole_requests_at_any_batch_size(lm, whole, batch_size):
    model, tokenizer, texts = lm
    requests = _requests(texts)
    shared = loglikelihoods(model, tokenizer, requests, batch_size=batch_size)
    assert len(shared) == len(requests)
    for (expected, expected_greedy), (got, greedy) in zip(whole, shared, strict=True):
        assert got == pytest.approx(expected, abs=TOLERANCE) and greedy == expected_greedy


def test_greedy_continuations_are_recognised_through_the_cache(lm):
    """A continuation made of the model's own argmax tokens is greedy on the cached path too."""
    model, tokenizer, texts = lm
    context = tokenizer.encode(" ".join(texts[0].split()[:12]))
    ids = list(context)
    with torch.no_grad():
        for _ in range(3):
            ids.append(int(model(input_ids=torch.tensor([ids])).logits[0, -1].argmax()))
    prefix, text = tokenizer.decode(context), tokenizer.decode(ids)
    if tokenizer.encode(text) != ids:
        pytest.skip("the greedy tokens do not round-trip through the tokenizer")
    requests = [Request(prefix, text[len(prefix) :]), Request(prefix, " zzz qqq")]
    (ll, greedy), (_, other) = loglikelihoods(model, tokenizer, requests, batch_size=2)
    assert greedy and not other


def test_a_model_without_a_cache_argument_is_scored_whole(lm, whole):
    model, tokenizer, texts = lm

    class NoCache(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = model
            self.config = model.config
            self.calls = []

        def forward(self, input_ids, use_cache=False):
            self.calls.append(tuple(input_ids.shape))
            return self.inner(input_ids=input_ids, use_cache=False)

    wrapped = NoCache()
    requests = _requests(texts)
    results = loglikelihoods(wrapped, tokenizer, requests, batch_size=64)
    assert sum(rows for rows, _ in wrapped.calls) == len(requests)  # each request runs once, whole: no context pass
    assert [r[0] for r in results] == pytest.approx([r[0] for r in whole], abs=TOLERANCE)


def _rank_worker(rank: int, world: int, init_file: str, folder: str, out: str) -> None:
    import json

    import torch.distributed as dist
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        model = AutoModelForCausalLM.from_pretrained(folder).eval()
        tokenizer = AutoTokenizer.from_pretrained(folder)
        texts = json.loads((Path(folder) / "texts.json").read_text())
        batches = _count_batches()
        results = loglikelihoods(model, tokenizer, _requests(texts), batch_size=4)
        Path(out, f"rank{rank}.json").write_text(json.dumps({"results": results, "batches": len(batches)}))
    finally:
        dist.destroy_process_group()


def _count_batches() -> list:
    """A list that grows by one per scored batch."""
    from corpuslab.evaluation.tasks import scoring

    calls: list = []
    original = scoring._sums
    scoring._sums = lambda *args: calls.append(1) or original(*args)
    return calls


@pytest.mark.slow  # two spawned processes import torch and transformers: ~50 s on a busy 2-core machine
def test_ranks_under_torch_distributed_split_the_work_and_all_get_every_result(lm, whole, tmp_path, monkeypatch):
    import json

    import torch.multiprocessing as mp

    model, tokenizer, texts = lm
    model.save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    (tmp_path / "model" / "texts.json").write_text(json.dumps(texts))
    from corpuslab.evaluation.tasks import scoring

    monkeypatch.setattr(scoring, "_sums", scoring._sums)  # restored after the count below
    batches = _count_batches()
    loglikelihoods(model, tokenizer, _requests(texts), batch_size=4)
    mp.spawn(_rank_worker, args=(2, str(tmp_path / "init"), str(tmp_path / "model"), str(tmp_path)), nprocs=2, join=True)
    per_rank = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in range(2)]
    assert sum(part["batches"] for part in per_rank) == len(batches) and all(part["batches"] < len(batches) for part in per_rank)
    for part in per_rank:
        results = part["results"]
        assert [r[0] for r in results] == pytest.approx([r[0] for r in whole], abs=TOLERANCE)
        assert [r[1] for r in results] == [r[1] for r in whole]
