"""Lenses: declaring, registering, scoping, composing by path search, and the lens laws."""

from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import atdata
from atdata import Dataset, DictSample, Lens, LensError, LensRegistry, NDArray, Shape
from atdata.codec import codec_for
from exact import same

LAWS = settings(max_examples=100, deadline=None, derandomize=True, database=None)


@atdata.packable
class Full:
    name: str
    x: int
    y: int
    emb: Annotated[NDArray[np.float32], Shape(3)]


@atdata.packable
class XY:
    x: int
    y: int


@atdata.packable
class X:
    x: int


@atdata.packable
class Named:
    name: str
    emb: Annotated[NDArray[np.float32], Shape(3)]


@atdata.packable
class Unrelated:
    z: float


# ------------------------------------------------------------------------------ example lenses
# Well-behaved lenses, defined in a registry of their own so the default one stays untouched.
EXAMPLES = LensRegistry()

with EXAMPLES.use():

    @atdata.lens
    def full_xy(s: Full) -> XY:
        return XY(s.x, s.y)

    @full_xy.putter
    def _full_xy_put(v: XY, s: Full) -> Full:
        return Full(s.name, v.x, v.y, s.emb)

    @atdata.lens
    def xy_x(s: XY) -> X:
        return X(s.x)

    @xy_x.putter
    def _xy_x_put(v: X, s: XY) -> XY:
        return XY(v.x, s.y)

    @atdata.lens
    def full_named(s: Full) -> Named:
        return Named(s.name, s.emb)

    @full_named.putter
    def _full_named_put(v: Named, s: Full) -> Full:
        return Full(v.name, s.x, s.y, v.emb)


ints = st.integers(-(2**31), 2**31)
embs = hnp.arrays(np.float32, (3,), elements=st.floats(width=32, allow_nan=False))
fulls = st.builds(Full, name=st.text(max_size=8), x=ints, y=ints, emb=embs)
xys = st.builds(XY, x=ints, y=ints)
xs = st.builds(X, x=ints)
nameds = st.builds(Named, name=st.text(max_size=8), emb=embs)

LAWFUL: dict[str, tuple[Any, st.SearchStrategy[Any], st.SearchStrategy[Any]]] = {
    "Full>XY": (lambda: EXAMPLES.find(Full, XY), fulls, xys),
    "XY>X": (lambda: EXAMPLES.find(XY, X), xys, xs),
    "Full>Named": (lambda: EXAMPLES.find(Full, Named), fulls, nameds),
    "Full>XY>X (composed)": (lambda: EXAMPLES.find(Full, X), fulls, xs),
}


def _law_cases() -> list[Any]:
    return [pytest.param(*v, id=k) for k, v in LAWFUL.items()]


# ------------------------------------------------------------------------------ the lens laws
@pytest.mark.parametrize(("make", "sources", "views"), _law_cases())
def test_get_put(make: Any, sources: Any, views: Any) -> None:
    lens = make()

    @LAWS
    @given(s=sources)
    def law(s: Any) -> None:
        assert same(lens.put(lens.get(s), s), s)

    law()


@pytest.mark.parametrize(("make", "sources", "views"), _law_cases())
def test_put_get(make: Any, sources: Any, views: Any) -> None:
    lens = make()

    @LAWS
    @given(s=sources, v=views)
    def law(s: Any, v: Any) -> None:
        assert same(lens.get(lens.put(v, s)), v)

    law()


@pytest.mark.parametrize(("make", "sources", "views"), _law_cases())
def test_put_put(make: Any, sources: Any, views: Any) -> None:
    lens = make()

    @LAWS
    @given(s=sources, v1=views, v2=views)
    def law(s: Any, v1: Any, v2: Any) -> None:
        assert same(lens.put(v2, lens.put(v1, s)), lens.put(v2, s))

    law()


def _stored(sample: Any, **extra: Any) -> DictSample:
    """The DictSample a schema-free read of ``sample`` gives (arrays as stored bytes)."""
    import msgpack

    return DictSample({**msgpack.unpackb(sample.to_bytes()), **extra})


