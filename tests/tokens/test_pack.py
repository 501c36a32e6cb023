"""Streamed tokenization and packing write exactly what the per-document loops wrote."""

from __future__ import annotations

import random

import numpy as np
import pyarrow.parquet as pq
import pytest

from corpuslab.curation.decisions import Decision, DecisionWriter
from corpuslab.documents import Document
from corpuslab.shards import ShardWriter, read_documents
from corpuslab.tokens.pack import document_repeats, pack_documents, tokenize_documents
from corpuslab.tokens.stream import TokenStream, TokenStreamWriter, write_token_stream
from corpuslab.tokens.tokenizer import TokenizerConfig, build_tokenizer, encode_batch

WORDS = "the cat sat on a mat while über-café dogs ran — 東京 and 🙂 came too".split()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """700 documents in 3 shards (more than one encode batch each), some empty, some canaries."""
    rng = random.Random(0)
    folder = tmp_path_factory.mktemp("pack")
    docs = []
    for i in range(700):
        text = " ".join(rng.choice(WORDS) for _ in range(rng.randrange(0, 30)))
        meta = {"category": rng.choice(["a", "b", None])}
        if i >= 690:
            meta["canary"] = f"secret-{i}"
        elif i % 50 == 0:
            meta["canary"] = None  # a null canary key is not a canary
        docs.append(Document(f"doc-{i}", text, {k: v for k, v in meta.items() if k != "category" or v is not None}))
    with ShardWriter(folder / "docs", shard_docs=250) as writer:
        writer.write_all(docs)
    tokenizer = build_tokenizer(TokenizerConfig(kind="bytes"), [])
    return writer.paths, tokenizer, folder


def reference_tokenize(tokenizer, paths, prefix):
    """The per-document loop the streamed version replaced."""
    docs = list(read_documents(paths))
    arrays = [np.asarray(t, dtype=np.int64) for t in encode_batch(tokenizer, [d.text for d in docs])]
    write_token_stream(prefix, arrays, vocab_size=len(tokenizer), eos_id=tokenizer.eos_token_id)
    return docs


def test_tokenize_writes_the_same_stream_and_document_table(corpus, tmp_path):
    paths, tokenizer, _ = corpus
    summary = tokenize_documents(tokenizer, paths, tmp_path / "new" / "train")
    docs = reference_tokenize(tokenizer, paths, tmp_path / "old" / "train")
    for suffix in (".bin", ".idx.npy", ".meta.json"):
        assert (tmp_path / "new" / f"train{suffix}").read_bytes() == (tmp_path / "old" / f"train{suffix}").read_bytes()
    table = pq.read_table(tmp_path / "new" / "train.docs.parquet").to_pydict()
    assert table["id"] == [d.id for d in docs]
    assert table["bytes"] == [len(d.text.encode()) for d in docs]
    assert table["category"] == [d.category for d in docs]
    assert table["canary"] == [d.metadata.get("canary") is not None for d in docs]
    assert sum(table["canary"]) == 10
    assert summary == {"documents": 700, "tokens": TokenStream.open(tmp_path / "new" / "train").n_tokens,
                       "bytes": sum(table["bytes"])}


@pytest.mark.parametrize("canaries_kept", [False, True])
def test_pack_repeats_documents_as_the_decisions_say(corpus, tmp_path, canaries_kept):
    paths, tokenizer, _ = corpus
    tokenize_documents(tokenizer, paths, tmp_path / "train")
    stream = TokenStream.open(tmp_path / "train")
    docs = pq.read_table(tmp_path / "train.docs.parquet")
    ids, is_canary = docs.column("id").to_pylist(), docs.column("canary").to_pylist()
    rng = random.Random(1)
    decided = {}
    (tmp_path / "curate").mkdir()
    writer = DecisionWriter(tmp_path / "curate")
    for doc_id in ids[:650]:  # the last documents (the canaries among them) are not in the table
        roll = rng.random()
        decision = (Decision(doc_id, False, "near_duplicate") if roll < 0.2 else
                    Decision(doc_id, True, repeat=3) if roll < 0.3 else Decision(doc_id, True))
        decided[doc_id] = decision.times
        writer.write(decision)
    writer.close()
    keep = np.array(is_canary) if canaries_kept else None
    repeats = document_repeats(docs.column("id"), tmp_path / "curate", keep)
    meta = pack_documents(stream, repeats, tmp_path / "arm" / "train")
    order = [i for i, doc_id in enumerate(ids) for _ in range(1 if canaries_kept and is_canary[i] else decided.get(doc_id, 1))]
    write_token_stream(tmp_path / "ref" / "train", (stream.doc_slice(i) for i in order), stream.vocab_size, stream.eos_id)
    for suffix in (".bin", ".idx.npy", ".meta.json"):
        assert (tmp_path / "arm" / f"train{suffix}").read_bytes() == (tmp_path / "ref" / f"train{suffix}").read_bytes()
    assert 0 in repeats and 3 in repeats and meta["n_docs"] == len(order)


def test_copy_docs_crosses_block_boundaries(corpus, tmp_path):
    paths, tokenizer, _ = corpus
    tokenize_documents(tokenizer, paths, tmp_path / "train")
    stream = TokenStream.open(tmp_path / "train")
    order = np.random.default_rng(0).integers(0, stream.n_docs, size=300)
    with TokenStreamWriter(tmp_path / "copy", stream.vocab_size, stream.eos_id) as writer:
        writer.copy_docs(stream, order, block_tokens=7)  # blocks smaller than most documents
    copied = TokenStream.open(tmp_path / "copy")
    assert copied.n_docs == 300
    for k in (0, 1, 150, 299):
        np.testing.assert_array_equal(copied.doc_slice(k, include_eos=True), stream.doc_slice(int(order[k]), include_eos=True))


def test_a_bad_token_id_names_its_document_and_leaves_no_stream(tmp_path):
    with pytest.raises(ValueError, match="document 4: token ids must lie in"):
        with TokenStreamWriter(tmp_path / "bad", vocab_size=10, eos_id=9) as writer:
            writer.write_docs(np.array([1, 2, 3]), np.array([3]))
            writer.write_docs(np.array([1, 2, 3, 4, 12, 5]), np.array([2, 0, 1, 3]))
    assert list(tmp_path.iterdir()) == []
