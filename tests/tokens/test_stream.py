import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from corpuslab.errors import InputError
from corpuslab.tokens.stream import TokenStream, stream_paths, token_dtype, write_token_stream

EOS = 0


def _docs(seed: int = 0, n: int = 20, vocab: int = 50) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(1, vocab, size=rng.integers(0, 30)) for _ in range(n)]


def test_round_trip_from_a_generator(tmp_path):
    docs = _docs()
    meta = write_token_stream(tmp_path / "train", (d for d in docs), vocab_size=50, eos_id=EOS)
    stream = TokenStream.open(tmp_path / "train")

    assert meta == stream.meta
    assert stream.n_docs == len(docs)
    assert stream.n_tokens == sum(len(d) + 1 for d in docs)
    assert stream.tokens.dtype == np.uint16
    for i, doc in enumerate(docs):
        np.testing.assert_array_equal(stream.doc_slice(i), doc)
        assert stream.doc_slice(i, include_eos=True)[-1] == EOS
    np.testing.assert_array_equal(np.concatenate([np.append(d, EOS) for d in docs]), stream.tokens)
    assert stream.offsets.dtype == np.int64 and len(stream.offsets) == len(docs) + 1


def test_files_and_no_temp_left(tmp_path):
    write_token_stream(tmp_path / "val", _docs(), vocab_size=50, eos_id=EOS)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["val.bin", "val.idx.npy", "val.meta.json"]
    meta = json.loads((tmp_path / "val.meta.json").read_text())
    assert set(meta) >= {"dtype", "n_tokens", "n_docs"}


def test_dtype_follows_vocab_size(tmp_path):
    assert token_dtype(65535) == np.uint16 and token_dtype(65536) == np.uint32
    write_token_stream(tmp_path / "big", [np.array([70000, 5])], vocab_size=100_000, eos_id=99_999)
    stream = TokenStream.open(tmp_path / "big")
    assert stream.tokens.dtype == np.uint32
    np.testing.assert_array_equal(stream.tokens, [70000, 5, 99_999])


def test_out_of_range_ids_are_refused(tmp_path):
    with pytest.raises(ValueError, match="document 1"):
        write_token_stream(tmp_path / "bad", [np.array([1]), np.array([60])], vocab_size=50, eos_id=EOS)
    assert not stream_paths(tmp_path / "bad")[2].exists()  # no meta: nothing looks complete


def test_float_ids_are_refused(tmp_path):
    with pytest.raises(ValueError, match="integers"):
        write_token_stream(tmp_path / "bad", [np.array([1.5])], vocab_size=50, eos_id=EOS)


def test_incomplete_stream_is_not_opened(tmp_path):
    write_token_stream(tmp_path / "s", _docs(), vocab_size=50, eos_id=EOS)
    stream_paths(tmp_path / "s")[2].unlink()
    with pytest.raises(InputError, match="incomplete"):
        TokenStream.open(tmp_path / "s")


def test_truncated_bin_is_detected(tmp_path):
    write_token_stream(tmp_path / "s", _docs(), vocab_size=50, eos_id=EOS)
    bin_path = stream_paths(tmp_path / "s")[0]
    bin_path.write_bytes(bin_path.read_bytes()[:-2])
    with pytest.raises(InputError, match="bytes"):
        TokenStream.open(tmp_path / "s")


def test_windows_and_batches(tmp_path):
    write_token_stream(tmp_path / "s", [np.arange(1, 40)], vocab_size=50, eos_id=EOS)  # 40 tokens
    stream = TokenStream.open(tmp_path / "s")
    starts = stream.windows(chunk_len=8)
    np.testing.assert_array_equal(starts, [0, 8, 16, 24])  # 24 + 9 <= 40, 32 + 9 > 40
    assert len(stream.windows(8, stride=3)) == (40 - 9) // 3 + 1
    assert all(s + 9 <= stream.n_tokens for s in stream.windows(8, stride=5))
    inputs, targets = stream.batch(starts, 8)
    assert inputs.shape == targets.shape == (4, 8)
    np.testing.assert_array_equal(inputs[:, 1:].numpy(), targets[:, :-1].numpy())  # shift by one
    np.testing.assert_array_equal(inputs[1].numpy(), np.arange(9, 17))
    assert len(stream.windows(40)) == 0  # a window needs 41 tokens


def test_docs_within(tmp_path):
    docs = [np.ones(n, dtype=np.int32) for n in (4, 2, 5)]
    write_token_stream(tmp_path / "s", docs, vocab_size=50, eos_id=EOS)
    stream = TokenStream.open(tmp_path / "s")  # offsets 0, 5, 8, 14
    assert [stream.docs_within(m) for m in (4, 5, 13, 14, None)] == [0, 1, 2, 3, 3]


def test_empty_stream(tmp_path):
    write_token_stream(tmp_path / "e", [], vocab_size=50, eos_id=EOS)
    stream = TokenStream.open(tmp_path / "e")
    assert stream.n_tokens == 0 and stream.n_docs == 0 and len(stream.windows(4)) == 0


@settings(max_examples=25, deadline=None)
@given(st.lists(st.lists(st.integers(1, 299), max_size=12), max_size=8))
def test_round_trip_property(tmp_path_factory, docs):
    prefix = tmp_path_factory.mktemp("prop") / "s"
    write_token_stream(prefix, [np.array(d, dtype=np.int64) for d in docs], vocab_size=300, eos_id=EOS)
    stream = TokenStream.open(prefix)
    assert [stream.doc_slice(i).tolist() for i in range(stream.n_docs)] == docs
