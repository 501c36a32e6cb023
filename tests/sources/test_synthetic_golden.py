"""The synthetic corpus is byte-identical for the same config and seed, across refactors.

The reference hashes were computed from the code before `corpuslab/sources/synthetic.py` was split into a
package. A change here means every cached experiment and every published number made with the synthetic
corpus changes too: bump `SyntheticSource.version` and update the hashes only when that is intended.
"""

import hashlib
import json

import numpy as np

from corpuslab.sources.synthetic import SyntheticConfig, generate, grammar_for, score_removals

SMALL = SyntheticConfig(num_docs=120, words_per_doc=60, exact_dup_fraction=0.2, near_dup_fraction=0.25,
                        boilerplate_fraction=0.1, boilerplate_templates=3)
INVENTED = SyntheticConfig(num_docs=200, categories=6, words_per_doc=50, boilerplate_templates=6, shuffle=False)


def _digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def corpus_hash(cfg: SyntheticConfig, seed: int) -> str:
    lines = (json.dumps([d.id, d.text, d.metadata], sort_keys=True) + "\n" for d in generate(cfg, seed))
    return _digest("".join(lines).encode())


def test_small_corpus_is_unchanged():
    assert corpus_hash(SMALL, 3) == "d3a12e268acfa420290f59c2de3c028c"


def test_invented_categories_unshuffled_corpus_is_unchanged():
    assert corpus_hash(INVENTED, 11) == "0effae9b1f090c432d9c9deddd67a445"


def test_default_corpus_is_unchanged():
    assert corpus_hash(SyntheticConfig(), 0) == "00e99741bef740f303fdbfd30d2230d7"


def test_scores_are_unchanged():
    docs = list(generate(SMALL, 3))
    removed = {d.id for index, d in enumerate(docs) if index % 3 == 0}
    scores = score_removals(removed, ((d.id, d.metadata) for d in docs), threshold=0.8)
    assert _digest(json.dumps(scores, sort_keys=True, default=str).encode()) == "1f5d05b4309700706bbe98f49ab3ddef"


def test_grammar_of_an_invented_category_is_unchanged():
    grammar = grammar_for("topic7")
    text = "".join(grammar.document(np.random.default_rng(1), 80) for _ in range(3))
    assert _digest(text.encode()) == "10a6a48c508a81c99d719dc0fd491397"
