"""What a curation recipe is: a registered plug-in that decides, per item, kept or dropped (or repeated).

A recipe never copies the corpus. It reads the items (documents, or training windows at chunk level) and
any shared inputs it declares in `needs` (later: embeddings, clusters, a reference model's losses, each a
cached stage of its own), and returns decisions for the items it has something to say about plus its own
stats. The curate stage writes the decision table for every item (see `curation/decisions.py`), counts
every drop by reason, and names its folder by `recipe.fingerprint(inputs)`.

Adding a recipe is one class:

    @recipes.register
    class ShortDocs(Recipe):
        '''Keep documents of at most `max_words` words.'''
        name = "short_docs"

        @dataclass(frozen=True)
        class Config:
            max_words: int = 200

        def decide(self, items, inputs, context):
            for doc in read_documents(items, columns=["id", "text"]):
                if len(doc.text.split()) > self.config.max_words:
                    yield Decision(doc.id, False, "too_long")
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from corpuslab.curation.decisions import Decision
from corpuslab.executor import Executor
from corpuslab.registry import Plugin, Registry


@dataclass
class CurationContext:
    """What a recipe may use besides its items: the worker pool, the log, the experiment seed, a scratch
    folder inside the stage, `stats`, where `decide` puts what it wants reported, and `stages`."""

    executor: Executor
    log: Callable[[str], None]
    seed: int
    scratch: Path
    stats: dict[str, Any] = field(default_factory=dict)
    # The experiment's stage runner, for shared inputs a recipe builds as cached stages of their own
    # (embeddings, clusters): arms with the same settings reuse one folder. None: build them in `scratch`.
    stages: Any = None
    # Where engines spill temporary files their executor workers write (near dedup's LSH band keys), from
    # `curation.spill_dir`: shared storage on a multi-node cluster. None: the system's temporary folder.
    spill_dir: Path | None = None


class Recipe(Plugin):
    """Base of every curation recipe."""

    # Shared inputs the recipe reads besides its items, by stage name. "documents" is always given.
    needs: ClassVar[tuple[str, ...]] = ()

    def check(self, categories: Mapping[str, Mapping[str, int]], key: str) -> None:
        """Raise a ConfigError/InputError, before any arm trains, when this recipe cannot run on the prepared
        corpus. `categories[split]`: documents per category of train, val, test, and test_evaluated (the test
        documents the evaluation covers); `key`: the arm's config key, for messages. Default: nothing to check."""

    @abstractmethod
    def decide(self, items: list[Path], inputs: dict[str, Path], context: CurationContext) -> Iterable[Decision]:
        """Decisions for the items in these shards that are not simply kept once (any order)."""

    def grade(self, items: list[Path], dropped: set[str]) -> dict[str, Any] | None:
        """Quality of the removals against ground truth carried by the items, when there is any."""
        return None


recipes: Registry[Recipe] = Registry("recipe", Recipe)
