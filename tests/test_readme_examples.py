"""Every example config the README shows runs through the CLI as written, from a folder of the user's
choosing, on tiny data generated here (a user's clone has no ../shared, and this machine no hub access).

The README's commands are read from the README itself: a new example config without a case here fails
`test_every_readme_config_is_exercised`.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from corpuslab.cli import main
from tests.compression import test_runner as compression_tests
from tests.conftest import TINY

REPO = Path(__file__).resolve().parents[1]

# A tiny model and budget (conftest's TINY, shorter); nothing about the data, so each config's own dataset
# settings are what run.
_FASTER = {"training.max_steps": "4", "training.warmup_steps": "1", "training.eval_interval": "4",
           "training.log_interval": "4", "evaluation.max_tokens": "2000", "curation.workers": "1"}
SMALL = [o for o in TINY if not o.startswith(("experiment=", "dataset.", "canaries.count", "evaluation.tasks"))
         and o.split("=")[0] not in _FASTER] + [f"{k}={v}" for k, v in _FASTER.items()]
SYNTHETIC = ["dataset.synthetic.num_docs=120", "dataset.synthetic.words_per_doc=30", "canaries.count=4",
             "evaluation.tasks={synthetic_cloze: 4, synthetic_choice: 4}"]

WORDS = ("market shares rose after the bank said profits would grow team coach match season goal players "
         "weather rain storm cloud forecast science cell energy study results data model").split()


def readme_config_commands() -> list[str]:
    """The `corpuslab run|prefetch --config ...` lines of the README."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    return [line.split("#")[0].strip() for line in text.splitlines()
            if re.match(r"^\s*corpuslab (run|prefetch) .*--config", line)] + \
        re.findall(r"`(corpuslab run --config [^`]+)`", text)


