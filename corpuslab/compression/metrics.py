"""Compression metrics (ALGORITHMS.md section 3) and the general-purpose compressors they are compared with.

- bits per byte: a mean cross-entropy in nats per byte / ln 2
- model bytes: 4 bytes x non-zero parameters (weights and biases; tied embeddings once; no index overhead)
- online (prequential) code length: sum over the first pass of each batch's loss before its update, in bits
- description length: model bytes + loss x dataset bytes / (8 ln 2), in bytes; compression ratio =
  dataset bytes / description length
- baselines: gzip -9, bzip2 -9, xz -9e, zstd -19 on exactly the same bytes as ONE stream. The seed compressed
  them one 512-byte chunk at a time, which costs each compressor its context; that figure is reported too,
  labelled `chunked`, never as the baseline.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import math
from collections.abc import Callable
from typing import Any

LN2 = math.log(2.0)


def _zstd(data: bytes) -> bytes:
    import zstandard

    return zstandard.ZstdCompressor(level=19).compress(data)


COMPRESSORS: dict[str, tuple[str, Callable[[bytes], bytes]]] = {
    "gzip": ("gzip -9", lambda data: gzip.compress(data, compresslevel=9, mtime=0)),
    "bzip2": ("bzip2 -9", lambda data: bz2.compress(data, compresslevel=9)),
    "xz": ("xz -9e", lambda data: lzma.compress(data, format=lzma.FORMAT_XZ, preset=9 | lzma.PRESET_EXTREME)),
    "zstd": ("zstd -19", _zstd),
}


def baselines(data: bytes, chunked_bytes: int = 512, chunked_sample: int = 1 << 20) -> dict[str, dict[str, Any]]:
    """Per compressor: compressed bytes and bits per byte of `data` as one stream, and (labelled) the bits per
    byte of compressing it `chunked_bytes` at a time, measured on its first `chunked_sample` bytes (xz -9e sets
    up a 64 MiB dictionary per call: chunking 16 MB would take hours, and the rate is stable long before)."""
    out = {}
    sample = data[:chunked_sample]
    for name, (label, compress) in COMPRESSORS.items():
        whole = len(compress(data))
        chunked = sum(len(compress(sample[i : i + chunked_bytes])) for i in range(0, len(sample), chunked_bytes))
        out[name] = {"label": label, "compressed_bytes": whole, "bits_per_byte": 8 * whole / len(data),
                     "ratio": len(data) / whole, f"chunked_{chunked_bytes}_bits_per_byte": 8 * chunked / len(sample),
                     "chunked_sample_bytes": len(sample)}
    return out


def nonzero_parameters(model: Any) -> int:
    import torch

    unique = {id(p): p for p in model.parameters()}
    return sum(int(torch.count_nonzero(p)) for p in unique.values())


def model_bytes(nonzero: int) -> int:
    return 4 * nonzero


def bits_per_byte(loss_nats: float) -> float:
    return loss_nats / LN2


def description_length_bytes(model_size_bytes: int, loss_nats: float, dataset_bytes: int) -> float:
    return model_size_bytes + loss_nats * dataset_bytes / (8 * LN2)
