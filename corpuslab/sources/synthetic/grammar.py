"""A category's generator (`CategoryGrammar`): word pools, parsed templates and a Markov chain among
content words, built once per category name from its `CategorySpec` (or an invented one)."""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np

from corpuslab.sources.synthetic.sampler import Sampler
from corpuslab.sources.synthetic.vocabulary import (
    BUILTIN_SPECS,
    FUNCTION_WORDS,
    INVENTED_TEMPLATES,
    INVENTED_TITLES,
    MONTHS,
    WEEKDAYS,
    CategorySpec,
    split_words,
)

MARKOV_SLOTS = ("noun", "verb", "adj")  # content words; each depends on the previous content word
_A_BEFORE_VOWEL = re.compile(r"\b([Aa]) (?=[AEIOUaeiou])")
_SLOT = re.compile(r"\{([A-Za-z_]+)(?::(-?\d+)\.\.(-?\d+))?\}")


def category_names(count: int) -> tuple[str, ...]:
    """The first `count` built-in categories, then invented ones (`topic5`, `topic6`, ...)."""
    builtin = tuple(BUILTIN_SPECS)
    return builtin[:count] + tuple(f"topic{i + 1}" for i in range(len(builtin), count))


def invented_spec(name: str) -> CategorySpec:
    """A category with pseudo-word vocabulary derived from its name (stable across runs and machines)."""
    sampler = Sampler(np.random.default_rng(zlib.crc32(name.encode())))
    syllables = _invented_syllables(sampler)
    pool = coin_pool(sampler, syllables, 93)
    return CategorySpec(
        name=name,
        syllables=syllables,
        nouns=pool[:40],
        verbs=tuple(w + "ed" for w in pool[40:65]),
        adjs=tuple(w + "ish" for w in pool[65:85]),
        lists={"unit": tuple(w + "s" for w in pool[85:93])},
        generated={"topic": ("{Coined}", 40), "place": ("{Coined}", 30), "person": ("{Coined}", 30)},
        templates=INVENTED_TEMPLATES,
        titles=INVENTED_TITLES,
    )


def _invented_syllables(sampler: Sampler, count: int = 16) -> tuple[str, ...]:
    """Consonant-vowel(-consonant) syllables: pronounceable, so invented words still read like words."""
    onsets, vowels, codas = split_words("b d f g k l m n p r s t v z sh th"), split_words("a e i o u ai ou"), "nrslmk"
    syllables: dict[str, None] = {}
    while len(syllables) < count:
        coda = sampler.choice(codas) if sampler.uniform() < 0.4 else ""
        syllables[sampler.choice(onsets) + sampler.choice(vowels) + coda] = None
    return tuple(syllables)


def coin(sampler: Sampler, syllables: Sequence[str]) -> str:
    return "".join(sampler.choice(syllables) for _ in range(sampler.integer(2, 3)))


def coin_pool(
    sampler: Sampler, syllables: Sequence[str], size: int, avoid: frozenset[str] = frozenset()
) -> tuple[str, ...]:
    words: dict[str, None] = {}
    while len(words) < size:
        word = coin(sampler, syllables)
        if word not in avoid and word not in FUNCTION_WORDS:
            words[word] = None
    return tuple(words)


@dataclass
class DocState:
    """What stays fixed within one document (its topic, place and people) and the Markov chain's position."""

    topic: str
    place: str
    people: tuple[str, str]
    previous: int  # previous content word: index into the noun, verb, adj pools laid end to end (or start)


@dataclass(frozen=True)
class CategoryGrammar:
    """A category's generator: word pools, parsed templates and content-word transition tables.

    Built once per category name (`grammar_for`) and independent of the corpus seed, so every corpus
    (and any held-out cloze or multiple-choice set built later with `sentence`) speaks the same language.
    `transitions[slot][previous]` is the cumulative distribution of the next `slot` word given the
    previous content word: each word strongly prefers a few successors, on top of a Zipf unigram.
    """

    name: str
    pools: Mapping[str, tuple[str, ...]]
    templates: tuple[tuple[tuple[str, ...], ...], ...]  # each template: literal, slot, literal, slot, ...
    titles: tuple[tuple[tuple[str, ...], ...], ...]
    transitions: Mapping[str, tuple[tuple[float, ...], ...]]
    offsets: Mapping[str, int]  # where each Markov slot's words start in the content index

    @property
    def start_state(self) -> int:
        return sum(len(self.pools[slot]) for slot in MARKOV_SLOTS)

    def content_words(self) -> frozenset[str]:
        """Words only this category uses (its own pools); the function words are shared by all."""
        words = {w.lower() for pool in self.pools.values() for phrase in pool for w in phrase.split()}
        return frozenset(words - FUNCTION_WORDS)

    def new_state(self, sampler: Sampler) -> DocState:
        people = (sampler.choice(self.pools["person"]), sampler.choice(self.pools["person"]))
        return DocState(
            sampler.choice(self.pools["topic"]), sampler.choice(self.pools["place"]), people, self.start_state
        )

    def sentence(self, sampler: Sampler, state: DocState) -> str:
        text = self._render(self.templates[sampler.index(len(self.templates))], sampler, state)
        return text[0].upper() + text[1:]

    def title(self, sampler: Sampler, state: DocState) -> str:
        text = self._render(self.titles[sampler.index(len(self.titles))], sampler, state)
        return text[0].upper() + text[1:]

    def document(self, rng: np.random.Generator, target_words: int) -> str:
        """A title, then paragraphs of 3-6 sentences until the document reaches `target_words` words."""
        sampler = Sampler(rng)
        state = self.new_state(sampler)
        title = self.title(sampler, state)
        paragraphs, words = [title], len(title.split())
        while words < target_words:
            sentences: list[str] = []
            for _ in range(sampler.integer(3, 6)):
                sentences.append(self.sentence(sampler, state))
                words += len(sentences[-1].split())
                if words >= target_words:
                    break
            paragraphs.append(" ".join(sentences))
        return "\n\n".join(paragraphs)

    def _render(self, parts: tuple[tuple[str, ...], ...], sampler: Sampler, state: DocState) -> str:
        out = []
        for part in parts:
            out.append(part[0] if len(part) == 1 else self.fill(part, sampler, state))
        # A slot after "a" may start with a vowel: "an elevated genome", not "a elevated genome".
        return _A_BEFORE_VOWEL.sub(r"\1n ", "".join(out))

    def fill(self, slot: tuple[str, ...], sampler: Sampler, state: DocState) -> str:
        """One slot: ("slot", name) or ("slot", "num", low, high). A capitalised name capitalises the word."""
        name = slot[1]
        key = name.lower()
        if key == "num":
            word = str(sampler.integer(int(slot[2]), int(slot[3])))
        elif key in MARKOV_SLOTS:
            word = self._next_content_word(key, sampler, state)
        elif key in ("topic", "place"):
            word = getattr(state, key)
        elif key == "person":
            word = state.people[sampler.index(2)]
        elif key == "weekday":
            word = sampler.choice(WEEKDAYS)
        elif key == "month":
            word = sampler.choice(MONTHS)
        elif key == "date":
            word = f"{sampler.choice(MONTHS)} {sampler.integer(1, 28)}"
        else:
            word = sampler.choice(self.pools[key])
        return word[0].upper() + word[1:] if name[0].isupper() else word

    def _next_content_word(self, slot: str, sampler: Sampler, state: DocState) -> str:
        index = sampler.weighted(self.transitions[slot][state.previous])
        state.previous = self.offsets[slot] + index
        return self.pools[slot][index]


