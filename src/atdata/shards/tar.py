"""The tar layout, read and written directly: 512-byte ustar headers, PAX and GNU long names.

Writing builds each header from a precomputed template (only name, size and checksum vary), so
that shards are byte-reproducible: mtime 0, uid/gid 0, mode 0644, empty user and group names.
Reading parses headers straight out of a buffer (an mmap of a local file or a chunk of a stream)
and verifies their checksums in bulk with numpy.
"""

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InvalidArgumentError, ShardError

__all__ = [
    "BLOCK",
    "HEADER_TEMPLATE",
    "HEADER_TEMPLATE_SUM",
    "MAX_NAME",
    "Member",
    "ParsedChunk",
    "ZERO_BLOCK",
    "encode_header",
    "header_checksum_ok",
    "padding",
    "parse_members",
    "parse_octal",
    "pax_records",
    "split_name",
    "verify_indexed_headers",
]

BLOCK = 512
ZERO_BLOCK = bytes(BLOCK)
MAX_NAME = 100
# Tar bodies of sizes above this are refused: no shard member here is legitimately that large, and
# the bound keeps a corrupt size field from being trusted.
MAX_MEMBER = 1 << 40


def _template() -> bytearray:
    h = bytearray(BLOCK)
    h[100:108] = b"0000644\x00"
    h[108:116] = b"0000000\x00"
    h[116:124] = b"0000000\x00"
    h[136:148] = b"00000000000\x00"  # mtime 0
    h[148:156] = b"        "  # checksum counted as spaces
    h[156:157] = b"0"
    h[257:263] = b"ustar\x00"
    h[263:265] = b"00"
    return h


HEADER_TEMPLATE = bytes(_template())
"""A member header with name and size zero and the checksum field blank (eight spaces)."""
HEADER_TEMPLATE_SUM = sum(HEADER_TEMPLATE)


def encode_header(name: bytes, size: int) -> bytes:
    """A ustar header for a regular file ``name`` of ``size`` bytes (name <= 100 bytes)."""
    if len(name) > MAX_NAME:
        raise InvalidArgumentError(f"tar member name longer than {MAX_NAME} bytes: {name!r}")
    size_field = b"%011o\x00" % size
    if len(size_field) != 12:
        raise InvalidArgumentError(f"member of {size} bytes is too large for a ustar header")
    checksum = (
        HEADER_TEMPLATE_SUM + sum(name) + sum(size_field)
    )  # name and size are zeros in the template
    h = bytearray(HEADER_TEMPLATE)
    h[0 : len(name)] = name
    h[124:136] = size_field
    h[148:156] = b"%06o\x00 " % checksum
    return bytes(h)


def padding(size: int) -> bytes:
    """Zero bytes that pad a body of ``size`` bytes to a whole block."""
    return ZERO_BLOCK[: (-size) % BLOCK]


@dataclass(slots=True)
class Member:
    """One regular tar member: its name, where its header starts and where its body lies."""

    name: str
    header_offset: int
    body_offset: int
    size: int

    @property
    def key(self) -> str:
        """WebDataset key: the path up to the first '.' of the basename."""
        return split_name(self.name)[0]


def split_name(name: str) -> tuple[str, str]:
    """(key, suffix) of a member name, WebDataset style: ``a/b.c.d`` -> (``a/b``, ``c.d``)."""
    slash = name.rfind("/")
    dot = name.find(".", slash + 1)
    if dot < 0:
        return name, ""
    return name[:dot], name[dot + 1 :]


_REGULAR = frozenset(b"0\x007")
_PAX = ord("x")
_GNU_LONGNAME = ord("L")


def _special_name(
    buf: Any, pos: int, long_name: str | None, pax: dict[str, str], *, shard: str, base: int
) -> str:
    """The member name when a GNU long name, PAX record or ustar prefix is involved."""
    if long_name is not None:
        name = long_name
    else:
        name = bytes(buf[pos : pos + 100]).split(b"\x00", 1)[0].decode("utf-8", "replace")
        if buf[pos + 345] != 0:
            prefix = (
                bytes(buf[pos + 345 : pos + 500]).split(b"\x00", 1)[0].decode("utf-8", "replace")
            )
            name = prefix + "/" + name
    if pax:
        if "size" in pax:
            raise ShardError("PAX size overrides are not supported", shard=shard, offset=base + pos)
        name = pax.get("path", name)
    return name


@dataclass(slots=True)
class ParsedChunk:
    members: list[Member]
    next_offset: int  # buffer position of the first header not consumed
    at_end: bool  # an end-of-archive marker (zero block) was reached


def parse_octal(field: bytes, what: str, shard: str, offset: int) -> int:
    if field[:1] in (b"\x80", b"\xff"):  # GNU base-256
        value = int.from_bytes(field[1:], "big")
        return -value if field[:1] == b"\xff" else value
    text = field.split(b"\x00", 1)[0].strip()
    if not text:
        return 0
    try:
        return int(text, 8)
    except ValueError:
        raise ShardError(
            f"bad {what} field {bytes(field)!r} in tar header", shard=shard, offset=offset
        ) from None


