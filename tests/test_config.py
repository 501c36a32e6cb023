from pathlib import Path

import pytest
import yaml

from corpuslab.config import ExperimentConfig, apply_override, default_config_path, load_config
from corpuslab.errors import ConfigError, InputError

REPO = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, name: str, data) -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_default_loads_and_is_the_shipped_file():
    cfg = load_config()
    assert isinstance(cfg, ExperimentConfig)
    assert [r.name for r in cfg.runs] == ["no_dedup", "exact", "near"]
    assert (REPO / "configs" / "default.yaml").read_text() == default_config_path().read_text()


# configs/compression.yaml is a compression experiment (python -m corpuslab.compression): tests/compression loads it.
@pytest.mark.parametrize("path", [p for p in sorted((REPO / "configs").rglob("*.yaml")) if p.name != "compression.yaml"],
                         ids=lambda p: p.name)
def test_every_shipped_config_loads(path):
    files = [str(default_config_path()), str(path)]
    load_config(files)


def test_layered_files_merge_in_order_and_overrides_come_last(tmp_path):
    base = write(tmp_path, "base.yaml", {"training": {"batch_size": 8, "lr": 0.01}})
    over = write(tmp_path, "over.yaml", {"training": {"batch_size": 4}})
    cfg = load_config([str(default_config_path()), base, over], ["training.lr=0.5", "runs.2.minhash.threshold=0.9"])
    assert cfg.training.batch_size == 4
    assert cfg.training.lr == 0.5
    assert cfg.arm_recipe(2).config.minhash.threshold == 0.9
    assert cfg.arm_recipe(1).config.truth_threshold == cfg.curation.minhash.threshold


@pytest.mark.parametrize(
    "override, key",
    [
        ("training.batchsize=3", "training.batchsize"),
        ("training.batch_size=abc", "training.batch_size"),
        ("training.batch_size=true", "training.batch_size"),
        ("curation.minhash.threshold=1.5", "curation.minhash.threshold"),
        ("curation.minhash.threshold=0", "curation.minhash.threshold"),
        ("split.val=0.5", "split.train+val+test"),
        ("tokenizer.kind=wordpiece", "tokenizer.kind"),
        ("training.chunk_len=4096", "training.chunk_len"),
        ("runs.1.recipe=fuzzy", "runs[1].recipe"),
        ("runs.2.minhash.bogus=1", "runs[2].minhash.bogus"),
        ("runs.0.minhash.threshold=0.9", "runs[0].minhash"),  # the `none` recipe has no minhash parameters
        ("runs.2.recipe={name: near, minhash: {ngram: 0}}", "runs[2].recipe.minhash.ngram"),
        ("runs.2.recipe={name: fuzzy}", "runs[2].recipe.name"),
        ("canaries.count=-1", "canaries.count"),
    ],
)
def test_bad_values_name_the_key(override, key):
    with pytest.raises(ConfigError) as err:
        load_config(None, [override])
    assert err.value.key == key, str(err.value)
    assert key in str(err.value)


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_config([str(tmp_path / "nope.yaml")])
    bad = tmp_path / "bad.yaml"
    bad.write_text("training: {batch_size: [1,\n")
    with pytest.raises(InputError, match="bad.yaml"):
        load_config([str(bad)])


