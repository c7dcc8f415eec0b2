"""Arrow constants and numpy views built from bytes and buffers. No I/O.

Converting a Python value to Arrow (`pa.scalar(0)`, `pa.array([...])`, a Python number given to
a compute function) and `Array.to_numpy()` make pyarrow import pandas when it is installed:
~0.2 s and ~35 MB of a weekly run for nothing. The values the job needs are built here from
their bytes instead, which never does.
"""
from __future__ import annotations

import datetime as dt
import struct
from itertools import accumulate
from typing import Sequence

import numpy as np
import pyarrow as pa

_EPOCH = dt.date(1970, 1, 1)


def _fixed(type_: pa.DataType, length: int, data: bytes | np.ndarray) -> pa.Array:
    return pa.Array.from_buffers(type_, length, [None, pa.py_buffer(data)])


FALSE = pa.Array.from_buffers(pa.bool_(), 1, [None, pa.py_buffer(b"\x00")])[0]


def int64(value: int) -> pa.Scalar:
    """An int64 scalar."""
    return _fixed(pa.int64(), 1, struct.pack("<q", value))[0]


def float64(value: float) -> pa.Scalar:
    """A float64 scalar."""
    return _fixed(pa.float64(), 1, struct.pack("<d", value))[0]


def null(type_: pa.DataType) -> pa.Scalar:
    """A null scalar of `type_`."""
    return pa.nulls(1, type_)[0]


def strings(values: Sequence[str]) -> pa.Array:
    """A string array of `values` (no nulls)."""
    encoded = [value.encode("utf-8") for value in values]
    offsets = struct.pack(f"<{len(encoded) + 1}i", 0, *accumulate(len(item) for item in encoded))
    return pa.Array.from_buffers(pa.string(), len(encoded),
                                 [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(encoded))])


def string(value: str) -> pa.Scalar:
    """A string scalar."""
    return strings([value])[0]


def same_date(day: dt.date, length: int) -> pa.Array:
    """A date32 array holding `day` `length` times."""
    return _fixed(pa.date32(), length, struct.pack("<i", (day - _EPOCH).days) * length)


def from_numpy(values: np.ndarray, type_: pa.DataType) -> pa.Array:
    """A numeric numpy array (of `type_`'s width) as an Arrow array without nulls."""
    return _fixed(type_, len(values), np.ascontiguousarray(values))


def combined(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """The values as one array (ChunkedArray.combine_chunks() of no chunks builds it from a
    Python list, and so imports pandas)."""
    if isinstance(values, pa.Array):
        return values
    if values.num_chunks == 0:
        return pa.nulls(0, values.type)
    return values.combine_chunks()


def to_numpy(values: pa.Array | pa.ChunkedArray, dtype: type) -> np.ndarray:
    """The values of a numeric array without nulls as a numpy array (a view when it has one
    chunk). Nulls are not looked at: the caller knows there are none."""
    values = combined(values)
    itemsize = np.dtype(dtype).itemsize
    if len(values) == 0:
        return np.empty(0, dtype)
    return np.frombuffer(values.buffers()[1], dtype=dtype, count=len(values),
                         offset=values.offset * itemsize)
