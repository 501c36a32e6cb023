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

Layout: `vocabulary` (the hand-written grammar data), `grammar` (a category's generator), `sampler`
(randomness), `boilerplate`, `generation` (the corpus plan and the documents, planted duplicates included),
`truth` (ground truth and `score_removals`), `config` (the knobs), `source` (the `synthetic` source
plug-in). Every public name is re-exported here.
"""

from corpuslab.sources.synthetic.boilerplate import BOILERPLATE_CATEGORY, boilerplate_group
from corpuslab.sources.synthetic.config import SyntheticConfig
from corpuslab.sources.synthetic.generation import PlannedDocument, generate, plan_corpus
from corpuslab.sources.synthetic.grammar import MARKOV_SLOTS, CategoryGrammar, DocState, category_names, grammar_for
from corpuslab.sources.synthetic.sampler import Sampler
from corpuslab.sources.synthetic.source import SyntheticSource
from corpuslab.sources.synthetic.truth import (
    SHINGLE_WORDS,
    TRUTH_KINDS,
    TruthRecord,
    score_removals,
    shingle_jaccard,
    truth_groups,
    truth_records,
    word_shingles,
)
from corpuslab.sources.synthetic.vocabulary import FUNCTION_WORDS, MONTHS, WEEKDAYS, CategorySpec

__all__ = [
    "BOILERPLATE_CATEGORY",
    "FUNCTION_WORDS",
    "MARKOV_SLOTS",
    "MONTHS",
    "SHINGLE_WORDS",
    "TRUTH_KINDS",
    "WEEKDAYS",
    "CategoryGrammar",
    "CategorySpec",
    "DocState",
    "PlannedDocument",
    "Sampler",
    "SyntheticConfig",
    "SyntheticSource",
    "TruthRecord",
    "boilerplate_group",
    "category_names",
    "generate",
    "grammar_for",
    "plan_corpus",
    "score_removals",
    "shingle_jaccard",
    "truth_groups",
    "truth_records",
    "word_shingles",
]
