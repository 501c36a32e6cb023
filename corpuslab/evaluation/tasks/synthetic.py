"""Downstream tasks for the built-in synthetic corpus, written by its own category grammars.

They let the default experiment (offline, synthetic data) report zero-shot task scores the same way a
real run reports LAMBADA and HellaSwag. Both are generated fresh from a seed, from random streams the
corpus never uses, so a passage is new text even though it speaks the training language (a short
sentence may still occur verbatim in training, as common sentences do on the web).

synthetic_cloze (LAMBADA-style, scored like lambada_openai: acc + perplexity of the last word).
    A passage of 2-6 sentences about one document's topic, cut right after the topic's name in a
    further sentence; the name is the target. The grammar fixes a document's topic (e.g. "Pota soup",
    "Marleyden Albion") and picks it from a pool of 40-60 coined names, so the local sentence does not
    tell which name comes ("Chef Grine first cooked ___"), but the passage does: it mentions the topic
    at least once. It measures in-context copying of a document-level entity over a long range, the
    skill LAMBADA probes. Fields: text (the harness's LAMBADA field), category, target.

synthetic_choice (HellaSwag-style, acc and acc_norm).
    2-4 sentences of a document, then four candidate next sentences: the document's true next
    sentence and three sentences from documents of other categories (of the same category, but about
    another topic and people, when there is only one category). It measures whether the model
    tells an on-topic continuation from an off-topic one, i.e. how well it learned each category's
    language and stays in it. Fields: query, choices, label (the harness's processed HellaSwag
    fields), category.
"""

from __future__ import annotations

import zlib
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from corpuslab.sources.synthetic import Sampler, grammar_for

DEFAULT_SIZE = 1000  # examples generated when a synthetic task's sample count is None
CLOZE_CONTEXT_SENTENCES = (2, 6)  # the passage before the cloze sentence: at least, at most
CHOICE_CONTEXT_SENTENCES = (2, 4)
N_CHOICES = 4
_MAX_SENTENCES = 500  # a topic name turns up every few sentences; this bound is never reached
_PUNCTUATION = ".,;:!?"
# Streams of their own: the corpus draws from np.random.default_rng([seed, 0..4, number]).
_CLOZE_STREAM = zlib.crc32(b"synthetic_cloze")
_CHOICE_STREAM = zlib.crc32(b"synthetic_choice")


def cloze_docs(categories: Sequence[str], n: int, seed: int) -> list[dict[str, Any]]:
    """n cloze passages, categories in turn; deterministic in (categories, n, seed)."""
    return [cloze_doc(categories[i % len(categories)], _rng(seed, _CLOZE_STREAM, i)) for i in range(n)]


def choice_docs(categories: Sequence[str], n: int, seed: int) -> list[dict[str, Any]]:
    """n multiple-choice items, categories in turn; deterministic in (categories, n, seed)."""
    return [
        choice_doc(categories[i % len(categories)], categories, _rng(seed, _CHOICE_STREAM, i))
        for i in range(n)
    ]


def _rng(seed: int, stream: int, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, stream, index])


def cloze_doc(category: str, rng: np.random.Generator) -> dict[str, Any]:
    sampler = Sampler(rng)
    grammar = grammar_for(category)
    state = grammar.new_state(sampler)
    target = state.topic.split(" ")[0]  # the coined part of the name ("Pota" of "Pota soup")
    least, most = CLOZE_CONTEXT_SENTENCES
    window: deque[str] = deque(maxlen=most)
    for _ in range(_MAX_SENTENCES):
        sentence = grammar.sentence(sampler, state)
        words = sentence.split(" ")
        position = _word_position(words, target)
        if position is not None and len(window) >= least and _mentions(window, target):
            text = " ".join([*window, *words[:position], target])
            return {"text": text, "category": category, "target": target}
        window.append(sentence)
    raise RuntimeError(f"category {category!r}: no sentence names the topic {target!r}")


def _word_position(words: Sequence[str], target: str) -> int | None:
    return next((i for i, word in enumerate(words) if word.rstrip(_PUNCTUATION) == target), None)


def _mentions(sentences: Iterable[str], target: str) -> bool:
    return any(_word_position(sentence.split(" "), target) is not None for sentence in sentences)


def choice_doc(category: str, categories: Sequence[str], rng: np.random.Generator) -> dict[str, Any]:
    sampler = Sampler(rng)
    grammar = grammar_for(category)
    state = grammar.new_state(sampler)
    context = [grammar.sentence(sampler, state) for _ in range(sampler.integer(*CHOICE_CONTEXT_SENTENCES))]
    true_next = grammar.sentence(sampler, state)
    others = [c for c in categories if c != category] or [category]
    distractors = [_sentence_of_new_document(sampler.choice(others), sampler) for _ in range(N_CHOICES - 1)]
    label = sampler.index(N_CHOICES)
    choices = distractors[:label] + [true_next] + distractors[label:]
    return {"query": " ".join(context), "choices": choices, "label": label, "category": category}


def _sentence_of_new_document(category: str, sampler: Sampler) -> str:
    grammar = grammar_for(category)
    return grammar.sentence(sampler, grammar.new_state(sampler))