@LAWS
@given(full=fulls, v1=fulls, v2=fulls, caption=st.binary(max_size=8))
def test_the_automatic_dict_lens_is_lawful(full: Full, v1: Full, v2: Full, caption: bytes) -> None:
    lens = LensRegistry().find(DictSample, Full)
    d = _stored(full, txt=caption)  # other members of the same key ride along
    assert same(lens.get(d), full)
    assert same(lens.put(lens.get(d), d), d)  # GetPut
    assert same(lens.get(lens.put(v1, d)), v1)  # PutGet
    assert same(lens.put(v2, lens.put(v1, d)), lens.put(v2, d))  # PutPut


# ------------------------------------------------------------------------------ Lens objects
def test_lens_get_put_and_call() -> None:
    s = Full("a", 1, 2, np.zeros(3, np.float32))
    assert full_xy.get(s) == XY(1, 2)
    assert full_xy(s) == XY(1, 2)
    back = full_xy.put(XY(5, 6), s)
    assert (back.name, back.x, back.y) == ("a", 5, 6)
    assert full_xy.source is Full and full_xy.view is XY
    assert full_xy.has_put
    assert "full_xy" in repr(full_xy) and "Full" in repr(full_xy) and "XY" in repr(full_xy)


def test_a_lens_needs_annotated_or_explicit_types() -> None:
    with pytest.raises(LensError, match="annotated"):
        Lens(lambda s: s)
    explicit = Lens(lambda s: X(s.x), source=XY, view=X, name="explicit")
    assert explicit.get(XY(3, 4)) == X(3)
    assert not explicit.has_put
    with pytest.raises(LensError, match="putter"):
        explicit.put(X(1), XY(3, 4))


def test_a_failing_getter_raises_lens_error() -> None:
    def broken(s: XY) -> X:
        raise RuntimeError("nope")

    lens = Lens(broken)
    with pytest.raises(LensError, match="broken") as info:
        lens.get(XY(1, 2))
    assert isinstance(info.value.__cause__, RuntimeError)


def test_then_composes_get_and_put() -> None:
    composed = full_xy.then(xy_x)
    s = Full("n", 1, 2, np.ones(3, np.float32))
    assert composed.source is Full and composed.view is X
    assert composed.get(s) == X(1)
    back = composed.put(X(9), s)
    assert (back.name, back.x, back.y) == ("n", 9, 2)
    no_put = Lens(lambda s: X(s.x), source=XY, view=X)
    assert not full_xy.then(no_put).has_put


# ------------------------------------------------------------------------------ registries
def test_the_decorator_registers_in_the_current_registry() -> None:
    reg = LensRegistry()
    before = atdata.default_registry.list_lenses()
    with reg.use() as current:
        assert current is reg
        assert atdata.current_registry() is reg

        @atdata.lens
        def xy_unrelated(s: XY) -> Unrelated:
            return Unrelated(float(s.x + s.y))

    assert atdata.current_registry() is atdata.default_registry
    assert reg.list_lenses() == [xy_unrelated]
    assert list(reg.lenses) == [xy_unrelated]
    assert atdata.default_registry.list_lenses() == before
    assert reg.find(XY, Unrelated) is xy_unrelated
    with pytest.raises(LensError):
        atdata.default_registry.find(XY, Unrelated)


def test_use_nests_and_restores_after_errors() -> None:
    outer, inner = LensRegistry(), LensRegistry()
    with outer.use():
        with inner.use():
            assert atdata.current_registry() is inner
        assert atdata.current_registry() is outer
        with pytest.raises(RuntimeError), inner.use():
            raise RuntimeError("boom")
        assert atdata.current_registry() is outer
    assert atdata.current_registry() is atdata.default_registry


def test_path_search_composes_a_chain() -> None:
    lens = EXAMPLES.find(Full, X)
    assert lens.source is Full and lens.view is X
    assert lens.name == "full_xy>xy_x"
    assert lens.get(Full("a", 4, 5, np.zeros(3, np.float32))) == X(4)


def test_path_search_prefers_the_direct_lens_and_then_the_shortest_chain() -> None:
    @atdata.packable
    class A:
        v: int

    @atdata.packable
    class B:
        v: int

    @atdata.packable
    class C:
        v: int

    @atdata.packable
    class D:
        v: int

    reg = LensRegistry()

    def step(src: type, dst: type, name: str, add: int) -> Lens[Any, Any]:
        return reg.register(Lens(lambda s: dst(s.v + add), source=src, view=dst, name=name))

    step(A, B, "ab", 1)
    step(B, C, "bc", 10)
    step(C, D, "cd", 100)
    step(B, D, "bd", 1000)
    chain = reg.find(A, D)
    assert chain.name == "ab>bd"
    assert chain.get(A(0)) == D(1001)
    assert reg.find(A, C).get(A(0)) == C(11)
    direct = step(A, D, "ad", 5)
    assert reg.find(A, D) is direct