def _workspace(tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the repository's configs in <tmp>/repo, and an unrelated working directory."""
    repo = tmp_path / "repo"
    shutil.copytree(REPO / "configs", repo / "configs", symlinks=False)
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    return repo, cwd


def _text(rng_seed: int, words: int) -> str:
    import random

    rng = random.Random(rng_seed)
    return " ".join(rng.choice(WORDS) for _ in range(words)) + "."


def _report(out: Path, experiment: str) -> dict:
    return json.loads((out / experiment / "report.json").read_text())


def test_every_readme_config_is_exercised():
    assert any("configs/local_bbc.yaml" in c for c in readme_config_commands())
    named = set(re.findall(r"configs/[\w/]+\.yaml", (REPO / "README.md").read_text(encoding="utf-8")))
    on_disk = {str(p.relative_to(REPO)) for p in (REPO / "configs").rglob("*.yaml")}
    assert named == on_disk, f"README examples {sorted(named)} vs configs {sorted(on_disk)}: add a case here"
    assert named <= set(CASES), f"no test case for {sorted(named - set(CASES))}"


def test_local_bbc_example_runs_as_written(tmp_path, monkeypatch):
    """`corpuslab run --config configs/local_bbc.yaml`: the data path in it resolves against the config's
    folder (<workspace>/shared/data), not the working directory."""
    repo, cwd = _workspace(tmp_path)
    data = tmp_path / "shared" / "data" / "bbc_news"
    for c, category in enumerate(("business", "sport", "tech")):
        (data / category).mkdir(parents=True)
        for i in range(25):
            (data / category / f"{i:03d}.txt").write_text(_text(100 * c + i, 60), encoding="utf-8")
    monkeypatch.chdir(cwd)
    assert main(["run", "--config", str(repo / "configs/local_bbc.yaml"), *SMALL, f"output_dir={cwd / 'out'}"]) == 0
    report = _report(cwd / "out", "bbc_news")
    assert report["corpus"]["ingest"]["documents"] == 75
    assert set(report["corpus"]["split"]["categories"]["train"]) == {"business", "sport", "tech"}
    assert report["config"]["evaluation"]["tasks"] == {}  # synthetic tasks are not scored on real text
    assert list(report["arms"]) == ["no_dedup", "exact", "near"]
    canaries = report["corpus"]["canaries"]
    assert canaries["share_of_train"] <= 0.25 and canaries["canaries"] < canaries["requested"]  # scaled to 75 docs


def test_local_jsonl_zst_example_runs(tmp_path, monkeypatch):
    """`corpuslab run dataset.source=local 'dataset.local.paths=[data/*.jsonl.zst]' dataset.local.text_field=content`"""
    import zstandard

    _, cwd = _workspace(tmp_path)
    (cwd / "data").mkdir()
    for part in range(2):
        lines = "".join(json.dumps({"content": _text(1000 * part + i, 50)}) + "\n" for i in range(30))
        (cwd / "data" / f"part-{part}.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(lines.encode()))
    monkeypatch.chdir(cwd)
    assert main(["run", "dataset.source=local", "dataset.local.paths=[data/*.jsonl.zst]", "dataset.local.text_field=content",
                 *SMALL, "runs=[{name: no_dedup, recipe: none}]", f"output_dir={cwd / 'out'}"]) == 0
    assert _report(cwd / "out", "default")["corpus"]["ingest"]["documents"] == 60


def _local_tokenizer(folder: Path) -> Path:
    """A small byte-level BPE saved as a Hugging Face tokenizer folder: what `tokenizer.name: gpt2` loads
    from the hub, loaded through the same AutoTokenizer call from disk."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator([_text(i, 40) for i in range(50)], vocab_size=300, special_tokens=["<|endoftext|>"])
    PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|endoftext|>").save_pretrained(folder)
    return folder


def test_hf_example_runs_on_local_files_through_the_same_calls(tmp_path, monkeypatch):
    """`corpuslab run --config configs/hf_example.yaml`, with the hub dataset and tokenizer replaced by local
    files that `datasets.load_dataset` and `AutoTokenizer.from_pretrained` read the same way."""
    repo, cwd = _workspace(tmp_path)
    shard = cwd / "c4" / "validation.jsonl"
    shard.parent.mkdir()
    shard.write_text("".join(json.dumps({"text": _text(i, 50), "timestamp": "x"}) + "\n" for i in range(80)))
    tokenizer = _local_tokenizer(cwd / "tok")
    monkeypatch.chdir(cwd)
    local = ["dataset.hf.name=json", "dataset.hf.subset=null", f"dataset.hf.data_files={{validation: {shard}}}", f"tokenizer.name={tokenizer}"]
    assert main(["prefetch", "--config", str(repo / "configs/hf_example.yaml"), *local]) == 0
    assert main(["run", "--config", str(repo / "configs/hf_example.yaml"), *local, *SMALL,
                 "runs=[{name: no_dedup, recipe: none}, {name: near, recipe: near}]", f"output_dir={cwd / 'out'}"]) == 0
    report = _report(cwd / "out", "c4_en_20k")
    assert report["corpus"]["ingest"]["documents"] == 80
    assert report["config"]["tokenizer"]["kind"] == "pretrained"


@pytest.mark.parametrize("override, experiment, arms", [
    ("configs/overrides/thresholds.yaml", "dedup_thresholds", ["no_dedup", "near_0.80", "near_0.85", "near_0.90"]),
    ("configs/overrides/chunk_level.yaml", "dedup_chunk_level", ["no_dedup", "exact_chunk", "near_chunk"]),
])
def test_override_examples_layer_on_the_default(tmp_path, monkeypatch, override, experiment, arms):
    """`corpuslab run --config configs/default.yaml --config configs/overrides/<x>.yaml`, trained up to curation
    and one arm's model: the arms are the override's, everything else the default's."""
    repo, cwd = _workspace(tmp_path)
    monkeypatch.chdir(cwd)
    args = ["--config", str(repo / "configs/default.yaml"), "--config", str(repo / override), *SMALL, *SYNTHETIC,
            f"output_dir={cwd / 'out'}"]
    assert main(["curate", *args]) == 0
    root = cwd / "out" / experiment
    stats = [json.loads(p.read_text()) for p in sorted(root.rglob("curate-*/manifest.json"))]
    assert len(stats) == len(arms)
    assert main(["train", *args, "--arm", arms[-1]]) == 0
    assert list(root.rglob("train-*/final/model.safetensors"))


def test_minipile_example_clusters_curates_and_trains(tmp_path, monkeypatch, capsys):
    """`corpuslab clusters --config configs/minipile.yaml`, then its arms curated (embed, cluster, exclude,
    sample, SemDeDup) and the distilled arm trained, on a small synthetic corpus."""
    pytest.importorskip("sklearn")
    repo, cwd = _workspace(tmp_path)
    monkeypatch.chdir(cwd)
    args = ["--config", str(repo / "configs/minipile.yaml"), *SMALL, "dataset.synthetic.num_docs=400",
            "dataset.synthetic.words_per_doc=30", "canaries.count=4", "evaluation.tasks={}", "seeds=[0]",
            f"output_dir={cwd / 'out'}"]
    assert main(["clusters", *args, "--arm", "uniform_25"]) == 0
    assert "cluster" in capsys.readouterr().out.lower()
    assert main(["curate", *args]) == 0
    root = cwd / "out" / "minipile"
    stats = [json.loads(p.read_text())["stats"] for p in root.rglob("curate-*/manifest.json")]
    assert len(stats) == 5 and len({s["input"] for s in stats}) == 1  # every arm curates the same training split
    assert all(s["kept"] + s["dropped"] == s["input"] for s in stats)
    assert main(["train", *args, "--arm", "uniform_25"]) == 0
    assert list(root.rglob("train-*/final/model.safetensors"))


def _bbc_like(root: Path, categories=("business", "sport", "tech", "politics", "entertainment"), per=20) -> None:
    data = root / "shared" / "data" / "bbc_news"
    for c, category in enumerate(categories):
        (data / category).mkdir(parents=True)
        for i in range(per):
            (data / category / f"{i:03d}.txt").write_text(_text(100 * c + i, 60), encoding="utf-8")


@pytest.mark.parametrize("name, extra", [
    ("diversity", ["dataset.synthetic.num_docs=240", "dataset.synthetic.words_per_doc=40"]),
    ("diversity_bbc", []),
])
def test_diversity_examples_expand_the_grid_curate_and_train(tmp_path, monkeypatch, name, extra):
    """`corpuslab run --config configs/diversity.yaml` (and `diversity_bbc.yaml`): the K x seeds grid expands
    into arms, each curates its categories, and an arm trains."""
    import corpuslab

    repo, cwd = _workspace(tmp_path)
    _bbc_like(tmp_path)
    monkeypatch.chdir(cwd)
    config = str(repo / f"configs/{name}.yaml")
    small = [o for o in SMALL if not o.startswith("evaluation.max_tokens")]  # the config scores every test document
    args = ["--config", config, *small, *extra, f"output_dir={cwd / 'out'}"]
    arms = [run.name for run in corpuslab.load_config(config, overrides=args[2:]).runs]
    assert len(arms) >= 6  # several K, several seeds
    assert main(["curate", *args]) == 0
    stats = [json.loads(p.read_text())["stats"] for p in (cwd / "out").rglob("curate-*/manifest.json")]
    assert stats and all(s["kept"] + s["dropped"] == s["input"] for s in stats)
    assert len({s["kept"] for s in stats}) > 1  # different K keep different amounts
    assert main(["train", *args, "--arm", arms[0]]) == 0


CASES = {
    "configs/diversity.yaml": test_diversity_examples_expand_the_grid_curate_and_train,
    "configs/diversity_bbc.yaml": test_diversity_examples_expand_the_grid_curate_and_train,
    "configs/minipile.yaml": test_minipile_example_clusters_curates_and_trains,
    "configs/default.yaml": test_override_examples_layer_on_the_default,
    "configs/local_bbc.yaml": test_local_bbc_example_runs_as_written,
    "configs/hf_example.yaml": test_hf_example_runs_on_local_files_through_the_same_calls,
    "configs/overrides/thresholds.yaml": test_override_examples_layer_on_the_default,
    "configs/overrides/chunk_level.yaml": test_override_examples_layer_on_the_default,
    "configs/compression.yaml": compression_tests.test_compression_example_runs_as_written,  # python -m corpuslab.compression
}
