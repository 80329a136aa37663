"""Images in ``inspect``/``preview``: shown as format, size and mode (read from the header
only), optionally written as small PNG thumbnails (``preview --thumbnails DIR``)."""

import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import AtdataError, SchemaError
from ..media.image import Image, decode_image, sniff_format
from ..media.spec import FORMATS, ImageSpec, max_image_pixels
from ..schema import FieldType

__all__ = ["ImageInfo", "image_info", "thumbnail_or_problem", "write_thumbnail"]

THUMBNAIL_SIDE = 128
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


@dataclass(frozen=True)
class ImageInfo:
    """An encoded image in a sample: its format, header facts and bytes."""

    format: str
    data: bytes
    width: int | None = None
    height: int | None = None
    mode: str | None = None
    problem: str | None = None
    thumbnail: str | None = None

    def text(self) -> str:
        size = f" {self.width}x{self.height}" if self.width is not None else ""
        mode = f" {self.mode}" if self.mode else ""
        problem = f" ({self.problem})" if self.problem else ""
        thumb = f" -> {self.thumbnail}" if self.thumbnail else ""
        return f"{self.format}{size}{mode} <{len(self.data):,} bytes>{problem}{thumb}"

    def json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"image": self.format, "bytes": len(self.data)}
        if self.width is not None:
            out.update(width=self.width, height=self.height, mode=self.mode)
        if self.problem:
            out["problem"] = self.problem
        if self.thumbnail:
            out["thumbnail"] = self.thumbnail
        return out

    def field_type(self) -> FieldType:
        return FieldType("image", media=ImageSpec(format=self.format))


def image_info(value: Any) -> ImageInfo | None:
    """The facts of ``value`` if it is JPEG/PNG/WebP bytes (or an :class:`Image`), else None."""
    if isinstance(value, Image):
        value = value.data
    if not isinstance(value, bytes | bytearray | memoryview):
        return None
    fmt = sniff_format(value)
    if fmt is None:
        return None
    data = bytes(value)
    try:
        from PIL import Image as PILImage
    except ImportError:
        return ImageInfo(fmt, data, problem="install atdata[images] for sizes")
    try:
        with PILImage.open(io.BytesIO(data), formats=[FORMATS[fmt]]) as im:
            width, height = im.size
            mode = str(im.mode)
    except Exception:  # a bad header: shown as such, never raised from a preview
        return ImageInfo(fmt, data, problem="unreadable header")
    problem = "over the pixel cap" if width * height > max_image_pixels() else None
    return ImageInfo(fmt, data, width, height, mode, problem)


def write_thumbnail(info: ImageInfo, directory: Path, stem: str) -> str:
    """Write a PNG of at most 128x128 pixels under ``directory`` and return its path.

    ``stem`` (made from a sample key, which comes from the shard) is reduced to letters,
    digits, ``_`` and ``-``, so that nothing is written outside ``directory``.
    """
    from PIL import Image as PILImage

    arr = decode_image(info.data, info.format, ImageSpec(), "$")
    thumb = PILImage.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr)
    thumb.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
    directory.mkdir(parents=True, exist_ok=True)
    safe = _UNSAFE.sub("_", stem).strip("_")[:120] or "image"
    path = directory / f"{safe}.png"
    thumb.save(path, "PNG")
    return str(path)


def thumbnail_or_problem(info: ImageInfo, directory: Path, stem: str) -> str:
    """:func:`write_thumbnail`'s path, or why there is none (a bad image is shown, not raised)."""
    if info.problem:
        return f"no thumbnail: {info.problem}"
    try:
        return write_thumbnail(info, directory, stem)
    except (SchemaError, AtdataError) as exc:
        return f"no thumbnail: {exc}"
    except OSError as exc:
        return f"no thumbnail: {exc.strerror or exc}"
