"""Embed -> cluster -> distill through the experiment: shared cached stages, accounting, resume, bad input."""

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from corpuslab.api import open_experiment
from corpuslab.cli import main
from corpuslab.config import load_config
from corpuslab.curation.recipes.distill import loss_sample
from corpuslab.distill.cluster import ClusterConfig, faiss_available, fit_spherical_kmeans
from corpuslab.distill.embed import EmbedConfig, Embeddings, build_embeddings
from corpuslab.distill.embedders import HashedEmbedder
from corpuslab.documents import Document
from corpuslab.errors import ConfigError
from corpuslab.shards import ShardWriter
from tests.conftest import TINY

ARMS = """
runs:
  - {name: full, recipe: none}
  - {name: random, recipe: minipile, sampler: random, match: density, target: 0.5, cluster: {k: 4}}
  - {name: uniform, recipe: minipile, sampler: uniform, target: 0.5, cluster: {k: 4}, exclude: [1],
     exclude_rules: [{stat: duplicate_rate, above: 0.99}]}
  - {name: density, recipe: minipile, sampler: density, target: 0.5, cluster: {k: 4}}
  - {name: semdedup, recipe: semdedup, cluster: {k: 4}, eps: 0.2}
  - {name: loss, recipe: minipile, sampler: loss, target: 0.5, cluster: {k: 4}, reference: REFERENCE, loss_docs: 6}
  - {name: loss_self, recipe: minipile, sampler: loss, target: 0.5, cluster: {k: 4}, reference: self, loss_docs: 6,
     reference_train: {steps: 3, batch_size: 2, context: 32, n_layer: 1, n_embd: 16, vocab_size: 300}}
"""


def _reference_checkpoint(folder):
    """A tiny byte-level GPT-2 saved as a Hugging Face folder: the loss sampler's reference model."""
    from corpuslab.tokens.tokenizer import TokenizerConfig, build_tokenizer
    from corpuslab.training.config import ModelConfig
    from corpuslab.training.model import build_model

    tokenizer = build_tokenizer(TokenizerConfig(kind="bytes"), [])
    model = build_model(ModelConfig(n_layer=1, n_head=2, n_embd=16, context=64), vocab_size=len(tokenizer), seed=0,
                        eos_id=tokenizer.eos_token_id)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def curated(tmp_path_factory):
    folder = tmp_path_factory.mktemp("distill")
    (folder / "arms.yaml").write_text(ARMS.replace("REFERENCE", str(_reference_checkpoint(folder / "reference"))))
    cfg = load_config([str(folder / "arms.yaml")], TINY + [f"output_dir={folder / 'out'}"])
    with open_experiment(cfg, log=lambda m: None) as experiment:
        experiment.build("curate")
        stages = experiment.root / "stages"
    return cfg, stages


def _curate_folder(stages, cfg, index):
    """The curate folder of arm `index` (arms of one recipe differ by their config)."""
    recipe = cfg.arm_recipe(index)
    return next(f for f in stages.glob(f"curate-{recipe.name}-doc-*")
                if json.loads((f / "manifest.json").read_text())["recipe"]["config"] == recipe.describe()["config"])


def test_arms_share_one_embed_and_one_cluster_stage(curated):
    _, stages = curated
    assert len(list(stages.glob("embed-hashed-*"))) == 1
    assert len([p for p in stages.glob("cluster-*") if not p.name.startswith(".")]) == 1
    emb = Embeddings(next(stages.glob("embed-hashed-*")))
    vectors = emb.rows(np.arange(len(emb)))
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)


def test_every_document_is_accounted_for_with_reason_and_cluster(curated):
    cfg, stages = curated
    uniform = _curate_folder(stages, cfg, 2)
    table = pq.read_table(uniform / "decisions.parquet").to_pylist()
    stats = json.loads((uniform / "stats.json").read_text())
    clusters = {c["cluster"]: c for c in stats["clusters"]}
    assignment = pq.read_table(next(stages.glob("cluster-*")) / "assignments.parquet").to_pylist()
    cluster_of = {row["id"]: row["cluster"] for row in assignment}
    assert len(table) == len(assignment) == stats["input"]
    assert clusters[1]["excluded"] == "listed"
    for row in table:
        if cluster_of[row["id"]] == 1:
            assert not row["kept"] and row["reason"] == "excluded_cluster" and row["cluster_id"] == "1"
        elif not row["kept"]:
            assert row["reason"] == "not_sampled" and row["cluster_id"] == str(cluster_of[row["id"]])
    assert stats["kept"] == stats["target"] == round(0.5 * stats["input"])
    counted = sum(c["counts"].get("kept", 0) for c in stats["clusters"])
    assert counted == stats["kept"] == sum(c.get("kept", 0) for c in stats["by_category"].values())
    assert stats["dropped_by_reason"]["excluded_cluster"] == clusters[1]["total_examples"]
    assert "junk_removal" in stats  # the synthetic corpus's boilerplate is the ground truth


