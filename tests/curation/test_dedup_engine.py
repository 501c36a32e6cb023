"""Duplicate detection engine: exact, near (MinHash + LSH + verification), cross-dataset.

Tiny corpora of ~100 documents in tmp_path Parquet shards; the expected answers come from a
pure-Python reference (sets of word 5-grams), never from the engine itself.
"""

from __future__ import annotations

import functools
import random
import unicodedata
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from corpuslab.curation.dedup.clusters import EXACT, NEAR
from corpuslab.curation.dedup.exact import find_exact_duplicates
from corpuslab.curation.dedup.minhash import MinHashConfig, batch_shingle_sets, batch_signatures, permutations
from corpuslab.curation.dedup.near import (
    find_cross_duplicates,
    find_exact_and_near_duplicates,
    find_near_duplicates,
)
from corpuslab.curation.dedup.normalize import NormalizeConfig, normalize, normalize_utf8
from corpuslab.errors import ConfigError, InputError
from corpuslab.executor import LocalExecutor, SerialExecutor

VOCAB = [f"w{i}" for i in range(3000)]
MASK = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15


# --- a pure-Python reference of the hashing (what minhash.py documents) ---------------------------------


def ref_fmix64(h: int) -> int:
    h ^= h >> 33
    h = (h * 0xFF51AFD7ED558CCD) & MASK
    h ^= h >> 33
    h = (h * 0xC4CEB9FE1A85EC53) & MASK
    return h ^ (h >> 33)


def ref_token_hash(token: bytes) -> int:
    state = tail = 0
    for count, byte in enumerate(token, 1):
        tail = ((tail << 8) | byte) & MASK
        if count % 8 == 0:
            state, tail = ((state ^ tail) * GOLDEN) & MASK, 0
    return ref_fmix64(state ^ (tail | ((len(token) << 56) & MASK)))


def ref_shingles(text: str, shingle: str, ngram: int) -> list[int]:
    tokens = [t.encode() for t in (text.split() if shingle == "word" else list(text))]
    hashes = [ref_token_hash(t) for t in tokens]
    width = min(ngram, len(hashes))
    out = []
    for k in range(len(hashes) - width + 1 if hashes else 0):
        h = 0
        for t in hashes[k : k + width]:
            h = (h * GOLDEN + t) & MASK
        out.append(ref_fmix64(h))
    return out


def ref_permutations(num_perm: int, seed: int) -> tuple[list[int], list[int]]:
    state, values = seed, []
    for _ in range(2 * num_perm):
        state = (state + GOLDEN) & MASK
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        values.append(z ^ (z >> 31))
    return values[0::2], values[1::2]


def ref_signature(text: str, cfg: MinHashConfig) -> list[int]:
    a, b = ref_permutations(cfg.num_perm, cfg.seed)
    shingles = ref_shingles(text, cfg.shingle, cfg.ngram)
    return [
        min((((ai * (s >> 32) + bi) & MASK) >> 32 for s in shingles), default=0xFFFFFFFF)
        for ai, bi in zip(a, b)
    ]


def ref_jaccard(x: str, y: str, ngram: int = 5) -> float:
    """Jaccard of word n-gram sets of the normalized texts, from Python sets of tuples."""

    def grams(text: str) -> set[tuple[str, ...]]:
        words = normalize(text, NormalizeConfig()).split()
        return {tuple(words)} if len(words) < ngram else set(zip(*(words[i:] for i in range(ngram))))

    a, b = grams(x), grams(y)
    return len(a & b) / len(a | b)


# --- corpus helpers -------------------------------------------------------------------------------------


def random_text(rng: random.Random, words: int = 100) -> str:
    return " ".join(rng.choice(VOCAB) for _ in range(words))


def edit(text: str, positions: list[int], rng: random.Random) -> str:
    """Replace the words at `positions` with words outside the vocabulary (so they never match)."""
    words = text.split()
    for p in positions:
        words[p] = f"edit{rng.randrange(10**9)}"
    return " ".join(words)


