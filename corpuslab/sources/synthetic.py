"""The built-in synthetic corpus: topical documents plus planted duplicates whose ground truth is known.

Why synthetic: the default experiment must run offline on a laptop CPU, and a dedup ablation can only be
judged when we know which documents *are* duplicates. So the corpus is made of

- originals, written by a small grammar per category (`CategoryGrammar`): each category has its own
  words, sentence templates, numbers and a first-order Markov chain among content words, so a tiny GPT
  can learn it and per-category perplexities mean something;
- exact duplicates: byte-identical copies of some originals, a heavy-tailed number of copies each;
- near duplicates: originals with a given fraction of their words substituted, inserted or deleted;
- boilerplate: cookie notices, licences, footers rendered from a few templates with small variable
  fields, the kind of text a near-duplicate detector should collapse.

Every document carries its ground truth in metadata (`category`, `truth_kind`, `truth_source`,
`edit_rate`, `truth_jaccard`), so `score_removals` can grade a curation recipe from ids alone.
A duplicate is always emitted after the document it copies, so "keep the earliest" recipes keep the
original.
"""

from __future__ import annotations

import bisect
import re
import zlib
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, NamedTuple

import numpy as np

from corpuslab.documents import Document
from corpuslab.schema import require, require_int

TRUTH_KINDS = ("original", "exact_duplicate", "near_duplicate", "boilerplate")
BOILERPLATE_CATEGORY = "boilerplate"
SHINGLE_WORDS = 5  # word 5-grams: what MinHash dedup uses (Lee et al. 2021) and what truth_jaccard measures

# Independent random streams, so e.g. changing the near-dup edits never changes an original's text.
_LAYOUT, _ORIGINAL, _NEAR_EDIT, _BOILERPLATE_INSTANCE, _BOILERPLATE_TEMPLATE = range(5)


# ---------------------------------------------------------------------------------------------- config


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
            and 1 <= templates <= len(_BOILERPLATE_BODIES),
            f"{prefix}.boilerplate_templates",
            templates,
            f"an integer in [1, {len(_BOILERPLATE_BODIES)}]",
        )
        require(isinstance(self.shuffle, bool), f"{prefix}.shuffle", self.shuffle, "true or false")

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


def category_names(count: int) -> tuple[str, ...]:
    """The first `count` built-in categories, then invented ones (`topic5`, `topic6`, ...)."""
    builtin = tuple(_BUILTIN_SPECS)
    return builtin[:count] + tuple(f"topic{i + 1}" for i in range(len(builtin), count))


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value)


# ---------------------------------------------------------------------------------------------- sampling


class Sampler:
    """Draws from a numpy Generator in blocks of uniforms: one numpy call per word would dominate run time."""

    def __init__(self, rng: np.random.Generator, block: int = 1024):
        self._rng, self._block = rng, block
        self._buffer: list[float] = []
        self._next = 0

    def uniform(self) -> float:
        if self._next == len(self._buffer):
            self._buffer, self._next = self._rng.random(self._block).tolist(), 0
        self._next += 1
        return self._buffer[self._next - 1]

    def index(self, n: int) -> int:
        return min(int(self.uniform() * n), n - 1)

    def choice(self, items: Sequence[str]) -> str:
        return items[self.index(len(items))]

    def integer(self, low: int, high: int) -> int:
        """Uniform on [low, high], both ends included."""
        return low + self.index(high - low + 1)

    def weighted(self, cumulative: Sequence[float]) -> int:
        return min(bisect.bisect_right(cumulative, self.uniform() * cumulative[-1]), len(cumulative) - 1)


# ---------------------------------------------------------------------------------------------- grammar

