"""The codec's converters for image fields (msgpack ``bin`` values holding encoded images)."""

from collections.abc import Callable
from typing import Any

import numpy as np

from ..errors import SchemaError
from .image import Image, decode_image
from .spec import ImageSpec

__all__ = ["image_checker", "image_decoder", "image_encoder", "to_image"]

Converter = Callable[[Any, str], Any]


def _at(path: str, exc: SchemaError) -> SchemaError:
    return SchemaError(f"{path}: {exc}", path=path)


def to_image(value: Any, spec: ImageSpec, path: str) -> Image:
    """``value`` (an Image, encoded bytes, or a uint8 array to encode) as an :class:`Image` of
    the field, its header checked against the spec (format, pixel cap, shape)."""
    try:
        if isinstance(value, Image):
            img = value if value._spec == spec else Image(value.data, value.format, spec=spec)
        elif isinstance(value, bytes | bytearray | memoryview):
            img = Image(value, spec=spec)
        elif isinstance(value, np.ndarray):
            fmt = spec.format or "png"
            enc = Image.encode(value, format=fmt, quality=spec.quality, mode=spec.mode)
            img = Image(enc.data, fmt, spec=spec)
        else:
            raise SchemaError(
                f"expected an atdata.Image, image bytes or a uint8 array, got {type(value).__name__}"
            )
    except SchemaError as exc:
        raise _at(path, exc) from None
    if spec.format is not None and img.format != spec.format:
        raise SchemaError(f"{path}: expected a {spec.format} image, got {img.format}", path=path)
    return img.check(spec, path)


def image_encoder(spec: ImageSpec, optional: bool) -> Converter:

    def enc_image(value: Any, path: str) -> Any:
        if value is None and optional:
            return None
        img = to_image(value, spec, path)
        header = img.take_header(spec)
        if header is not None:
            header[0].close()
        return img.data

    return enc_image


def image_decoder(spec: ImageSpec, optional: bool) -> Converter:
    """Stored bytes -> a lazy :class:`Image` (its header checked now, its pixels when used)."""

    def dec_image(value: Any, path: str) -> Any:
        if value is None and optional:
            return None
        if type(value) is not bytes and not isinstance(value, memoryview):
            raise SchemaError(
                f"{path}: expected image bytes, got {type(value).__name__}", path=path
            )
        return to_image(bytes(value), spec, path)

    return dec_image


def image_checker(spec: ImageSpec, optional: bool) -> Converter:
    """Stored bytes -> the decoded uint8 array (the batch path checks by decoding)."""

    def check_image(value: Any, path: str) -> Any:
        if value is None and optional:
            return None
        if type(value) is not bytes and not isinstance(value, memoryview):
            raise SchemaError(
                f"{path}: expected image bytes, got {type(value).__name__}", path=path
            )
        img = to_image(value, spec, path)
        return decode_image(img.data, img.format, spec, path, opened=img.take_header(spec))

    return check_image