def write_shards(
    folder: Path, texts: list[str], ids: list[str] | None = None, per_shard: int = 50
) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    ids = ids or [f"d{i:03d}" for i in range(len(texts))]
    paths = []
    for n, start in enumerate(range(0, len(texts), per_shard)):
        path = folder / f"shard-{n}.parquet"
        table = pa.table(
            {
                "id": ids[start : start + per_shard],
                "text": texts[start : start + per_shard],
                "source": ["test"] * len(texts[start : start + per_shard]),
            }
        )
        pq.write_table(table, path, row_group_size=20)
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Path], list[str]]:
    """100 docs: random ones plus planted exact copies, a ~0.9 pair, a ~0.5 pair and an A~B~C chain."""
    rng = random.Random(0)
    texts = [random_text(rng) for _ in range(100)]
    texts[60] = "  " + texts[3].upper().replace(" ", "\n ") + "  "  # exact copy after normalization
    texts[80] = texts[3]  # and another
    texts[12] = edit(texts[5], [50], rng)  # J = 91/101 ~ 0.90
    texts[14] = edit(texts[6], list(range(4, 100, 8)), rng)  # ~0.5 or below
    texts[20] = random_text(rng)  # chain: A = 20, B = 21 ~ A, C = 22 ~ B, A !~ C
    texts[21] = edit(texts[20], [30], rng)
    texts[22] = edit(texts[21], [70], rng)
    texts[40] = ""  # empty docs never match
    texts[41] = "   \n "
    texts[42] = "short text"  # shorter than 5 words: one shingle, matches its copy
    texts[43] = "Short  TEXT"
    return write_shards(tmp_path_factory.mktemp("planted"), texts), texts


def by_id(result) -> dict:
    return {d.id: d for d in result.decisions}


# --- tests ----------------------------------------------------------------------------------------------


def test_reference_pairs_are_what_the_corpus_promises(planted):
    _, texts = planted
    assert 0.88 < ref_jaccard(texts[5], texts[12]) < 0.92
    assert ref_jaccard(texts[6], texts[14]) < 0.55
    assert ref_jaccard(texts[20], texts[21]) >= 0.85 and ref_jaccard(texts[21], texts[22]) >= 0.85
    assert ref_jaccard(texts[20], texts[22]) < 0.85


def test_exact_keeps_earliest_copy_and_drops_the_rest(planted):
    shards, _ = planted
    result = find_exact_duplicates(shards, NormalizeConfig(), SerialExecutor())
    decisions = by_id(result)
    assert decisions["d003"].kept and decisions["d003"].cluster_id == "d003"
    for copy in ("d060", "d080"):
        assert not decisions[copy].kept
        assert decisions[copy].reason == EXACT and decisions[copy].duplicate_of == "d003"
    assert decisions["d043"].duplicate_of == "d042"
    assert "d040" not in decisions and "d041" not in decisions  # empty docs are never matched
    assert result.stats["dropped_by_reason"] == {EXACT: 3}
    assert result.stats["docs_in"] == 100 and result.stats["empty_docs"] == 2


def test_near_finds_the_09_pair_and_not_the_05_pair(planted):
    shards, texts = planted
    decisions = by_id(find_near_duplicates(shards, MinHashConfig(), NormalizeConfig(), SerialExecutor()))
    assert decisions["d005"].kept
    assert decisions["d012"].reason == NEAR and decisions["d012"].duplicate_of == "d005"
    assert decisions["d012"].similarity == pytest.approx(ref_jaccard(texts[5], texts[12]))
    assert "d014" not in decisions and "d006" not in decisions


def test_clusters_grow_only_through_verified_pairs(planted):
    """A~B and B~C verified, A!~C: one cluster {A, B, C} keeping A; C points at B, its verified neighbour."""
    shards, texts = planted
    result = find_near_duplicates(shards, MinHashConfig(), NormalizeConfig(), SerialExecutor())
    decisions = by_id(result)
    a, b, c = decisions["d020"], decisions["d021"], decisions["d022"]
    assert a.kept and {b.cluster_id, c.cluster_id} == {"d020"}
    assert b.duplicate_of == "d020" and c.duplicate_of == "d021"
    verified = {(x, y) for x, y, _ in result.verified_pairs}
    assert ("d020", "d022") not in verified
    for d in result.decisions:  # every drop points at a document it was verified against
        if not d.kept:
            assert d.similarity >= 0.85
            assert ref_jaccard(texts[int(d.id[1:])], texts[int(d.duplicate_of[1:])]) == pytest.approx(
                d.similarity
            )


