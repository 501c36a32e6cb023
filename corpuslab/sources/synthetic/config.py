"""The knobs of the synthetic corpus, validated at load."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from corpuslab.schema import require, require_int
from corpuslab.sources.synthetic.boilerplate import BOILERPLATE_BODIES, BOILERPLATE_CATEGORY
from corpuslab.sources.synthetic.grammar import category_names
from corpuslab.sources.synthetic.junk import JUNK_PREFIX, JunkConfig
from corpuslab.sources.synthetic.truth import SHINGLE_WORDS


@dataclass(frozen=True)
class SyntheticConfig:
    """Knobs of the synthetic corpus. Every fraction is relative to `num_docs`, so turning one knob
    never changes how many documents another knob plants.

    num_docs: number of original documents.
    categories: category names, or a count (the first of recipes, sports, weather, science, then
        topic5, topic6, ...). Each category has its own vocabulary and sentence templates; a name other
        than the four built-in ones gets an invented pseudo-word vocabulary derived from the name.
    words_per_doc: mean length of an original in words; lengths are log-normal around it.
    length_spread: sigma of that log-normal (0 gives every original the same length).
    exact_dup_fraction: fraction of originals that get byte-identical copies.
    dup_copies_alpha: Zipf exponent (> 1) of the number of copies per duplicated original; smaller
        means heavier tail (a few documents copied many times, as on the web).
    max_copies: cap on the copies of one original.
    near_dup_fraction: fraction of originals that get one near duplicate each.
    near_dup_edit_rates: word edit rates in [0, 1) for near duplicates, used equally often; a near dup
        with rate r has max(1, round(r * words)) random words substituted, inserted or deleted.
    boilerplate_fraction: boilerplate documents, as a fraction of num_docs.
    boilerplate_templates: number of boilerplate templates (at most the 6 built in: cookie notice,
        newsletter footer, licence, terms of use, data-request reply, page not found); documents from one
        template form a duplicate group.
    shuffle: scatter copies through the corpus (each still after its source) instead of placing them
        right after it.
    junk: junk-like documents with ground truth, for grading cluster exclusion (navigation bars, product
        specifications, entity lists, near-duplicate farms; see `junk.JunkConfig`). Off by default, and then
        not part of the corpus's identity, so turning the knob off leaves every fingerprint as it was.
    """

    num_docs: int = 4000
    categories: tuple[str, ...] | int = ("recipes", "sports", "weather", "science")
    words_per_doc: int = 130
    length_spread: float = 0.4
    exact_dup_fraction: float = 0.1
    dup_copies_alpha: float = 2.0
    max_copies: int = 50
    near_dup_fraction: float = 0.1
    near_dup_edit_rates: tuple[float, ...] = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3)
    boilerplate_fraction: float = 0.05
    boilerplate_templates: int = 6
    shuffle: bool = True
    junk: JunkConfig = field(default_factory=JunkConfig)

    def __post_init__(self) -> None:
        # YAML gives lists; a frozen config must stay hashable (it is part of stage fingerprints).
        for name in ("categories", "near_dup_edit_rates"):
            value = getattr(self, name)
            if isinstance(value, list):
                object.__setattr__(self, name, tuple(value))

    def validate(self, prefix: str = "dataset.synthetic") -> None:
        require_int(self.num_docs, f"{prefix}.num_docs", 1)
        self._validate_categories(f"{prefix}.categories")
        require_int(self.words_per_doc, f"{prefix}.words_per_doc", SHINGLE_WORDS)
        require(
            _is_number(self.length_spread) and 0 <= self.length_spread <= 2,
            f"{prefix}.length_spread",
            self.length_spread,
            "a number in [0, 2]",
        )
        for name in ("exact_dup_fraction", "near_dup_fraction", "boilerplate_fraction"):
            value = getattr(self, name)
            require(_is_number(value) and 0 <= value <= 1, f"{prefix}.{name}", value, "a fraction in [0, 1]")
        require(
            _is_number(self.dup_copies_alpha) and self.dup_copies_alpha > 1,
            f"{prefix}.dup_copies_alpha",
            self.dup_copies_alpha,
            "a Zipf exponent > 1",
        )
        require_int(self.max_copies, f"{prefix}.max_copies", 1)
        self._validate_edit_rates(f"{prefix}.near_dup_edit_rates")
        templates = self.boilerplate_templates
        require(
            isinstance(templates, int)
            and not isinstance(templates, bool)
            and 1 <= templates <= len(BOILERPLATE_BODIES),
            f"{prefix}.boilerplate_templates",
            templates,
            f"an integer in [1, {len(BOILERPLATE_BODIES)}]",
        )
        require(isinstance(self.shuffle, bool), f"{prefix}.shuffle", self.shuffle, "true or false")
        self.junk.validate(f"{prefix}.junk")

    def _validate_categories(self, key: str) -> None:
        if isinstance(self.categories, int) and not isinstance(self.categories, bool):
            require(self.categories >= 1, key, self.categories, "a positive count or a list of names")
            return
        names = self.categories
        require(
            isinstance(names, tuple) and len(names) >= 1 and all(isinstance(n, str) and n for n in names),
            key,
            names,
            "a positive count or a non-empty list of names",
        )
        require(len(set(names)) == len(names), key, names, "distinct category names")
        require(
            BOILERPLATE_CATEGORY not in names,
            key,
            names,
            f"names other than '{BOILERPLATE_CATEGORY}' (reserved)",
        )
        require(not any(n.startswith(JUNK_PREFIX) for n in names), key, names, f"names not starting with '{JUNK_PREFIX}' (reserved)")

    def _validate_edit_rates(self, key: str) -> None:
        rates = self.near_dup_edit_rates
        require(
            isinstance(rates, tuple) and (len(rates) >= 1 or self.near_dup_fraction == 0),
            key,
            rates,
            "a non-empty list of edit rates when near_dup_fraction > 0",
        )
        for i, rate in enumerate(rates):
            require(_is_number(rate) and 0 <= rate < 1, f"{key}[{i}]", rate, "an edit rate in [0, 1)")

    @property
    def category_names(self) -> tuple[str, ...]:
        if isinstance(self.categories, int):
            return category_names(self.categories)
        return tuple(self.categories)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value)

