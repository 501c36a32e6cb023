"""Metric plug-ins and `evaluate_model`: one pass of per-token losses per split, every split metric from it."""

import math
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import torch.nn.functional as F

from corpuslab.corpus.canaries import CanaryConfig, make_canaries
from corpuslab.errors import ConfigError
from corpuslab.evaluation.lm import evaluate_lm
from corpuslab.evaluation.losses import token_losses, window_block
from corpuslab.evaluation.metrics import (
    DEFAULT_METRICS,
    EvalData,
    Evaluation,
    SplitData,
    SplitMetric,
    SummaryColumn,
    build_metrics,
    evaluate_model,
    experiment_metrics,
    metrics,
)
from corpuslab.tokens.stream import write_token_stream
from corpuslab.training.model import ModelConfig, build_model
from tests.evaluation.test_losses import loss_by_category, loss_by_position

pytestmark = pytest.mark.usefixtures("one_thread")  # exact float comparisons need one reduction order

CHARS = " .:" + "abcdefghijklmnopqrstuvwxyz0123456789"
VOCAB, EOS, CONTEXT = len(CHARS) + 1, 0, 16
DOCS = ["the cat sat on the mat.", "a dog ran far away: 42 times.", "birds sing at dawn.", "rain again today.",
        "the sun is out."]
CATEGORIES = ["animals", "animals", "animals", None, "weather"]


class CharTokenizer:
    """Just enough of a Hugging Face tokenizer for the canaries metric: one id per character, 0 is eos."""

    def __call__(self, text: str, add_special_tokens: bool = False) -> dict:
        return {"input_ids": [CHARS.index(c) + 1 for c in text]}

    def decode(self, ids: list[int]) -> str:
        return "".join(CHARS[i - 1] if i > 0 else "|" for i in ids)


@pytest.fixture(scope="module")
def model():
    return build_model(ModelConfig("tiny", n_layer=2, n_head=2, n_embd=16, context=64), VOCAB, seed=0, eos_id=EOS).eval()


@pytest.fixture
def tokens_dir(tmp_path):
    """val and test splits laid out as the tokens stage writes them."""
    encode = CharTokenizer()
    for split, docs in (("val", DOCS), ("test", DOCS[::-1])):
        write_token_stream(tmp_path / split, (np.array(encode(d)["input_ids"]) for d in docs), VOCAB, EOS)
        categories = CATEGORIES if split == "val" else CATEGORIES[::-1]
        pq.write_table(pa.table({"id": [f"d{i}" for i in range(len(docs))], "bytes": [len(d.encode()) for d in docs],
                                 "category": pa.array(categories, pa.string())}), tmp_path / f"{split}.docs.parquet")
    return tmp_path


def eval_data(tokens_dir, **overrides) -> EvalData:
    fields = {"splits": [SplitData.open(tokens_dir, s) for s in ("val", "test")], "context": CONTEXT, "batch_size": 2,
              "max_tokens": None, "seed": 0}
    return EvalData(**{**fields, **overrides})


class CountingModel(torch.nn.Module):
    """Counts forward passes, so a test can tell how often the data went through the model."""

    def __init__(self, model):
        super().__init__()
        self.model, self.config, self.calls = model, model.config, 0

    def forward(self, **kwargs):
        self.calls += 1
        return self.model(**kwargs)


@torch.no_grad()
def previous_release_evaluate_lm(model, stream, doc_bytes, context, batch_size) -> dict:
    """evaluate_lm as earlier releases computed it: its own windowing, an fp32 sum per batch."""
    n_tokens = int(stream.offsets[stream.n_docs])
    starts = np.arange(0, n_tokens, context, dtype=np.int64)
    full = starts[starts + context <= n_tokens]
    blocks = [(full[i : i + batch_size], context) for i in range(0, len(full), batch_size)]
    if len(full) < len(starts):
        blocks.append((starts[len(full) :], n_tokens - int(starts[len(full)])))
    total = 0.0
    for block, length in blocks:
        inputs, targets = window_block(stream, block, length)
        logits = model(input_ids=inputs, use_cache=False).logits
        total += float(F.cross_entropy(logits.float().flatten(0, 1), targets.flatten(), reduction="sum").item())
    loss = total / n_tokens
    return {"loss": loss, "perplexity": math.exp(loss), "bits_per_byte": total / math.log(2) / int(sum(doc_bytes))}


