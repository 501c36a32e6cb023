"""Random configs and random text thrown at the loaders and the curation steps: no crash but a clear error."""

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from corpuslab.config import load_config
from corpuslab.curation.dedup.exact import find_exact_duplicates
from corpuslab.curation.dedup.minhash import MinHashConfig
from corpuslab.curation.dedup.near import find_exact_and_near_duplicates
from corpuslab.curation.dedup.normalize import NormalizeConfig
from corpuslab.documents import Document
from corpuslab.errors import ConfigError, InputError
from corpuslab.executor import SerialExecutor
from corpuslab.shards import ShardWriter

KEYS = [
    "seed", "experiment", "split.train", "split.val", "split.test", "split.stratify", "tokenizer.kind",
    "tokenizer.vocab_size", "curation.decontaminate", "curation.minhash.threshold", "curation.minhash.num_perm",
    "curation.minhash.bands", "curation.minhash.rows", "curation.minhash.ngram", "curation.minhash.shingle",
    "curation.normalize.unicode_form", "canaries.count", "canaries.copies", "canaries.placement", "model.preset",
    "model.n_layer", "model.n_head", "model.n_embd", "model.context", "training.chunk_len", "training.batch_size",
    "training.max_train_tokens", "training.max_steps", "training.lr", "training.precision", "training.device",
    "evaluation.batch_size", "dataset.source", "dataset.max_docs", "dataset.synthetic.num_docs",
    "dataset.synthetic.near_dup_edit_rates", "runs.0.recipe", "runs.1.level", "runs.2.minhash", "unknown.key",
    "training.bogus", "seeds",
]
VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 10**6), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12), st.lists(st.one_of(st.integers(-3, 50), st.floats(-1, 2)), max_size=4),
    st.dictionaries(st.text(max_size=6), st.integers(), max_size=2),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(KEYS), VALUES), max_size=4))
def test_random_configs_load_or_name_the_bad_key(pairs):
    overrides = [f"{key}={yaml.safe_dump(value, default_flow_style=True).strip().removesuffix('...').strip()}"
                 for key, value in pairs]
    try:
        cfg = load_config(None, overrides)
    except ConfigError as err:
        assert err.key and err.key in str(err)
        return
    except InputError:
        return
    assert cfg.runs and cfg.training.chunk_len <= cfg.model.resolved().context


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.one_of(st.text(max_size=200), st.binary(max_size=200).map(lambda b: b.decode("utf-8", "replace"))),
                min_size=1, max_size=30),
       st.sampled_from(["word", "char"]), st.integers(1, 6))
def test_curation_survives_arbitrary_text(tmp_path_factory, texts, shingle, ngram):
    folder = tmp_path_factory.mktemp("shards")
    texts = texts + texts[:3]  # guarantee some duplicates
    with ShardWriter(folder, shard_docs=10) as writer:
        writer.write_all(Document(f"d{i}", text.replace("\x00", ""), {}) for i, text in enumerate(texts))
    norm = NormalizeConfig()
    exact = find_exact_duplicates(writer.paths, norm, SerialExecutor())
    near = find_exact_and_near_duplicates(writer.paths, MinHashConfig(shingle=shingle, ngram=ngram, num_perm=32),
                                          norm, SerialExecutor())
    dropped_exact, dropped_near = exact.dropped_ids(), near.dropped_ids()
    assert dropped_exact <= dropped_near  # near = exact, then more
    ids = {f"d{i}" for i in range(len(texts))}
    assert dropped_near < ids or not ids  # something always survives