def pax_records(body: bytes, shard: str, offset: int) -> dict[str, str]:
    out: dict[str, str] = {}
    pos = 0
    while pos < len(body):
        space = body.find(b" ", pos)
        if space < 0:
            break
        try:
            length = int(body[pos:space])
        except ValueError:
            raise ShardError("malformed PAX header record", shard=shard, offset=offset) from None
        if length <= 0 or pos + length > len(body):
            raise ShardError("malformed PAX header record length", shard=shard, offset=offset)
        record = body[space + 1 : pos + length - 1]
        key, _, value = record.partition(b"=")
        out[key.decode("utf-8", "replace")] = value.decode("utf-8", "replace")
        pos += length
    return out


def parse_members(
    buf: Any, start: int, end: int, base: int, shard: str, *, max_members: int = 4096
) -> ParsedChunk:
    """Parse the complete members in ``buf[start:end]``; ``base`` is the shard offset of ``buf[0]``.

    Stops before a member that does not fit in the buffer, padding included (the caller refills
    and calls again, or reports truncation), after ``max_members`` regular members, or at an
    end-of-archive block. Headers are checksum-verified in bulk before returning, and so is the
    header of a member that does not fit, before the caller trusts its size. Anything malformed
    raises ShardError naming ``shard`` and the header's offset, except that the complete members
    before it are returned first (``next_offset`` then points just past them, so the next call
    raises): a policy that skips errors keeps every good sample.
    """
    members: list[Member] = []
    header_positions: list[int] = []
    append_member = members.append
    append_position = header_positions.append
    pos = start
    long_name: str | None = None
    pax: dict[str, str] = {}
    at_end = False
    stopped = False  # stopped at a header at ``pos`` that was not consumed
    failure: ShardError | None = None
    try:
        while len(members) < max_members:
            if pos + BLOCK > end:
                break
            if buf[pos] == 0 and buf[pos : pos + BLOCK] == ZERO_BLOCK:
                at_end = True
                break
            stopped = True
            try:
                size = int(buf[pos + 124 : pos + 135], 8)
            except ValueError:
                size = parse_octal(buf[pos + 124 : pos + 136], "size", shard, base + pos)
            if size < 0 or size > MAX_MEMBER:
                raise ShardError(
                    f"tar header gives an impossible size {size}", shard=shard, offset=base + pos
                )
            body_start = pos + BLOCK
            body_end = body_start + size
            next_pos = body_end + ((-size) % BLOCK)
            if next_pos > end:
                break  # the caller supplies more bytes (or reports truncation)
            append_position(pos)
            typeflag = buf[pos + 156]
            if typeflag in _REGULAR:
                if long_name is None and not pax and buf[pos + 345] == 0:
                    raw_name = buf[pos : pos + 100]
                    nul = raw_name.find(b"\x00")
                    name = (raw_name if nul < 0 else raw_name[:nul]).decode("utf-8", "replace")
                else:
                    name = _special_name(buf, pos, long_name, pax, shard=shard, base=base)
                    long_name, pax = None, {}
                append_member(Member(name, base + pos, base + body_start, size))
            elif typeflag == _PAX:
                pax = pax_records(bytes(buf[body_start:body_end]), shard, base + pos)
            elif typeflag == _GNU_LONGNAME:
                long_name = (
                    bytes(buf[body_start:body_end]).split(b"\x00", 1)[0].decode("utf-8", "replace")
                )
            # 'g' global PAX, directories, links and anything else: skipped
            stopped = False
            pos = next_pos
    except ShardError as exc:
        failure = exc
    if stopped:
        checked = [p for p in header_positions if p < pos]
        checked.append(pos)
    else:
        checked = header_positions
    mismatch = _checksum_mismatch(buf, checked)
    cut = pos
    if mismatch is not None:
        i, recorded, computed = mismatch
        cut = checked[i]
        failure = ShardError(
            f"tar header checksum mismatch (recorded {recorded}, computed {computed})",
            shard=shard,
            offset=base + cut,
        )
    if failure is None:
        return ParsedChunk(members, pos, at_end)
    good = [m for m in members if m.header_offset - base < cut]
    if not good:
        raise failure
    last = good[-1]
    resume = last.body_offset - base + last.size + (-last.size) % BLOCK
    return ParsedChunk(good, resume, False)


_LANES = np.uint64(0x00FF00FF00FF00FF)
_EIGHT = np.uint64(8)


