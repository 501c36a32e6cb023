"""Requests that share only the start of their inputs (WinoGrande's two contexts that differ after the blank, a
BLiMP pair of sentences alike up to the words they swap) run that prefix once and score as whole requests."""

import random

import pytest

from corpuslab.evaluation.tasks import HarnessEncoder, Request, loglikelihoods, scoring
from corpuslab.evaluation.tasks.scoring import _row, _share_prefixes, _start, _windows
from tests.evaluation.test_tasks_shared_context import one_thread_module, tiny_lm  # noqa: F401 (one_thread_module: a fixture)

CONTEXT = 96
TOLERANCE = 1e-5  # rounding only: the prefix's keys are reused, the rest runs in its own matmuls


pytestmark = pytest.mark.usefixtures("one_thread_module")


@pytest.fixture(scope="module")
def lm():
    return tiny_lm(corpus_seed=1)


def _sentences(texts: list[str], n: int, seed: int) -> list[list[str]]:
    """Sentences of 8 to 17 words drawn from the corpus's words: no two start alike by chance of the generator's templates."""
    rng = random.Random(seed)
    words = sorted({w for text in texts for w in text.split() if w.isalpha()})
    return [[rng.choice(words) for _ in range(8 + i)] for i in range(n)]


def _winogrande(texts: list[str]) -> list[Request]:
    """Partial scoring: the sentence up to the blank with each option as the context, the rest as the continuation."""
    requests = []
    for i, words in enumerate(_sentences(texts, 10, seed=0)):
        blank = 3 + i % 5
        options = (words[blank], words[-1])
        rest = " " + " ".join(words[blank + 1 :])
        requests += [Request(" ".join(words[:blank] + [option]), rest) for option in options]
    return requests


def _blimp(texts: list[str]) -> list[Request]:
    """Empty context; the good sentence and the bad one (two neighbouring words swapped at several depths)."""
    requests = []
    for i, good in enumerate(_sentences(texts, 10, seed=1)):
        j = 2 + i % (len(good) - 3)
        bad = good[:j] + [good[j + 1], good[j]] + good[j + 2 :]
        requests += [Request("", " ".join(good)), Request("", " ".join(bad))]
    return requests


def _requests(texts: list[str]) -> list[Request]:
    return _winogrande(texts) + _blimp(texts) + [Request(" ".join(texts[50].split()[:30]), " and the rest")]


def test_winogrande_and_blimp_pairs_share_a_prefix_with_predictions_inside_it(lm):
    model, tokenizer, texts = lm
    rows = [_row(i, e, CONTEXT) for i, e in enumerate(HarnessEncoder(tokenizer).encode_all(_requests(texts)))]
    shared, alone = _share_prefixes(rows)
    by_first = {group.rows[0].index: group for group in shared}
    for pair in range(10):
        wino = by_first[2 * pair]  # each WinoGrande pair is one group: its two contexts are not identical
        assert [row.index for row in wino.rows] == [2 * pair, 2 * pair + 1] and len(wino.prefix) >= 3
        assert all(len(wino.prefix) <= _start(row) for row in wino.rows)  # the prefix ends before the option
        blimp = by_first[20 + 2 * pair]
        assert [row.index for row in blimp.rows] == [20 + 2 * pair, 21 + 2 * pair]
        # The empty context is the prefix token: the sentences' first words are predicted inside the prefix.
        assert all(_start(row) == 0 for row in blimp.rows) and len(blimp.prefix) >= 3
    assert [row.index for row in alone] == [40]


def test_a_document_does_not_join_its_neighbour_on_a_chance_common_start(lm):
    model, tokenizer, texts = lm
    context = " ".join(texts[0].split()[:20])
    neighbour = " ".join(texts[0].split()[:2] + texts[1].split()[:18])
    requests = [Request(context, " " + w) for w in ("red", "green", "blue")] + [Request(neighbour, " " + w) for w in ("one", "two")]
    rows = [_row(i, e, CONTEXT) for i, e in enumerate(HarnessEncoder(tokenizer).encode_all(requests))]
    shared, alone = _share_prefixes(rows)
    assert sorted(tuple(row.index for row in g.rows) for g in shared) == [(0, 1, 2), (3, 4)] and not alone


