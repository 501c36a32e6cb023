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


@pytest.mark.parametrize("path", sorted((REPO / "configs").rglob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_loads(path):
    files = [str(default_config_path()), str(path)]
    load_config(files)


def test_layered_files_merge_in_order_and_overrides_come_last(tmp_path):
    base = write(tmp_path, "base.yaml", {"training": {"batch_size": 8, "lr": 0.01}})
    over = write(tmp_path, "over.yaml", {"training": {"batch_size": 4}})
    cfg = load_config([str(default_config_path()), base, over], ["training.lr=0.5", "runs.2.minhash.threshold=0.9"])
    assert cfg.training.batch_size == 4
    assert cfg.training.lr == 0.5
    assert cfg.arm_minhash(2).threshold == 0.9
    assert cfg.arm_minhash(1).threshold == cfg.curation.minhash.threshold


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
        ("runs.0.minhash.bogus=1", "runs[0].minhash.bogus"),
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
