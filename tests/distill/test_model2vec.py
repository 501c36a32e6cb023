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


def _tiny_encoder(folder):
    """A 1-layer BERT and its WordPiece tokenizer, saved as a Hugging Face folder."""
    import torch
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordPiece
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    folder.mkdir()
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS[2:] + ["##s", "the", "a"]
    backend = Tokenizer(WordPiece({w: i for i, w in enumerate(vocab)}, unk_token="[UNK]"))
    backend.normalizer = normalizers.BertNormalizer(lowercase=True)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                        sep_token="[SEP]", mask_token="[MASK]")
    assert len(tokenizer) == len(vocab) and tokenizer("rivers")["input_ids"] == [2, vocab.index("river"), vocab.index("##s"), 3]
    torch.manual_seed(0)
    model = BertModel(BertConfig(vocab_size=len(vocab), hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                                 intermediate_size=32, max_position_embeddings=32))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return model.eval(), tokenizer


def test_distilled_from_an_encoder_once_as_a_stage(tmp_path):
    """Each token's vector is the encoder's mean output over [CLS] token [SEP] (checked one token at a time,
    unpadded), PCA-ed and SIF-weighted: with pca_dims = the hidden size the PCA only rotates and centres, so the
    rows' inner products equal w_i w_j (c_i . c_j) of the centred encoder vectors."""
    import torch

    from corpuslab.artifacts import StageRunner
    from corpuslab.distill.static import sif_weights

    model, tokenizer = _tiny_encoder(tmp_path / "enc")
    spec = {"name": "model2vec", "distill_from": str(tmp_path / "enc"), "pca_dims": 8}
    stages = StageRunner(tmp_path / "stages", lambda m: None)
    embedder = build_embedder(spec, "embed.embedder")
    embedder.check("embed.embedder")
    embedder.build_stages(stages, lambda m: None)
    embedder.prepare(lambda: iter(()), lambda m: None)
    folder = next((tmp_path / "stages").glob("static-*")) / "model"
    from model2vec import StaticModel

    vectors = np.asarray(StaticModel.from_pretrained(folder).embedding, dtype=np.float64)
    with torch.no_grad():
        expected = np.stack([model(input_ids=torch.tensor([[2, i, 3]])).last_hidden_state[0].mean(0).numpy()
                             for i in range(len(tokenizer))]).astype(np.float64)
    centred = expected - expected.mean(0)
    w = sif_weights(len(tokenizer), 1e-4)
    assert vectors.shape == (len(tokenizer), 8)
    assert np.allclose(vectors @ vectors.T, np.outer(w, w) * (centred @ centred.T), atol=1e-4)
    river, mill = (vectors[tokenizer.convert_tokens_to_ids(w)] for w in ("river", "mill"))
    assert np.allclose(embedder.encode(["River mill"])[0], (river + mill) / np.linalg.norm(river + mill), atol=1e-5)
    # Built once: a second embedder with the same settings reuses the stage; the fingerprint names the encoder's files.
    again = build_embedder(spec, "embed.embedder")
    again.build_stages(stages, lambda m: None)
    assert len(list((tmp_path / "stages").glob("static-*"))) == 1 and "folder_sha256" in again.describe()["encoder"]
    with pytest.raises(ConfigError) as err:
        build_embedder({"name": "model2vec", "model": str(folder), "distill_from": str(tmp_path / "enc")}, "embed.embedder")
    assert err.value.key == "embed.embedder.model"