def test_verification_rejects_loose_candidates(planted):
    """128 bands of 1 row: any shared minimum makes a candidate; nothing below the threshold is dropped."""
    shards, texts = planted
    loose = MinHashConfig(num_perm=128, bands=128, rows=1)
    result = find_near_duplicates(shards, loose, NormalizeConfig(), SerialExecutor())
    assert result.stats["candidates_rejected_by_verification"] > 0
    for left, right, similarity in result.verified_pairs:
        assert similarity >= 0.85
        assert ref_jaccard(texts[int(left[1:])], texts[int(right[1:])]) == pytest.approx(similarity)
    assert "d014" not in by_id(result)


def test_excluded_ids_are_neither_indexed_nor_reported(planted):
    shards, _ = planted
    result = find_near_duplicates(
        shards, MinHashConfig(), NormalizeConfig(), SerialExecutor(), exclude_ids={"d005", "d060", "d080"}
    )
    decisions = by_id(result)
    assert "d012" not in decisions and "d005" not in decisions and "d060" not in decisions
    assert result.stats["docs_excluded"] == 3


def test_exact_then_near_recipe_in_one_scan(planted):
    shards, _ = planted
    decisions = by_id(
        find_exact_and_near_duplicates(shards, MinHashConfig(), NormalizeConfig(), SerialExecutor())
    )
    assert decisions["d060"].reason == EXACT and decisions["d060"].duplicate_of == "d003"
    assert decisions["d012"].reason == NEAR and decisions["d003"].kept


def test_same_decisions_with_serial_and_process_pool(planted):
    shards, _ = planted
    serial = find_near_duplicates(shards, MinHashConfig(), NormalizeConfig(), SerialExecutor())
    with LocalExecutor(2) as executor:
        pooled = find_near_duplicates(shards, MinHashConfig(), NormalizeConfig(), executor)
        pooled_exact = find_exact_duplicates(shards, NormalizeConfig(), executor)
    assert pooled.decisions == serial.decisions
    assert pooled.verified_pairs == serial.verified_pairs
    strip = lambda stats: {k: v for k, v in stats.items() if k != "runtime"}  # noqa: E731
    assert strip(pooled.stats) == strip(serial.stats)
    assert (
        pooled_exact.decisions == find_exact_duplicates(shards, NormalizeConfig(), SerialExecutor()).decisions
    )


def test_cross_duplicates_match_query_against_reference(tmp_path, planted):
    _, texts = planted
    rng = random.Random(1)
    reference = write_shards(tmp_path / "train", texts)
    queries = [texts[7].title(), edit(texts[9], [40], rng), random_text(rng), texts[3]]
    query = write_shards(tmp_path / "val", queries, ids=["q0", "q1", "q2", "q3"])
    matches = find_cross_duplicates(reference, query, MinHashConfig(), NormalizeConfig(), SerialExecutor())
    assert matches["q0"].reason == EXACT and matches["q0"].matched_id == "d007"
    assert matches["q1"].reason == NEAR and matches["q1"].matched_id == "d009"
    assert matches["q1"].jaccard == pytest.approx(ref_jaccard(queries[1], texts[9]))
    assert "q2" not in matches
    assert matches["q3"].matched_id == "d003"  # the earliest of the three copies
    exact_only = find_cross_duplicates(reference, query, MinHashConfig(), NormalizeConfig(), near=False)
    assert set(exact_only) == {"q0", "q3"}


