"""Dedup settings (text normalization, MinHash and LSH banding) and the choice of bands and rows: numpy
only, no numba, so `corpuslab.config` validates them without importing or compiling the kernels.
`normalize` and `minhash` (the kernels) re-export what they define here."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from corpuslab.errors import ConfigError

UNICODE_FORMS = ("NFC", "NFKC", "NFD", "NFKD")


@dataclass(frozen=True)
class NormalizeConfig:
    """How text is normalized before it is hashed or shingled (see `corpuslab.curation.dedup.normalize`)."""

    lowercase: bool = True
    unicode_form: str | None = "NFKC"
    collapse_whitespace: bool = True
    strip_punctuation: bool = False

    def validate(self, prefix: str = "curation.normalize") -> None:
        if self.unicode_form is not None and self.unicode_form not in UNICODE_FORMS:
            raise ConfigError(f"{prefix}.unicode_form", self.unicode_form, f"one of {UNICODE_FORMS} or null")
        for name in ("lowercase", "collapse_whitespace", "strip_punctuation"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{prefix}.{name}", getattr(self, name), "true or false")

    def __str__(self) -> str:
        """Short fingerprint for artifact names, e.g. `nfkc_lower_ws`."""
        parts = [self.unicode_form.lower() if self.unicode_form else "raw"]
        parts += [
            name
            for flag, name in (
                (self.lowercase, "lower"),
                (self.strip_punctuation, "nopunct"),
                (self.collapse_whitespace, "ws"),
            )
            if flag
        ]
        return "_".join(parts)


# Candidates are verified by their true Jaccard, so a false positive costs microseconds while a false
# negative loses a duplicate for good: the band search weighs misses 19x more than datasketch's 1:1.
FALSE_POSITIVE_WEIGHT = 0.05
FALSE_NEGATIVE_WEIGHT = 0.95


@dataclass(frozen=True)
class MinHashConfig:
    """Shingling, signature and banding settings for near-duplicate detection.

    `bands` and `rows` are derived from `threshold` (see `bands_rows`) unless both are given.
    """

    shingle: str = "word"  # "word" or "char"
    ngram: int = 5
    num_perm: int = 128
    threshold: float = 0.85
    bands: int | None = None
    rows: int | None = None
    seed: int = 1

    def validate(self, prefix: str = "curation.minhash") -> None:
        if self.shingle not in ("word", "char"):
            raise ConfigError(f"{prefix}.shingle", self.shingle, "'word' or 'char'")
        for name in ("ngram", "num_perm"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{prefix}.{name}", value, "an integer >= 1")
        if not isinstance(self.threshold, (int, float)) or not 0 < self.threshold <= 1:
            raise ConfigError(f"{prefix}.threshold", self.threshold, "a number in (0, 1]")
        if not isinstance(self.seed, int) or not 0 <= self.seed < 2**64:
            raise ConfigError(f"{prefix}.seed", self.seed, "an integer in [0, 2**64)")
        self._validate_banding(prefix)

    def _validate_banding(self, prefix: str) -> None:
        if (self.bands is None) != (self.rows is None):
            key = f"{prefix}.rows" if self.rows is None else f"{prefix}.bands"
            raise ConfigError(key, None, "bands and rows given together (or neither, to derive them)")
        if self.bands is None:
            return
        for name in ("bands", "rows"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"{prefix}.{name}", value, "an integer >= 1")
        if self.bands * self.rows != self.num_perm:
            raise ConfigError(
                f"{prefix}.bands",
                self.bands,
                f"bands * rows == num_perm ({self.bands} * {self.rows} != {self.num_perm})",
            )

    def bands_rows(self) -> tuple[int, int]:
        """(b, r) with b * r == num_perm: the given ones, else the best for `threshold`."""
        if self.bands is not None and self.rows is not None:
            return self.bands, self.rows
        return optimal_bands_rows(self.threshold, self.num_perm)

    def __str__(self) -> str:
        """Fingerprint for artifact names, e.g. `w5g_128p_16b8r_t0.85_s1`."""
        bands, rows = self.bands_rows()
        shingles = f"{self.shingle[0]}{self.ngram}g"
        return f"{shingles}_{self.num_perm}p_{bands}b{rows}r_t{self.threshold:g}_s{self.seed}"


def candidate_probability(similarity: float | np.ndarray, bands: int, rows: int) -> float | np.ndarray:
    """P(two documents with Jaccard s share at least one band) = 1 - (1 - s^r)^b."""
    return 1.0 - (1.0 - np.asarray(similarity, dtype=float) ** rows) ** bands


@functools.lru_cache(maxsize=64)
def optimal_bands_rows(threshold: float, num_perm: int) -> tuple[int, int]:
    """Minimize the weighted false-positive area below `threshold` plus false-negative area above it.

    As datasketch's `_optimal_param`, but over b * r == num_perm exactly (every permutation is used) and
    with the weights above.
    """
    below, above = np.linspace(0.0, threshold, 1001), np.linspace(threshold, 1.0, 1001)
    best, best_error = (num_perm, 1), math.inf
    for bands in (b for b in range(1, num_perm + 1) if num_perm % b == 0):
        rows = num_perm // bands
        false_positive = threshold * np.mean(candidate_probability(below, bands, rows))
        false_negative = (1.0 - threshold) * np.mean(1.0 - candidate_probability(above, bands, rows))
        error = FALSE_POSITIVE_WEIGHT * false_positive + FALSE_NEGATIVE_WEIGHT * false_negative
        if error < best_error:
            best, best_error = (bands, rows), error
    return best
