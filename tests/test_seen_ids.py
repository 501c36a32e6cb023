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


def reference_renames(ids: list[str]) -> list[str]:
    """What the ingest did with a Python set of the ids."""
    seen, renamed, out = set(), 0, []
    for doc_id in ids:
        if doc_id in seen:
            renamed += 1
            doc_id = f"{doc_id}#{renamed}"
        seen.add(doc_id)
        out.append(doc_id)
    return out


def test_documents_are_renamed_as_with_a_set_across_batches(monkeypatch):
    from corpuslab import seen_ids
    from corpuslab.documents import Document

    monkeypatch.setattr(seen_ids, "BATCH", 7)  # repeats within a batch and across batches
    rng = random.Random(1)
    ids = [f"d{rng.randrange(40)}" for _ in range(200)] + ["d1#1", "d1#1", "d3"]
    read = []

    def documents():
        for doc_id in ids:
            read.append(doc_id)
            yield Document(doc_id, "text", {"k": 1})

    seen = SeenIds(capacity=16)
    out = list(seen.documents(documents()))
    assert [doc.id for doc in out] == reference_renames(ids)
    assert seen.renamed == sum(a != b for a, b in zip(ids, reference_renames(ids))) and out[-1].metadata == {"k": 1}
    read.clear()
    capped = list(SeenIds().documents(documents(), max_docs=12))
    assert [doc.id for doc in capped] == reference_renames(ids)[:12] and len(read) == 12  # reads no further


def test_batch_digests_equal_single_ones():
    from corpuslab.seen_ids import _digest, _digests

    ids = ["a", "", "caf\u00e9", "x" * 300]
    assert _digests(ids).tolist() == [list(_digest(doc_id)) for doc_id in ids]
