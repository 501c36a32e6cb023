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
    values = list(values)
    n = len(values)
    nulls = values.count(None)
    rows = np.arange(n) if not nulls else np.flatnonzero([v is not None for v in values])
    present = values if not nulls else [v for v in values if v is not None]
    return sparse(n, rows, present, kind)


def sparse(n: int, rows: np.ndarray, values: list[Any], kind: pa.DataType) -> pa.Array:
    """An array of `n` nulls but for `values` (none None) at `rows` (increasing): a column of the decision table is
    mostly null (a decision per duplicate, a row per document)."""
    valid = np.zeros(n, dtype=bool)
    valid[rows] = True
    nulls = n - len(rows)
    validity = _bits(valid) if nulls else None
    if kind == pa.string():
        joined = "".join(values)
        data = joined.encode()
        sizes = np.fromiter(map(len, values), dtype=np.int64, count=len(values))
        if len(data) != len(joined):  # not ASCII: the byte length of each
            encoded = [v.encode() for v in values]
            sizes = np.fromiter(map(len, encoded), dtype=np.int64, count=len(values))
        offsets = np.zeros(n + 1, dtype=np.int64)
        lengths = np.zeros(n, dtype=np.int64)
        lengths[rows] = sizes
        np.cumsum(lengths, out=offsets[1:])
        if offsets[-1] >= 2**31:  # over string's int32 offsets
            full: list[Any] = [None] * n
            for row, value in zip(rows.tolist(), values):
                full[row] = value
            return pa.array(full, kind)
        return pa.Array.from_buffers(kind, n, [validity, pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(data)], null_count=nulls)
    if kind == pa.bool_():
        mask = np.zeros(n, dtype=bool)
        mask[rows] = np.array(values, dtype=bool)
        return bools(mask, validity, nulls)
    data = np.zeros(n, dtype=_NUMPY[kind])
    data[rows] = np.array(values, dtype=_NUMPY[kind])
    return pa.Array.from_buffers(kind, n, [validity, pa.py_buffer(data)], null_count=nulls)


def bools(mask: np.ndarray, validity: pa.Buffer | None = None, nulls: int = 0) -> pa.Array:
    """A numpy bool array as an Arrow one."""
    return pa.Array.from_buffers(pa.bool_(), len(mask), [validity, _bits(mask)], null_count=nulls)


def numbers(values: np.ndarray, mask: np.ndarray | None = None) -> pa.Array:
    """`pa.array(values, mask=mask)` for a numpy int8/int32/int64/float64 array (True in `mask`: null)."""
    values = np.ascontiguousarray(values)
    kind = pa.from_numpy_dtype(values.dtype)
    nulls = int(mask.sum()) if mask is not None else 0
    validity = _bits(~mask) if nulls else None
    return pa.Array.from_buffers(kind, len(values), [validity, pa.py_buffer(values)], null_count=nulls)


def take(array: pa.Array, rows: np.ndarray) -> pa.Array:
    """`array.take(rows)`, a negative row giving a null."""
    rows = np.asarray(rows, dtype=np.int64)
    return array.take(numbers(rows, rows < 0))


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
