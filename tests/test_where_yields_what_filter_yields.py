"""``ds.where(p)`` yields exactly what ``ds.filter(python version of p)`` yields, in the same order,
in every reading mode, with manifests, without them, and through the index on several providers."""

import operator
import os
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import atdata
from atdata.index import Index, SQLiteProvider
from atdata.query import Expr, Field
from atdata.stores import LocalDiskStore
from query_helpers import Row, make_rows

N = 240
OPS: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
LITERALS = {
    "label": st.integers(-2, 22),
    "score": st.floats(-0.1, 1.1, allow_nan=False).map(lambda x: round(x, 3)),
    "id": st.integers(0, N + 5).map(lambda i: f"id{i:05d}"),
    "flag": st.booleans(),
    "note": st.sampled_from(["a", "b", "zz", "q"]),
}
Pair = tuple[Expr, Callable[[Row], bool]]


def _compare(name: str, op: str, lit: Any) -> Pair:
    expr = Field(name)._cmp(op, lit)

    def py(s: Row) -> bool:
        v = getattr(s, name)
        return v is not None and OPS[op](v, lit)

    return expr, py


@st.composite
def leaves(draw: Any) -> Pair:
    name = draw(st.sampled_from(sorted(LITERALS)))
    kind = draw(st.sampled_from(["cmp", "isin", "between", "null"]))
    if kind == "isin":
        values = draw(st.lists(LITERALS[name], min_size=1, max_size=4))
        return Field(name).isin(
            values
        ), lambda s: getattr(s, name) is not None and getattr(s, name) in set(values)
    if kind == "between":
        lo, hi = sorted([draw(LITERALS[name]), draw(LITERALS[name])])
        return Field(name).between(
            lo, hi
        ), lambda s: getattr(s, name) is not None and (lo <= getattr(s, name) <= hi)
    if kind == "null" and name == "note":
        return Field(name).is_null(), lambda s: s.note is None
    return _compare(name, draw(st.sampled_from(sorted(OPS))), draw(LITERALS[name]))


def _combine(children: st.SearchStrategy[Pair]) -> st.SearchStrategy[Pair]:
    def both(op: str, a: Pair, b: Pair) -> Pair:
        if op == "&":
            return a[0] & b[0], lambda s: a[1](s) and b[1](s)
        return a[0] | b[0], lambda s: a[1](s) or b[1](s)

    def neg(a: Pair) -> Pair:
        return ~a[0], lambda s: not a[1](s)

    return st.one_of(
        st.builds(both, st.sampled_from(["&", "|"]), children, children),
        st.builds(neg, children),
    )


EXPRS = st.recursive(leaves(), _combine, max_leaves=5)


def _write_local(root: Path, *, sort: bool, drop_manifests: bool) -> atdata.Dataset[Row]:
    root.mkdir(parents=True)
    atdata.write_samples(make_rows(N, 1, sort=sort), str(root / "q-%06d.tar"), maxcount=40)
    if drop_manifests:  # every other shard without a manifest: both paths in one query
        for name in sorted(os.listdir(root))[::2]:
            if name.endswith(".manifest"):
                os.remove(root / name)
    return atdata.Dataset[Row](str(root / "q-{000000..000005}.tar"))


def _write_index(root: Path, provider: Any) -> atdata.Dataset[Row]:
    index = Index(provider, LocalDiskStore(root / "data"))
    index.write(make_rows(N, 2), "team/q", maxcount=40)
    return index.load("team/q", Row)


LAYOUTS = ["sorted", "shuffled-some-manifests", "no-manifests", "sqlite", "redis", "postgres"]


