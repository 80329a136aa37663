"""What is known about one finished shard: :class:`ShardInfo` and its :class:`Checksum`.

One class for every layer: :class:`~atdata.shards.writer.ShardWriter` returns it, index entries
store it (``to_dict``/``from_dict`` is the index's record form, docs/format.md §3), stores verify
against it, and the atmosphere records carry the same :class:`Checksum`. This module imports
nothing from atdata but its errors, so every layer may use it.
"""

from dataclasses import dataclass
from typing import Any

from ..errors import InvalidArgumentError

__all__ = ["Checksum", "ShardInfo"]

_CHECKSUM_KEYS = ("algorithm", "digest")


@dataclass(frozen=True)
class Checksum:
    """A digest with its algorithm named next to it (docs/format.md §3); atdata writes only sha256.

    ``to_dict`` gives the wire form ``{"algorithm": "sha256", "digest": "<hex>"}``.
    """

    algorithm: str
    digest: str

    @classmethod
    def sha256(cls, digest: str) -> "Checksum":
        """A sha256 checksum with the hex ``digest``."""
        return cls("sha256", digest)

    def to_dict(self) -> dict[str, str]:
        return {"algorithm": self.algorithm, "digest": self.digest}

    @classmethod
    def from_dict(cls, data: Any) -> "Checksum":
        """The checksum in an index record; InvalidArgumentError when it is not two strings.

        (Atmosphere records are checked more strictly, with field paths, in
        :mod:`atdata.atmosphere.records`.)
        """
        ok = isinstance(data, dict) and all(isinstance(data.get(k), str) for k in _CHECKSUM_KEYS)
        if not ok:
            raise InvalidArgumentError(
                f"a checksum must be {{'algorithm': str, 'digest': str}}: {data!r}"
            )
        return cls(data["algorithm"], data["digest"])


@dataclass(frozen=True)
class ShardInfo:
    """One finished shard: its URL, checksum, sample count, size in bytes, and the checksum of
    its offset-index sidecar ``url + ".idx"``.

    ``sidecar_checksum`` is None where none was recorded (entries older than sidecar checksums,
    shards registered without a sidecar); readers verify a sidecar against it when present.
    """

    url: str
    checksum: Checksum
    count: int
    size: int
    sidecar_checksum: Checksum | None = None
    #: checksum of the manifest sidecar ``url + ".manifest"`` (None: none recorded)
    manifest_checksum: Checksum | None = None

    def to_dict(self) -> dict[str, Any]:
        """The index's record form of this shard."""
        out: dict[str, Any] = {
            "url": self.url,
            "checksum": self.checksum.to_dict(),
            "count": self.count,
            "size": self.size,
        }
        if self.sidecar_checksum is not None:
            out["sidecar_checksum"] = self.sidecar_checksum.to_dict()
        if self.manifest_checksum is not None:
            out["manifest_checksum"] = self.manifest_checksum.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: Any) -> "ShardInfo":
        """The shard in an index record; InvalidArgumentError naming what is wrong."""
        if not isinstance(data, dict) or not isinstance(data.get("url"), str):
            raise InvalidArgumentError(f"a shard record needs a 'url' string, got {data!r}")
        count, size = data.get("count"), data.get("size")
        if not isinstance(count, int) or not isinstance(size, int):
            raise InvalidArgumentError(
                f"shard record {data['url']!r} needs integer 'count' and 'size'"
            )
        side = data.get("sidecar_checksum")
        manifest = data.get("manifest_checksum")
        return cls(
            data["url"],
            Checksum.from_dict(data.get("checksum")),
            count,
            size,
            None if side is None else Checksum.from_dict(side),
            None if manifest is None else Checksum.from_dict(manifest),
        )
