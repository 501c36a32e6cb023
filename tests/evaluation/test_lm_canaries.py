import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from corpuslab.corpus.canaries import CanaryConfig, canary_documents, make_canaries
from corpuslab.errors import ConfigError, StageError
from corpuslab.evaluation.lm import evaluate_lm
from corpuslab.evaluation.memorization import (
    _log_perplexities,
    _secret_log_perplexities,
    measure_memorization,
    summarize,
)
from corpuslab.tokens.stream import TokenStream, write_token_stream
from corpuslab.training.model import ModelConfig, build_model
from corpuslab.training.trainer import TrainingConfig, train

pytestmark = pytest.mark.usefixtures("one_thread")  # exact float comparisons need one reduction order

CHARS = " .:" + "abcdefghijklmnopqrstuvwxyz0123456789"
VOCAB = len(CHARS) + 1  # id 0 is eos
EOS = 0


def encode(text: str) -> list[int]:
    return [CHARS.index(c) + 1 for c in text]


def decode(ids: list[int]) -> str:
    return "".join(CHARS[i - 1] if i > 0 else "|" for i in ids)


def tiny_model(seed: int = 0, context: int = 32):
    return build_model(tiny_config(context), VOCAB, seed, eos_id=EOS)


def tiny_config(context: int) -> ModelConfig:
    return ModelConfig("tiny", n_layer=2, n_head=2, n_embd=32, context=context)


# ---- evaluate_lm -----------------------------------------------------------------------------------

DOCS = ["the cat sat.", "a dog ran far away.", "birds sing at dawn: 42 of them."]


@pytest.fixture
def stream(tmp_path):
    write_token_stream(tmp_path / "val", (np.array(encode(d)) for d in DOCS), VOCAB, EOS)
    return TokenStream.open(tmp_path / "val")


def _manual_nats(model, tokens: list[int], context: int) -> float:
    """Reference: every token is a target once; the input before the first token is eos."""
    sequence = [EOS] + tokens
    total = 0.0
    with torch.no_grad():
        for start in range(0, len(tokens), context):
            inputs = torch.tensor([sequence[start : start + context]])
            targets = torch.tensor(tokens[start : start + context])
            logits = model(inputs).logits[0, : len(targets)]
            total += F.cross_entropy(logits, targets, reduction="sum").item()
    return total


@pytest.mark.parametrize("context", [32, 7])
def test_bits_per_byte_matches_a_manual_calculation(stream, context):
    model = tiny_model(context=32).eval()
    tokens = stream.tokens.astype(int).tolist()
    n_bytes = sum(len(d.encode("utf-8")) for d in DOCS)
    result = evaluate_lm(model, stream, n_bytes, context=context, batch_size=3)

    nats = _manual_nats(model, tokens, context)
    assert result["tokens"] == len(tokens) == sum(len(d) + 1 for d in DOCS)
    assert result["loss"] == pytest.approx(nats / len(tokens), rel=1e-5)
    assert result["perplexity"] == pytest.approx(math.exp(nats / len(tokens)), rel=1e-5)
    assert result["bits_per_byte"] == pytest.approx(nats / math.log(2) / n_bytes, rel=1e-5)


def test_max_tokens_counts_whole_documents(stream):
    model = tiny_model().eval()
    per_doc_bytes = [len(d.encode("utf-8")) for d in DOCS]
    max_tokens = len(DOCS[0]) + 1 + len(DOCS[1]) + 1 + 5  # the third document does not fit
    result = evaluate_lm(model, stream, per_doc_bytes, context=16, max_tokens=max_tokens)
    assert result["docs"] == 2 and result["tokens"] == max_tokens - 5
    assert result["bytes"] == sum(per_doc_bytes[:2])
    covered = stream.tokens[: result["tokens"]].astype(int).tolist()
    manual_bits_per_byte = _manual_nats(model, covered, 16) / math.log(2) / result["bytes"]
    assert result["bits_per_byte"] == pytest.approx(manual_bits_per_byte, rel=1e-5)
    with pytest.raises(StageError, match="no whole document"):
        evaluate_lm(model, stream, None, context=16, max_tokens=3)


def test_evaluate_refuses_a_context_beyond_the_model(stream):
    with pytest.raises(ConfigError):
        evaluate_lm(tiny_model(context=32), stream, None, context=64)


# ---- canaries --------------------------------------------------------------------------------------


def test_make_canaries_is_seeded_unique_and_split_across_copies():
    cfg = CanaryConfig(count=6, copies=[1, 4, 10], secret_length=5)
    canaries = make_canaries(cfg, seed=3)
    assert canaries == make_canaries(cfg, seed=3) != make_canaries(cfg, seed=4)
    assert len({c.prefix for c in canaries}) == 6
    assert [c.copies for c in canaries] == [1, 4, 10, 1, 4, 10]
    assert all(c.prefix.startswith("canary ") and c.prefix.endswith("code:") for c in canaries)
    assert all(len(c.secret.split()) == 5 and c.secret.replace(" ", "").isdigit() for c in canaries)


def test_canary_documents_one_per_copy():
    canaries = make_canaries(CanaryConfig(count=2, copies=[1, 3]), seed=0)
    docs = canary_documents(canaries)
    assert [d.id for d in docs] == ["canary-0000-c1", "canary-0001-c1", "canary-0001-c2", "canary-0001-c3"]
    assert docs[2].text == canaries[1].text == f"{canaries[1].prefix} {canaries[1].secret}"
    assert docs[2].metadata["canary"] == "canary-0001"


