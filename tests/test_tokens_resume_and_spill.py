"""Issue 12 leftovers: `curation.spill_dir` reaches the near-dedup engine, and the tokens stage resumes per shard."""

from __future__ import annotations

from pathlib import Path

import pytest

import corpuslab.curation.dedup.scan as scan_module
import corpuslab.tokens.encode as encode_module
from corpuslab.api import load_config, run
from corpuslab.curation.dedup.near import find_exact_and_near_duplicates
from corpuslab.errors import ConfigError
from corpuslab.executor import SerialExecutor
from corpuslab.shards import ShardWriter
from tests.conftest import TINY

SPILLS: list[tuple[Path, list[str]]] = []
REAL_SPILL = scan_module.spill_band_keys


def watched_spill(folder, shard, keys, partitions):
    """spill_band_keys that notes where it wrote and what (the tests run it in this process)."""
    REAL_SPILL(folder, shard, keys, partitions)
    SPILLS.append((Path(folder), sorted(p.name for p in Path(folder).iterdir())))


def tiny_config(tmp_path: Path, *extra: str):
    return load_config(overrides=[*TINY, f"output_dir={tmp_path}", "dataset.synthetic.num_docs=300", "curation.workers=1", *extra])


def test_curation_spill_dir_is_validated():
    with pytest.raises(ConfigError, match="curation.spill_dir"):
        load_config(overrides=[*TINY, "curation.spill_dir=s3://bucket/spill"])
    with pytest.raises(ConfigError, match="curation.spill_dir"):
        load_config(overrides=[*TINY, "curation.spill_dir=' '"])


def test_a_spill_dir_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="existing file"):
        load_config(overrides=[*TINY, f"curation.spill_dir={tmp_path / 'file'}"])


def test_near_recipe_spills_band_keys_under_curation_spill_dir_and_removes_them(tmp_path, monkeypatch):
    """The near arm's LSH band keys go under `curation.spill_dir` (made if missing), are gone after, and the
    decisions match the engine's with the system's temporary folder."""
    spill_dir = tmp_path / "shared-mount" / "spill"
    cfg = tiny_config(tmp_path, "curation.decontaminate=none", f"curation.spill_dir={spill_dir}",
                      "runs=[{name: near, recipe: near}]")
    monkeypatch.setattr(ShardWriter.__init__, "__defaults__", ("part", 50))  # several shards per split
    monkeypatch.setattr("corpuslab.experiment.build_executor", lambda *a, **k: SerialExecutor())
    monkeypatch.setattr(scan_module, "spill_band_keys", watched_spill)
    SPILLS.clear()
    run(cfg, until="curate", log=lambda _: None)
    assert len(SPILLS) >= 4  # one per train and canary shard
    assert {folder.parent for folder, _ in SPILLS} == {spill_dir}  # a temporary folder under it, one per run
    # Band keys, and beside them the text digests of the partitioned exact join, the id hashes of the partitioned
    # uniqueness check and the active flags of the LSH join, which the scan tasks (and the join) spill.
    assert all(any(n.startswith("keys-") for n in names) for _, names in SPILLS)
    assert all(n.startswith(("keys-", "digests-", "ids-", "active.npy")) for _, names in SPILLS for n in names)
    assert spill_dir.is_dir() and list(spill_dir.iterdir()) == []  # removed after the join

    stages = tmp_path / "tiny" / "stages"
    shards = sorted(stages.glob("split-*/train/*.parquet")) + sorted(stages.glob("canaries-*/*.parquet"))
    (curate,) = stages.glob("curate-near-*")
    assert not list(curate.rglob("keys-*.npy"))
    from corpuslab.curation.decisions import read_decisions  # noqa: PLC0415 (only for this check)

    SPILLS.clear()
    default = find_exact_and_near_duplicates(shards, cfg.arm_recipe(0).config.minhash, cfg.arm_recipe(0).config.normalize)
    assert SPILLS and all(folder.parent != spill_dir for folder, _ in SPILLS)  # the system's temporary folder
    dropped = {(d.id, d.reason) for d in default.decisions if not d.kept}
    assert dropped  # the synthetic corpus plants near duplicates
    written = read_decisions(curate, ["id", "kept", "reason"]).to_pylist()
    assert {(row["id"], row["reason"]) for row in written if not row["kept"]} == dropped


FAIL_AFTER = {"left": 10**9}
REAL_ENCODE = encode_module.encode_shard


def flaky_encode_shard(task):
    """encode_shard that fails once its budget of shards is spent (SerialExecutor: this process)."""
    if FAIL_AFTER["left"] <= 0:
        raise RuntimeError("killed mid-tokenization")
    FAIL_AFTER["left"] -= 1
    return REAL_ENCODE(task)


def token_files(stages: Path) -> dict[str, bytes]:
    (tokens,) = stages.glob("tokens-*")
    return {p.name: p.read_bytes() for p in sorted(tokens.iterdir()) if p.is_file() and p.name != "manifest.json"}


def test_a_tokens_stage_killed_mid_way_redoes_only_unfinished_shards(tmp_path, monkeypatch):
    """Tokenization on the executor fails after 2 shards; the rerun encodes only the rest, and the token
    stream and document table are byte for byte those of an uninterrupted run."""
    monkeypatch.setattr(ShardWriter.__init__, "__defaults__", ("part", 50))
    monkeypatch.setattr("corpuslab.experiment.build_executor", lambda *a, **k: SerialExecutor())
    monkeypatch.setattr(encode_module, "PARALLEL_MIN_DOCS", 1)  # tiny splits still go through the executor
    monkeypatch.setattr(encode_module, "encode_shard", flaky_encode_shard)
    extra = ("curation.decontaminate=none", "runs=[{name: none, recipe: none}]")

    run(tiny_config(tmp_path / "whole", *extra), until="tokens", log=lambda _: None)
    whole = token_files(tmp_path / "whole" / "tiny" / "stages")
    total = 10**9 - FAIL_AFTER["left"]
    assert total >= 4 and any(name.endswith(".docs.parquet") for name in whole)

    cfg = tiny_config(tmp_path / "killed", *extra)
    stages = tmp_path / "killed" / "tiny" / "stages"
    FAIL_AFTER["left"] = 2
    with pytest.raises(RuntimeError, match="killed mid-tokenization"):
        run(cfg, until="tokens", log=lambda _: None)
    assert not list(stages.glob("tokens-*"))
    (records,) = stages.glob(".tokens-*.shards")
    assert len(list(records.glob("*.done"))) == 2
    FAIL_AFTER["left"] = 10**9
    messages: list[str] = []
    run(cfg, until="tokens", log=messages.append)
    assert any("resumed: 2 of" in m for m in messages)
    assert 10**9 - FAIL_AFTER["left"] == total - 2  # only the unfinished shards were encoded again
    assert not records.exists()
    resumed = token_files(stages)
    assert "train.bin" in whole and resumed.keys() == whole.keys()
    assert resumed == whole  # token streams, offsets and document tables, byte for byte


def test_a_spill_dir_that_cannot_be_made_names_the_setting(tmp_path):
    from corpuslab.curation.recipes.dedup import _spill_folder

    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="curation.spill_dir.*can create and write"):
        _spill_folder(tmp_path / "file" / "spill")
    assert _spill_folder(tmp_path / "new" / "spill") == tmp_path / "new" / "spill" and (tmp_path / "new" / "spill").is_dir()
    assert _spill_folder(None) is None
