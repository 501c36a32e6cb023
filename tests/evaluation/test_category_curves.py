"""The per-category in-context curve: context lengths by document and by window, means per category."""

import numpy as np
import pytest

from corpuslab.errors import ConfigError
from corpuslab.evaluation.category_curves import context_lengths, curves_by_category
from corpuslab.evaluation.losses import TokenLosses
from corpuslab.evaluation.metrics import build_metrics


def _losses(values, offsets, context):
    values = np.asarray(values, dtype=float)
    return TokenLosses(values, float(values.sum()), context, np.asarray(offsets))


def test_context_length_counts_own_document_tokens_in_view():
    # Documents of 3, 6 and 3 tokens (eos included); windows of 4 targets: [0..3] [4..7] [8..11].
    losses = _losses(np.zeros(12), [0, 3, 9, 12], context=4)
    assert context_lengths(losses, "window").tolist() == [1, 2, 3, 4] * 3
    # Token 3 starts document 2 (nothing of it in view); token 4 starts a window: it sees token 3 through
    # the window's first input, the previous token; token 9 starts document 3.
    assert context_lengths(losses, "document").tolist() == [0, 1, 2, 0, 1, 2, 3, 4, 1, 0, 1, 2]


def test_curves_are_means_per_category_and_overall():
    losses = _losses([1.0, 2.0, 3.0, 10.0, 20.0, 30.0], [0, 3, 6], context=3)
    curves = curves_by_category(losses, ["a", "b"], "document")
    assert curves["categories"]["a"] == [1.0, 2.0, 3.0, None]
    assert curves["categories"]["b"] == [10.0, 20.0, 30.0, None]
    assert curves["all"] == [5.5, 11.0, 16.5, None]
    by_window = curves_by_category(losses, ["a", None], "window")
    assert by_window["categories"]["uncategorized"] == [10.0, 20.0, 30.0]


def test_position_is_validated():
    with pytest.raises(ConfigError, match="position"):
        build_metrics([{"name": "category_context", "position": "sentence"}])
