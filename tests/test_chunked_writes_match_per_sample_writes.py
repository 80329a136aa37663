"""``ShardWriter.write_all`` encodes runs of small flat samples a chunk at a time; every file it
writes (shards, offset indexes, manifests) must be byte for byte what writing the same samples one
``write`` at a time gives, whatever the samples, and a failure must leave what one-at-a-time
writing leaves."""

import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pytest

import atdata
from atdata import NDArray, SchemaError, Shape, ShardWriter
from atdata.codec import codec_for
from atdata.codec_batch import batch_encoder
from atdata.manifest.build import ManifestBuilder, summarise
from atdata.manifest.fields import FieldKind, kind_of_value
from atdata.manifest.format import FieldStats, Manifest
from atdata.shards.tar import encode_header, padding
from atdata.shards.tar_batch import MemberAppender


@atdata.packable
class Tiny:
    idx: int
    name: str
    vec: Annotated[NDArray[np.float32], Shape(4)]


@atdata.packable
class Loose:
    idx: int
    name: str
    score: float
    flag: bool
    blob: bytes
    arr: NDArray[np.float32]  # any shape, zero-size included
    extra: Any
    maybe: str | None = None
    maybe_arr: NDArray[np.int16] | None = None


def _files(directory: Path) -> dict[str, bytes]:
    return {name: (directory / name).read_bytes() for name in sorted(os.listdir(directory))}


def _write_both(
    tmp_path: Path, samples: list[Any], *, fast_path: bool = True, **kwargs: Any
) -> tuple[dict[str, bytes], dict[str, bytes]]:
    """Every file written by ``write_all`` and by one ``write`` per sample (scratch writes
    unless ``durable`` is given: the bytes are the same, the fsyncs only take time)."""
    kwargs.setdefault("durable", False)
    fast, slow = tmp_path / "fast", tmp_path / "slow"
    with ShardWriter(str(fast / "s-%06d.tar"), sidecar_builder=ManifestBuilder, **kwargs) as w:
        w.write_all(iter(samples))
    assert (w._batch is not None) == fast_path  # the chunked path ran to the end, or gave up
    with ShardWriter(str(slow / "s-%06d.tar"), sidecar_builder=ManifestBuilder, **kwargs) as w:
        for sample in samples:
            w.write(sample)
    return _files(fast), _files(slow)


def _loose(i: int, rng: np.random.Generator) -> Loose:
    names = ["", "é", "名前", "x" * 300, "\x00nul", f"n{i}", "🙂" * 7]
    shape = [(0,), (3,), (2, 0), (1, 1, 5), ()][i % 5]
    return Loose(
        idx=[i, -i, 2**40 + i, 127, 128, 255, 256, 65535, 65536, -(2**63)][i % 10],
        name=names[i % len(names)],
        score=[0.5 * i, float("nan"), -0.0, float("inf"), 3][i % 5],
        flag=i % 3 == 0,
        blob=bytes(i % 700),  # body sizes on both sides of 512-byte block edges
        arr=rng.random(shape, dtype=np.float32),
        extra=[None, {"k": [1, "two"]}, "s", 7.5][i % 4],
        maybe=None if i % 2 else f"m{i}",
        maybe_arr=None if i % 3 else np.arange(i % 4, dtype=np.int16),
    )


@pytest.mark.parametrize("maxcount", [1, 7, 256, 300, 10_000])
def test_varied_samples_give_the_same_bytes(tmp_path: Path, maxcount: int) -> None:
    rng = np.random.default_rng(3)
    samples = [_loose(i, rng) for i in range(60 if maxcount < 10 else 900)]
    fast, slow = _write_both(tmp_path, samples, maxcount=maxcount)
    assert list(fast) == list(slow) and len(fast) >= 3
    assert fast == slow


def test_long_key_prefixes_and_tiny_records_give_the_same_bytes(tmp_path: Path) -> None:
    prefix = "p" * (100 - 8 - len(".msgpack"))  # member names of exactly 100 bytes
    samples = [Tiny(i, f"t{i}", np.full(4, i, np.float32)) for i in range(1000)]
    fast, slow = _write_both(tmp_path, samples, maxcount=333, key_prefix=prefix)
    assert fast == slow
    fast2, slow2 = _write_both(tmp_path / "b", samples, maxcount=1000, durable=True)
    assert fast2 == slow2


