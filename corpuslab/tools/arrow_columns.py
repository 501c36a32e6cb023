"""Arrow arrays of Python values built from their buffers.

`pa.array` (and `pa.table` of lists) asks pyarrow's pandas shim whether the value is a pandas object, which
imports pandas on first use: ~0.4 CPU-s per process, as much as normalizing 100 MB of text. The dedup tool
writes its tables through `column` instead, so a run that reads and writes Arrow data never imports pandas.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

_NUMPY = {pa.float64(): np.float64, pa.int64(): np.int64, pa.int32(): np.int32}


def column(values: Sequence[Any], kind: pa.DataType) -> pa.Array:
    """`pa.array(values, kind)` for string, bool, float64, int64 and int32 with None as null."""
    if isinstance(values, np.ndarray) and kind == pa.bool_():
        return bools(values)
    n = len(values)
    valid = np.fromiter((v is not None for v in values), dtype=bool, count=n)
    nulls = n - int(valid.sum())
    validity = _bits(valid) if nulls else None
    if kind == pa.string():
        encoded = [v.encode() if v is not None else b"" for v in values]
        offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.fromiter(map(len, encoded), dtype=np.int64, count=n), out=offsets[1:])
        if offsets[-1] >= 2**31:  # over string's int32 offsets
            return pa.array(values, kind)
        return pa.Array.from_buffers(kind, n, [validity, pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(b"".join(encoded))],
                                     null_count=nulls)
    if kind == pa.bool_():
        return bools(np.fromiter((bool(v) for v in values), dtype=bool, count=n), validity, nulls)
    dtype = _NUMPY[kind]
    data = np.fromiter((v if v is not None else 0 for v in values), dtype=dtype, count=n)
    return pa.Array.from_buffers(kind, n, [validity, pa.py_buffer(data)], null_count=nulls)


def bools(mask: np.ndarray, validity: pa.Buffer | None = None, nulls: int = 0) -> pa.Array:
    """A numpy bool array as an Arrow one."""
    return pa.Array.from_buffers(pa.bool_(), len(mask), [validity, _bits(mask)], null_count=nulls)


def table(columns: dict[str, Sequence[Any]], schema: pa.Schema) -> pa.Table:
    """`pa.table(columns, schema=schema)` through `column`."""
    return pa.Table.from_arrays([column(columns[f.name], f.type) for f in schema], schema=schema)


def _bits(mask: np.ndarray) -> pa.Buffer:
    return pa.py_buffer(np.packbits(np.asarray(mask, dtype=bool), bitorder="little").tobytes())


def lengths(texts: pa.Array) -> np.ndarray:
    """Characters per string of a string array without nulls (`pc.utf8_length`, read from its buffer)."""
    import pyarrow.compute as pc

    counted = pc.utf8_length(texts)
    kind = np.int64 if counted.type == pa.int64() else np.int32
    return np.frombuffer(counted.buffers()[1], dtype=kind)[counted.offset : counted.offset + len(counted)].astype(np.int64)