@pytest.mark.parametrize("shingle,ngram", [("word", 5), ("char", 4), ("word", 3)])
def test_signatures_equal_the_pure_python_reference(shingle, ngram):
    cfg = MinHashConfig(shingle=shingle, ngram=ngram, num_perm=16, bands=4, rows=4, seed=7)
    texts = [
        "the quick brown fox jumps over the lazy dog again",
        "two words",
        "",
        "ünïcödé wörds ☃ and a verylongwordthatexceedseightbytes x",
        normalize("Ｆｕｌｌ width\u00a0and\u2003spaces", NormalizeConfig()),
    ]
    encoded = [t.encode() for t in texts]
    data = np.frombuffer(b"".join(encoded), dtype=np.uint8)
    offsets = np.concatenate([[0], np.cumsum([len(e) for e in encoded])]).astype(np.int64)
    signatures, counts = batch_signatures(data, offsets, cfg)
    for row, text in enumerate(texts):
        assert signatures[row].tolist() == ref_signature(text, cfg)
        assert counts[row] == len(ref_shingles(text, shingle, ngram))
    values, set_offsets = batch_shingle_sets(data, offsets, cfg)
    for row, text in enumerate(texts):
        assert values[set_offsets[row] : set_offsets[row + 1]].tolist() == sorted(
            set(ref_shingles(text, shingle, ngram))
        )
    assert [list(p) for p in permutations(16, 7)] == [list(p) for p in ref_permutations(16, 7)]


SPACES = [" ", "\t", "\n", "\x0b", "\x1c", "\x85", "\xa0", "\u1680", "\u2003", "\u2028", "\u202f", "\u3000"]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.text(alphabet=st.sampled_from(list("aZ.,!é$ﬁＡİß—") + SPACES) | st.characters(), max_size=40),
        max_size=8,
    ),
    st.sampled_from(
        [
            NormalizeConfig(),
            NormalizeConfig(strip_punctuation=True),
            NormalizeConfig(unicode_form=None, lowercase=False),
            NormalizeConfig(collapse_whitespace=False),
        ]
    ),
)
def test_batch_normalization_equals_normalize(texts, cfg):
    texts = [t.encode("utf-8", "replace").decode("utf-8") for t in texts]  # no lone surrogates
    encoded = [t.encode() for t in texts]
    data = np.frombuffer(b"".join(encoded), dtype=np.uint8)
    offsets = np.concatenate([[0], np.cumsum([len(e) for e in encoded])]).astype(np.int64)
    out, out_offsets = normalize_utf8(data, offsets, cfg)
    got = [out[out_offsets[i] : out_offsets[i + 1]].tobytes().decode() for i in range(len(texts))]
    assert got == [normalize(t, cfg) for t in texts]


def test_normalize_documents_its_steps():
    cfg = NormalizeConfig()
    assert normalize("  Ｈｅｌｌｏ\u00a0\u00a0WORLD ﬁne\n", cfg) == "hello world fine"
    assert normalize("end.Start", NormalizeConfig(strip_punctuation=True)) == "end start"
    assert unicodedata.is_normalized("NFKC", normalize("Ａ", cfg))


def test_config_validation_names_the_key():
    with pytest.raises(ConfigError, match="curation.minhash.threshold"):
        MinHashConfig(threshold=0).validate()
    with pytest.raises(ConfigError, match="curation.minhash.bands"):
        MinHashConfig(num_perm=128, bands=10, rows=10).validate()
    with pytest.raises(ConfigError, match="curation.minhash.rows"):
        MinHashConfig(bands=16).validate()
    with pytest.raises(ConfigError, match="curation.minhash.shingle"):
        MinHashConfig(shingle="line").validate()
    with pytest.raises(ConfigError, match="curation.normalize.unicode_form"):
        NormalizeConfig(unicode_form="NFX").validate()


def test_bands_rows_and_fingerprint():
    assert MinHashConfig().bands_rows() == (16, 8)  # P(candidate | J=0.85) = 0.994
    assert MinHashConfig(bands=32, rows=4).bands_rows() == (32, 4)
    for threshold in (0.5, 0.7, 0.9):
        bands, rows = MinHashConfig(threshold=threshold).bands_rows()
        assert bands * rows == 128
    assert str(MinHashConfig()) == "w5g_128p_16b8r_t0.85_s1"


def test_bad_input_is_named(tmp_path):
    pq.write_table(pa.table({"id": ["a"], "body": ["x"]}), tmp_path / "no_text.parquet")
    with pytest.raises(InputError, match="no 'text' column"):
        find_exact_duplicates([tmp_path / "no_text.parquet"])
    twice = write_shards(tmp_path / "dup_ids", ["one text here", "another text"], ids=["same", "same"])
    with pytest.raises(InputError, match="not unique"):
        find_near_duplicates(twice)