def gather_headers(buf: Any, positions: "np.ndarray[Any, Any]") -> "np.ndarray[Any, Any]":
    """The 512-byte headers at ``positions`` as an (n, 512) uint8 array (one copy)."""
    if not (positions % BLOCK).any():
        # block-aligned (always, in a tar): take whole rows of a (blocks, 512) view
        blocks = np.frombuffer(buf, dtype=np.uint8, count=(len(buf) // BLOCK) * BLOCK)
        out: np.ndarray[Any, Any] = blocks.reshape(-1, BLOCK).take(positions // BLOCK, axis=0)
        return out
    raw = np.frombuffer(buf, dtype=np.uint8)
    gathered: np.ndarray[Any, Any] = raw[positions[:, None] + np.arange(BLOCK, dtype=np.int64)]
    return gathered


def _checksum_mismatch(buf: Any, positions: list[int]) -> tuple[int, int, int] | None:
    """Check every header's checksum at once (sum of its bytes, checksum field as spaces).

    Returns (index into ``positions``, recorded, computed) of the first bad header, else None.
    """
    if not positions:
        return None
    return _first_bad_checksum(gather_headers(buf, np.asarray(positions, dtype=np.int64)))


def _first_bad_checksum(headers: "np.ndarray[Any, Any]") -> tuple[int, int, int] | None:
    # sum the bytes of each header as 64 words, in four 16-bit lanes per word (no overflow:
    # 64 words x 2 bytes x 255 < 2**16)
    words = headers.view(np.uint64)
    lanes = ((words & _LANES) + ((words >> _EIGHT) & _LANES)).sum(axis=1, dtype=np.uint64)
    total = np.zeros(len(headers), dtype=np.int64)
    for shift in (0, 16, 32, 48):
        total += ((lanes >> np.uint64(shift)) & np.uint64(0xFFFF)).astype(np.int64)
    field = headers[:, 148:156].astype(np.int64)
    actual = total - field.sum(axis=1) + 8 * 32
    recorded = _parse_octal_rows(field)
    bad = np.nonzero(actual != recorded)[0]
    if bad.size:
        i = int(bad[0])
        return i, int(recorded[i]), int(actual[i])
    return None


def header_checksum_ok(buf: Any, offset: int) -> bool:
    """True when the 512 bytes at ``offset`` are a header whose checksum is right."""
    return _checksum_mismatch(buf, [offset]) is None


def verify_indexed_headers(
    buf: Any,
    offsets: "np.ndarray[Any, Any]",
    sizes: "np.ndarray[Any, Any]",
    names: "np.ndarray[Any, Any] | None" = None,
) -> int | None:
    """Check headers an offset index points at: checksum, regular type, size as recorded, and
    (given ``names``, rows of at least 100 bytes) the name field, with no ustar prefix.

    Returns the position (in ``offsets``) of the first header that disagrees, else None.
    """
    if len(offsets) == 0:
        return None
    if int(offsets.min()) < 0:
        return int(np.argmin(offsets))
    beyond = np.nonzero(offsets + BLOCK > len(buf))[0]
    if beyond.size:  # check what lies inside first: the earliest disagreement counts
        cut = int(beyond[0])
        first = verify_indexed_headers(
            buf, offsets[:cut], sizes[:cut], None if names is None else names[:cut]
        )
        return cut if first is None else first
    headers = gather_headers(buf, offsets)
    mismatch = _first_bad_checksum(headers)
    types = headers[:, 156]
    wrong = (_parse_octal_rows(headers[:, 124:136].astype(np.int64)) != sizes) | (
        (types != 48) & (types != 0)
    )
    if names is not None:  # compared as 12 uint64 words and one uint32 per 100-byte name
        wrong |= (headers[:, :96].view(np.uint64) != names[:, :96].view(np.uint64)).any(axis=1)
        wrong |= headers[:, 96:100].view(np.uint32)[:, 0] != names[:, 96:100].view(np.uint32)[:, 0]
        wrong |= headers[:, 345] != 0
    bad = np.nonzero(wrong)[0]
    first = int(bad[0]) if bad.size else None
    if mismatch is not None and (first is None or mismatch[0] < first):
        first = mismatch[0]
    return first


_OCTAL_RUN = re.compile(rb"[0-7]+")
_FEW_ROWS = 32  # below this many rows a loop of regex matches beats the vectorised parse


def _parse_octal_rows(field: "np.ndarray[Any, np.dtype[np.int64]]") -> "np.ndarray[Any, Any]":
    """Vectorised octal parse of checksum fields: leading spaces, digits, then NUL/space.

    Each row's value is its first run of octal digits (anything before it is skipped, anything
    after it ignored), -1 for a row without a digit. A few rows (a streamed buffer's headers)
    are parsed one by one with a regex; many with array operations: the same rule either way.
    """
    rows, width = field.shape
    if rows <= _FEW_ROWS:
        raw = field.astype(np.uint8).tobytes()  # header bytes: every value is 0..255
        out = np.empty(rows, dtype=np.int64)
        for i in range(rows):
            run = _OCTAL_RUN.search(raw, i * width, (i + 1) * width)
            out[i] = int(run.group(), 8) if run else -1
        return out
    return _parse_octal_rows_vectorised(field)


def _parse_octal_rows_vectorised(
    field: "np.ndarray[Any, np.dtype[np.int64]]",
) -> "np.ndarray[Any, Any]":
    is_digit = (field >= 48) & (field <= 55)
    value = np.zeros(field.shape[0], dtype=np.int64)
    started = np.zeros(field.shape[0], dtype=bool)
    done = np.zeros(field.shape[0], dtype=bool)
    for col in range(field.shape[1]):
        digit = is_digit[:, col] & ~done
        value = np.where(digit, value * 8 + (field[:, col] - 48), value)
        done |= started & ~is_digit[:, col]
        started |= digit
    return np.where(started, value, -1)
