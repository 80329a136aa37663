"""``ImageSpec``: what an image field declares (shape, mode, format, quality, pixel cap).

Plain data with no dependency on Pillow, so that schemas can describe image fields (and be read
back from records) on machines without the ``images`` extra.
"""

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import InvalidArgumentError, SchemaError

__all__ = [
    "DEFAULT_MAX_IMAGE_PIXELS",
    "FORMATS",
    "MODES",
    "ImageSpec",
    "canonical_format",
    "max_image_pixels",
]

#: Pillow's name of each format we read and write (nothing else is ever handed to Pillow).
FORMATS = {"jpeg": "JPEG", "png": "PNG", "webp": "WEBP"}
_ALIASES = {"jpg": "jpeg", "jpeg": "jpeg", "png": "png", "webp": "webp"}
#: Channels of each decoded mode: arrays are always ``(H, W, C)`` uint8.
MODES = {"L": 1, "RGB": 3, "RGBA": 4}
#: Images with more pixels than this are refused from their header, before any decoding.
DEFAULT_MAX_IMAGE_PIXELS = 64_000_000
MAX_PIXELS_ENV = "ATDATA_MAX_IMAGE_PIXELS"


def canonical_format(name: object) -> str:
    """``"jpeg"`` for ``"JPG"``/``"jpeg"``; InvalidArgumentError for anything but JPEG/PNG/WebP."""
    fmt = _ALIASES.get(name.lower()) if isinstance(name, str) else None
    if fmt is None:
        raise InvalidArgumentError(f"image format must be one of jpeg, png, webp; got {name!r}")
    return fmt


def max_image_pixels(override: int | None = None) -> int:
    """The pixel cap: ``override``, else ``$ATDATA_MAX_IMAGE_PIXELS``, else 64 megapixels."""
    if override is not None:
        return override
    text = os.environ.get(MAX_PIXELS_ENV, "").strip()
    if not text:
        return DEFAULT_MAX_IMAGE_PIXELS
    try:
        value = int(text)
    except ValueError:
        raise InvalidArgumentError(
            f"${MAX_PIXELS_ENV} must be a positive integer, got {text!r}"
        ) from None
    if value < 1:
        raise InvalidArgumentError(f"${MAX_PIXELS_ENV} must be a positive integer, got {text!r}")
    return value


@dataclass(frozen=True)
class ImageSpec:
    """Declared properties of an image field: ``Annotated[atdata.Image, atdata.ImageSpec(...)]``.

    - ``shape``: ``(H, W, C)`` of the decoded array (``None`` in a dimension: any size).
    - ``mode``: ``"RGB"``, ``"L"`` or ``"RGBA"``; decoded images are converted to it. Without a
      mode an image keeps its own (palette images become RGB or RGBA, others RGB).
    - ``format``: ``"jpeg"``, ``"png"`` or ``"webp"``; arrays are encoded in it on write, and
      stored images must be in it. Without one, any of the three is accepted and arrays are
      written as PNG (lossless).
    - ``quality``: encoder quality for JPEG/WebP arrays (1..100).
    - ``max_pixels``: this field's cap on ``H * W`` (default ``$ATDATA_MAX_IMAGE_PIXELS``,
      else 64 megapixels), checked from the header before decoding.
    """

    shape: tuple[int | None, ...] | None = None
    mode: str | None = None
    format: str | None = None
    quality: int = 90
    max_pixels: int | None = None

    def __post_init__(self) -> None:
        if self.shape is not None:
            shape = tuple(self.shape)
            if len(shape) != 3 or not all(d is None or (type(d) is int and d > 0) for d in shape):
                raise InvalidArgumentError(
                    f"ImageSpec shape must be (H, W, C) of positive ints or None, got {self.shape!r}"
                )
            object.__setattr__(self, "shape", shape)
        if self.mode is not None:
            if self.mode not in MODES:
                raise InvalidArgumentError(
                    f"ImageSpec mode must be one of {sorted(MODES)}, got {self.mode!r}"
                )
            channels = self.shape[2] if self.shape is not None else None
            if channels is not None and channels != MODES[self.mode]:
                raise InvalidArgumentError(
                    f"ImageSpec mode {self.mode} has {MODES[self.mode]} channel(s), "
                    f"but the shape declares {channels}"
                )
        if self.format is not None:
            object.__setattr__(self, "format", canonical_format(self.format))
        if type(self.quality) is not int or not 1 <= self.quality <= 100:
            raise InvalidArgumentError(f"ImageSpec quality must be 1..100, got {self.quality!r}")
        if self.max_pixels is not None and (
            type(self.max_pixels) is not int or self.max_pixels < 1
        ):
            raise InvalidArgumentError(
                f"ImageSpec max_pixels must be a positive int, got {self.max_pixels!r}"
            )

    @property
    def fixed_shape(self) -> tuple[int, int, int] | None:
        """The decoded shape when every dimension is declared (or implied by the mode)."""
        if self.shape is None:
            return None
        h, w, c = self.shape
        if c is None and self.mode is not None:
            c = MODES[self.mode]
        if h is None or w is None or c is None:
            return None
        return (h, w, c)

    def describe(self) -> str:
        parts = [self.format or "any", self.mode or "any mode"]
        if self.shape is not None:
            parts.append("(" + ", ".join("?" if d is None else str(d) for d in self.shape) + ")")
        return f"image[{', '.join(parts)}]"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.shape is not None:
            out["shape"] = list(self.shape)
        if self.mode is not None:
            out["mode"] = self.mode
        if self.format is not None:
            out["format"] = self.format
        if self.quality != 90:
            out["quality"] = self.quality
        if self.max_pixels is not None:
            out["maxPixels"] = self.max_pixels
        return out

    @classmethod
    def from_dict(cls, data: object, path: str) -> "ImageSpec":
        """The spec a schema record describes; SchemaError naming ``path`` when malformed."""
        if not isinstance(data, Mapping):
            raise SchemaError(f"image spec at {path} must be a mapping", path=path)
        shape = data.get("shape")
        try:
            return cls(
                shape=tuple(shape) if isinstance(shape, list) else shape,
                mode=data.get("mode"),
                format=data.get("format"),
                quality=data.get("quality", 90),
                max_pixels=data.get("maxPixels"),
            )
        except InvalidArgumentError as exc:
            raise SchemaError(f"bad image spec at {path}: {exc}", path=path) from None
