"""The ingest's record of ids already written: a digest table that grows, answering as a set of the ids would."""

import random

from corpuslab.seen_ids import SeenIds


def test_seen_ids_answer_as_a_set_does_through_growth():
    rng = random.Random(0)
    seen, reference = SeenIds(capacity=16), set()
    ids = [f"doc-{rng.randrange(3000)}" for _ in range(5000)] + ["", "caf\u00e9", "caf\u00e9", "\U0001f642", "a\udc80b"]
    for doc_id in ids:
        assert seen.add(doc_id) == (doc_id in reference)
        reference.add(doc_id)
    assert len(seen) == len(reference) and len(seen._table) >= len(reference) / 0.7  # grew past 16 slots
    assert all(doc_id in seen for doc_id in reference)
    assert "doc-3000" not in seen and "doc-1#1" not in seen