def test_random_control_matches_the_density_arm_size(curated):
    cfg, stages = curated
    density = json.loads((_curate_folder(stages, cfg, 3) / "stats.json").read_text())
    random = json.loads((_curate_folder(stages, cfg, 1) / "stats.json").read_text())
    assert random["kept"] == density["kept"] < density["target"]
    assert set(random["dropped_by_reason"]) == {"not_sampled"}


def test_loss_sampler_quotas_follow_the_reference_models_cluster_losses(curated):
    cfg, stages = curated
    stats = json.loads((_curate_folder(stages, cfg, 5) / "stats.json").read_text())
    losses = {int(c): v for c, v in stats["reference_loss"].items()}
    assert len(losses) == 4 and all(v > 0 for v in losses.values())
    total = sum(losses.values())
    for card in stats["clusters"]:
        expected = min(card["total_examples"], round(losses[card["cluster"]] / total * stats["target"]))
        assert card["counts"].get("kept", 0) == expected


def test_loss_arm_with_its_own_reference_model(curated):
    """reference: self trains the reference inside the experiment, as a shared stage, and the arm records it."""
    cfg, stages = curated
    stats = json.loads((_curate_folder(stages, cfg, 6) / "stats.json").read_text())
    reference = stages / stats["reference_model"]["stage"]
    assert (reference / "model" / "config.json").exists() and stats["reference_model"]["steps"] == 3
    assert len(stats["reference_loss"]) == 4 and stats["kept"] > 0
    manifest = json.loads((_curate_folder(stages, cfg, 6) / "manifest.json").read_text())
    assert manifest["recipe"]["reference"]["trained_on_half"]["steps"] == 3


def test_loss_sample_is_proportional_to_loss():
    members = [np.arange(0, 100), np.arange(100, 200), np.arange(200, 210)]
    chosen = loss_sample(60, members, [0, 1, 2], {0: 1.0, 1: 3.0, 2: 2.0}, seed=0)
    assert [int(np.isin(chosen, m).sum()) for m in members] == [10, 30, 10]  # cluster 2 capped at its 10 documents


def test_semdedup_rows_name_the_duplicate_and_its_similarity(curated):
    cfg, stages = curated
    rows = pq.read_table(_curate_folder(stages, cfg, 4) / "decisions.parquet").to_pylist()
    dropped = [r for r in rows if not r["kept"]]
    assert dropped, "the synthetic corpus's boilerplate has near-identical documents"
    ids = {r["id"] for r in rows}
    for r in dropped:
        assert r["reason"] == "semantic_duplicate" and r["duplicate_of"] in ids and r["similarity"] > 0.8


def test_clusters_command_prints_the_inspection_cards(curated, capsys):
    cfg, _ = curated
    code = main(["clusters", "--config", str(curated[1].parent.parent.parent / "arms.yaml"), *TINY,
                 f"output_dir={cfg.output_dir}", "--arm", "uniform"])
    out = capsys.readouterr().out
    assert code == 0
    assert "cluster 1:" in out and "EXCLUDED (listed)" in out and "top terms:" in out and "clos " in out


def _docs(folder, n):
    with ShardWriter(folder) as writer:
        for i in range(n):
            writer.write(Document(f"d{i}", f"document {i} about topic {i % 3} " + "word " * (i % 7)))
    return sorted(folder.glob("*.parquet"))


class CountingHashed(HashedEmbedder):
    calls = 0

    def encode(self, texts):
        CountingHashed.calls += 1
        return super().encode(texts)


def test_a_killed_embedding_resumes_from_its_last_finished_shard(tmp_path):
    items = _docs(tmp_path / "docs", 50)
    cfg = EmbedConfig(shard_docs=10, encode_batch=10)
    first = tmp_path / "first"
    first.mkdir()
    build_embeddings(first, cfg, CountingHashed(HashedEmbedder.Config(dim=8)), items, lambda m: None)
    assert CountingHashed.calls == 5
    (first / "ids-00003.parquet").unlink()  # killed while writing shard 3: its ids never landed
    (first / "emb-00004.npy").unlink()
    (first / "ids-00004.parquet").unlink()
    before = np.load(first / "emb-00001.npy")
    CountingHashed.calls = 0
    manifest = build_embeddings(first, cfg, CountingHashed(HashedEmbedder.Config(dim=8)), items, lambda m: None)
    assert CountingHashed.calls == 2 and manifest["resumed_shards"] == 3
    emb = Embeddings(first)
    assert len(emb) == 50 and np.array_equal(np.load(first / "emb-00001.npy"), before)
    again = tmp_path / "again"
    again.mkdir()
    build_embeddings(again, cfg, CountingHashed(HashedEmbedder.Config(dim=8)), items, lambda m: None)
    assert np.allclose(Embeddings(again).rows(np.arange(50)), emb.rows(np.arange(50)), atol=1e-6)


@pytest.mark.parametrize("backend", ["sklearn", pytest.param("faiss", marks=pytest.mark.skipif(not faiss_available(),
                                                                                               reason="faiss-cpu not installed"))])
