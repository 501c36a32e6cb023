"""The loss sampler's reference model: trained on a random half of the corpus (`reference: self`), scored on
the other half, cached as a stage; and a `loss` arm's fingerprint follows the reference model's identity."""

import json

import numpy as np
import pytest

from corpuslab.artifacts import StageRunner
from corpuslab.curation.recipes import distill
from corpuslab.curation.recipes.base import CurationContext
from corpuslab.curation.recipes.distill import MiniPile
from corpuslab.distill.reference import ReferenceTrainConfig, folder_hash, half_rows, reference_stage
from corpuslab.documents import Document
from corpuslab.errors import ConfigError
from corpuslab.schema import from_dict
from corpuslab.shards import ShardWriter

TINY_REFERENCE = {"steps": 4, "batch_size": 4, "context": 32, "n_layer": 1, "n_head": 2, "n_embd": 16, "vocab_size": 300}
WORDS = ("river mill flour bread oven kettle garden storm tree village match goal striker rain wind snow "
         "polymer sample crystal").split()


def _items(folder, n=40):
    rng = np.random.default_rng(0)
    with ShardWriter(folder) as writer:
        for i in range(n):
            writer.write(Document(f"d{i}", f"doc {i}: " + " ".join(rng.choice(WORDS, size=30).tolist())))
    return sorted(folder.glob("*.parquet"))


def _recipe(**params):
    return MiniPile.from_params({"sampler": "loss", "target": 0.5, "cluster": {"k": 2}, **params}, "runs.0.recipe")


def test_self_trained_reference_scores_only_the_other_half(tmp_path, monkeypatch):
    items = _items(tmp_path / "docs")
    recipe = _recipe(reference="self", reference_train=TINY_REFERENCE, loss_docs=100)
    seen: list[str] = []
    original = distill._doc_losses

    def recording(loaded, texts, max_tokens):
        seen.extend(texts)
        return original(loaded, texts, max_tokens)

    monkeypatch.setattr(distill, "_doc_losses", recording)
    stages = StageRunner(tmp_path / "stages", lambda m: None)
    context = CurationContext(None, lambda m: None, 0, tmp_path / "scratch", stages=stages)  # type: ignore[arg-type]
    members = [np.arange(0, 20), np.arange(20, 40)]
    losses = recipe.reference_losses(members, [0, 1], items, context)

    folder = next((tmp_path / "stages").glob("reference-*"))
    trained = set(np.load(folder / "half.npy").tolist())
    assert len(trained) == 20 and trained == set(half_rows(40, ReferenceTrainConfig()).tolist())
    texts = [f"doc {i}:" for i in range(40)]
    assert seen and not any(text.startswith(texts[r] + " ") for text in seen for r in trained)
    assert len(seen) == 20  # every document of the held-out half, none of the trained one
    assert set(losses) == {0, 1} and all(v > 0 for v in losses.values())
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["steps"] == 4 and manifest["documents"] == 20 and (folder / "model" / "config.json").exists()
    assert context.stats["reference_model"]["stage"] == folder.name

    # A second arm with the same settings reuses the trained model.
    again = reference_stage(stages, recipe.config.reference_train, items, lambda m: None)
    assert again.path == folder and len(list((tmp_path / "stages").glob("reference-*"))) == 1


def test_loss_fingerprint_follows_the_reference_weights_not_only_the_path(tmp_path):
    folder = tmp_path / "ref"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"weights v1")
    recipe = _recipe(reference=str(folder))
    before = recipe.fingerprint("split-abc")
    assert recipe.describe()["reference"] == {"folder_sha256": folder_hash(folder)}
    (folder / "model.safetensors").write_bytes(b"weights v2")  # retrained in place: same path, new weights
    assert recipe.fingerprint("split-abc") != before
    (folder / "model.safetensors").write_bytes(b"weights v1")
    assert recipe.fingerprint("split-abc") == before


def test_self_reference_fingerprint_follows_its_training_settings():
    a = _recipe(reference="self", reference_train=TINY_REFERENCE)
    b = _recipe(reference="self", reference_train={**TINY_REFERENCE, "steps": 5})
    assert a.fingerprint("split") != b.fingerprint("split")
    assert a.describe()["reference"]["trained_on_half"]["steps"] == 4


def test_other_samplers_keep_their_fingerprints():
    """Only a loss arm records a reference: every other arm's folder is named as before."""
    recipe = MiniPile.from_params({"sampler": "uniform", "cluster": {"k": 2}}, "runs.0.recipe")
    assert recipe.fingerprint("x") == super(MiniPile, recipe).fingerprint("x")
    assert "reference" not in recipe.describe()


def test_bad_reference_training_settings_name_the_key():
    with pytest.raises(ConfigError) as err:
        from_dict(MiniPile.Config, {"sampler": "loss", "reference": "self", "reference_train": {"fraction": 1.0}},
                  "runs.2.recipe").validate("runs.2.recipe")
    assert err.value.key == "runs.2.recipe.reference_train.fraction"