def test_yaml_loader_is_safe(tmp_path):
    evil = tmp_path / "evil.yaml"
    evil.write_text("experiment: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(InputError):
        load_config([str(evil)])


def test_override_syntax():
    data = {"runs": [{"name": "a"}]}
    apply_override(data, "runs.0.name=b")
    assert data["runs"][0]["name"] == "b"
    with pytest.raises(ConfigError):
        apply_override(data, "runs.5.name=b")
    with pytest.raises(ConfigError):
        apply_override(data, "no_equals_sign")


def test_wandb_logging_fails_before_work_when_wandb_is_missing():
    import importlib.util

    from corpuslab.errors import CorpuslabError

    if importlib.util.find_spec("wandb") is not None:
        pytest.skip("wandb is installed here")
    with pytest.raises(CorpuslabError, match="pip install wandb"):
        load_config(None, ["logging.wandb=true"])
    assert load_config(None, ["logging.wandb=false"]).logging.wandb is False


def test_unknown_recipe_lists_the_known_ones():
    with pytest.raises(ConfigError) as err:
        load_config(None, ["runs.1.recipe=fuzzy"])
    assert "exact" in err.value.expected and "near" in err.value.expected


def test_recipe_parameters_inline_or_as_a_mapping_are_the_same_recipe():
    inline = load_config(None, ["runs.2.minhash.threshold=0.9"]).arm_recipe(2)
    mapping = load_config(None, ["runs.2.recipe={name: near, minhash: {threshold: 0.9}}"]).arm_recipe(2)
    assert inline.config == mapping.config and inline.fingerprint() == mapping.fingerprint()


def test_duplicate_yaml_keys_stop_the_load_naming_key_file_and_lines(tmp_path):
    path = tmp_path / "dup.yaml"
    path.write_text("training:\n  lr: 0.1\nseed: 3\ntraining:\n  batch_size: 4\n")
    with pytest.raises(InputError) as err:
        load_config([str(path)])
    message = str(err.value)
    assert "'training'" in message and "lines 1 and 4" in message and str(path) in message


def test_integral_numbers_in_e_notation_are_integers():
    cfg = load_config(None, ["training.max_train_tokens=1e5", "training.lr=2e-3"])
    assert cfg.training.max_train_tokens == 100_000 and isinstance(cfg.training.max_train_tokens, int)
    assert cfg.training.lr == 0.002
    with pytest.raises(ConfigError):
        load_config(None, ["training.max_train_tokens=1.5e2"])


def test_a_sweep_expands_into_grouped_arms():
    sweep = ("sweeps=[{name: near, arm: {recipe: near}, grid: {minhash.threshold: [0.8, 0.9]}, "
             "replicates: {minhash.seed: [1, 2]}}]")
    cfg = load_config(None, [sweep, "runs=[{name: none, recipe: none}]"])
    names = [run.name for run in cfg.runs]
    assert names == ["none", "near-threshold0.8-seed1", "near-threshold0.8-seed2", "near-threshold0.9-seed1",
                     "near-threshold0.9-seed2"]
    assert [run.group_name for run in cfg.runs] == ["none"] + ["near-threshold0.8"] * 2 + ["near-threshold0.9"] * 2
    recipes = [cfg.arm_recipe(i).config.minhash for i in range(1, 5)]
    assert [(m.threshold, m.seed) for m in recipes] == [(0.8, 1), (0.8, 2), (0.9, 1), (0.9, 2)]
    assert len({cfg.arm_recipe(i).fingerprint() for i in range(1, 5)}) == 4


def test_a_sweep_with_a_bad_parameter_names_the_expanded_arm():
    with pytest.raises(ConfigError) as err:
        load_config(None, ["sweeps=[{name: s, arm: {recipe: near}, grid: {minhash.ngram: [0]}}]"])
    assert err.value.key.endswith("minhash.ngram")


def test_a_config_file_layers_on_the_defaults_and_its_paths_resolve_against_its_folder(tmp_path, monkeypatch):
    folder = tmp_path / "project"
    (folder / "data").mkdir(parents=True)
    (folder / "tasks.jsonl").write_text('{"goal": "g", "sol1": "a", "sol2": "b", "label": 0}\n')
    config = write(folder, "mine.yaml", {"experiment": "mine", "dataset": {"source": "local", "local": {"paths": ["data/*.txt"]}},
                                         "evaluation": {"tasks": {"piqa": 1}, "task_files": {"piqa": "tasks.jsonl"}}})
    monkeypatch.chdir(tmp_path)  # anywhere but the config's folder
    cfg = load_config([config])
    assert [run.name for run in cfg.runs] == ["no_dedup", "exact", "near"]  # the built-in default's arms
    assert cfg.training.max_train_tokens == 1_000_000
    assert cfg.dataset.local.paths == [str(folder.resolve() / "data/*.txt")]
    assert cfg.evaluation.task_files == {"piqa": str(folder.resolve() / "tasks.jsonl")}
    with pytest.raises(ConfigError) as err:  # from nothing, the file must give the arms itself
        load_config([config], defaults=False)
    assert err.value.key == "runs"
