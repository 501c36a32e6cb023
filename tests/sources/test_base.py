"""corpuslab.sources.base: sources are plug-ins looked up by name, and the ingest stage is keyed by
what they read (an edited, added or deleted file reaches the next ingest's documents)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from corpuslab.config import DatasetConfig, load_config
from corpuslab.documents import Document
from corpuslab.errors import ConfigError
from corpuslab.experiment import Experiment
from corpuslab.shards import read_documents, shard_paths
from corpuslab.sources import HFSource, LocalSource, Source, SyntheticSource, open_source, sources
from corpuslab.sources.local import LocalConfig
from tests.conftest import TINY


@dataclasses.dataclass(frozen=True)
class NumbersConfig:
    count: int = 3


@sources.register
class Numbers(Source):
    """A user's source: registered by name, configured by the parameters next to its name."""

    name = "test_numbers"
    Config = NumbersConfig

    def documents(self) -> Iterator[Document]:
        return (Document(f"n{i}", f"number {i}") for i in range(self.config.count))


def test_built_ins_are_registered_and_opened_by_name(tmp_path: Path) -> None:
    assert {"synthetic", "local", "hf"} <= set(sources.names())
    assert isinstance(open_source(DatasetConfig(), 0), SyntheticSource)
    local = DatasetConfig(source="local", local=LocalConfig(paths=[str(tmp_path)]))
    assert isinstance(open_source(local, 0), LocalSource)
    assert open_source(local, 0).description() == f"local files {[str(tmp_path)]}"
    assert sources.get("hf", "dataset.source") is HFSource


def test_a_plugin_source_is_opened_with_its_parameters() -> None:
    source = open_source(DatasetConfig(source={"name": "test_numbers", "count": 2}), 0)
    assert [doc.text for doc in source.documents()] == ["number 0", "number 1"]
    assert source.identity() == {"source": "test_numbers", "version": 1, "config": {"count": 2}}
    assert [doc.id for doc in open_source(DatasetConfig(source="test_numbers"), 0).documents()] == ["n0", "n1", "n2"]
    with pytest.raises(ConfigError, match="dataset.source.count"):
        open_source(DatasetConfig(source={"name": "test_numbers", "count": "many"}), 0)


def test_unknown_source_lists_the_known_ones_and_a_missing_section_is_named() -> None:
    with pytest.raises(ConfigError, match=r"dataset.source") as unknown:
        open_source(DatasetConfig(source="nope"), 0)
    # Plug-ins imported by other tests may add their own: the built-in ones must all be listed.
    assert all(f"'{name}'" in str(unknown.value) for name in ("hf", "local", "synthetic"))
    with pytest.raises(ConfigError, match="dataset.local.*paths"):
        open_source(DatasetConfig(source="local"), 0)
    with pytest.raises(TypeError, match="already registered"):
        sources.register(type("Other", (Source,), {"name": "local", "Config": NumbersConfig}))


def prepare(out: Path, corpus: Path) -> Path:
    cfg = load_config(None, [f"output_dir={out}", *TINY, "dataset.source=local",
                             f"dataset.local={{paths: [{corpus}], txt_mode: line}}"])
    messages: list[str] = []
    experiment = Experiment(cfg, messages.append)
    try:
        ingest = experiment.prepare().ingest
    finally:
        experiment.close()
    print("\n".join(messages))
    return ingest.path


def ingested_texts(folder: Path) -> set[str]:
    return {doc.text for doc in read_documents(shard_paths(folder / "docs"))}


def test_each_file_change_reaches_the_next_ingest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    words = "the quick brown fox jumps over the lazy dog while a cat sleeps".split()
    for name in ("a", "b"):
        lines = [f"{name} line {i}: " + " ".join(words[(i + j) % len(words)] for j in range(9)) for i in range(40)]
        (corpus / f"{name}.txt").write_text("\n".join(lines) + "\n")
    first = prepare(tmp_path / "out", corpus)
    assert json.loads((first / "inputs.json").read_text())["files"][0]["path"] == str(corpus / "a.txt")
    assert prepare(tmp_path / "out", corpus) == first  # nothing changed: reused
    capsys.readouterr()

    (corpus / "a.txt").write_text((corpus / "a.txt").read_text() + "an edited line about a red kite\n")
    edited = prepare(tmp_path / "out", corpus)
    assert edited != first and "an edited line about a red kite" in ingested_texts(edited)
    assert f"changed: {corpus / 'a.txt'}" in capsys.readouterr().out

    (corpus / "c.txt").write_text("an added file about a green heron\n")
    added = prepare(tmp_path / "out", corpus)
    assert added not in (first, edited) and "an added file about a green heron" in ingested_texts(added)
    assert f"added: {corpus / 'c.txt'}" in capsys.readouterr().out

    (corpus / "b.txt").unlink()
    deleted = prepare(tmp_path / "out", corpus)
    assert deleted not in (first, edited, added) and not any(text.startswith("b line") for text in ingested_texts(deleted))
    assert f"deleted: {corpus / 'b.txt'}" in capsys.readouterr().out
    manifest = json.loads((deleted / "manifest.json").read_text())
    assert manifest["inputs_changed"] == {"since": added.name, "count": 1, "first": [f"deleted: {corpus / 'b.txt'}"]}