def test_samples_the_fast_path_declines_give_the_same_bytes(tmp_path: Path) -> None:
    """Conversions (numpy scalars, an int in a float field), large arrays and large strings go
    through the per-sample path, mid-stream: the bytes still agree."""
    rng = np.random.default_rng(5)
    samples = [_loose(i, rng) for i in range(1200)]
    samples[300].idx = np.int64(5)  # type: ignore[assignment]
    fast, slow = _write_both(tmp_path / "one", samples, maxcount=500)  # one chunk declined
    assert fast == slow
    samples[300].idx = np.int64(5)  # type: ignore[assignment]
    samples[301].score = True  # type: ignore[assignment]
    samples[600].arr = np.zeros(1 << 15, np.float32)  # a 128 KiB array: written in pieces
    samples[900].name = "y" * (1 << 17)
    fast, slow = _write_both(tmp_path / "all", samples, maxcount=500, fast_path=False)
    assert fast == slow


def test_write_samples_matches_one_write_at_a_time(tmp_path: Path) -> None:
    samples = [Tiny(i, "é" * (i % 5), np.arange(4, dtype=np.float32) + i) for i in range(2500)]
    atdata.write_samples(samples, str(tmp_path / "a" / "s-%06d.tar"), maxcount=1000)
    with ShardWriter(
        str(tmp_path / "b" / "s-%06d.tar"), maxcount=1000, sidecar_builder=ManifestBuilder
    ) as w:
        for sample in samples:
            w.write(sample)
    assert _files(tmp_path / "a") == _files(tmp_path / "b")


def test_a_bad_sample_mid_chunk_fails_where_one_at_a_time_fails(tmp_path: Path) -> None:
    samples = [Tiny(i, f"t{i}", np.zeros(4, np.float32)) for i in range(700)]
    samples[450].vec = np.zeros(5, np.float32)  # wrong shape
    outcomes = []
    for label in ("fast", "slow"):
        w: ShardWriter[Tiny] = ShardWriter(
            str(tmp_path / label / "s-%06d.tar"), maxcount=200, sidecar_builder=ManifestBuilder
        )
        with pytest.raises(SchemaError, match="shape") as caught:
            if label == "fast":
                w.write_all(samples)
            else:
                for sample in samples:
                    w.write(sample)
        w.close()  # what was written before the bad sample is kept
        outcomes.append((caught.value.path, _files(tmp_path / label)))
    assert outcomes[0] == outcomes[1]
    assert sum(info.count for info in w.shards) == 450


def test_a_failing_input_keeps_the_samples_taken_before_it(tmp_path: Path) -> None:
    def samples() -> Iterator[Tiny]:
        for i in range(330):
            yield Tiny(i, "", np.zeros(4, np.float32))
        raise OSError("source went away")

    w: ShardWriter[Tiny] = ShardWriter(str(tmp_path / "s-%06d.tar"), maxcount=100)
    with pytest.raises(OSError, match="went away"):
        w.write_all(samples())
    assert [info.count for info in w.close()] == [100, 100, 100, 30]


def test_the_batch_encoder_gives_each_sample_its_codec_bytes() -> None:
    rng = np.random.default_rng(9)
    samples = [_loose(i, rng) for i in range(200)]
    codec = codec_for(Loose)
    encoder = batch_encoder(codec)
    assert encoder is not None
    assert encoder.encode(samples) == [codec.encode(s) for s in samples]
    samples[7].flag = np.bool_(True)  # type: ignore[assignment]  # needs a conversion
    assert encoder.encode(samples) is None


