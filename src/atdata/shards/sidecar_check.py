"""Checking an offset-index sidecar against its shard, for ``atdata verify`` and ``Index.verify``.

A sidecar is right when it is byte for byte the one recorded for it (its sha256 in the dataset's
record), or, when no digest is recorded, when it names the shard's size and sha256 and lists
exactly the members a scan of the shard finds.
"""

import hashlib

import numpy as np

from ..errors import AtdataError
from ..sources import ShardSource
from .offsets import OFFSETS_SUFFIX, OffsetIndex
from .reader import scan_offsets

__all__ = ["sidecar_problem"]


def sidecar_problem(
    source: ShardSource,
    *,
    size: int | None,
    sha256: str | None,
    sidecar_sha256: str | None = None,
    required: bool = False,
) -> str | None:
    """What is wrong with ``source``'s sidecar (None when nothing is).

    ``size``/``sha256`` are the shard's (already checked by the caller); ``sidecar_sha256`` the
    digest recorded for the sidecar, if any. A missing sidecar is a problem only when a digest is
    recorded for it or ``required``.
    """
    try:
        data = source.read_sidecar(OFFSETS_SUFFIX)
    except AtdataError as exc:
        return f"its {OFFSETS_SUFFIX} sidecar cannot be read: {exc}"
    if data is None:
        if sidecar_sha256 is not None or required:
            return f"its {OFFSETS_SUFFIX} sidecar is missing"
        return None
    if sidecar_sha256 is not None:
        digest = hashlib.sha256(data).hexdigest()
        if digest != sidecar_sha256.lower():
            return f"its {OFFSETS_SUFFIX} sidecar's sha256 is {digest}, not {sidecar_sha256}"
        return None
    try:
        index = OffsetIndex.from_bytes(data, source.url + OFFSETS_SUFFIX)
    except AtdataError as exc:
        return str(exc)
    if size is not None and index.shard_size != size:
        return f"its {OFFSETS_SUFFIX} sidecar describes {index.shard_size} bytes, not {size}"
    if sha256 is not None and index.sha256 is not None and index.sha256 != sha256.lower():
        return f"its {OFFSETS_SUFFIX} sidecar describes a shard with sha256 {index.sha256}"
    try:
        scanned = scan_offsets(source, max_size=size)
    except AtdataError as exc:
        return f"cannot be scanned to check its {OFFSETS_SUFFIX} sidecar: {exc}"
    return _difference(index, scanned)


def _difference(index: OffsetIndex, scanned: OffsetIndex) -> str | None:
    what = f"its {OFFSETS_SUFFIX} sidecar"
    if len(index) != len(scanned):
        return f"{what} lists {len(index)} samples; the shard holds {len(scanned)}"
    for name, a, b in (
        ("header offset", index.header_offsets, scanned.header_offsets),
        ("size", index.sizes, scanned.sizes),
    ):
        wrong = np.nonzero(a != b)[0]
        if wrong.size:
            i = int(wrong[0])
            return f"{what} gives sample {i} the {name} {int(a[i])}; the shard has {int(b[i])}"
    for i, (k, s) in enumerate(zip(index.keys, scanned.keys, strict=True)):
        if k != s:
            return f"{what} names sample {i} {k!r}; the shard has {s!r}"
    spans_a = (index.group_span(i) for i in range(len(index)))
    spans_b = (scanned.group_span(i) for i in range(len(scanned)))
    for i, (x, y) in enumerate(zip(spans_a, spans_b, strict=True)):
        if x != y:
            return f"{what} gives sample {i} the bytes {x}; the shard has {y}"
    return None