def test_result_writes_decisions_and_stats(tmp_path, planted):
    shards, _ = planted
    result = find_near_duplicates(shards)
    result.write(tmp_path / "out")
    table = pq.read_table(tmp_path / "out" / "decisions.parquet")
    assert table.num_rows == len(result.decisions)
    assert (tmp_path / "out" / "stats.json").exists()
    assert result.stats["cluster_size_histogram"] and result.stats["largest_clusters"][0]["members"]


def test_a_bucket_larger_than_the_all_pairs_limit_still_forms_one_cluster(tmp_path):
    """70 copies of one page: LSH pairs each with the first and its predecessor (O(n), not O(n^2))."""
    rng = random.Random(2)
    page = random_text(rng, 30)
    texts = [random_text(rng) for _ in range(30)] + [page] * 70
    result = find_near_duplicates(write_shards(tmp_path, texts), executor=SerialExecutor())
    assert result.stats["cluster_size_histogram"] == {70: 1}
    assert result.stats["candidate_pairs"] < 70 * 69 // 2
    kept = [d for d in result.decisions if d.kept]
    assert [d.id for d in kept] == ["d030"]


def _batch(texts):
    encoded = [t.encode() for t in texts]
    data = np.frombuffer(b"".join(encoded), dtype=np.uint8)
    return data, np.concatenate([[0], np.cumsum([len(e) for e in encoded])]).astype(np.int64)


@functools.cache
def _covered_chars(cfg):
    from corpuslab.curation.dedup.normalize import _simple_map

    table = _simple_map(cfg.unicode_form, cfg.lowercase)
    return [chr(code) for code in np.flatnonzero(table != -1).tolist()]  # one character, or ASCII ones (<= -2)


@functools.cache
def _covered_sample(cfg):
    """Every 97th covered character plus the common ones of web text: a short list for hypothesis."""
    chars = _covered_chars(cfg)
    return sorted(set(chars[::97]) | (set("\u2019\u201c\u2013\u00e9\u00a0\u00c9\uff21\u2460\u2026\u2122\ufb01\u2167") & set(chars)))


@pytest.mark.parametrize("cfg", [NormalizeConfig(), NormalizeConfig(unicode_form="NFC"),
                                 NormalizeConfig(unicode_form=None), NormalizeConfig(lowercase=False)])
def test_every_table_character_normalizes_as_python_does(cfg):
    """Each code point the numba table maps, in ASCII and in its own company, as `normalize` does it."""
    from corpuslab.curation.dedup.normalize import _simple_map, _table_kernel

    chars = _covered_chars(cfg)
    assert len(chars) > 1000 and "\u2019" in chars and "\u00e9" in chars and "\u0301" not in chars
    if cfg.unicode_form == "NFKC":  # expanded to ASCII in the table: "..." , "tm", "fi", "viii"
        assert {"\u2026", "\u2122", "\ufb01", "\u2167"} <= set(chars)
    texts = [f"A{c}b {c}{c}\u00a0{c}Z" for c in chars]
    data, offsets = _batch(texts)
    out, out_offsets = normalize_utf8(data, offsets, cfg)
    got = [out[out_offsets[i] : out_offsets[i + 1]].tobytes().decode() for i in range(len(texts))]
    assert got == [normalize(t, cfg) for t in texts]
    failed = _table_kernel(data, offsets, _simple_map(cfg.unicode_form, cfg.lowercase), np.arange(256, dtype=np.uint8), 0, True)[2]
    assert not failed.any()  # every one went through the table, not Python


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_mixed_table_and_python_documents_normalize_as_python_does(data):
    cfg = data.draw(st.sampled_from([NormalizeConfig(), NormalizeConfig(unicode_form="NFC", collapse_whitespace=False)]))
    alphabet = st.sampled_from(_covered_sample(cfg)) | st.sampled_from(list("aZ \n.\u0301\u0308\u03a3\u1161\u0130ﬁ\ud7a3"))
    texts = data.draw(st.lists(st.text(alphabet=alphabet, max_size=30), max_size=8))
    batch, offsets = _batch(texts)
    out, out_offsets = normalize_utf8(batch, offsets, cfg)
    got = [out[out_offsets[i] : out_offsets[i + 1]].tobytes().decode() for i in range(len(texts))]
    assert got == [normalize(t, cfg) for t in texts]
