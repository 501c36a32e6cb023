from corpuslab.documents import Document
from corpuslab.shards import ShardWriter, read_documents, shard_paths
from corpuslab.tokens.tokenizer import TokenizerConfig, build_tokenizer, encode_batch


def test_shards_round_trip_in_order_across_files(tmp_path):
    docs = [Document(f"d{i}", f"text {i} é", {"category": "c" if i % 2 else None, "x": i}) for i in range(2500)]
    with ShardWriter(tmp_path, shard_docs=1000) as writer:
        writer.write_all(docs)
    assert len(shard_paths(tmp_path)) == 3
    back = list(read_documents(shard_paths(tmp_path)))
    assert [d.id for d in back] == [d.id for d in docs]
    assert back[3].text == "text 3 é" and back[3].metadata == {"category": "c", "x": 3}
    assert back[2].category is None
    only_ids = list(read_documents(shard_paths(tmp_path), columns=["id"]))
    assert only_ids[10].id == "d10" and only_ids[10].text == ""


TEXTS = ["the cat sat on the mat. " * 5, "naïve café — 東京 🚀", "numbers 12345 and   spaces\n\nnewlines"] * 30


def test_bpe_round_trips_bytes_exactly(tmp_path):
    tok = build_tokenizer(TokenizerConfig(kind="bpe", vocab_size=300, min_frequency=1), TEXTS)
    assert len(tok) <= 300 and tok.eos_token_id is not None
    for text, ids in zip(TEXTS, encode_batch(tok, TEXTS)):
        assert tok.decode(ids) == text
    tok.save_pretrained(str(tmp_path))
    from corpuslab.tokens.tokenizer import load_tokenizer

    again = load_tokenizer(tmp_path)
    assert encode_batch(again, TEXTS[:3]) == encode_batch(tok, TEXTS[:3])


def test_bytes_tokenizer_is_one_token_per_byte():
    tok = build_tokenizer(TokenizerConfig(kind="bytes"), [])
    assert len(tok) == 257
    text = "naïve 東京"
    ids = encode_batch(tok, [text])[0]
    assert len(ids) == len(text.encode("utf-8"))
    assert tok.decode(ids) == text
