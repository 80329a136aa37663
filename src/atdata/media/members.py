"""Image fields in member layout: a ``.jpg``/``.jpeg``/``.png``/``.webp`` member of the key.

The member's bytes are the field's stored form (as in a msgpack sample); the codec's image
converter then checks the header and makes the lazy :class:`~atdata.media.image.Image`. A
member whose extension names another format than its bytes hold is refused, naming both.
"""

from typing import Any

from ..errors import SchemaError
from .image import Image, sniff_format

__all__ = ["ImageMemberCodec"]

_FORMAT_OF_EXTENSION = {"jpg": "jpeg", "jpeg": "jpeg", "png": "png", "webp": "webp"}


class ImageMemberCodec:
    """The member codec of image fields (see :mod:`atdata.members`)."""

    extensions: tuple[str, ...] = ("jpg", "jpeg", "png", "webp")

    def decode(self, data: bytes, ext: str) -> Any:
        found = sniff_format(data)
        if found is None:
            raise SchemaError(f"the .{ext} member is not a JPEG, PNG or WebP image")
        declared = _FORMAT_OF_EXTENSION.get(ext.rsplit(".", 1)[-1].lower())
        if declared is not None and declared != found:
            raise SchemaError(f"the .{ext} member holds {found} data, not {declared}")
        return data

    def encode(self, value: Any) -> tuple[str | None, bytes]:
        data = value.data if isinstance(value, Image) else value
        if not isinstance(data, bytes | bytearray | memoryview) or sniff_format(data) is None:
            raise SchemaError("an image member must hold JPEG, PNG or WebP bytes")
        return None, bytes(data)