def test_no_path_is_a_lens_error_naming_both_types() -> None:
    with pytest.raises(LensError) as info:
        EXAMPLES.find(X, Full)  # lenses only go the other way
    assert "X" in str(info.value) and "Full" in str(info.value)
    with pytest.raises(LensError):
        EXAMPLES.find(Full, Unrelated)


def test_every_packable_type_has_an_automatic_dict_lens() -> None:
    empty = LensRegistry()
    lens = empty.find(DictSample, XY)
    assert lens.source is DictSample and lens.view is XY
    assert lens.get(DictSample(x=1, y=2)) == XY(1, 2)
    assert lens.get(DictSample(x=1, y=2, extra="ignored")) == XY(1, 2)
    with pytest.raises(LensError):
        lens.get(DictSample(x=1))  # y is missing
    with pytest.raises(LensError):
        empty.find(DictSample, int)


# ------------------------------------------------------------------------------ as_type
@pytest.fixture()
def fulls_on_disk(tmp_path: Path) -> str:
    samples = [Full(f"n{i}", i, -i, np.full(3, i, np.float32)) for i in range(9)]
    atdata.write_samples(samples, str(tmp_path / "f-%06d.tar"), maxcount=4)
    return str(tmp_path / "f-*.tar")


def test_as_type_uses_a_registered_lens_in_a_fresh_registry(fulls_on_disk: str) -> None:
    reg = LensRegistry()
    reg.register(full_xy)
    reg.register(xy_x)
    ds = Dataset[Full](fulls_on_disk)
    with pytest.raises(LensError):
        ds.as_type(X)  # not in the default registry
    explicit = ds.as_type(X, registry=reg)
    assert explicit.sample_type is X
    assert [s.x for s in explicit.ordered()] == list(range(9))
    with reg.use():
        scoped = ds.as_type(XY)
    assert [s.y for s in scoped.ordered()] == [-i for i in range(9)]
    assert scoped[3] == XY(3, -3)
    assert scoped.get("00000005") == XY(5, -5)
    batches = list(scoped.ordered(batch_size=4))
    assert [b.x for b in batches] == [[0, 1, 2, 3], [4, 5, 6, 7], [8]]
    assert sorted(s.x for s in scoped.shuffled(seed=2)) == list(range(9))
    assert ds.as_type(Full) is ds


def test_as_type_from_dict_samples_uses_the_automatic_lens(fulls_on_disk: str) -> None:
    ds = Dataset(fulls_on_disk)
    typed = ds.as_type(Full)
    assert [s.name for s in typed.ordered()] == [f"n{i}" for i in range(9)]
    viewed = ds.as_type(XY)  # the stored map holds x and y
    assert [s.x for s in viewed.ordered()] == list(range(9))
    mapped = ds.map(lambda d: d).as_type(Full)
    assert [s.x for s in mapped.ordered()] == list(range(9))
    assert np.array_equal(next(iter(mapped.ordered())).emb, np.zeros(3, np.float32))


def test_as_type_chain_after_dict_samples(fulls_on_disk: str) -> None:
    reg = LensRegistry()
    reg.register(full_named)
    ds = Dataset(fulls_on_disk).as_type(Full).as_type(Named, registry=reg)
    names = [s.name for s in ds.ordered()]
    assert names == [f"n{i}" for i in range(9)]
    with pytest.raises(LensError):
        Dataset(fulls_on_disk).as_type(Full).as_type(Unrelated, registry=reg)


def test_codec_round_trip_of_a_viewed_sample_is_its_own_type(fulls_on_disk: str) -> None:
    reg = LensRegistry()
    reg.register(full_xy)
    xy = next(iter(Dataset[Full](fulls_on_disk).as_type(XY, registry=reg).ordered()))
    assert codec_for(XY).decode(codec_for(XY).encode(xy)) == xy
