"""Batch decoding of image columns on a thread pool, straight into one ``(B, H, W, C)`` array.

Pillow releases the GIL while its decoders run, so a pool of threads decodes a batch's images in
parallel within one process (and within each DataLoader worker). Each thread takes a contiguous
slice of the batch, so the Python cost is one task per thread, not one per image. The pool is
sized by ``$ATDATA_DECODE_THREADS`` (default: the CPUs this process may use, at most 8; ``1``
decodes inline) and is rebuilt in a forked child (threads do not survive ``fork``).
"""

import itertools
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from ..errors import InvalidArgumentError, SchemaError
from .image import Image, Opened, decode_image, sniff_format
from .spec import ImageSpec

__all__ = ["Allocator", "decode_column", "decode_threads"]

THREADS_ENV = "ATDATA_DECODE_THREADS"
Allocator = Callable[[tuple[int, ...], np.dtype[Any]], np.ndarray[Any, Any]]


class _PoolState:
    """The process's decode pool and the (pid, threads) it was made for."""

    lock = threading.Lock()
    pool: ThreadPoolExecutor | None = None
    key: tuple[int, int] | None = None


def decode_threads() -> int:
    """Threads that decode a batch's images: ``$ATDATA_DECODE_THREADS``, else the usable CPUs
    (at most 8)."""
    text = os.environ.get(THREADS_ENV, "").strip()
    if text:
        try:
            value = int(text)
        except ValueError:
            value = 0
        if value < 1:
            raise InvalidArgumentError(f"${THREADS_ENV} must be a positive integer, got {text!r}")
        return value
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(8, cpus))


def _executor(threads: int) -> ThreadPoolExecutor:
    state = _PoolState
    key = (os.getpid(), threads)
    with state.lock:
        if state.pool is None or state.key != key:
            old = state.pool
            state.pool = ThreadPoolExecutor(threads, thread_name_prefix="atdata-decode")
            if old is not None and state.key is not None and state.key[0] == key[0]:
                old.shutdown(wait=False)
            state.key = key
        return state.pool


def _forget_pool_in_child() -> None:
    """After fork: the parent's threads do not exist here; a new pool is made on first use."""
    _PoolState.pool, _PoolState.key, _PoolState.lock = None, None, threading.Lock()


os.register_at_fork(after_in_child=_forget_pool_in_child)


Item = tuple[Any, str, Opened | None]  # bytes, format, the header if already checked


def _bytes_and_format(value: Any, spec: ImageSpec, path: str) -> Item:
    if isinstance(value, Image):
        if spec.format is not None and value.format != spec.format:
            raise SchemaError(
                f"{path}: expected a {spec.format} image, got {value.format}", path=path
            )
        return value.data, value.format, value.take_header(spec)
    if type(value) is bytes or isinstance(value, memoryview):
        fmt = sniff_format(value)
        if fmt is None:
            raise SchemaError(f"{path}: not a JPEG, PNG or WebP image", path=path)
        if spec.format is not None and fmt != spec.format:
            raise SchemaError(f"{path}: expected a {spec.format} image, got {fmt}", path=path)
        return value, fmt, None
    raise SchemaError(f"{path}: expected image bytes, got {type(value).__name__}", path=path)


def decode_column(
    values: list[Any],
    spec: ImageSpec,
    path: str,
    empty: Allocator | None = None,
    threads: int | None = None,
) -> Any:
    """Decode a batch's image values (bytes, :class:`Image` or already-decoded arrays).

    Returns a uint8 ``(B, H, W, C)`` array when every image has the same shape (declared or
    found), else a list of arrays; ``None`` values (optional fields) make it a list too. Raises
    SchemaError naming ``path`` on the first image that fails.
    """
    count = len(values)
    if count == 0:
        return []
    if any(v is None or isinstance(v, np.ndarray) for v in values):
        return [_one(v, spec, path) for v in values]
    items = [_bytes_and_format(v, spec, path) for v in values]
    fixed = spec.fixed_shape
    alloc = empty or _fresh
    start = 0
    if fixed is None:
        first = decode_image(items[0][0], items[0][1], spec, path, opened=items[0][2])
        out = alloc((count, *first.shape), np.dtype(np.uint8))
        out[0] = first
        start = 1
    else:
        out = alloc((count, *fixed), np.dtype(np.uint8))
    odd: dict[int, np.ndarray[Any, Any]] = {}
    n = min(threads or decode_threads(), count - start)
    if n <= 1:
        _decode_slice(items, range(start, count), out, (spec, path, odd))
    else:
        bounds = np.linspace(start, count, n + 1).astype(int)
        pool = _executor(n)
        futures = [
            pool.submit(_decode_slice, items, range(a, b), out, (spec, path, odd))
            for a, b in itertools.pairwise(bounds)
            if b > a
        ]
        errors = [f.exception() for f in futures]
        for exc in errors:
            if exc is not None:
                raise exc
    if not odd:
        return out
    return [odd.get(i, out[i]) for i in range(count)]


def _decode_slice(
    items: list[Item],
    indexes: range,
    out: np.ndarray[Any, Any],
    context: tuple[ImageSpec, str, dict[int, np.ndarray[Any, Any]]],
) -> None:
    spec, path, odd = context
    shape = out.shape[1:]
    for i in indexes:
        data, fmt, opened = items[i]
        arr = decode_image(data, fmt, spec, path, out[i], opened=opened)
        if arr.shape != shape:
            odd[i] = arr  # a different size: the column becomes a list


def _one(value: Any, spec: ImageSpec, path: str) -> Any:
    if value is None:
        return None
    if isinstance(value, np.ndarray):
        return value
    data, fmt, opened = _bytes_and_format(value, spec, path)
    return decode_image(data, fmt, spec, path, opened=opened)


def _fresh(shape: tuple[int, ...], dtype: np.dtype[Any]) -> np.ndarray[Any, Any]:
    return np.empty(shape, dtype)
