"""The model2vec static embedder, on a tiny model2vec model built and saved here (no download)."""

import numpy as np
import pytest

pytest.importorskip("model2vec", reason="the model2vec embedder's optional extra (pip install model2vec)")

from corpuslab.distill.embed import EmbedConfig, Embeddings, build_embeddings  # noqa: E402
from corpuslab.distill.embedders import Model2VecEmbedder, build_embedder  # noqa: E402
from corpuslab.documents import Document  # noqa: E402
from corpuslab.errors import ConfigError  # noqa: E402
from corpuslab.shards import ShardWriter  # noqa: E402

WORDS = ["[UNK]", "[PAD]", "river", "mill", "flour", "goal", "striker", "match", "rain", "snow"]


def _save_model(folder, seed=0):
    from model2vec import StaticModel
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace

    tokenizer = Tokenizer(WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = Whitespace()
    vectors = np.random.default_rng(seed).normal(size=(len(WORDS), 8)).astype(np.float32)
    StaticModel(vectors, tokenizer, normalize=True).save_pretrained(folder)
    return vectors


def _embedder(folder, **params):
    embedder = build_embedder({"name": "model2vec", "model": str(folder), **params}, "embed.embedder")
    embedder.check("embed.embedder")
    embedder.prepare(lambda: iter(()), lambda m: None)
    return embedder


def test_encodes_as_the_mean_of_token_vectors_normalised(tmp_path):
    from model2vec import StaticModel

    vectors = _save_model(tmp_path / "m2v")
    embedder = _embedder(tmp_path / "m2v")
    assert isinstance(embedder, Model2VecEmbedder) and embedder.dim == 8
    texts = ["river mill flour", "goal striker match match", "rain snow rain"]
    out = embedder.encode(texts)
    assert out.shape == (3, 8) and out.dtype == np.float32
    assert np.allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    for text, row in zip(texts, out, strict=True):
        mean = vectors[[WORDS.index(w) for w in text.split()]].mean(0)
        assert np.allclose(row, mean / np.linalg.norm(mean), atol=1e-5)
    library = StaticModel.from_pretrained(tmp_path / "m2v", normalize=True).encode(texts)
    assert np.allclose(out, library, atol=1e-5)  # the same vectors as model2vec's own encode
    # max_tokens is model2vec's max_length (it also cuts the text at max_length x the median token length first)
    long = ["goal striker match rain snow river mill flour " * 3]
    truncated = _embedder(tmp_path / "m2v", max_tokens=3).encode(long)
    assert np.allclose(truncated, StaticModel.from_pretrained(tmp_path / "m2v", normalize=True).encode(long, max_length=3), atol=1e-5)
    assert not np.allclose(embedder.encode(long), truncated, atol=1e-3)


def test_embed_stage_with_model2vec(tmp_path):
    _save_model(tmp_path / "m2v")
    with ShardWriter(tmp_path / "docs") as writer:
        for i in range(10):
            writer.write(Document(f"d{i}", ["river mill flour", "goal striker", "rain snow"][i % 3]))
    cfg = EmbedConfig(embedder={"name": "model2vec", "model": str(tmp_path / "m2v")}, shard_docs=4)
    (tmp_path / "emb").mkdir()
    build_embeddings(tmp_path / "emb", cfg, cfg.build(), sorted((tmp_path / "docs").glob("*.parquet")), lambda m: None)
    emb = Embeddings(tmp_path / "emb")
    rows = emb.rows(np.arange(len(emb)))
    assert rows.shape == (10, 8) and np.allclose(rows[0], rows[3], atol=1e-3) and not np.allclose(rows[0], rows[1], atol=1e-2)


def test_fingerprint_follows_the_vectors(tmp_path):
    _save_model(tmp_path / "m2v", seed=0)
    first = _embedder(tmp_path / "m2v").describe()
    _save_model(tmp_path / "m2v", seed=1)
    second = _embedder(tmp_path / "m2v").describe()
    assert first["config"] == second["config"] and first["weights_sha256"] != second["weights_sha256"]


def test_missing_folder_or_package_stops_before_any_work(tmp_path, monkeypatch):
    with pytest.raises(ConfigError) as err:
        build_embedder({"name": "model2vec", "model": str(tmp_path / "nowhere")}, "embed.embedder").check("embed.embedder")
    assert err.value.key == "embed.embedder.model" and "local model2vec folder" in str(err.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="tokenizer.json"):
        build_embedder({"name": "model2vec", "model": str(tmp_path / "empty")}, "embed.embedder").check("embed.embedder")
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "model2vec" else real(name, *a))
    with pytest.raises(ConfigError, match="pip install model2vec"):
        build_embedder({"name": "model2vec", "model": str(tmp_path)}, "embed.embedder").check("embed.embedder")