def test_one_pass_gives_the_previous_release_numbers_exactly(model, tokens_dir):
    data = eval_data(tokens_dir)
    out = evaluate_model(model, CharTokenizer(), "cpu", data, build_metrics(["lm"]), log=lambda _: None).metrics
    for split in data.splits:
        old = previous_release_evaluate_lm(model, split.stream, split.doc_bytes, CONTEXT, batch_size=2)
        assert {k: out[split.name][k] for k in old} == old  # bit for bit, not approximately
        assert out[split.name] == evaluate_lm(model, split.stream, split.doc_bytes, CONTEXT, batch_size=2)


def test_every_split_metric_reads_one_forward_pass_per_window_batch(model, tokens_dir):
    counting = CountingModel(model)
    data = eval_data(tokens_dir, splits=[SplitData.open(tokens_dir, "val")])
    out = evaluate_model(counting, CharTokenizer(), "cpu", data, build_metrics(["lm", "in_context", "categories"]),
                         log=lambda _: None).metrics
    n_tokens = data.splits[0].stream.n_tokens
    windows = math.ceil(n_tokens / CONTEXT)
    assert counting.calls == math.ceil((n_tokens // CONTEXT) / 2) + (windows > n_tokens // CONTEXT)
    stream = data.splits[0].stream
    assert out["val_by_position"] == loss_by_position(model, stream, CONTEXT, batch_size=2)
    assert out["val_by_category"] == loss_by_category(model, stream, CATEGORIES, CONTEXT, batch_size=2)
    weighted = sum(c["loss"] * c["tokens"] for c in out["val_by_category"].values()) / n_tokens
    assert weighted == pytest.approx(out["val"]["loss"], rel=1e-6)  # the headline sums in fp32 per batch


def test_the_default_set_writes_metrics_json_as_earlier_releases(model, tokens_dir):
    canaries = make_canaries(CanaryConfig(count=2, copies=[1, 3], secret_length=4), seed=0)
    data = eval_data(tokens_dir, canaries=canaries)
    lines = []
    evaluation = evaluate_model(model, CharTokenizer(), "cpu", data, build_metrics(None, shared={
        "canaries": {"num_candidates": 20}, "tasks": {"tasks": {}}}), log=lines.append)
    assert list(evaluation.metrics) == ["val", "val_by_position", "val_by_category", "test", "canaries"]
    assert set(evaluation.metrics["canaries"]) == {"overall", "by_copies"}
    assert evaluation.metrics["canaries"]["overall"]["canaries"] == 2
    assert [r["num_candidates"] for r in evaluation.files["canaries.json"]] == [20, 20]
    assert any(line.startswith("  val: loss") for line in lines)
    assert "  tasks: none configured (evaluation.tasks is empty)" in lines  # said, not silently skipped


def test_evaluation_writes_metrics_json_and_the_files_next_to_it(tmp_path):
    Evaluation({"val": {"loss": 1.0}}, {"canaries.json": [{"id": "c"}]}).write(tmp_path)
    assert (tmp_path / "metrics.json").read_text().strip().startswith("{")
    assert (tmp_path / "canaries.json").exists()


def test_a_model_without_canaries_is_not_measured(model, tokens_dir):
    lines = []
    out = evaluate_model(model, CharTokenizer(), "cpu", eval_data(tokens_dir), build_metrics(["canaries"]),
                         log=lines.append)
    assert out.metrics == {} and out.files == {}
    assert any("canaries: none planted" in line for line in lines)


def test_a_metric_asking_for_an_unevaluated_split_says_so(model, tokens_dir):
    lines = []
    data = eval_data(tokens_dir, splits=[SplitData.open(tokens_dir, "val")])
    out = evaluate_model(model, CharTokenizer(), "cpu", data, build_metrics([{"name": "in_context", "splits": ["test"]}]),
                         log=lines.append)
    assert out.metrics == {}
    assert lines == ["  in_context: split test not evaluated (evaluation.splits), left out"]


# ---- the registry and the config -----------------------------------------------------------------


def test_an_unknown_metric_lists_the_known_ones():
    with pytest.raises(ConfigError) as error:
        build_metrics(["lm", "perplexity"])
    assert error.value.key == "evaluation.metrics[1]"
    for name in DEFAULT_METRICS:
        assert name in str(error.value)


def test_metric_parameters_are_typed_and_named_by_key():
    with pytest.raises(ConfigError) as error:
        build_metrics([{"name": "canaries", "num_candidates": 0}])
    assert error.value.key == "evaluation.metrics[0].num_candidates"
    with pytest.raises(ConfigError) as error:
        build_metrics([{"name": "lm", "split": ["val"]}])
    assert error.value.key == "evaluation.metrics[0].split"
    with pytest.raises(ConfigError):
        build_metrics("lm")


def evaluation_config(**fields):
    defaults = {"tasks": {}, "task_files": {}}
    return SimpleNamespace(**{**defaults, **fields})


def test_the_experiment_default_runs_tasks_only_when_configured():
    canaries = CanaryConfig(num_candidates=30, decode_tokens=5)
    names = [m.name for m in experiment_metrics(evaluation_config(), canaries)]
    assert names == ["lm", "in_context", "categories", "canaries"]
    built = experiment_metrics(evaluation_config(tasks={"piqa": 10}), canaries)
    assert [m.name for m in built] == list(DEFAULT_METRICS)
    tasks, scoring = built[3], built[4]
    assert tasks.config.tasks == {"piqa": 10}
    assert (scoring.config.num_candidates, scoring.config.decode_tokens) == (30, 5)  # from `canaries`


def test_the_experiment_reads_evaluation_metrics_and_a_spec_overrides_the_shared_defaults():
    cfg = evaluation_config(metrics=["lm", {"name": "canaries", "num_candidates": 7}])
    built = experiment_metrics(cfg, CanaryConfig(num_candidates=30, decode_tokens=5))
    assert [m.name for m in built] == ["lm", "canaries"]
    assert (built[1].config.num_candidates, built[1].config.decode_tokens) == (7, 5)


def test_metrics_declare_their_columns_and_section():
    assert [c.name for c in metrics.get("lm", "x").columns] == [
        "val_loss", "val_ppl", "val_bpb", "test_loss", "test_ppl", "test_bpb"]
    assert [c.key for c in metrics.get("canaries", "x").columns] == ["canaries.exact_rate", "canaries.mean_exposure"]
    assert {m.name: m.section for m in metrics if m.name in DEFAULT_METRICS} == {
        "lm": "metrics", "in_context": "in_context", "categories": "categories", "canaries": "canaries",
        "tasks": "tasks"}


# ---- a user's metric -----------------------------------------------------------------------------


@metrics.register
class WorstDocument(SplitMetric):
    """The loss of the split's worst document: a metric a user adds in a plugins module."""

    name = "test_worst_document"
    columns = (SummaryColumn("val_worst_doc", "val_worst_document.loss", "worst val document loss"),)

    @dataclass(frozen=True)
    class Config:
        splits: list[str] | None = None

    def compute(self, split, losses, log):
        per_doc = np.add.reduceat(losses.losses, losses.offsets[:-1]) / np.diff(losses.offsets)
        return Evaluation({f"{split.name}_worst_document": {"loss": float(per_doc.max())}})


def test_a_registered_metric_reads_the_same_pass_as_the_built_ins(model, tokens_dir):
    counting = CountingModel(model)
    data = eval_data(tokens_dir, splits=[SplitData.open(tokens_dir, "val")])
    with_lm = evaluate_model(counting, CharTokenizer(), "cpu", data, build_metrics(["lm"]), lambda _: None)
    calls_for_lm = counting.calls
    out = evaluate_model(counting, CharTokenizer(), "cpu", data, build_metrics(["lm", "test_worst_document"]),
                         lambda _: None).metrics
    assert counting.calls == 2 * calls_for_lm  # the new metric cost no forward pass of its own
    assert out["val"] == with_lm.metrics["val"]
    losses = token_losses(model, data.splits[0].stream, CONTEXT, batch_size=2)
    first_doc = losses.losses[: losses.offsets[1]].mean()
    assert out["val_worst_document"]["loss"] >= first_doc


def test_two_metrics_writing_one_key_is_an_error():
    evaluation = Evaluation({"val": {}})
    with pytest.raises(ConfigError, match="written twice"):
        evaluation.add(Evaluation({"val": {}}), "lm")