FUNCTION_WORDS = frozenset(
    "a an the of and or but with in on at by for to from into over under after before then until while "
    "it its is are was were be been this that these those there their they we you your our my his her "
    "as if so not no up down out off every each all some any more most than very also just still only "
    "can could should will would may might must has have had do does did".split()
)
WEEKDAYS = tuple("Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split())
MONTHS = tuple(
    "January February March April May June July August September October November December".split()
)
MARKOV_SLOTS = ("noun", "verb", "adj")  # content words; each depends on the previous content word
_A_BEFORE_VOWEL = re.compile(r"\b([Aa]) (?=[AEIOUaeiou])")
_SLOT = re.compile(r"\{([A-Za-z_]+)(?::(-?\d+)\.\.(-?\d+))?\}")


@dataclass(frozen=True)
class CategorySpec:
    """The hand-written part of a category: word lists, pseudo-word syllables and sentence templates.

    `lists` holds extra fixed pools referenced by templates or by `generated` patterns; `generated` maps a
    pool name to (pattern, size): the pool is filled once with the pattern, where `{Coined}`/`{coined}`
    is a fresh pseudo-word made from `syllables`. Pools `topic`, `place` and `person` are fixed per
    document (a document is about one topic, in one place, with two people), which makes documents
    coherent and gives a model something to copy from context.
    """

    name: str
    syllables: tuple[str, ...]
    nouns: tuple[str, ...]
    verbs: tuple[str, ...]
    adjs: tuple[str, ...]
    lists: Mapping[str, tuple[str, ...]]
    generated: Mapping[str, tuple[str, int]]
    templates: tuple[str, ...]
    titles: tuple[str, ...]


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


_BUILTIN_SPECS: dict[str, CategorySpec] = {
    "recipes": CategorySpec(
        name="recipes",
        syllables=_words("va lo ri cci ne ta mo bel san gri po let ra zo fi"),
        nouns=_words(
            "flour butter garlic onion pepper salt sugar cream tomato basil lemon rice noodles broth "
            "carrot potato honey vinegar mustard ginger cinnamon yogurt cheese spinach mushroom shallot "
            "thyme parsley dough batter sauce skillet pan bowl lid crust glaze stock chickpeas lentils"
        ),
        verbs=_words(
            "chop stir whisk simmer bake roast fold knead drizzle season slice dice mince sear grate "
            "toss blend melt braise marinate garnish pour sprinkle reduce strain baste"
        ),
        adjs=_words(
            "golden crisp tender fragrant creamy smoky tangy fluffy silky hearty savory sweet fresh "
            "toasted glossy rustic zesty buttery caramelised peppery"
        ),
        lists={
            "unit": _words("grams cups tablespoons teaspoons ounces cloves pinches handfuls"),
            "dish": _words("stew pie soup salad curry tart loaf risotto casserole dumplings pancakes gratin"),
        },
        generated={"topic": ("{Coined} {dish}", 60), "place": ("{Coined}", 30), "person": ("{Coined}", 40)},
        templates=(
            "{Verb} the {noun} with the {adj} {noun}.",
            "Add {num:2..500} {unit} of {noun} and {verb} for {num:2..30} minutes.",
            "Let the {noun} rest until it turns {adj} and {adj}.",
            "This {topic} tastes best with a {adj} {noun} on the side.",
            "{Verb} the {noun} gently, then {verb} it over low heat.",
            "Preheat the oven to {num:150..240} degrees before you {verb} the {noun}.",
            "Chef {person} first cooked {topic} in {place} on a cold {weekday}.",
            "Serve the {topic} {adj} with {noun} and a little {noun}.",
            "If the {noun} looks dry, add {num:1..4} {unit} of {noun}.",
            "You can {verb} the {noun} a day ahead and keep it {adj}.",
            "The secret to a {adj} {topic} is {adj} {noun}.",
            "{Verb} the {noun}, {verb} the {noun}, and {verb} everything together.",
            "Bake for {num:10..90} minutes until the {noun} is {adj}.",
            "My family in {place} always made {topic} with {noun} instead of {noun}.",
        ),
        titles=(
            "{Adj} {topic} with {Noun}",
            "How to Make {topic}",
            "Chef {person} and the {topic}",
            "{topic} for {num:2..8} people",
        ),
    ),
    "sports": CategorySpec(
        name="sports",
        syllables=_words("brad ford ham ton kirk wel ash bury mar den stow ley crom hurst"),
        nouns=_words(
            "striker keeper goal match season league coach pitch referee penalty corner midfield "
            "defender captain trophy fixture derby crowd stadium header tackle whistle halftime squad "
            "transfer injury playoff final rebound sprint winger offside equaliser dugout bench scoreline"
        ),
        verbs=_words(
            "scored defended tackled passed blocked dribbled struck saved celebrated clinched trailed "
            "pressed conceded rallied substituted crossed volleyed chipped converted fumbled "
            "intercepted booked headed squandered"
        ),
        adjs=_words(
            "late stunning narrow dominant nervy clinical relentless young veteran fierce dramatic "
            "disallowed decisive scrappy brilliant tired physical tactical rapid costly"
        ),
        lists={"suffix": _words("United Rovers City Athletic Wanderers Albion Town Harriers")},
        generated={
            "topic": ("{Coined} {suffix}", 40),
            "team": ("{Coined} {suffix}", 40),
            "place": ("{Coined} Park", 30),
            "person": ("{Coined}", 60),
        },
        templates=(
            "{topic} {verb} after {num:2..90} minutes thanks to a {adj} {noun}.",
            "The {noun} {verb} the {noun} before the {noun} could react.",
            "{person} {verb} a {adj} {noun} past the {noun}.",
            "{topic} beat {team} {num:2..5} to {num:0..1} on {weekday} night.",
            "A {adj} {noun} left the {noun} stunned at {place}.",
            "Coach {person} said the {noun} was {adj} and the {noun} {verb} well.",
            "{num:5000..60000} fans watched the {adj} {noun} against {team}.",
            "The {noun} {verb} twice in a {adj} second half.",
            "{topic} now sit {num:1..20} points clear at the top of the league.",
            "After the {noun}, {person} {verb} the {adj} {noun}.",
            "It was a {adj} {noun} for {topic} and their {adj} {noun}.",
            "The referee awarded a {noun} with {num:2..30} minutes left.",
            "{team} {verb} early but {topic} {verb} late.",
        ),
        titles=(
            "Match report: {topic} against {team}",
            "{Adj} {noun} lifts {topic}",
            "{person} shines as {topic} face {team}",
        ),
    ),
    "weather": CategorySpec(
        name="weather",
        syllables=_words("hol vik sund berg ny lund strand fjel ask tor dal mark ho rin"),
        nouns=_words(
            "rain drizzle front breeze cloud fog frost gust humidity pressure storm thunder sunshine "
            "snow sleet hail forecast coast valley ridge wind shower haze dew visibility squall "
            "drought flurry heatwave lightning system trough airmass"
        ),
        verbs=_words(
            "moves drifts clears lingers builds eases spreads sweeps develops settles strengthens "
            "weakens arrives retreats brings turns stalls deepens returns fades persists intensifies"
        ),
        adjs=_words(
            "cool mild humid chilly breezy overcast gusty scattered heavy light patchy bright damp "
            "freezing dry unsettled calm muggy crisp stormy"
        ),
        lists={
            "daypart": _words("morning afternoon evening night"),
            "suffix": _words("by holm wick stad ford haven"),
        },
        generated={
            "topic": ("{Coined}{suffix}", 50),
            "place": ("{Coined}{suffix}", 50),
            "person": ("{Coined}", 30),
        },
        templates=(
            "A {adj} {noun} {verb} across {topic} on {weekday}.",
            "Temperatures reach {num:-5..35} degrees in {topic} by the {daypart}.",
            "Expect {adj} {noun} with winds near {num:5..90} kilometres per hour.",
            "The {noun} {verb} by {daypart}, leaving {adj} {noun} behind.",
            "Rainfall totals of {num:1..60} millimetres are likely near {place}.",
            "Forecasters in {topic} warn that the {noun} {verb} quickly.",
            "Humidity stays near {num:40..100} percent as the {noun} {verb}.",
            "By {weekday}, a {adj} {noun} {verb} from the {noun}.",
            "{Adj} {noun} and {adj} {noun} are expected along the {noun}.",
            "The chance of {noun} is {num:10..90} percent this {daypart}.",
            "Residents of {place} should prepare for {adj} {noun}.",
            "Meteorologist {person} says the {noun} {verb} later than usual.",
        ),
        titles=(
            "Forecast for {topic}, {date}",
            "{Adj} {noun} expected in {topic}",
            "{topic} weather: a {adj} {daypart} ahead",
        ),
    ),
    "science": CategorySpec(
        name="science",
        syllables=_words("thio meth oxy carb phen cyan lyso zir tetra hydro bor sil xan pyr"),
        nouns=_words(
            "protein enzyme sample cell membrane molecule reaction catalyst genome neuron solvent "
            "crystal isotope receptor bacteria spectrum particle compound tissue mutation signal lattice "
            "gradient electrode assay peptide ligand polymer substrate culture antibody residue nucleus "
            "filament"
        ),
        verbs=_words(
            "measured observed synthesised isolated detected quantified inhibited bound catalysed "
            "expressed cleaved stabilised modelled sequenced tested characterised purified labelled "
            "imaged cultured suppressed activated"
        ),
        adjs=_words(
            "stable novel significant thermal synthetic soluble magnetic cellular reactive binary dense "
            "robust faint acidic neutral elevated transient crystalline hydrophobic conserved"
        ),
        lists={"unit": _words("samples replicates wells plates"), "suffix": _words("ase ine ol ium ide ate")},
        generated={
            "topic": ("{coined}{suffix}", 60),
            "place": ("{Coined} Institute", 25),
            "person": ("{Coined}", 40),
        },
        templates=(
            "We {verb} the {adj} {noun} after {num:3..120} hours.",
            "The {topic} {noun} was {verb} at {num:4..400} kelvin.",
            "Researchers at the {place} {verb} a {adj} {noun} in the {noun}.",
            "In {num:1990..2024}, Dr {person} {verb} the first {adj} {noun}.",
            "The {noun} remained {adj} at a concentration of {num:1..500} millimolar.",
            "{Topic} {verb} the {noun} but not the {noun}.",
            "Each {noun} was {verb} in triplicate across {num:2..96} {unit}.",
            "These results suggest that {topic} is a {adj} {noun}.",
            "A {adj} {noun} was {verb} near the {noun} of each {noun}.",
            "Dr {person} notes that the {noun} is {adj} under {adj} conditions.",
            "We saw a {adj} shift in the {noun} spectrum of {topic}.",
            "Particles of {num:5..900} nanometres were {verb} by the {noun}.",
        ),
        titles=(
            "{Adj} {noun} activity of {topic}",
            "On the {adj} {noun} of {topic}",
            "{Topic}: a {adj} {noun} study",
        ),
    ),
}

# Invented categories share these shapes but get their own pseudo-word vocabulary.
_INVENTED_TEMPLATES = (
    "The {adj} {noun} {verb} the {noun} near {place}.",
    "{person} {verb} a {adj} {noun} in {num:2..90} days.",
    "Every {weekday}, the {noun} of {topic} {verb} the {adj} {noun}.",
    "{Topic} is known for its {adj} {noun} and {adj} {noun}.",
    "Nobody in {place} {verb} the {noun} before {num:1800..2024}.",
    "A {noun} {verb} the {noun}, and the {noun} became {adj}.",
    "There are {num:2..400} {unit} of {noun} in {topic}.",
    "{person} says the {noun} is {adj} this {month}.",
    "When the {noun} {verb}, the {adj} {noun} {verb} too.",
    "Most {unit} in {place} are {adj}.",
)
_INVENTED_TITLES = ("The {adj} {noun} of {topic}", "{topic} and the {noun}", "{person} on {topic}")


def _invented_spec(name: str) -> CategorySpec:
    """A category with pseudo-word vocabulary derived from its name (stable across runs and machines)."""
    sampler = Sampler(np.random.default_rng(zlib.crc32(name.encode())))
    syllables = _invented_syllables(sampler)
    pool = _coin_pool(sampler, syllables, 93)
    return CategorySpec(
        name=name,
        syllables=syllables,
        nouns=pool[:40],
        verbs=tuple(w + "ed" for w in pool[40:65]),
        adjs=tuple(w + "ish" for w in pool[65:85]),
        lists={"unit": tuple(w + "s" for w in pool[85:93])},
        generated={"topic": ("{Coined}", 40), "place": ("{Coined}", 30), "person": ("{Coined}", 30)},
        templates=_INVENTED_TEMPLATES,
        titles=_INVENTED_TITLES,
    )


def _invented_syllables(sampler: Sampler, count: int = 16) -> tuple[str, ...]:
    """Consonant-vowel(-consonant) syllables: pronounceable, so invented words still read like words."""
    onsets, vowels, codas = _words("b d f g k l m n p r s t v z sh th"), _words("a e i o u ai ou"), "nrslmk"
    syllables: dict[str, None] = {}
    while len(syllables) < count:
        coda = sampler.choice(codas) if sampler.uniform() < 0.4 else ""
        syllables[sampler.choice(onsets) + sampler.choice(vowels) + coda] = None
    return tuple(syllables)


def _coin(sampler: Sampler, syllables: Sequence[str]) -> str:
    return "".join(sampler.choice(syllables) for _ in range(sampler.integer(2, 3)))


def _coin_pool(
    sampler: Sampler, syllables: Sequence[str], size: int, avoid: frozenset[str] = frozenset()
) -> tuple[str, ...]:
    words: dict[str, None] = {}
    while len(words) < size:
        word = _coin(sampler, syllables)
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
        coined = _coin_pool(sampler, spec.syllables, size, avoid=taken)
        values = [pattern.replace("{Coined}", w.capitalize()).replace("{coined}", w) for w in coined]
        for list_name, words in spec.lists.items():
            values = [v.replace(f"{{{list_name}}}", sampler.choice(words)) for v in values]
        pools[pool_name] = tuple(dict.fromkeys(values))
    return pools


@cache
def grammar_for(category: str) -> CategoryGrammar:
    """The grammar of a category: built-in for recipes/sports/weather/science, invented for any other name."""
    spec = _BUILTIN_SPECS.get(category) or _invented_spec(category)
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


# ---------------------------------------------------------------------------------------------- boilerplate

# {site}, {org}, {email}, {year} are fixed per template; {date}, {count}, {ref}, {holder} vary per document.
_BOILERPLATE_BODIES = (
    (
        "Cookie Notice for {site}\n\n"
        "We use cookies and similar technologies to give you the best possible experience on {site}. "
        "Some cookies are necessary for the site to work, while others help us understand how visitors "
        "use our pages, remember your preferences, and show you content that may interest you. By "
        "clicking Accept All you agree to the storing of cookies on your device. You can change your "
        "choice at any time by visiting the Cookie Settings page linked at the bottom of every page. "
        "For more information about how {org} uses your data, please read our Privacy Policy or "
        "contact us at {email}. Necessary cookies cannot be switched off because the site would not "
        "work without them. Analytics cookies are only set if you allow them. This notice was last "
        "updated on {date}.\n\n"
        "Accept All | Reject All | Cookie Settings"
    ),
    (
        "Subscribe to the {org} newsletter\n\n"
        "Join {count} readers who get our best stories delivered to their inbox every week. We will "
        "never share your email address and you can unsubscribe at any time with a single click. Enter "
        "your email address below and press Subscribe to confirm.\n\n"
        "Home | News | Features | Reviews | Events | Shop | About Us | Contact | Careers | "
        "Advertise\n\n"
        "Follow {org} on social media for daily updates. Questions about your subscription? Write to "
        "{email} and our team will get back to you within two working days.\n\n"
        "Copyright {year} {org}. All rights reserved. Reproduction of any material on {site} without "
        "written permission is prohibited. Terms of Use | Privacy Policy | Accessibility | Sitemap"
    ),
    (
        "Permission notice\n\n"
        "Copyright (c) {holder} and the {org} contributors.\n\n"
        "Permission is hereby granted, free of charge, to any person obtaining a copy of this software "
        "and associated documentation files, to deal in the software without restriction, including "
        "without limitation the rights to use, copy, modify, merge, publish, distribute, sublicense, "
        "and sell copies of the software, and to permit persons to whom the software is furnished to "
        "do so, subject to the following conditions. The above copyright notice and this permission "
        "notice shall be included in all copies or substantial portions of the software. The software "
        "is provided as is, without warranty of any kind, express or implied, including but not "
        "limited to the warranties of merchantability, fitness for a particular purpose and "
        "noninfringement. In no event shall the authors or copyright holders be liable for any claim, "
        "damages or other liability, whether in an action of contract, tort or otherwise, arising "
        "from, out of or in connection with the software or the use or other dealings in the software."
    ),
    (
        "Terms of Use\n\n"
        "These terms were last revised on {date}. By accessing or using {site} you agree to be bound "
        "by these terms and by our Privacy Policy. If you do not agree, please do not use the site. "
        "{org} may change these terms at any time, and the revised terms take effect as soon as they "
        "are posted. You are responsible for keeping your account details confidential and for all "
        "activity that happens under your account. You may not copy, resell or exploit any part of the "
        "service without our express written permission. The service is provided on an as available "
        "basis and we do not promise that it will be uninterrupted or free of errors. To the extent "
        "permitted by law, {org} is not liable for any indirect or consequential loss. These terms are "
        "governed by the laws of the country in which {org} is registered. Questions about these terms "
        "can be sent to {email}."
    ),
    (
        "Your data request\n\n"
        "Thank you for contacting {org}. We have received your request to access the personal data we "
        "hold about you and have given it the reference number {ref}. Under data protection law we "
        "must respond within one month of receiving your request, although we may extend this period "
        "if your request is complex. To protect your privacy we may ask you to confirm your identity "
        "before we release any information. You have the right to ask us to correct data that is "
        "wrong, to delete data we no longer need, and to object to certain kinds of processing. If you "
        "are not satisfied with our answer you can complain to your local data protection authority. "
        "Please quote your reference number in any reply to {email}. This message was sent "
        "automatically, so please do not reply to it directly."
    ),
    (
        "Page not found\n\n"
        "Sorry, we could not find the page you were looking for on {site}. It may have been moved, "
        "renamed or deleted, or the link you followed may be broken. Please check the address for "
        "typing mistakes, or use the search box below to find what you need. You can also return to "
        "the home page or browse our most popular sections from the menu.\n\n"
        "Home | Latest | Popular | Archive | Search | Help | Contact\n\n"
        "Error reference {ref} logged on {date}. If the problem continues, write to {email} and quote "
        "the error reference.\n\n"
        "Copyright {year} {org}. All rights reserved."
    ),
)
_ORG_WORDS = ("Media", "Labs", "Group", "Digital", "Press", "Systems", "Studio", "Network")
_SITE_SUFFIXES = (".com", ".net", ".org", ".io")
_BOILERPLATE_SYLLABLES = _words(
    "al ber cor dan el fen gal hil ion jor kel lum nor pel quin ros tev ul var wen"
)


def _boilerplate_template(template: int, seed: int) -> str:
    """Body `template` with its per-template fields (site, organisation, email, year) filled.

    There is one template per body, never two from the same body: those would differ only in a few names
    and be near duplicates of each other across groups, which would blur the ground truth.
    """
    sampler = Sampler(np.random.default_rng([seed, _BOILERPLATE_TEMPLATE, template]))
    name = _coin(sampler, _BOILERPLATE_SYLLABLES)
    site = name + sampler.choice(_SITE_SUFFIXES)
    fixed = {
        "site": site,
        "org": f"{name.capitalize()} {sampler.choice(_ORG_WORDS)}",
        "email": f"help@{site}",
        "year": str(sampler.integer(2008, 2024)),
    }
    body = _BOILERPLATE_BODIES[template]
    for key, value in fixed.items():
        body = body.replace("{" + key + "}", value)
    return body


def _render_boilerplate(template_text: str, rng: np.random.Generator) -> str:
    """One instance: the per-document fields are single tokens, as in real notices (a date, an id)."""
    sampler = Sampler(rng)
    variable = {
        "date": f"{sampler.integer(2015, 2024)}-{sampler.integer(1, 12):02d}-{sampler.integer(1, 28):02d}",
        "count": f"{sampler.integer(1000, 250000):,}",
        "ref": f"REF-{sampler.integer(100000, 999999)}",
        "holder": f"{sampler.integer(2010, 2024)} {_coin(sampler, _BOILERPLATE_SYLLABLES).capitalize()}",
    }
    for key, value in variable.items():
        template_text = template_text.replace("{" + key + "}", value)
    return template_text


# ------------------------------------------------------------------------------------- near duplicates


def _edit_words(text: str, edit_rate: float, replacements: Sequence[str], rng: np.random.Generator) -> str:
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


def word_shingles(text: str, n: int = SHINGLE_WORDS) -> set[tuple[str, ...]]:
    """Word n-grams of the lowercased, whitespace-split text (a shorter text is one shingle)."""
    words = text.lower().split()
    if len(words) < n:
        return {tuple(words)} if words else set()
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def shingle_jaccard(a: str, b: str, n: int = SHINGLE_WORDS) -> float:
    """Jaccard similarity of the two texts' word n-gram sets: what a MinHash detector estimates."""
    sa, sb = word_shingles(a, n), word_shingles(b, n)
    if not sa and not sb:
        return 1.0
    return len(sa & sb) / len(sa | sb)


# ---------------------------------------------------------------------------------------------- corpus layout


class PlannedDocument(NamedTuple):
    """One document of the corpus before its text exists.

    `number` indexes the document within its kind (original i, near dup k, boilerplate k); `source` is
    the original index a duplicate copies, or the template of a boilerplate document (-1 for originals).
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
    rng = np.random.default_rng([seed, _LAYOUT])
    names = cfg.category_names
    originals = _plan_originals(cfg, rng, names)
    exact = _plan_exact(cfg, rng, originals)
    near = _plan_near(cfg, rng, originals)
    boilerplate = _plan_boilerplate(cfg, rng)
    documents = originals + exact + near + boilerplate
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


def _group_key(doc: PlannedDocument) -> tuple[str, int]:
    if doc.kind == "boilerplate":
        return ("template", doc.source)
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


# ---------------------------------------------------------------------------------------------- generation


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
                np.random.default_rng([seed, _ORIGINAL, doc.number]), doc.target_words
            )
            if pending[doc.number]:
                texts[doc.number] = text
            yield Document(doc_id, text, _metadata(doc, None, None))
        elif doc.kind == "boilerplate":
            yield _boilerplate_document(doc_id, doc, seed, representatives)
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
    text = _edit_words(
        source_text, doc.edit_rate, replacements, np.random.default_rng([seed, _NEAR_EDIT, doc.number])
    )
    return Document(doc_id, text, _metadata(doc, source_id, shingle_jaccard(text, source_text)))


def _boilerplate_document(
    doc_id: str, doc: PlannedDocument, seed: int, representatives: dict[int, str]
) -> Document:
    """truth_jaccard of boilerplate is measured against the template's first document (its kept copy)."""
    template_text = _boilerplate_template(doc.source, seed)
    text = _render_boilerplate(
        template_text, np.random.default_rng([seed, _BOILERPLATE_INSTANCE, doc.number])
    )
    first = representatives.setdefault(doc.source, text)
    return Document(doc_id, text, _metadata(doc, boilerplate_group(doc.source), shingle_jaccard(text, first)))


def boilerplate_group(template: int) -> str:
    """The `truth_source` shared by every document rendered from one boilerplate template."""
    return f"boilerplate-{template:02d}"


# ---------------------------------------------------------------------------------------------- ground truth


class TruthRecord(NamedTuple):
    """The ground truth of one document, without its text."""

    id: str
    truth_kind: str
    truth_source: str | None
    edit_rate: float = 0.0
    truth_jaccard: float | None = None


def truth_records(docs: Iterable[Any]) -> Iterator[TruthRecord]:
    """Normalise documents or rows into TruthRecords, skipping those with no ground truth (e.g. canaries).

    Accepts `Document`s, `(id, metadata)` pairs, `(id, truth_kind, truth_source[, edit_rate,
    truth_jaccard])` tuples and TruthRecords.
    """
    for item in docs:
        record = _as_record(item)
        if record is not None:
            yield record


def _as_record(item: Any) -> TruthRecord | None:
    if isinstance(item, TruthRecord):
        return item
    if isinstance(item, Document):
        item = (item.id, item.metadata)
    if len(item) == 2 and isinstance(item[1], Mapping):
        meta = item[1]
        if meta.get("truth_kind") not in TRUTH_KINDS:
            return None
        return TruthRecord(
            item[0],
            meta["truth_kind"],
            meta.get("truth_source"),
            float(meta.get("edit_rate") or 0.0),
            meta.get("truth_jaccard"),
        )
    return TruthRecord(*item)


def _truth_group(record: TruthRecord) -> str:
    return record.id if record.truth_kind == "original" else str(record.truth_source)


def truth_groups(records: Iterable[Any]) -> dict[str, list[str]]:
    """Planted duplicate groups (size >= 2): group key -> member ids, the one to keep first.

    A group is an original with its exact and near copies, or all boilerplate from one template. The
    member to keep is the original, or (a boilerplate group, or a split that holds no original) the
    smallest id, i.e. the earliest in corpus order.
    """
    members: dict[str, list[TruthRecord]] = defaultdict(list)
    for record in truth_records(records):
        members[_truth_group(record)].append(record)
    return {key: [r.id for r in _keep_first(group)] for key, group in members.items() if len(group) > 1}


def _keep_first(group: list[TruthRecord]) -> list[TruthRecord]:
    return sorted(group, key=lambda r: (r.truth_kind != "original", r.id))


def score_removals(
    removed_ids: Iterable[str], records: Iterable[Any], threshold: float = 0.85
) -> dict[str, Any]:
    """Grade a dedup recipe's removals against the planted duplicates among `records`.

    Each group should keep exactly one member. A removal is correct when another member of its group is
    kept; so a group may keep a copy instead of the original (the credit moves to the kept copy most
    similar to the original), but removing a whole group costs one wrong removal.

    - precision: correct removals / removals (None when nothing was removed).
    - recall: removed planted duplicates / planted duplicates a detector at `threshold` is *expected* to
      find: exact copies, and near-duplicate or boilerplate documents whose word 5-gram Jaccard with the
      kept member (`truth_jaccard`) is >= threshold. A 30%-edited copy has Jaccard ~0.2 and is not expected.
    - recall_all_planted: the same over every planted duplicate, whatever its Jaccard.
    - by_kind, by_edit_rate: per truth kind and per near-dup edit rate: planted, expected, recalled
      (removed, or standing in for a removed original), recall, recall_all_planted, mean_truth_jaccard.
    Records without ground truth (canaries, other sources) are ignored; `unknown_removed` counts their
    removals.
    """
    removed = set(removed_ids)
    groups: dict[str, list[TruthRecord]] = defaultdict(list)
    for record in truth_records(records):
        groups[_truth_group(record)].append(record)
    known = {r.id for group in groups.values() for r in group}
    credited: list[TruthRecord] = []  # planted duplicates counted as removed
    planted: list[TruthRecord] = []
    wrong = 0
    for group in groups.values():
        ordered = _keep_first(group)
        group_credit, group_wrong = _score_group(ordered, removed)
        credited += group_credit
        wrong += group_wrong
        planted += ordered[1:]
    return _summarise(removed, known, credited, planted, wrong, threshold)


def _score_group(group: list[TruthRecord], removed: set[str]) -> tuple[list[TruthRecord], int]:
    """(planted duplicates credited as removed, wrong removals) for one group, the member to keep first."""
    keeper, copies = group[0], group[1:]
    credit = [r for r in copies if r.id in removed]
    if keeper.id not in removed:
        return credit, 0
    kept = [r for r in copies if r.id not in removed]
    if not kept:
        return credit, 1  # the whole group is gone: one of its removals was wrong
    stand_in = max(kept, key=_similarity)  # the first most similar kept copy now plays the original
    return credit + [stand_in], 0


def _similarity(record: TruthRecord) -> float:
    if record.truth_kind == "exact_duplicate":
        return 1.0
    return record.truth_jaccard if record.truth_jaccard is not None else 0.0


def _expected(record: TruthRecord, threshold: float) -> bool:
    return _similarity(record) >= threshold


def _summarise(
    removed: set[str],
    known: set[str],
    credited: list[TruthRecord],
    planted: list[TruthRecord],
    wrong: int,
    threshold: float,
) -> dict[str, Any]:
    n_removed = len(removed & known)
    expected = [r for r in planted if _expected(r, threshold)]
    credited_ids = {r.id for r in credited}
    return {
        "threshold": threshold,
        "removed": n_removed,
        "correct_removals": n_removed - wrong,
        "wrong_removals": wrong,
        "unknown_removed": len(removed - known),
        "precision": _ratio(n_removed - wrong, n_removed),
        "planted": len(planted),
        "expected": len(expected),
        "recall": _ratio(sum(r.id in credited_ids for r in expected), len(expected)),
        "recall_all_planted": _ratio(len(credited), len(planted)),
        "by_kind": _breakdown(planted, credited_ids, threshold, lambda r: r.truth_kind),
        "by_edit_rate": _breakdown(
            [r for r in planted if r.truth_kind == "near_duplicate"],
            credited_ids,
            threshold,
            lambda r: f"{r.edit_rate:g}",
        ),
    }


def _breakdown(
    planted: list[TruthRecord], credited_ids: set[str], threshold: float, key: Any
) -> dict[str, Any]:
    buckets: dict[str, list[TruthRecord]] = defaultdict(list)
    for record in planted:
        buckets[key(record)].append(record)
    out = {}
    for name in sorted(buckets, key=lambda k: (_as_float(k), k)):
        group = buckets[name]
        expected = [r for r in group if _expected(r, threshold)]
        jaccards = [_similarity(r) for r in group]
        out[name] = {
            "planted": len(group),
            "expected": len(expected),
            "recalled": sum(r.id in credited_ids for r in group),
            "recall": _ratio(sum(r.id in credited_ids for r in expected), len(expected)),
            "recall_all_planted": _ratio(sum(r.id in credited_ids for r in group), len(group)),
            "mean_truth_jaccard": round(float(np.mean(jaccards)), 4),
        }
    return out


def _as_float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return float("inf")


def _ratio(numerator: int, denominator: int) -> float | None:
    """None, not 0 or 1, when undefined: a report should show "no removals", not a perfect score."""
    return numerator / denominator if denominator else None
