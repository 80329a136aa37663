"""The per-shard offset index: a sidecar ``<shard>.idx`` beside every shard we write.

It records, for every sample, its key and where its member's header and body lie, so that
``len()``, ``ds[i]`` and ``ds.get(key)`` are O(1) without scanning the tar. The sidecar is a
msgpack map; the shard's size and sha256 are kept in it so a stale sidecar is detected.

A sample is a *key group*: the consecutive members sharing a key, as schema-free iteration groups
them. In the shards we write a group is one ``<key>.msgpack`` member, and the sidecar holds
exactly that (format version 1). For other shards (plain WebDataset: ``000001.jpg``,
``000001.cls``, ...) the index also records each group's byte span (``starts``/``ends``, format
version 2); ``header_offsets``/``sizes`` then name the group's ``.msgpack`` member when it has
one, else its first member.

Nothing in a sidecar is trusted for content: readers check each member header it points at
(name, size, checksum) against the shard, and a sidecar that disagrees is dropped for a scan.
"""

from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import msgpack
import numpy as np

from ..errors import InvalidArgumentError, ShardError

__all__ = [
    "MAX_SHARD_SIZE",
    "MAX_SIDECAR_BYTES",
    "OFFSETS_SUFFIX",
    "OffsetIndex",
    "SidecarMismatch",
    "read_claim",
    "sidecar_limit",
]

OFFSETS_SUFFIX = ".idx"
_FORMAT = "atdata.offsets"
_VERSION = 1
_VERSION_GROUPS = 2
_BLOCK = 512
_SAMPLE_SUFFIX = ".msgpack"
_NAME_FIELD = 100
_NAME_ROW = 104
#: No shard is larger than this (2**50 bytes = 1 PiB); bounds every size taken from a sidecar,
#: so sums of offsets and sizes cannot wrap in int64.
MAX_SHARD_SIZE = 1 << 50
#: Hard cap on a sidecar's size (see also :func:`sidecar_limit`).
MAX_SIDECAR_BYTES = 64 << 20
_PER_SAMPLE_SIDECAR = 160  # generous: a 100-byte key, two int64s, msgpack overhead


class SidecarMismatch(ShardError):
    """An offset-index sidecar disagrees with the shard it describes (it is then not used)."""