def test_member_headers_match_the_single_header_encoder() -> None:
    names = [b"", b"a.msgpack", "é名.cls".encode(), b"k" * 100, b"00000001.msgpack"]
    bodies = [b"", b"x" * 511, b"y" * 512, b"z" * 513, bytes(70_000)]
    out = bytearray(b"prefix")
    sizes = MemberAppender().append(out, names, bodies)
    assert sizes == [len(b) for b in bodies]
    want = b"prefix" + b"".join(
        encode_header(n, len(b)) + b + padding(len(b)) for n, b in zip(names, bodies, strict=True)
    )
    assert bytes(out) == want
    same_width = [b"%08d.msgpack" % i for i in (0, 9, 99999999)]  # one length: summed in bulk
    out = bytearray()
    MemberAppender().append(out, same_width, bodies[:3])
    assert bytes(out) == b"".join(
        encode_header(n, len(b)) + b + padding(len(b))
        for n, b in zip(same_width, bodies[:3], strict=True)
    )
    with pytest.raises(ValueError):
        MemberAppender().append(bytearray(), [b"k" * 101], [b""])


def _reference_summary(kind: FieldKind, column: list[Any]) -> FieldStats | None:
    """The manifest summary written value by value (what the bulk checks must agree with)."""
    from collections import Counter

    from atdata.manifest.bloom import Bloom
    from atdata.manifest.build import VALUE_BOUND

    present = []
    for v in column:
        if v is None:
            continue
        found = kind_of_value(v)
        if found != kind and not (kind == "float" and found == "int"):
            return None
        present.append(v)
    ordered = [v for v in present if not (isinstance(v, float) and math.isnan(v))]
    counts = Counter(present)
    exact = len(counts) <= VALUE_BOUND
    return FieldStats(
        kind,
        len(column),
        len(column) - len(present),
        min=min(ordered) if ordered else None,
        max=max(ordered) if ordered else None,
        distinct=len(counts),
        values=dict(counts) if exact else None,
        top=counts.most_common(10),
        bloom=None if exact or kind in ("float", "bool") else Bloom.of(present),
    )


def test_manifest_summaries_match_a_value_by_value_summary() -> None:
    columns: dict[str, tuple[FieldKind, list[Any]]] = {
        "ints": ("int", [*range(600), None, -5]),
        "bool_in_int": ("int", [1, True, 2]),
        "numpy_int": ("int", [1, np.int64(2)]),
        "floats": ("float", [0.5, 1, None, float("nan"), -2.0, *map(float, range(300))]),
        "nan_only": ("float", [float("nan"), None]),
        "strs": ("str", ["", "é", None, *(f"s{i}" for i in range(400))]),
        "str_with_int": ("str", ["a", 1]),
        "bools": ("bool", [True, False, None]),
        "int_in_bool": ("bool", [True, 0]),
        "empty": ("int", []),
        "nones": ("str", [None, None]),
    }
    fields = {name: kind for name, (kind, _) in columns.items()}
    got = summarise(
        fields, {n: list(c) for n, (_, c) in columns.items()}, size=1, sha256="0", count=3
    )
    stats = {
        n: s for n, (k, c) in columns.items() if (s := _reference_summary(k, list(c))) is not None
    }
    kept = {n: list(c) for n, (_, c) in columns.items() if n in stats}
    want = Manifest("0", 1, 3, stats, columns=kept, positions=np.arange(3, dtype=np.int64))
    assert got.to_bytes() == want.to_bytes()


def test_a_shard_is_committed_as_soon_as_the_next_one_starts(tmp_path: Path) -> None:
    """The chunked path reads ahead only inside a shard: the first sample of the next shard is
    written on its own, so the shard before it is committed then. A producer that waits for a
    shard to appear before it yields more (a pipeline handing shards on) does not deadlock."""
    from waiting import wait_until

    out = tmp_path / "out"

    def samples() -> Iterator[Tiny]:
        for i in range(23):
            yield Tiny(idx=i, name=f"n{i}", vec=np.full(4, i, dtype=np.float32))
        # samples 20..22 opened the third shard: the first two are whole on disk by now
        wait_until(lambda: len(list(out.glob("s-*.tar"))) == 2, "two shards committed")
        yield Tiny(idx=23, name="last", vec=np.zeros(4, dtype=np.float32))

    with ShardWriter(str(out / "s-%06d.tar"), maxcount=10, durable=False) as w:
        w.write_all(samples())
    assert w._batch is not None  # the chunked path did the writing
    assert sorted(p.name for p in out.glob("s-*.tar")) == [f"s-{i:06d}.tar" for i in range(3)]
