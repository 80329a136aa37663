"""Media fields: encoded images stored as bytes and decoded lazily, or in parallel per batch."""

from .image import Image, decode_image, sniff_format
from .pool import decode_column, decode_threads
from .spec import DEFAULT_MAX_IMAGE_PIXELS, ImageSpec, max_image_pixels

__all__ = [
    "DEFAULT_MAX_IMAGE_PIXELS",
    "Image",
    "ImageSpec",
    "decode_column",
    "decode_image",
    "decode_threads",
    "max_image_pixels",
    "sniff_format",
]