@pytest.fixture(scope="module")
def whole(lm):
    """Each request whole and alone through the model's own forward (no GPT-2 runner)."""
    model, tokenizer, texts = lm
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(scoring, "_runner", lambda base, device: None)
        return loglikelihoods(model, tokenizer, _requests(texts), batch_size=1, share_contexts=False)


@pytest.mark.parametrize("batch_size", [1, 64])
def test_prefix_sharing_scores_as_whole_requests(lm, whole, batch_size):
    model, tokenizer, texts = lm
    got = loglikelihoods(model, tokenizer, _requests(texts), batch_size=batch_size)
    for (expected, expected_greedy), (ll, greedy) in zip(whole, got, strict=True):
        assert ll == pytest.approx(expected, abs=TOLERANCE) and greedy == expected_greedy


def test_windows_gather_caches_across_prefix_batches_and_fall_back_when_they_cannot(lm, whole, monkeypatch):
    """Batch 3: a window's prefixes run in several batches and its remainders gather caches from several of them.
    A cache that cannot be rebuilt by hand runs each packed batch on its own cache instead, with the same numbers.
    (The model's own forward: a GPT-2 stack otherwise runs packed rows through the runner, with no cache.)"""
    model, tokenizer, texts = lm
    rows = [_row(i, e, CONTEXT) for i, e in enumerate(HarnessEncoder(tokenizer).encode_all(_requests(texts)))]
    assert max(len(window) for window in _windows(_share_prefixes(rows)[0], 3)) > 3
    monkeypatch.setattr(scoring, "_runner", lambda base, device: None)
    for patch in (False, True):
        if patch:
            monkeypatch.setattr(scoring, "_kv_layers", lambda cache: None)
        got = loglikelihoods(model, tokenizer, _requests(texts), batch_size=3)
        assert [r[0] for r in got] == pytest.approx([r[0] for r in whole], abs=TOLERANCE)
        assert [r[1] for r in got] == [r[1] for r in whole]


def test_requests_run_whole_are_cut_where_their_lengths_fall(lm, monkeypatch):
    """Requests that share no prefix (LAMBADA passages, then short sentences) are batched longest first, cut where the
    lengths fall: the short ones are not padded to a long passage's width, and score as they do alone."""
    model, tokenizer, texts = lm
    long = [Request(" ".join(texts[i].split()[:50]), " " + texts[i].split()[50]) for i in range(3)]
    firsts = {}
    for word in sorted({w for text in texts for w in text.split() if w.isalpha() and len(w) > 2}):
        firsts.setdefault(word[:2], word)  # no two short contexts start with the same token
    rng = random.Random(2)
    short = [Request(" ".join([first] + rng.sample(sorted(firsts.values()), 3)), " " + first) for first in sorted(firsts.values())[:20]]
    requests = long + short
    rows = [_row(i, e, CONTEXT) for i, e in enumerate(HarnessEncoder(tokenizer).encode_all(requests))]
    shared, alone = _share_prefixes(rows)
    assert not shared and len(alone) == len(requests)
    run = []
    padded = scoring._padded
    monkeypatch.setattr(scoring, "_padded", lambda sequences: run.append(tuple(padded(sequences).shape)) or padded(sequences))
    got = loglikelihoods(model, tokenizer, requests, batch_size=32)  # the model's input batches, [rows, width]
    monkeypatch.undo()
    widths = sorted(len(row.inputs) for row in alone)
    assert run[0] == (len(long), widths[-1]) and sum(rows for rows, _ in run) == len(requests)  # the passages alone first
    assert all(width <= widths[len(short) - 1] for _, width in run[1:])  # then the short ones, as wide as the longest of them
    assert sum(rows * width for rows, width in run) < len(requests) * widths[-1] // 2  # one batch of 32 would run all at 96
    expected = loglikelihoods(model, tokenizer, requests, batch_size=1)
    assert [r[0] for r in got] == pytest.approx([r[0] for r in expected], abs=TOLERANCE)
    assert [r[1] for r in got] == [r[1] for r in expected]
