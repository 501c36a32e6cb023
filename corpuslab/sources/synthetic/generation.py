"""Generation: the corpus plan (which document is an original, a copy or boilerplate, in which order),
then the documents themselves, each carrying its ground truth in metadata."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

import numpy as np

from corpuslab.documents import Document
from corpuslab.schema import require
from corpuslab.sources.synthetic.boilerplate import (
    BOILERPLATE_CATEGORY,
    boilerplate_group,
    boilerplate_template,
    render_boilerplate,
)
from corpuslab.sources.synthetic.config import SyntheticConfig
from corpuslab.sources.synthetic.grammar import MARKOV_SLOTS, grammar_for
from corpuslab.sources.synthetic.junk import farm_page, junk_category, render_junk
from corpuslab.sources.synthetic.sampler import (
    BOILERPLATE_INSTANCE_STREAM,
    JUNK_FARM_STREAM,
    JUNK_LAYOUT_STREAM,
    JUNK_STREAM,
    LAYOUT_STREAM,
    NEAR_EDIT_STREAM,
    ORIGINAL_STREAM,
)
from corpuslab.sources.synthetic.truth import SHINGLE_WORDS, shingle_jaccard


class PlannedDocument(NamedTuple):
    """One document of the corpus before its text exists.

    `number` indexes the document within its kind (original i, near dup k, boilerplate k, junk k); `source`
    is the original index a duplicate copies, the template of a boilerplate document, or the farm of a
    near-duplicate-farm junk document (-1 for originals and other junk). A junk document's category is
    `junk_<kind>`.
    """

    kind: str
    number: int
    source: int
    category: str
    target_words: int = 0
    edit_rate: float = 0.0


def plan_corpus(cfg: SyntheticConfig, seed: int) -> list[PlannedDocument]:
    """Every document's kind, source and category, in corpus order, without generating any text.

    Cheap (no text), so counts and ground truth can be inspected before a large generation.
    """
    rng = np.random.default_rng([seed, LAYOUT_STREAM])
    names = cfg.category_names
    originals = _plan_originals(cfg, rng, names)
    exact = _plan_exact(cfg, rng, originals)
    near = _plan_near(cfg, rng, originals)
    boilerplate = _plan_boilerplate(cfg, rng)
    junk = _plan_junk(cfg, np.random.default_rng([seed, JUNK_LAYOUT_STREAM])) if cfg.junk.enabled else []
    documents = originals + exact + near + boilerplate + junk
    return _order(documents, cfg.shuffle, rng)


def _plan_originals(
    cfg: SyntheticConfig, rng: np.random.Generator, names: Sequence[str]
) -> list[PlannedDocument]:
    categories = rng.integers(0, len(names), cfg.num_docs).tolist()
    # Log-normal with mean words_per_doc: most documents are near the mean, a few are long.
    sigma = cfg.length_spread
    lengths = rng.lognormal(np.log(cfg.words_per_doc) - sigma**2 / 2, sigma, cfg.num_docs)
    lengths = np.clip(np.rint(lengths), SHINGLE_WORDS * 2, cfg.words_per_doc * 6).astype(int).tolist()
    return [
        PlannedDocument("original", i, -1, names[c], n) for i, (c, n) in enumerate(zip(categories, lengths))
    ]


def _plan_exact(
    cfg: SyntheticConfig, rng: np.random.Generator, originals: list[PlannedDocument]
) -> list[PlannedDocument]:
    n_sources = round(cfg.exact_dup_fraction * cfg.num_docs)
    sources = rng.choice(cfg.num_docs, size=n_sources, replace=False).tolist()
    copies = np.minimum(rng.zipf(cfg.dup_copies_alpha, size=n_sources), cfg.max_copies).tolist()
    planned = []
    for source, count in zip(sources, copies):
        planned += [
            PlannedDocument("exact_duplicate", len(planned), source, originals[source].category)
            for _ in range(count)
        ]
    return planned


def _plan_near(
    cfg: SyntheticConfig, rng: np.random.Generator, originals: list[PlannedDocument]
) -> list[PlannedDocument]:
    n_near = round(cfg.near_dup_fraction * cfg.num_docs)
    if n_near == 0:
        return []
    sources = rng.choice(cfg.num_docs, size=n_near, replace=False).tolist()
    # Each rate is used equally often (up to one), so every rate has enough near dups to measure recall on.
    rates = np.resize(np.array(cfg.near_dup_edit_rates, dtype=float), n_near)
    rates = rng.permutation(rates).tolist()
    return [
        PlannedDocument("near_duplicate", k, s, originals[s].category, 0, r)
        for k, (s, r) in enumerate(zip(sources, rates))
    ]


def _plan_boilerplate(cfg: SyntheticConfig, rng: np.random.Generator) -> list[PlannedDocument]:
    n_docs = round(cfg.boilerplate_fraction * cfg.num_docs)
    templates = rng.integers(0, cfg.boilerplate_templates, n_docs).tolist()
    return [PlannedDocument("boilerplate", k, t, BOILERPLATE_CATEGORY) for k, t in enumerate(templates)]


def _plan_junk(cfg: SyntheticConfig, rng: np.random.Generator) -> list[PlannedDocument]:
    """round(fraction x num_docs) junk documents, the kinds in turn; farm documents spread over the farms."""
    n_docs = round(cfg.junk.fraction * cfg.num_docs)
    kinds = [cfg.junk.kinds[k % len(cfg.junk.kinds)] for k in range(n_docs)]
    sigma = cfg.length_spread
    lengths = rng.lognormal(np.log(cfg.words_per_doc) - sigma**2 / 2, sigma, n_docs)
    lengths = np.clip(np.rint(lengths), SHINGLE_WORDS * 4, cfg.words_per_doc * 6).astype(int).tolist()
    planned, farm_docs = [], 0
    for k, (kind, words) in enumerate(zip(kinds, lengths)):
        farm = -1
        if kind == "near_dup_farm":
            farm, farm_docs = farm_docs % cfg.junk.farms, farm_docs + 1
        planned.append(PlannedDocument("junk", k, farm, junk_category(kind), words))
    return planned


def _group_key(doc: PlannedDocument) -> tuple[str, int]:
    if doc.kind == "boilerplate":
        return ("template", doc.source)
    if doc.kind == "junk":  # junk has no source that must come first
        return ("junk", doc.number)
    return ("original", doc.number if doc.kind == "original" else doc.source)


def _order(
    documents: list[PlannedDocument], shuffle: bool, rng: np.random.Generator
) -> list[PlannedDocument]:
    """Corpus order. Shuffled: every document at a uniform random position, then each group's earliest
    position is handed to its original, so a copy never precedes its source and no region of the corpus
    is richer in duplicates than another. Unshuffled: each original is followed by its copies."""
    groups: dict[tuple[str, int], list[int]] = defaultdict(list)
    # Originals come first in `documents`, so each group's members[0] is its original.
    for index, doc in enumerate(documents):
        groups[_group_key(doc)].append(index)
    if not shuffle:
        return [documents[i] for key in sorted(groups) for i in groups[key]]
    positions = rng.permutation(len(documents))
    for members in groups.values():
        if len(members) > 1:
            slots = np.sort(positions[members])
            positions[members[0]] = slots[0]
            positions[members[1:]] = rng.permutation(slots[1:])
    return [documents[i] for i in np.argsort(positions, kind="stable")]


# Near duplicates.


def edit_words(text: str, edit_rate: float, replacements: Sequence[str], rng: np.random.Generator) -> str:
    """Substitute (50%), insert (25%) or delete (25%) max(1, round(rate * words)) random words.

    Line structure is kept (titles and paragraphs stay where they were) and substitutions keep the
    word's trailing punctuation and capital, so a near duplicate still reads like the original.
    """
    lines = [line.split(" ") if line else [] for line in text.split("\n")]
    positions = [(li, wi) for li, words in enumerate(lines) for wi in range(len(words))]
    n_edits = min(len(positions), max(1, round(edit_rate * len(positions))))
    chosen = sorted(rng.choice(len(positions), size=n_edits, replace=False).tolist(), reverse=True)
    operations = rng.random(n_edits).tolist()
    picks = rng.integers(0, len(replacements), n_edits).tolist()
    for position, operation, pick in zip(
        chosen, operations, picks
    ):  # from the end: earlier indices stay valid
        li, wi = positions[position]
        word = replacements[pick]
        if operation < 0.5:
            lines[li][wi] = _substitute(lines[li][wi], word, replacements[(pick + 1) % len(replacements)])
        elif operation < 0.75:
            lines[li].insert(wi + 1, word)
        else:
            del lines[li][wi]
    return "\n".join(" ".join(words) for words in lines)


def _substitute(token: str, word: str, fallback: str) -> str:
    core = token.rstrip(".,:;!?")
    if word.lower() == core.lower():
        word = fallback  # a substitution must change the text
    if core[:1].isupper():
        word = word[0].upper() + word[1:]
    return word + token[len(core) :]


# The documents.


def generate(cfg: SyntheticConfig, seed: int) -> Iterator[Document]:
    """Stream the corpus: deterministic in (cfg, seed), documents `syn-000000`, `syn-000001`, ... in order.

    Only texts that a later duplicate still needs are held in memory.
    """
    cfg.validate()
    require(
        isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0,
        "seed",
        seed,
        "a non-negative integer",
    )
    plan = plan_corpus(cfg, seed)
    width = max(6, len(str(len(plan) - 1)))
    ids = _ids_of_originals(plan, width)
    pending = Counter(doc.source for doc in plan if doc.kind in ("exact_duplicate", "near_duplicate"))
    texts: dict[int, str] = {}  # original index -> text, while copies of it are still to come
    representatives: dict[int, str] = {}  # boilerplate template -> its first document's text
    for position, doc in enumerate(plan):
        doc_id = f"syn-{position:0{width}d}"
        if doc.kind == "original":
            text = grammar_for(doc.category).document(
                np.random.default_rng([seed, ORIGINAL_STREAM, doc.number]), doc.target_words
            )
            if pending[doc.number]:
                texts[doc.number] = text
            yield Document(doc_id, text, _metadata(doc, None, None))
        elif doc.kind == "boilerplate":
            yield _boilerplate_document(doc_id, doc, seed, representatives)
        elif doc.kind == "junk":
            yield _junk_document(doc_id, doc, seed, cfg.junk.farm_edit_rate)
        else:
            source_text = texts[doc.source]
            pending[doc.source] -= 1
            if pending[doc.source] == 0:
                del texts[doc.source]
            yield _copy_document(doc_id, doc, source_text, ids[doc.source], seed)


def _ids_of_originals(plan: list[PlannedDocument], width: int) -> dict[int, str]:
    return {
        doc.number: f"syn-{position:0{width}d}" for position, doc in enumerate(plan) if doc.kind == "original"
    }


def _metadata(doc: PlannedDocument, source: str | None, jaccard: float | None) -> dict[str, Any]:
    return {
        "category": doc.category,
        "truth_kind": doc.kind,
        "truth_source": source,
        "edit_rate": doc.edit_rate,
        "truth_jaccard": jaccard,
    }


def _copy_document(
    doc_id: str, doc: PlannedDocument, source_text: str, source_id: str, seed: int
) -> Document:
    if doc.kind == "exact_duplicate":
        return Document(doc_id, source_text, _metadata(doc, source_id, 1.0))
    # Substitutes and insertions come from the same category, so an edit never looks like a foreign word.
    grammar = grammar_for(doc.category)
    replacements = tuple(sorted(w for slot in MARKOV_SLOTS for w in grammar.pools[slot]))
    text = edit_words(
        source_text, doc.edit_rate, replacements, np.random.default_rng([seed, NEAR_EDIT_STREAM, doc.number])
    )
    return Document(doc_id, text, _metadata(doc, source_id, shingle_jaccard(text, source_text)))


def _boilerplate_document(
    doc_id: str, doc: PlannedDocument, seed: int, representatives: dict[int, str]
) -> Document:
    """truth_jaccard of boilerplate is measured against the template's first document (its kept copy)."""
    template_text = boilerplate_template(doc.source, seed)
    text = render_boilerplate(
        template_text, np.random.default_rng([seed, BOILERPLATE_INSTANCE_STREAM, doc.number])
    )
    first = representatives.setdefault(doc.source, text)
    return Document(doc_id, text, _metadata(doc, boilerplate_group(doc.source), shingle_jaccard(text, first)))



def _junk_document(doc_id: str, doc: PlannedDocument, seed: int, farm_edit_rate: float) -> Document:
    """A junk document (see `junk`): metadata truth_kind "junk", junk_kind, and a farm's shared source."""
    kind = doc.category.removeprefix("junk_")
    rng = np.random.default_rng([seed, JUNK_STREAM, doc.number])
    if kind == "near_dup_farm":
        page = farm_page(doc.source, seed, JUNK_FARM_STREAM)
        text = edit_words(page, farm_edit_rate, tuple(sorted(set(page.lower().replace(".", "").split()))), rng)
        source, jaccard = f"junk-farm-{doc.source}", shingle_jaccard(text, page)
    else:
        text, source, jaccard = render_junk(kind, doc.target_words, rng), None, None
    return Document(doc_id, text, {**_metadata(doc, source, jaccard), "junk_kind": kind})
