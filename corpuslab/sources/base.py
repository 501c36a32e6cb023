"""The source extension point: a `Source` plug-in turns its typed config into a stream of `Document`s,
counts what it skipped and why (`bad_input`), and describes what it read (`identity`).

Built-ins are `synthetic`, `local` and `hf`. A source is chosen by `dataset.source`; its config is the
`dataset` section of the same name (`dataset.local: {...}`) or, for a plug-in source, the parameters
next to its name (`dataset.source: {name: my_source, ...}`):

    from corpuslab.sources import Source, sources

    @sources.register
    class MyCorpus(Source):
        name = "my_corpus"
        Config = MyCorpusConfig

        def documents(self): ...
        def identity(self): ...        # what the documents depend on besides the config (files, a revision)
"""

from __future__ import annotations

import dataclasses
from abc import abstractmethod
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from corpuslab.documents import Document
from corpuslab.errors import ConfigError
from corpuslab.registry import Plugin, Registry, split_spec
from corpuslab.schema import from_dict, to_dict
from corpuslab.sources.badinput import BadInputLog
from corpuslab.sources.identity import identity_fingerprint

if TYPE_CHECKING:
    from corpuslab.config import DatasetConfig


class Source(Plugin):
    """A stream of documents plus the log of the records it skipped.

    `identity()` must cover everything the documents depend on besides the config: the ingest stage is
    keyed by it, so a change it misses is a stale cache. Bump `version` when a code change changes the
    documents a source produces.
    """

    def __init__(self, config: Any = None, seed: int = 0):
        super().__init__(config)
        self.seed = seed
        self.bad_input = BadInputLog()

    @abstractmethod
    def documents(self) -> Iterator[Document]:
        """The documents, in a deterministic order, skipping (and logging in `bad_input`) what cannot be read."""

    def identity(self) -> dict[str, Any]:
        """JSON describing the inputs; by default the config alone (a source that reads nothing else)."""
        return {"source": self.name, "version": self.version, "config": to_dict(self.config)}

    def inputs_fingerprint(self, identity: dict[str, Any] | None = None) -> str:
        """The fingerprint of `identity` (computed if not given), for the ingest stage key."""
        return identity_fingerprint(identity if identity is not None else self.identity())

    def changed_during_read(self, identity: dict[str, Any]) -> list[str]:
        """Inputs that changed since `identity` was taken (cheap checks only); [] when nothing can change."""
        return []

    def description(self) -> str:
        """One line for logs, manifests and reports."""
        return f"{self.name} source"

    def bad_input_summary(self) -> dict[str, Any]:
        return self.bad_input.summary()


sources: Registry[Source] = Registry("source", Source)


def open_source(dataset: DatasetConfig, seed: int) -> Source:
    """The source `dataset.source` names, with its config: the parameters given next to the name, else the
    `dataset.<name>` section."""
    name, params = split_spec(dataset.source, "dataset.source")
    cls = sources.get(name, "dataset.source")
    if params:
        return cls(from_dict(cls.Config, params, "dataset.source"), seed)
    section = getattr(dataset, name, None)
    return cls(section if section is not None else _default_config(cls, f"dataset.{name}"), seed)


def _default_config(cls: type[Source], key: str) -> Any:
    """The config of a source given by name alone: its defaults, unless it has required fields."""
    required = [f.name for f in dataclasses.fields(cls.Config)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if required:
        raise ConfigError(key, None, f"a `{cls.name}` section with {', '.join(required)} when source is '{cls.name}'")
    return from_dict(cls.Config, {}, key)
