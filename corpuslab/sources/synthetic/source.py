"""The synthetic corpus as a source (`dataset.source: synthetic`): its documents depend on its config and
the experiment seed only, so those are its whole identity."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from corpuslab.documents import Document
from corpuslab.schema import to_dict
from corpuslab.sources.base import Source, sources
from corpuslab.sources.synthetic.config import SyntheticConfig
from corpuslab.sources.synthetic.generation import generate


@sources.register
class SyntheticSource(Source):
    """Bump `version` with any change to the vocabulary, grammar or generation that changes the corpus
    (tests/sources/test_synthetic_golden.py fails when one does)."""

    name = "synthetic"
    Config = SyntheticConfig

    def documents(self) -> Iterator[Document]:
        return generate(self.config, self.seed)

    def identity(self) -> dict[str, Any]:
        config = to_dict(self.config)
        if not self.config.junk.enabled:  # off: the corpus (and every fingerprint) is what it was before the knob
            del config["junk"]
        return {"source": self.name, "version": self.version, "config": config, "seed": self.seed}

    def description(self) -> str:
        return f"synthetic corpus (seed {self.seed})"