@pytest.mark.parametrize(
    "overrides, key",
    [({"count": 0}, "canaries.count"), ({"copies": []}, "canaries.copies"),
     ({"copies": [1, 0]}, "canaries.copies"),
     ({"placement": "during"}, "canaries.placement"), ({"decode_tokens": 0}, "canaries.decode_tokens")],
)
def test_canary_config_errors_name_the_key(overrides, key):
    with pytest.raises(ConfigError) as error:
        CanaryConfig(**overrides).validate()
    assert error.value.key == key


def test_batched_scoring_matches_one_sequence_at_a_time():
    """The shared-prefix cache and the distinct-context trick must not change any number."""
    model = tiny_model(seed=1, context=64).eval()
    context = [EOS] + encode("canary abcde code:")
    rng = np.random.default_rng(0)
    secrets = np.stack([encode(" " + " ".join(map(str, rng.integers(0, 10, 4)))) for _ in range(7)] * 2)
    fast = _secret_log_perplexities(model, context, secrets, "cpu")
    with torch.no_grad():
        for row, secret in enumerate(secrets):
            logits = model(torch.tensor([context + secret.tolist()])).logits[0]
            log_probs = torch.log_softmax(logits[len(context) - 1 : -1], dim=-1)
            bits = -log_probs[torch.arange(len(secret)), torch.from_numpy(secret)].sum().item() / math.log(2)
            assert fast[row] == pytest.approx(bits, rel=1e-5)


def test_a_repeated_canary_is_memorized_and_an_unseen_one_is_not(tmp_path):
    cfg = CanaryConfig(count=4, copies=[20], num_candidates=1000)
    canaries = make_canaries(cfg, seed=0)
    seen, unseen = canaries[:2], canaries[2:]
    texts = [d.text for d in canary_documents(seen)] + ["the cat sat on the mat. " * 2] * 40
    np.random.default_rng(0).shuffle(texts)
    write_token_stream(tmp_path / "train", (np.array(encode(t)) for t in texts), VOCAB, EOS)
    stream = TokenStream.open(tmp_path / "train")
    model = tiny_model(context=64)
    train_cfg = TrainingConfig(chunk_len=64, stride=16, batch_size=16, max_steps=300, lr=1e-2,
                               warmup_steps=20, log_interval=100, eval_interval=1000, num_threads=1)
    windows = stream.windows(64, stride=16)
    train(model, stream, windows, None, None, train_cfg, tmp_path / "run", log=lambda line: None)

    results = measure_memorization(model, encode, decode, canaries, cfg, seed=0, bos_id=EOS)

    by_id = {r["id"]: r for r in results}
    max_exposure = math.log2(cfg.num_candidates + 1)
    for canary in seen:
        result = by_id[canary.id]
        assert result["exact"] and result["generation"].strip() == canary.secret
        assert result["rank"] == 1 and result["exposure"] == pytest.approx(max_exposure)
    for canary in unseen:
        assert not by_id[canary.id]["exact"] and by_id[canary.id]["exposure"] < 5
    for result in results:  # the Secret Sharer formula, stated in the module docstring
        assert result["exposure"] == pytest.approx(max_exposure - math.log2(result["rank"]))

    summary = summarize([*results, {**by_id[unseen[0].id], "copies": 1}])
    assert summary[0]["copies"] == 1 and summary[0]["exact_rate"] == 0.0
    assert summary[1] == {"copies": 20, "canaries": 4, "exact_rate": 0.5,
                          "mean_exposure": pytest.approx(np.mean([r["exposure"] for r in results])),
                          "median_exposure": pytest.approx(np.median([r["exposure"] for r in results]))}


def test_candidates_of_different_token_lengths_are_scored():
    """A tokenizer that merges " 0" into one token gives candidates of different lengths."""
    zero = VOCAB

    def merging_encode(text: str) -> list[int]:
        ids, i = [], 0
        while i < len(text):
            merged = text[i : i + 2] == " 0"
            ids.append(zero if merged else CHARS.index(text[i]) + 1)
            i += 2 if merged else 1
        return ids

    def merging_decode(ids: list[int]) -> str:
        return "".join(" 0" if i == zero else decode([i]) for i in ids)

    model = build_model(tiny_config(64), VOCAB + 1, seed=0).eval()
    cfg = CanaryConfig(count=3, copies=[1], secret_length=6, num_candidates=50)
    results = measure_memorization(model, merging_encode, merging_decode, make_canaries(cfg, 0), cfg, seed=0)
    assert all(1 <= r["rank"] <= 51 and math.isfinite(r["log_perplexity"]) for r in results)

    context = merging_encode("canary abc code:")
    secrets = [merging_encode(" 1 0 2"), merging_encode(" 1 2 3"), merging_encode(" 0 0 7")]
    assert len({len(s) for s in secrets}) == 3
    together = _log_perplexities(model, context, secrets, "cpu")
    for secret, px in zip(secrets, together):
        alone = _secret_log_perplexities(model, context, np.array([secret]), "cpu")[0]
        assert px == pytest.approx(alone, rel=1e-5)
