"""Grammar data: the hand-written words, pseudo-word syllables and sentence templates of each category.

Data only; `grammar` turns a `CategorySpec` into a generator. Editing a word or template here changes
every synthetic corpus made with that category, so bump `SyntheticSource.version` when you do.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

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


def split_words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


BUILTIN_SPECS: dict[str, CategorySpec] = {
    "recipes": CategorySpec(
        name="recipes",
        syllables=split_words("va lo ri cci ne ta mo bel san gri po let ra zo fi"),
        nouns=split_words(
            "flour butter garlic onion pepper salt sugar cream tomato basil lemon rice noodles broth "
            "carrot potato honey vinegar mustard ginger cinnamon yogurt cheese spinach mushroom shallot "
            "thyme parsley dough batter sauce skillet pan bowl lid crust glaze stock chickpeas lentils"
        ),
        verbs=split_words(
            "chop stir whisk simmer bake roast fold knead drizzle season slice dice mince sear grate "
            "toss blend melt braise marinate garnish pour sprinkle reduce strain baste"
        ),
        adjs=split_words(
            "golden crisp tender fragrant creamy smoky tangy fluffy silky hearty savory sweet fresh "
            "toasted glossy rustic zesty buttery caramelised peppery"
        ),
        lists={
            "unit": split_words("grams cups tablespoons teaspoons ounces cloves pinches handfuls"),
            "dish": split_words("stew pie soup salad curry tart loaf risotto casserole dumplings pancakes gratin"),
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
        syllables=split_words("brad ford ham ton kirk wel ash bury mar den stow ley crom hurst"),
        nouns=split_words(
            "striker keeper goal match season league coach pitch referee penalty corner midfield "
            "defender captain trophy fixture derby crowd stadium header tackle whistle halftime squad "
            "transfer injury playoff final rebound sprint winger offside equaliser dugout bench scoreline"
        ),
        verbs=split_words(
            "scored defended tackled passed blocked dribbled struck saved celebrated clinched trailed "
            "pressed conceded rallied substituted crossed volleyed chipped converted fumbled "
            "intercepted booked headed squandered"
        ),
        adjs=split_words(
            "late stunning narrow dominant nervy clinical relentless young veteran fierce dramatic "
            "disallowed decisive scrappy brilliant tired physical tactical rapid costly"
        ),
        lists={"suffix": split_words("United Rovers City Athletic Wanderers Albion Town Harriers")},
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
        syllables=split_words("hol vik sund berg ny lund strand fjel ask tor dal mark ho rin"),
        nouns=split_words(
            "rain drizzle front breeze cloud fog frost gust humidity pressure storm thunder sunshine "
            "snow sleet hail forecast coast valley ridge wind shower haze dew visibility squall "
            "drought flurry heatwave lightning system trough airmass"
        ),
        verbs=split_words(
            "moves drifts clears lingers builds eases spreads sweeps develops settles strengthens "
            "weakens arrives retreats brings turns stalls deepens returns fades persists intensifies"
        ),
        adjs=split_words(
            "cool mild humid chilly breezy overcast gusty scattered heavy light patchy bright damp "
            "freezing dry unsettled calm muggy crisp stormy"
        ),
        lists={
            "daypart": split_words("morning afternoon evening night"),
            "suffix": split_words("by holm wick stad ford haven"),
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
        syllables=split_words("thio meth oxy carb phen cyan lyso zir tetra hydro bor sil xan pyr"),
        nouns=split_words(
            "protein enzyme sample cell membrane molecule reaction catalyst genome neuron solvent "
            "crystal isotope receptor bacteria spectrum particle compound tissue mutation signal lattice "
            "gradient electrode assay peptide ligand polymer substrate culture antibody residue nucleus "
            "filament"
        ),
        verbs=split_words(
            "measured observed synthesised isolated detected quantified inhibited bound catalysed "
            "expressed cleaved stabilised modelled sequenced tested characterised purified labelled "
            "imaged cultured suppressed activated"
        ),
        adjs=split_words(
            "stable novel significant thermal synthetic soluble magnetic cellular reactive binary dense "
            "robust faint acidic neutral elevated transient crystalline hydrophobic conserved"
        ),
        lists={"unit": split_words("samples replicates wells plates"), "suffix": split_words("ase ine ol ium ide ate")},
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
INVENTED_TEMPLATES = (
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
INVENTED_TITLES = ("The {adj} {noun} of {topic}", "{topic} and the {noun}", "{person} on {topic}")

