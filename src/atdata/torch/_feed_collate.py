"""Collating sample bodies straight into reusable (pinned) batch buffers, for the feed.

The bytes of every array field are copied once, from the shard mapping into the batch buffer,
by numpy (which releases the GIL for the copy), so several reader threads overlap their copies.
Scalar and string fields become lists. Anything irregular in a batch (ragged or ``None`` arrays,
``.npy`` payloads, wrong types) makes :meth:`BufferCollator.collate` return None, and the caller
checks that batch sample by sample (naming the bad one) through the regular codec.
"""

import sys
import threading
from collections.abc import Callable
from typing import Any

import msgpack
import numpy as np

from ..batch import collate_columns, column_plan
from ..codec import Codec, check_dtype_shape, parse_array_header, unpack_map
from ..errors import SchemaError

__all__ = ["BufferCollator", "BufferPool", "decode_bodies"]

_SMALL_ROW = 16 << 10  # rows below this are gathered by one join, larger ones row by row
_ZERO_COPY_MIN = 1 << 16

Alloc = Callable[[tuple[int, ...], np.dtype[Any]], "np.ndarray[Any, Any]"]


class BufferPool:
    """Batch arrays (pinned host memory when asked) reused once nothing refers to them.

    An array is handed out again only when ``sys.getrefcount`` shows that the pool holds the
    sole reference: tensors made with ``torch.from_numpy`` keep their array alive, so a batch
    the training loop still holds (or a copy to the GPU still in flight, whose host tensors the
    feed keeps) is never overwritten. Thread-safe.
    """

    def __init__(self, pin: bool, limit: int = 64) -> None:
        self._pin = pin
        self._arrays: list[np.ndarray[Any, Any]] = []
        self._limit = limit
        self._lock = threading.Lock()

    def empty(self, shape: tuple[int, ...], dtype: np.dtype[Any]) -> "np.ndarray[Any, Any]":
        with self._lock:
            for arr in self._arrays:
                # references: the pool's list, this loop's variable and getrefcount's argument
                if arr.shape == shape and arr.dtype == dtype and sys.getrefcount(arr) <= 3:
                    return arr
            out = self._allocate(shape, dtype)
            self._arrays.append(out)
            if len(self._arrays) > self._limit:
                del self._arrays[0]
            return out

    def _allocate(self, shape: tuple[int, ...], dtype: np.dtype[Any]) -> "np.ndarray[Any, Any]":
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if not self._pin:
            return np.empty(shape, dtype=dtype)
        import torch

        host = torch.empty(max(nbytes, 1), dtype=torch.uint8, pin_memory=True)
        return host.numpy()[:nbytes].view(dtype).reshape(shape)


def decode_bodies(bodies: list[Any]) -> list[Any] | None:
    """The bodies' msgpack maps (large ``bin`` values as views), or None if one does not decode."""
    try:
        if max(map(len, bodies), default=0) < _ZERO_COPY_MIN:
            return list(map(msgpack.unpackb, bodies))
        return [unpack_map(b) for b in bodies]
    except Exception:  # msgpack raises several unrelated types; the slow path names the sample
        return None


class BufferCollator:
    """Columns of a batch from decoded maps, array fields written into pooled buffers."""

    def __init__(self, codec: Codec[Any], pool: BufferPool) -> None:
        self.codec = codec
        self.pool = pool
        self._names = frozenset(codec.names)
        self._columns = column_plan(codec)

    def collate(self, maps: list[Any]) -> dict[str, Any] | None:
        """Field name -> stacked array (pooled) or list; None when the batch needs checking."""
        return collate_columns(maps, self._names, self._columns, self._stack, self.pool.empty)

    def _stack(self, col: list[Any], ftype: Any, path: str) -> Any:
        first = col[0]
        kinds = set(map(type, col))
        if not kinds <= {bytes, memoryview} or first[:6] == b"\x93NUMPY":
            return None
        try:
            dtype, shape, hlen = parse_array_header(first)
            check_dtype_shape(ftype, dtype, shape, path)
        except SchemaError:
            return None
        if len(set(map(len, col))) != 1:
            return None
        count, row = len(col), len(first) - hlen
        out = self.pool.empty((count, *shape), dtype)
        flat = out.reshape(count, -1).view(np.uint8) if out.size else out
        if row == 0:
            return out
        if row < _SMALL_ROW:
            table = np.frombuffer(b"".join(col), dtype=np.uint8).reshape(count, hlen + row)
            if not (table[:, :hlen] == np.frombuffer(first[:hlen], dtype=np.uint8)).all():
                return None
            np.copyto(flat, table[:, hlen:])
            return out
        header = bytes(first[:hlen])
        for i, v in enumerate(col):
            if v[:hlen] != header:
                return None
            # one copy per byte, shard mapping -> batch buffer; numpy drops the GIL for it
            np.copyto(flat[i], np.frombuffer(v, dtype=np.uint8, offset=hlen))
        return out
