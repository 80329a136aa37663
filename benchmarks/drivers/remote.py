"""What the remote-read drivers share (``remote_driver`` for ours, the ``remote`` op of
``atdata07_driver``): shard URLs on the loopback servers, the loopback guard, epoch windows.

Standard library only: it is imported under atdata 0.7's interpreter too.
"""

import time
from collections.abc import Callable
from typing import Any

from .common import timed_pass


def shard_names(spec: dict[str, Any]) -> list[str]:
    return [spec["pattern"] % i for i in range(spec["shards"])]


def brace_name(spec: dict[str, Any]) -> str:
    """``data-{000000..000009}.tar`` for a ``data-%06d.tar`` pattern (one shard: its name)."""
    k = spec["shards"]
    if k == 1:
        return spec["pattern"] % 0
    prefix, suffix = spec["pattern"].split("%06d")
    return f"{prefix}{{{0:06d}..{k - 1:06d}}}{suffix}"


def http_url(spec: dict[str, Any]) -> str:
    """The brace URL of the shards on the loopback HTTP server (``spec['http']`` is its base)."""
    return f"{spec['http'].rstrip('/')}/{brace_name(spec)}"


def s3_keys(spec: dict[str, Any]) -> list[str]:
    return [spec["s3"]["prefix"] + name for name in shard_names(spec)]


def s3_url(spec: dict[str, Any]) -> str:
    """``s3://bucket/prefix/data-{000000..000009}.tar``."""
    s3 = spec["s3"]
    return f"s3://{s3['bucket']}/{s3['prefix']}{brace_name(spec)}"


def loopback_guard() -> None:
    """Refuse, in this process, every connection and name lookup that is not loopback."""
    from ..atmosphere_bench import loopback_only

    loopback_only()


def timed_epoch(
    make_iter: Callable[[], Any], ids_of: Callable[[Any], Any], batched: bool = True
) -> dict[str, Any]:
    """:func:`timed_pass` plus its window on the system-wide monotonic clock.

    ``time.monotonic()`` is CLOCK_MONOTONIC, the same clock in every process of the machine, so
    the benchmark can count the requests its servers logged inside each epoch.
    """
    start = time.monotonic()
    res = timed_pass(make_iter, ids_of, batched=batched)
    res["window"] = [start, time.monotonic()]
    return res