def sidecar_limit(shard_size: int | None) -> int:
    """The largest sidecar believable for a shard of ``shard_size`` bytes (None: unknown).

    A sample takes at least one 512-byte header in the shard and at most ~160 bytes in the
    sidecar, so a sidecar is at most about a third of its shard (plus a little), and never above
    :data:`MAX_SIDECAR_BYTES`.
    """
    if shard_size is None:
        return MAX_SIDECAR_BYTES
    return min(MAX_SIDECAR_BYTES, 4096 + (shard_size // _BLOCK) * _PER_SAMPLE_SIDECAR)


_CLAIM = ("format", "version", "shard_size", "sha256", "count")


def read_claim(data: bytes) -> tuple[str | None, int, int] | None:
    """(sha256, shard size, sample count) a sidecar states, from its leading fields only (the
    key and offset arrays are skipped, not decoded); None when it is not a well-formed sidecar
    as far as those fields go."""
    try:
        unpacker = msgpack.Unpacker(raw=False, max_buffer_size=max(len(data), 1))
        unpacker.feed(data)
        n = unpacker.read_map_header()
        got: dict[str, Any] = {}
        for _ in range(n):
            name = unpacker.unpack()
            if name in _CLAIM:
                got[name] = unpacker.unpack()
                if len(got) == len(_CLAIM):
                    break
            else:
                unpacker.skip()
    except Exception:
        return None
    size, count, sha = got.get("shard_size"), got.get("count"), got.get("sha256")
    if (
        got.get("format") != _FORMAT
        or got.get("version") not in (_VERSION, _VERSION_GROUPS)
        or type(size) is not int
        or not 0 <= size <= MAX_SHARD_SIZE
        or type(count) is not int
        or not 0 <= count <= size // _BLOCK
        or not (sha is None or isinstance(sha, str))
    ):
        return None
    return sha, size, count


def _padded(sizes: "np.ndarray[Any, np.dtype[np.int64]]") -> "np.ndarray[Any, Any]":
    return sizes + ((-sizes) & (_BLOCK - 1))


@dataclass
class OffsetIndex:
    """Keys and member locations of the samples of one shard (see the module docstring)."""

    keys: list[str]
    header_offsets: "np.ndarray[Any, np.dtype[np.int64]]"
    sizes: "np.ndarray[Any, np.dtype[np.int64]]"
    shard_size: int
    sha256: str | None = None
    #: per-sample byte spans [starts, ends) of key groups; None when every sample is one member
    starts: "np.ndarray[Any, np.dtype[np.int64]] | None" = None
    ends: "np.ndarray[Any, np.dtype[np.int64]] | None" = None
    _positions: dict[str, int] | None = field(default=None, repr=False)
    _names: "np.ndarray[Any, Any] | None" = field(default=None, repr=False)
    _bulk: bool | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.keys)

    def position(self, key: str) -> int | None:
        """The sample number of ``key`` in this shard (its first group), or None."""
        if self._positions is None:
            positions: dict[str, int] = {}
            for i, k in enumerate(self.keys):
                positions.setdefault(k, i)
            self._positions = positions
        return self._positions.get(key)

    def body_range(self, i: int) -> tuple[int, int]:
        """(offset, size) of the body of sample ``i``'s member."""
        return int(self.header_offsets[i]) + _BLOCK, int(self.sizes[i])

    def start_offset(self, i: int) -> int:
        """Where sample ``i`` starts in the shard (its first header, extension headers included)."""
        if self.starts is not None:
            return int(self.starts[i])
        return int(self.header_offsets[i])

    def member_span(self, i: int) -> tuple[int, int]:
        """[start, end) of the bytes holding sample ``i``'s member (``header_offsets[i]``)."""
        end = int(self.header_offsets[i]) + _BLOCK + int(_padded(self.sizes[i : i + 1])[0])
        if self.starts is not None:
            return min(int(self.starts[i]), int(self.header_offsets[i])), end
        return int(self.header_offsets[i]), end

    def group_span(self, i: int) -> tuple[int, int]:
        """[start, end) of every member of sample ``i`` (its key group)."""
        if self.starts is not None and self.ends is not None:
            return int(self.starts[i]), int(self.ends[i])
        return self.member_span(i)

    def end_offset(self) -> int:
        """Where the last sample's bytes end (0 when there is none)."""
        if not self.keys:
            return 0
        if self.ends is not None:
            return int(self.ends.max())
        return self.member_span(len(self.keys) - 1)[1]

    def bulk_names(self) -> "np.ndarray[Any, Any] | None":
        """Expected tar name fields (``key.msgpack``; see :meth:`_name_table`) for the bulk read
        path, or None.

        None when the bulk path cannot prove the index right: groups of several members, members
        not laid out back to back from byte 0, or keys whose names a parser would read otherwise.
        """
        if self._bulk is None:
            self._names = self._name_table() if self._contiguous() else None
            self._bulk = self._names is not None
        return self._names

    def _contiguous(self) -> bool:
        if self.starts is not None:
            return False
        if not self.keys:
            return True
        offs, sizes = self.header_offsets, self.sizes
        ends = offs + _BLOCK + _padded(sizes)
        return int(offs[0]) == 0 and bool(np.array_equal(offs[1:], ends[:-1]))

    def _name_table(self) -> "np.ndarray[Any, Any] | None":
        """``key.msgpack`` for every key, NUL-padded to the 100-byte name field, as rows of an
        (n, 104) uint8 array (104: 8-byte aligned rows for word-wise comparison). Built in numpy
        with no per-key encode: this runs once per shard per dataset, on the read path."""
        keys = self.keys
        n = len(keys)
        lines = "\n".join(keys)
        encoded = lines.encode()
        raw = np.frombuffer(encoded, dtype=np.uint8)
        breaks = np.flatnonzero(raw == 10)
        simple = (
            len(encoded) == len(lines)
            and len(breaks) == n - 1
            and "." not in lines
            and "\x00" not in lines
        )
        if simple:  # ASCII keys without '\n': lengths from the line breaks, in numpy
            lengths = np.diff(np.concatenate(([-1], breaks, [len(raw)]))) - 1
            data = raw[raw != 10]
        else:
            if not all(_plain_key(k) for k in keys):
                return None
            lengths = np.fromiter((len(k.encode()) for k in keys), dtype=np.int64, count=n)
            data = np.frombuffer("".join(keys).encode(), dtype=np.uint8)
        if n and (
            int(lengths.min()) == 0 or int(lengths.max()) + len(_SAMPLE_SUFFIX) > _NAME_FIELD
        ):
            return None
        table = np.zeros((n, _NAME_ROW), dtype=np.uint8)
        suffix = np.frombuffer(_SAMPLE_SUFFIX.encode(), dtype=np.uint8)
        width = int(lengths[0]) if n else 0
        if n and bool((lengths == width).all()):  # the usual case: keys of one length
            table[:, :width] = data.reshape(n, width)
            table[:, width : width + len(suffix)] = suffix
        else:
            starts = np.cumsum(lengths) - lengths
            rows = np.repeat(np.arange(n), lengths)
            table[rows, np.arange(len(data)) - np.repeat(starts, lengths)] = data
            every = np.arange(n)
            for j, c in enumerate(suffix.tolist()):
                table[every, lengths + j] = c
        return table

    def to_bytes(self) -> bytes:
        payload: dict[str, Any] = {
            "format": _FORMAT,
            "version": _VERSION,
            "shard_size": self.shard_size,
            "sha256": self.sha256,
            "count": len(self.keys),
            "keys": self.keys,
            "header_offsets": self.header_offsets.astype("<i8").tobytes(),
            "sizes": self.sizes.astype("<i8").tobytes(),
        }
        if self.starts is not None and self.ends is not None:
            payload["version"] = _VERSION_GROUPS
            payload["starts"] = self.starts.astype("<i8").tobytes()
            payload["ends"] = self.ends.astype("<i8").tobytes()
        data: bytes = msgpack.packb(payload, use_bin_type=True)
        return data

    @classmethod
    def from_bytes(cls, data: bytes, where: str) -> "OffsetIndex":
        """Parse a sidecar; ShardError (naming ``where``) when it is malformed or impossible."""
        if len(data) > MAX_SIDECAR_BYTES:
            raise ShardError(
                f"bad offset index {where}: {len(data)} bytes is more than any sidecar holds"
            )
        try:
            raw = msgpack.unpackb(data, raw=False)
            if not isinstance(raw, dict) or raw.get("format") != _FORMAT:
                raise InvalidArgumentError("not an atdata offset index")
            version = raw.get("version")
            if version not in (_VERSION, _VERSION_GROUPS):
                raise InvalidArgumentError(f"unsupported version {version!r}")
            keys = raw["keys"]
            if not isinstance(keys, list):
                raise InvalidArgumentError("keys must be a list of strings")
            "".join(keys)  # TypeError unless every key is a string
            shard_size = raw["shard_size"]
            if not isinstance(shard_size, int) or not 0 <= shard_size <= MAX_SHARD_SIZE:
                raise InvalidArgumentError(f"impossible shard size {shard_size!r}")
            count = raw["count"]
            offsets = _int64s(raw["header_offsets"], "header_offsets", shard_size)
            sizes = _int64s(raw["sizes"], "sizes", shard_size)
            starts = ends = None
            if version == _VERSION_GROUPS:
                starts = _int64s(raw["starts"], "starts", shard_size)
                ends = _int64s(raw["ends"], "ends", shard_size)
            lengths = {len(keys), len(offsets), len(sizes)}
            lengths |= {len(x) for x in (starts, ends) if x is not None}
            if lengths != {count}:
                raise InvalidArgumentError("counts disagree")
            # every value is within [0, shard_size <= 2**50], so these sums cannot wrap
            if count and int((offsets + _BLOCK + _padded(sizes)).max()) > shard_size:
                raise InvalidArgumentError("a member extends past the end of the shard")
            if starts is not None and ends is not None and count:
                _check_spans(keys, offsets, sizes, starts, ends)
        except (
            ValueError,
            KeyError,
            TypeError,
            msgpack.ExtraData,
            msgpack.FormatError,
            msgpack.StackError,
        ) as exc:
            raise ShardError(f"bad offset index {where}: {exc}") from None
        sha = raw.get("sha256")
        return cls(
            list(keys),
            offsets,
            sizes,
            shard_size,
            sha if isinstance(sha, str) else None,
            starts,
            ends,
        )


def _check_spans(
    keys: list[str],
    offsets: "np.ndarray[Any, np.dtype[np.int64]]",
    sizes: "np.ndarray[Any, np.dtype[np.int64]]",
    starts: "np.ndarray[Any, np.dtype[np.int64]]",
    ends: "np.ndarray[Any, np.dtype[np.int64]]",
) -> None:
    """Group spans tile the shard from byte 0, each holding its member, and neighbouring
    groups have different keys (else they would be one group)."""
    if int(starts[0]) != 0 or not np.array_equal(starts[1:], ends[:-1]):
        raise InvalidArgumentError("sample spans do not follow one another from byte 0")
    if bool((offsets < starts).any()) or bool((offsets + _BLOCK + _padded(sizes) > ends).any()):
        raise InvalidArgumentError("a sample's member lies outside its span")
    if any(a == b for a, b in pairwise(keys)):
        raise InvalidArgumentError("neighbouring samples share a key")


def _plain_key(key: str) -> bool:
    """A key a tar parser reads back as itself from ``key.msgpack``: no '.' in its basename."""
    return bool(key) and "." not in key.rpartition("/")[2] and "\x00" not in key


def _int64s(value: Any, what: str, limit: int) -> "np.ndarray[Any, np.dtype[np.int64]]":
    if not isinstance(value, bytes) or len(value) % 8:
        raise InvalidArgumentError(f"{what} must be packed little-endian int64s")
    out: np.ndarray[Any, np.dtype[np.int64]] = np.frombuffer(value, dtype="<i8").astype(np.int64)
    if len(out) and (int(out.min()) < 0 or int(out.max()) > limit):
        raise InvalidArgumentError(f"{what} fall outside the shard")
    return out
