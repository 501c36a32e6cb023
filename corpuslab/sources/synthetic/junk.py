"""Junk-like documents a person would exclude when reading clusters (MiniPile's excluded clusters), with
ground truth: navigation-bar pages, product-specification lists, long lists of named entities and
near-duplicate farms. Off by default (`SyntheticConfig.junk.fraction` 0); `configs/minipile.yaml` turns it on.

Each kind has its own category, `junk_<kind>`, so the cluster stage (which records a document's category)
can grade exclusion per kind, and metadata `truth_kind: junk`, `junk_kind: <kind>`. A farm's documents share
`truth_source: junk-farm-<n>`; every other junk document is its own source. Unlike boilerplate, which is a few
fixed templates, every junk document is rendered afresh: a page of the same shape, not a copy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from corpuslab.schema import require, require_int
from corpuslab.sources.synthetic.grammar import coin
from corpuslab.sources.synthetic.sampler import Sampler
from corpuslab.sources.synthetic.truth import SHINGLE_WORDS
from corpuslab.sources.synthetic.vocabulary import split_words

JUNK_KINDS = ("navigation", "product_specs", "entity_list", "near_dup_farm")
JUNK_PREFIX = "junk_"  # category of a junk document: junk_<kind>

_SYLLABLES = split_words("ka lo mi ra ven tor sel an dre fu gar hol is jen kor lin mar nel os pra quo rus")
_NAV_ITEMS = split_words(
    "Home News Sport Weather Shop Deals Blog About Contact Careers Help FAQ Login Register Account Cart Checkout "
    "Wishlist Stores Gifts Sale Brands Offers Support Returns Delivery Sitemap Privacy Terms Cookies Press Events "
    "Jobs Partners Investors Community Forum Videos Podcasts Newsletter Search Archive Tags Categories Popular Latest"
)
_NAV_LINES = (
    "Skip to main content", "Sign in | Register", "Back to top", "Menu", "Search this site",
    "You are here:", "Follow us:", "Share this page:", "Language: English | Deutsch | Francais | Espanol",
)
_SPEC_KEYS = (
    ("Model", "model"), ("SKU", "sku"), ("Weight", "kg"), ("Width", "cm"), ("Height", "cm"), ("Depth", "cm"),
    ("Colour", "colour"), ("Material", "material"), ("Power", "W"), ("Voltage", "V"), ("Battery", "mAh"),
    ("Capacity", "L"), ("Warranty", "years"), ("Screen size", "in"), ("Storage", "GB"), ("Memory", "GB"),
    ("Noise level", "dB"), ("Operating temperature", "C"), ("Certification", "cert"), ("Country of origin", "country"),
    ("In the box", "box"), ("Connectivity", "conn"), ("Finish", "finish"), ("Rating", "stars"),
)
_VALUES = {
    "colour": split_words("black white silver grey red blue green graphite champagne navy"),
    "material": split_words("aluminium steel plastic ABS glass oak bamboo polycarbonate nylon ceramic"),
    "cert": split_words("CE FCC RoHS UL ETL IP54 IP67 EnergyStar"),
    "country": split_words("China Germany Vietnam Mexico Poland Taiwan Italy Japan"),
    "box": ("unit, manual", "unit, cable, manual", "unit, charger, case", "unit, adapter, two screws"),
    "conn": ("USB-C", "Bluetooth 5.3", "Wi-Fi 6", "USB-C, Bluetooth 5.0", "HDMI, USB-A"),
    "finish": split_words("matte gloss brushed satin textured"),
}
_ENTITY_HEADERS = ("Players", "Authors", "Cities", "Companies", "Members", "Speakers", "Attendees", "Sponsors", "Winners")
_FARM_PRODUCTS = split_words("loans insurance hosting watches sneakers supplements vpn casino followers tickets")
_FARM_TEXT = (
    "Best cheap {product} in {city} today. Looking for {product} in {city}? Our {product} deals in {city} are the "
    "best {product} offers you will find online. Compare {product} prices in {city} and save up to {pct} percent "
    "on {product} now. Top rated {product} {city}, cheap {product} {city}, discount {product} near me, {product} "
    "{city} reviews. Click here to get the best {product} in {city} with free delivery and the lowest price "
    "guaranteed. Thousands of happy customers in {city} trust our {product}. Order {product} online in {city} "
    "today and get a bonus. {product} {city} {product} {city} best {product} deals."
)


@dataclass(frozen=True)
class JunkConfig:
    """Junk-like documents with ground truth (off by default).

    fraction: junk documents, as a fraction of `num_docs`, spread evenly over `kinds`.
    kinds: which of navigation, product_specs, entity_list, near_dup_farm.
    farms: how many near-duplicate farms share the near_dup_farm documents (each farm one spam page with a
        few words changed per copy).
    farm_edit_rate: word edit rate of a farm copy (as `near_dup_edit_rates`).
    """

    fraction: float = 0.0
    kinds: tuple[str, ...] = JUNK_KINDS
    farms: int = 2
    farm_edit_rate: float = 0.03

    def __post_init__(self) -> None:
        if isinstance(self.kinds, list):
            object.__setattr__(self, "kinds", tuple(self.kinds))

    def validate(self, prefix: str) -> None:
        fraction = self.fraction
        require(isinstance(fraction, (int, float)) and not isinstance(fraction, bool) and 0 <= fraction <= 1,
                f"{prefix}.fraction", fraction, "a fraction in [0, 1]")
        require(isinstance(self.kinds, tuple) and len(self.kinds) >= 1 and len(set(self.kinds)) == len(self.kinds),
                f"{prefix}.kinds", self.kinds, f"a non-empty list of distinct kinds from {list(JUNK_KINDS)}")
        for i, kind in enumerate(self.kinds):
            require(kind in JUNK_KINDS, f"{prefix}.kinds[{i}]", kind, f"one of {list(JUNK_KINDS)}")
        require_int(self.farms, f"{prefix}.farms", 1)
        rate = self.farm_edit_rate
        require(isinstance(rate, (int, float)) and not isinstance(rate, bool) and 0 <= rate < 1,
                f"{prefix}.farm_edit_rate", rate, "an edit rate in [0, 1)")

    @property
    def enabled(self) -> bool:
        return self.fraction > 0


def junk_category(kind: str) -> str:
    return JUNK_PREFIX + kind


def is_junk_category(category: object) -> bool:
    return isinstance(category, str) and category.startswith(JUNK_PREFIX) and category[len(JUNK_PREFIX):] in JUNK_KINDS


def render_junk(kind: str, words: int, rng: np.random.Generator) -> str:
    """One junk document of about `words` words (at least enough for a few shingles)."""
    sampler = Sampler(rng)
    words = max(words, SHINGLE_WORDS * 4)
    return {"navigation": _navigation, "product_specs": _product_specs, "entity_list": _entity_list}[kind](sampler, words)


def _site(sampler: Sampler) -> str:
    return coin(sampler, _SYLLABLES).capitalize()


def _navigation(sampler: Sampler, words: int) -> str:
    site = _site(sampler)
    lines = [sampler.choice(_NAV_LINES), f"{site} | " + " | ".join(sampler.choice(_NAV_ITEMS) for _ in range(6))]
    count = sum(len(line.split()) for line in lines)
    while count < words:
        if sampler.uniform() < 0.3:
            line = " > ".join(["Home"] + [sampler.choice(_NAV_ITEMS) for _ in range(sampler.integer(1, 3))])
        elif sampler.uniform() < 0.3:
            line = sampler.choice(_NAV_LINES)
        else:
            line = " | ".join(sampler.choice(_NAV_ITEMS) for _ in range(sampler.integer(4, 9)))
        lines.append(line)
        count += len(line.split())
    lines.append(f"(c) {sampler.integer(2009, 2024)} {site}. All rights reserved.")
    return "\n".join(lines)


def _spec_value(sampler: Sampler, unit: str) -> str:
    if unit in _VALUES:
        return sampler.choice(_VALUES[unit])
    if unit == "model":
        return f"{coin(sampler, _SYLLABLES).upper()[:3]}-{sampler.integer(100, 9999)}"
    if unit == "sku":
        return f"{sampler.integer(10000000, 99999999)}"
    if unit == "stars":
        return f"{sampler.integer(10, 50) / 10:.1f} out of 5"
    return f"{sampler.integer(1, 500) / 10:g} {unit}"


def _product_specs(sampler: Sampler, words: int) -> str:
    name = f"{_site(sampler)} {coin(sampler, _SYLLABLES).capitalize()} {sampler.integer(2, 9)}00"
    lines = [f"{name} - Technical specifications"]
    count = len(lines[0].split())
    while count < words:
        key, unit = _SPEC_KEYS[sampler.index(len(_SPEC_KEYS))]
        line = f"{key}: {_spec_value(sampler, unit)}"
        lines.append(line)
        count += len(line.split())
    return "\n".join(lines)


def _entity_list(sampler: Sampler, words: int) -> str:
    lines, count = [], 0
    while count < words:
        header = sampler.choice(_ENTITY_HEADERS)
        names = [f"{coin(sampler, _SYLLABLES).capitalize()} {coin(sampler, _SYLLABLES).capitalize()}"
                 for _ in range(sampler.integer(8, 20))]
        line = f"{header}: " + ", ".join(names) + "."
        lines.append(line)
        count += len(line.split())
    return "\n".join(lines)


def farm_page(farm: int, seed: int, stream: int) -> str:
    """The spam page a farm copies: one product and city per farm."""
    sampler = Sampler(np.random.default_rng([seed, stream, farm]))
    city = coin(sampler, _SYLLABLES).capitalize() + sampler.choice(("ville", "burg", "ton", " City"))
    return _FARM_TEXT.format(product=_FARM_PRODUCTS[farm % len(_FARM_PRODUCTS)], city=city, pct=sampler.integer(20, 80))
