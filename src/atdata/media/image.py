"""``Image``: an encoded image (JPEG/PNG/WebP bytes) that decodes to a uint8 ``(H, W, C)`` array.

The bytes are what is stored (a msgpack ``bin`` value, or a tar member of its own); decoding is
lazy (on :meth:`Image.decode`, ``np.asarray(image)``, or when a batch is collated). Only the
three formats are ever handed to Pillow, each image's header is checked against the pixel cap
and the declared shape before a pixel is decoded, and every failure is a :class:`SchemaError`
naming the field (the loader adds the sample key and shard).
"""

import io
from typing import Any

import numpy as np

from .._optional import require
from ..errors import InvalidArgumentError, SchemaError
from .spec import FORMATS, MODES, ImageSpec, canonical_format, max_image_pixels

__all__ = ["Image", "Opened", "decode_image", "open_checked", "open_header", "sniff_format"]

_ANY = ImageSpec()
#: A checked header: the opened (not yet decoded) Pillow image, its (H, W, C) and target mode.
Opened = tuple[Any, tuple[int, int, int], str]


def _pil() -> Any:
    return require("PIL.Image", "images")


def sniff_format(data: bytes | bytearray | memoryview) -> str | None:
    """``"jpeg"``, ``"png"`` or ``"webp"`` from the magic bytes; None for anything else."""
    head = bytes(data[:12])
    if head[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if head[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    return None


class Image:
    """Encoded image bytes plus their format; ``np.asarray(img)`` decodes them.

    >>> import numpy as np
    >>> img = Image.encode(np.zeros((4, 6, 3), np.uint8), format="png")
    >>> img.format, img.shape, img.decode().shape
    ('png', (4, 6, 3), (4, 6, 3))
    """

    __slots__ = ("_array", "_header", "_spec", "data", "format")

    def __init__(
        self,
        data: bytes | bytearray | memoryview,
        format: str | None = None,
        *,
        spec: ImageSpec | None = None,
    ) -> None:
        if not isinstance(data, bytes | bytearray | memoryview):
            raise InvalidArgumentError(f"Image data must be bytes, got {type(data).__name__}")
        self.data = bytes(data)
        found = sniff_format(self.data)
        if found is None:
            raise SchemaError(
                f"not a JPEG, PNG or WebP image ({len(self.data)} bytes starting {self.data[:8]!r})"
            )
        if format is not None and canonical_format(format) != found:
            raise SchemaError(f"declared {canonical_format(format)} but the bytes are {found}")
        self.format = found
        self._spec = spec or _ANY
        self._array: np.ndarray[Any, Any] | None = None
        self._header: Opened | None = None  # opened and checked, kept for the decode

    @classmethod
    def encode(
        cls, array: Any, format: str = "jpeg", quality: int = 90, mode: str | None = None
    ) -> "Image":
        """Encode a uint8 ``(H, W)`` or ``(H, W, C)`` array (C = 1, 3 or 4) as ``format``."""
        fmt = canonical_format(format)
        arr = np.asarray(array)
        if arr.dtype != np.uint8:
            raise InvalidArgumentError(f"images are encoded from uint8 arrays, got {arr.dtype}")
        if arr.ndim == 3 and arr.shape[2] == 1:
            arr = arr[:, :, 0]
        channels = 1 if arr.ndim == 2 else (arr.shape[2] if arr.ndim == 3 else 0)
        by_channels = {1: "L", 3: "RGB", 4: "RGBA"}
        if channels not in by_channels or 0 in arr.shape:
            raise InvalidArgumentError(
                f"images are encoded from (H, W) or (H, W, 1|3|4) arrays, got shape {arr.shape}"
            )
        if type(quality) is not int or not 1 <= quality <= 100:
            raise InvalidArgumentError(f"quality must be 1..100, got {quality!r}")
        pil = _pil().fromarray(np.ascontiguousarray(arr), by_channels[channels])
        if mode is not None and mode != pil.mode:
            if mode not in MODES:
                raise InvalidArgumentError(f"mode must be one of {sorted(MODES)}, got {mode!r}")
            pil = pil.convert(mode)
        if fmt == "jpeg" and pil.mode == "RGBA":
            raise InvalidArgumentError("JPEG cannot store an alpha channel; use png or webp")
        buf = io.BytesIO()
        options: dict[str, Any] = {"quality": quality} if fmt != "png" else {}
        pil.save(buf, FORMATS[fmt], **options)
        return cls(buf.getvalue(), fmt)

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(H, W, C)`` of the decoded array, read from the header (nothing is decoded)."""
        with open_checked(self.data, self.format, self._spec, "$") as (im, shape, _mode):
            del im
            return shape

    def check(self, spec: ImageSpec, path: str) -> "Image":
        """Check the header against ``spec`` (SchemaError naming ``path``) and keep it open,
        so that decoding later does not parse it again."""
        if self._header is not None:
            self._header[0].close()
        self._header = open_header(self.data, self.format, spec, path)
        return self

    def take_header(self, spec: ImageSpec) -> Opened | None:
        """The header kept by :meth:`check` (for ``spec``), handed over once."""
        header, self._header = self._header, None
        if header is not None and spec != self._spec:
            header[0].close()
            return None
        return header

    def decode(self) -> np.ndarray[Any, Any]:
        """The pixels as a uint8 ``(H, W, C)`` array (decoded once, then kept; read-only)."""
        if self._array is None:
            header = self.take_header(self._spec)
            arr = decode_image(self.data, self.format, self._spec, "$", opened=header)
            arr.flags.writeable = False
            self._array = arr
        return self._array

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray[Any, Any]:
        arr = self.decode()
        if dtype is not None and np.dtype(dtype) != arr.dtype:
            return arr.astype(dtype)
        return arr.copy() if copy else arr

    def __len__(self) -> int:
        return len(self.data)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Image):
            return NotImplemented
        return self.data == other.data

    def __hash__(self) -> int:
        return hash(self.data)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_restore, (self.data, self.format, self._spec))

    def __repr__(self) -> str:
        return f"Image({self.format}, {len(self.data)} bytes)"


def _restore(data: bytes, fmt: str, spec: ImageSpec) -> Image:
    return Image(data, fmt, spec=spec)


def open_header(data: bytes | memoryview, fmt: str, spec: ImageSpec, path: str) -> Opened:
    """The Pillow image opened from ``data`` (header only) after the checks, the ``(H, W, C)``
    it decodes to and the mode its pixels are converted to; the caller closes the image.

    Raises SchemaError naming ``path`` for an unreadable header, a format other than ``fmt``,
    more pixels than the cap, or a size that disagrees with the declared shape.
    """
    pil = _pil()
    try:
        im = pil.open(io.BytesIO(data), formats=[FORMATS[fmt]])
    except Exception as exc:  # Pillow raises several unrelated types on a bad header
        raise SchemaError(f"{path}: cannot read the {fmt} image header: {exc}", path=path) from None
    width, height = im.size
    cap = max_image_pixels(spec.max_pixels)
    if width * height > cap:
        im.close()
        raise SchemaError(
            f"{path}: {fmt} image of {width}x{height} pixels is over the cap of {cap} "
            "(raise it with $ATDATA_MAX_IMAGE_PIXELS or ImageSpec(max_pixels=...))",
            path=path,
        )
    mode = spec.mode or _natural_mode(im)
    shape = (height, width, MODES[mode])
    want = spec.shape
    if want is not None and any(w is not None and w != g for w, g in zip(want, shape, strict=True)):
        im.close()
        raise SchemaError(
            f"{path}: expected an image of shape {_text(want)}, got {shape}", path=path
        )
    return im, shape, mode


class open_checked:
    """Context manager around :func:`open_header` that closes the image on exit."""

    def __init__(self, data: bytes | memoryview, fmt: str, spec: ImageSpec, path: str) -> None:
        self._args = (data, fmt, spec, path)
        self._im: Any = None

    def __enter__(self) -> Opened:
        opened = open_header(*self._args)
        self._im = opened[0]
        return opened

    def __exit__(self, *exc: object) -> None:
        if self._im is not None:
            self._im.close()


def _natural_mode(im: Any) -> str:
    mode: str = im.mode
    if mode in MODES:
        return mode
    if mode in ("1", "I;16", "I", "F") and im.format != "JPEG":
        return "L"
    if mode == "LA" or (mode == "P" and "transparency" in im.info) or mode == "PA":
        return "RGBA"
    return "RGB"


def _text(shape: tuple[int | None, ...]) -> str:
    return "(" + ", ".join("?" if d is None else str(d) for d in shape) + ")"


def decode_image(
    data: bytes | memoryview,
    fmt: str,
    spec: ImageSpec,
    path: str,
    out: np.ndarray[Any, Any] | None = None,
    *,
    opened: Opened | None = None,
) -> np.ndarray[Any, Any]:
    """Decode ``data`` to a uint8 ``(H, W, C)`` array (into ``out`` when its shape matches).

    ``opened``: what :func:`open_header` returned for these bytes and this spec, if the header
    was already checked (it is not parsed again); it is closed here.
    """
    im, shape, mode = opened if opened is not None else open_header(data, fmt, spec, path)
    try:
        if im.mode != mode:
            if fmt == "jpeg" and mode == "L":
                im.draft("L", im.size)  # libjpeg converts while decoding
            converted = im.convert(mode) if im.mode != mode else im
        else:
            im.load()
            converted = im
        arr = np.asarray(converted)
    except Exception as exc:  # truncated or corrupt pixel data
        raise SchemaError(f"{path}: cannot decode the {fmt} image: {exc}", path=path) from None
    finally:
        im.close()
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.shape != shape or arr.dtype != np.uint8:
        raise SchemaError(
            f"{path}: the {fmt} image decoded to {arr.dtype}{arr.shape}, not uint8{shape}",
            path=path,
        )
    if out is not None and out.shape == shape:
        out[...] = arr
        return out
    return arr