def _parse_template(template: str, known: Iterable[str]) -> tuple[tuple[str, ...], ...]:
    """Split "Add {num:2..9} {unit}." into literal and slot parts; unknown slots fail at build time."""
    allowed = set(known) | set(MARKOV_SLOTS) | {"num", "topic", "place", "person", "weekday", "month", "date"}
    parts: list[tuple[str, ...]] = []
    position = 0
    for match in _SLOT.finditer(template):
        if match.start() > position:
            parts.append((template[position : match.start()],))
        name, low, high = match.groups()
        if name.lower() not in allowed:
            raise ValueError(f"template {template!r}: unknown slot {{{name}}}")
        parts.append(("slot", name, low, high) if name.lower() == "num" else ("slot", name))
        position = match.end()
    if position < len(template):
        parts.append((template[position:],))
    return tuple(parts)


def _transition_table(
    rng: np.random.Generator, n_previous: int, n_next: int
) -> tuple[tuple[float, ...], ...]:
    """Rows of cumulative weights: 70% on 4 preferred successors, 30% on a Zipf unigram over all words.

    The preferred successors give the chain structure a small model can learn; the unigram keeps every
    word reachable and word frequencies web-like.
    """
    unigram = 1.0 / np.arange(1, n_next + 1)
    unigram = unigram[rng.permutation(n_next)] / unigram.sum()
    preferred_weights = np.array([0.4, 0.3, 0.2, 0.1])[:n_next]
    rows = []
    for _ in range(n_previous):
        row = 0.3 * unigram
        preferred = rng.choice(n_next, size=len(preferred_weights), replace=False)
        row[preferred] += 0.7 * preferred_weights / preferred_weights.sum()
        rows.append(tuple(np.cumsum(row).tolist()))
    return tuple(rows)


def _build_pools(spec: CategorySpec, sampler: Sampler) -> dict[str, tuple[str, ...]]:
    pools: dict[str, tuple[str, ...]] = {
        "noun": spec.nouns,
        "verb": spec.verbs,
        "adj": spec.adjs,
        **spec.lists,
    }
    taken = frozenset(w for pool in pools.values() for w in pool)
    for pool_name, (pattern, size) in spec.generated.items():
        coined = coin_pool(sampler, spec.syllables, size, avoid=taken)
        values = [pattern.replace("{Coined}", w.capitalize()).replace("{coined}", w) for w in coined]
        for list_name, words in spec.lists.items():
            values = [v.replace(f"{{{list_name}}}", sampler.choice(words)) for v in values]
        pools[pool_name] = tuple(dict.fromkeys(values))
    return pools


@cache
def grammar_for(category: str) -> CategoryGrammar:
    """The grammar of a category: built-in for recipes/sports/weather/science, invented for any other name."""
    spec = BUILTIN_SPECS.get(category) or invented_spec(category)
    rng = np.random.default_rng(
        zlib.crc32(f"grammar:{category}".encode())
    )  # never hash(): it is salted per run
    pools = _build_pools(spec, Sampler(rng))
    offsets, n_content = {}, 0
    for slot in MARKOV_SLOTS:
        offsets[slot], n_content = n_content, n_content + len(pools[slot])
    transitions = {slot: _transition_table(rng, n_content + 1, len(pools[slot])) for slot in MARKOV_SLOTS}
    return CategoryGrammar(
        name=category,
        pools=pools,
        templates=tuple(_parse_template(t, pools) for t in spec.templates),
        titles=tuple(_parse_template(t, pools) for t in spec.titles),
        transitions=transitions,
        offsets=offsets,
    )

