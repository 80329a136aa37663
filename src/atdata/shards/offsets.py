"""The per-shard offset index: a sidecar ``<shard>.idx`` beside every shard we write.

It records, for every sample member, its key and where its header and body lie, so that
``len()``, ``ds[i]`` and ``ds.get(key)`` are O(1) without scanning the tar. The sidecar is a
msgpack map; the shard's size and sha256 are kept in it so a stale sidecar is detected.
"""

from dataclasses import dataclass
from typing import Any

import msgpack
import numpy as np

from ..errors import ShardError

__all__ = ["OFFSETS_SUFFIX", "OffsetIndex"]

OFFSETS_SUFFIX = ".idx"
_FORMAT = "atdata.offsets"
_VERSION = 1


@dataclass
class OffsetIndex:
    """Keys, header offsets and body sizes of the sample members of one shard."""

    keys: list[str]
    header_offsets: "np.ndarray[Any, np.dtype[np.int64]]"
    sizes: "np.ndarray[Any, np.dtype[np.int64]]"
    shard_size: int
    sha256: str | None = None
    _positions: dict[str, int] | None = None

    def __len__(self) -> int:
        return len(self.keys)

    def position(self, key: str) -> int | None:
        """The member number of ``key`` in this shard, or None."""
        if self._positions is None:
            self._positions = {k: i for i, k in enumerate(self.keys)}
        return self._positions.get(key)

    def body_range(self, i: int) -> tuple[int, int]:
        """(offset, size) of the body of member number ``i``."""
        return int(self.header_offsets[i]) + 512, int(self.sizes[i])

    def to_bytes(self) -> bytes:
        payload = {
            "format": _FORMAT,
            "version": _VERSION,
            "shard_size": self.shard_size,
            "sha256": self.sha256,
            "count": len(self.keys),
            "keys": self.keys,
            "header_offsets": self.header_offsets.astype("<i8").tobytes(),
            "sizes": self.sizes.astype("<i8").tobytes(),
        }
        data: bytes = msgpack.packb(payload, use_bin_type=True)
        return data

    @classmethod
    def from_bytes(cls, data: bytes, where: str) -> "OffsetIndex":
        try:
            raw = msgpack.unpackb(data, raw=False)
            if not isinstance(raw, dict) or raw.get("format") != _FORMAT:
                raise ValueError("not an atdata offset index")
            if raw.get("version") != _VERSION:
                raise ValueError(f"unsupported version {raw.get('version')!r}")
            keys = raw["keys"]
            offsets = np.frombuffer(raw["header_offsets"], dtype="<i8")
            sizes = np.frombuffer(raw["sizes"], dtype="<i8")
            count = raw["count"]
            shard_size = int(raw["shard_size"])
            if not (len(keys) == len(offsets) == len(sizes) == count):
                raise ValueError("counts disagree")
            if count and (
                int(offsets.min()) < 0 or int((offsets + 512 + sizes).max()) > shard_size
            ):
                raise ValueError("offsets fall outside the shard")
        except (ValueError, KeyError, TypeError, msgpack.ExtraData) as exc:
            raise ShardError(f"bad offset index {where}: {exc}") from None
        sha = raw.get("sha256")
        return cls(list(keys), offsets, sizes, shard_size, sha if isinstance(sha, str) else None)