def test_spherical_kmeans_recovers_planted_directions(backend):
    rng = np.random.default_rng(0)
    centers = np.eye(8, dtype=np.float32)[:4]
    labels = rng.integers(0, 4, size=400)
    x = centers[labels] + 0.05 * rng.standard_normal((400, 8)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    cfg = ClusterConfig(k=4, batch_size=64, iterations=5, n_init=2, init_size=100)
    found = fit_spherical_kmeans(x, cfg, backend)
    assert np.allclose(np.linalg.norm(found, axis=1), 1.0, atol=1e-5)
    predicted = (x @ found.T).argmax(axis=1)
    from sklearn.metrics import adjusted_rand_score

    assert adjusted_rand_score(labels, predicted) > 0.99


def _arm(tmp_path, arm):
    path = tmp_path / "arm.yaml"
    path.write_text(f"runs:\n  - {arm}\n")
    return path


@pytest.mark.parametrize("arm, key", [
    ("{name: m, recipe: minipile, cluster: {k: 4}, exclude: [7]}", "runs[0].exclude[0]"),
    ("{name: m, recipe: minipile, target: 1.5}", "runs[0].target"),
    ("{name: m, recipe: minipile, sampler: uniform, match: density}", "runs[0].match"),
    ("{name: m, recipe: minipile, embed: {embedder: {name: sentence_transformer, model: /no/such/model}}}",
     "runs[0].embed.embedder.model"),
    ("{name: m, recipe: minipile, embed: {embedder: word2vec}}", "runs[0].embed.embedder"),
    ("{name: m, recipe: semdedup, eps: 0}", "runs[0].eps"),
    ("{name: m, recipe: minipile, sampler: loss}", "runs[0].reference"),
])
def test_bad_distillation_settings_stop_at_load_naming_the_key(tmp_path, arm, key):
    with pytest.raises(ConfigError) as err:
        load_config([str(_arm(tmp_path, arm))], TINY)
    assert err.value.key == key


def test_k_larger_than_the_corpus_and_too_large_a_target_name_the_key(tmp_path):
    path = _arm(tmp_path, "{name: m, recipe: minipile, cluster: {k: 100000}}")
    cfg = load_config([str(path)], TINY + [f"output_dir={tmp_path / 'out'}"])
    with open_experiment(cfg, log=lambda m: None) as experiment, pytest.raises(ConfigError) as err:
        experiment.build("curate")
    assert err.value.key == "cluster.k" and err.value.value == 100000
    path = _arm(tmp_path, "{name: m, recipe: minipile, cluster: {k: 4}, exclude: [0, 1, 2], target: 0.9}")
    cfg = load_config([str(path)], TINY + [f"output_dir={tmp_path / 'out'}"])
    with open_experiment(cfg, log=lambda m: None) as experiment, pytest.raises(ConfigError) as err:
        experiment.build("curate")
    assert err.value.key == "target" and "left after excluding clusters [0, 1, 2]" in str(err.value)


def test_export_writes_a_dataset_that_datasets_loads(curated, tmp_path):
    cfg, stages = curated
    out = tmp_path / "uniform_ds"
    code = main(["export", "--config", str(stages.parent.parent.parent / "arms.yaml"), *TINY, f"output_dir={cfg.output_dir}",
                 "--arm", "uniform", "--out", str(out)])
    assert code == 0
    from datasets import load_dataset

    # A cache of its own: `datasets` keys a local folder's cache by its name and file layout, so an earlier
    # export to a folder of the same name (another test run on this machine) would be read back instead.
    loaded = load_dataset(str(out), split="train", cache_dir=str(tmp_path / "hf-cache"))
    table = pq.read_table(_curate_folder(stages, cfg, 2) / "decisions.parquet").to_pylist()
    kept = [r["id"] for r in table if r["kept"] and not r["id"].startswith("canary")]
    assert loaded["id"] == kept and len(loaded) > 0  # the kept documents, in corpus order
    assert set(loaded.column_names) == {"id", "text", "category", "cluster", "repeat"}
    card = (out / "README.md").read_text()
    assert '"sampler": "uniform"' in card and "data/train-*.parquet" in card


def test_empty_clusters_stop_naming_k(tmp_path):
    from corpuslab.distill.cluster import build_clusters

    with ShardWriter(tmp_path / "docs") as writer:  # 12 documents, two distinct texts: k=4 leaves clusters empty
        for i in range(12):
            writer.write(Document(f"d{i}", "alpha beta gamma" if i % 2 else "delta epsilon zeta"))
    items = sorted((tmp_path / "docs").glob("*.parquet"))
    (tmp_path / "emb").mkdir()
    build_embeddings(tmp_path / "emb", EmbedConfig(), HashedEmbedder(HashedEmbedder.Config(dim=4)), items, lambda m: None)
    (tmp_path / "cl").mkdir()
    with pytest.raises(ConfigError) as err:
        build_clusters(tmp_path / "cl", ClusterConfig(k=4, n_init=1), "sklearn", Embeddings(tmp_path / "emb"), items, lambda m: None)
    assert err.value.key == "cluster.k" and "came out empty" in err.value.expected
