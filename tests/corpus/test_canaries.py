"""Canaries scaled to the corpus: a small training split gets fewer canaries, never a majority of canaries."""

import json

import pytest

from corpuslab.cli import main
from corpuslab.corpus.canaries import CanaryConfig, documents_for, scaled_count
from tests.conftest import TINY


def test_documents_for_follows_the_round_robin_copies():
    assert documents_for(4, [1, 30]) == 1 + 30 + 1 + 30
    assert documents_for(3, [2, 5, 7]) == 14
    assert documents_for(0, [1]) == 0


@pytest.mark.parametrize("train", [5, 50, 675, 5215, 10**6])
def test_scaled_count_is_the_largest_count_within_the_share(train):
    cfg = CanaryConfig(count=100, copies=[1, 30], max_share=0.25)
    count = scaled_count(cfg, train)
    share = lambda n: documents_for(n, cfg.copies) / (train + documents_for(n, cfg.copies))  # noqa: E731
    assert 1 <= count <= 100
    if count > 1:
        assert share(count) <= 0.25
    if count < 100:
        assert share(count + 1) > 0.25  # one more would pass the limit: the largest that fits


def test_scaled_count_keeps_the_count_on_a_large_split_or_with_share_one():
    assert scaled_count(CanaryConfig(count=100, copies=[1, 30]), 5215) == 100  # the default experiment: unchanged
    assert scaled_count(CanaryConfig(count=100, copies=[1, 30], max_share=1.0), 10) == 100


def test_a_small_corpus_gets_fewer_canaries_and_the_manifest_says_so(tmp_path, capsys):
    overrides = [*TINY, f"output_dir={tmp_path}", "canaries.count=20", "canaries.max_share=0.1"]
    assert main(["prepare", *overrides]) == 0
    log = capsys.readouterr().err
    manifest = json.loads(next((tmp_path / "tiny").rglob("canaries-*/manifest.json")).read_text())
    assert manifest["requested"] == 20 and manifest["canaries"] < 20
    assert manifest["share_of_train"] <= 0.1
    assert manifest["share_of_train"] == round(manifest["documents"] / (manifest["train_documents"] + manifest["documents"]), 4)
    assert f"canaries: {manifest['canaries']} instead of canaries.count=20" in log