@pytest.fixture(scope="module", params=LAYOUTS)
def dataset(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> atdata.Dataset[Row]:
    root = tmp_path_factory.mktemp(request.param)
    if request.param == "sorted":
        return _write_local(root / "d", sort=True, drop_manifests=False)
    if request.param == "shuffled-some-manifests":
        return _write_local(root / "d", sort=False, drop_manifests=True)
    if request.param == "no-manifests":
        ds = _write_local(root / "d", sort=False, drop_manifests=False)
        for name in os.listdir(root / "d"):
            if name.endswith(".manifest"):
                os.remove(root / "d" / name)
        return ds
    if request.param == "sqlite":
        return _write_index(root, SQLiteProvider(root / "index.db"))
    if request.param == "redis":
        from atdata.index.providers.redis import RedisProvider

        url = request.getfixturevalue("redis_url")
        return _write_index(root, partial(RedisProvider, url, prefix=f"q{os.getpid()}:")())
    from atdata.index.providers.postgres import PostgresProvider

    dsn = request.getfixturevalue("postgres_dsn")
    schema = f"q_{os.getpid()}_{root.name.replace('-', '_')}".lower()[:60]
    request.addfinalizer(partial(_drop_schema, dsn, schema))
    return _write_index(root, PostgresProvider(dsn, schema=schema, max_size=2))


def _drop_schema(dsn: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def ids(items: Any) -> list[str]:
    return [s.id for s in items]


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(pair=EXPRS, seed=st.integers(0, 3))
def test_where_matches_filter_ordered_and_shuffled(
    dataset: atdata.Dataset[Row], pair: Pair, seed: int
) -> None:
    expr, py = pair
    q, f = dataset.where(expr), dataset.filter(py)
    assert ids(q) == ids(f)
    assert ids(q.shuffled(seed, buffer_size=50)) == ids(f.shuffled(seed, buffer_size=50))
    assert q.count() == len(ids(f))
    assert dataset.count(expr) == len(ids(f))


@settings(
    max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(pair=EXPRS)
def test_where_matches_filter_in_batches_and_ranks(
    dataset: atdata.Dataset[Row], pair: Pair
) -> None:
    expr, py = pair
    q, f = dataset.where(expr), dataset.filter(py)

    def batches(loader: Any) -> list[list[str]]:
        return [list(b.id) if hasattr(b, "id") else ids(b) for b in loader]

    assert batches(q.ordered(batch_size=7)) == batches(f.ordered(batch_size=7))
    assert batches(q.shuffled(1, batch_size=5)) == batches(f.shuffled(1, batch_size=5))
    for rank in (0, 1):
        assert batches(q.shuffled(2, batch_size=4, rank=rank, world_size=2)) == batches(
            f.shuffled(2, batch_size=4, rank=rank, world_size=2)
        )


def test_where_resumes_like_filter(dataset: atdata.Dataset[Row]) -> None:
    q = dataset.where("label < 8 and note != 'zz'")
    f = dataset.filter(lambda s: s.label < 8 and s.note is not None and s.note != "zz")
    loader = q.shuffled(3, batch_size=4)
    it = iter(loader)
    first = [list(next(it).id) for _ in range(3)]
    state = loader.state_dict()
    again = q.shuffled(3, batch_size=4)
    again.load_state_dict(state)
    rest = [list(b.id) for b in again]
    assert first + rest == [list(b.id) for b in f.shuffled(3, batch_size=4)]


def test_string_queries_mean_what_expressions_mean(dataset: atdata.Dataset[Row]) -> None:
    f = dataset.fields
    text = "(label >= 3 and label <= 9 or note in {'a', 'b'}) and not flag and score > 0.25"
    built = (f.label.between(3, 9) | f.note.isin({"a", "b"})) & ~(f.flag == True) & (f.score > 0.25)  # noqa: E712
    assert ids(dataset.where(text)) == ids(dataset.where(built))
    assert ids(dataset.where("0.2 < score < 0.4")) == ids(
        dataset.filter(lambda s: 0.2 < s.score < 0.4)
    )


def test_where_through_torch_matches_filter(dataset: atdata.Dataset[Row]) -> None:
    pytest.importorskip("torch")
    q = dataset.where("label <= 5")
    f = dataset.filter(lambda s: s.label <= 5)
    got = [k for b in q.to_torch(batch_size=8, drop_last=False) for k in b["id"]]
    want = [k for b in f.to_torch(batch_size=8, drop_last=False) for k in b["id"]]
    assert got == want and got


def test_select_and_arrow_agree_with_reading(dataset: atdata.Dataset[Row]) -> None:
    q = dataset.where("score > 0.5")
    cols = q.select(["id", "score", "note"])
    rows = list(dataset.filter(lambda s: s.score > 0.5))
    assert cols == {
        "id": [s.id for s in rows],
        "score": [s.score for s in rows],
        "note": [s.note for s in rows],
    }
    pa = pytest.importorskip("pyarrow")
    table = q.to_arrow(["id", "score"])
    assert isinstance(table, pa.Table) and table.column("id").to_pylist() == cols["id"]


def test_where_on_an_empty_result_reads_nothing_wrong(dataset: atdata.Dataset[Row]) -> None:
    assert ids(dataset.where("label > 1000")) == []
    assert dataset.count("label > 1000") == 0


def test_where_on_member_layout_shards_matches_filter(tmp_path: Path) -> None:
    """Plain WebDataset member layout (one member per key, schema-free): the query is tested
    per sample, like filter()."""
    rows = [{"cls": i % 7, "txt": f"c{i % 3}"} for i in range(50)]
    atdata.write_samples(rows, str(tmp_path / "m-%06d.tar"), maxcount=20, layout="members")
    ds = atdata.Dataset(str(tmp_path / "m-{000000..000002}.tar"))
    got = [s["cls"] for s in ds.where("cls == 3 or cls >= 6")]
    want = [s["cls"] for s in ds.filter(lambda s: s["cls"] == 3 or s["cls"] >= 6)]
    assert got == want and len(got) == sum(1 for r in rows if r["cls"] in (3, 6))
