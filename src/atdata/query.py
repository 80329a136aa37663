"""Typed field expressions for ``Dataset.where``: build them from ``ds.fields`` or parse a string.

``(f.score > 0.9) & f.source.isin({"a", "b"})``, ``f.label.between(3, 7)``, ``~e``, ``e | e``,
``f.note.is_null()``. An expression answers three questions, with the same meaning each time:

- :meth:`Expr.matches`: does one sample match (a value that is None, or that cannot be compared
  with the literal, makes a comparison false; ``~`` negates what its operand answers);
- :meth:`Expr.mask`: which rows of a manifest's columns match (vectorised, same answers);
- :meth:`Expr.may_match`: can any sample of a shard match, given its field statistics (False
  only when none can: such shards are never opened).

:func:`parse` reads ``"label == 3 and score > 0.9"`` through Python's ``ast`` with a whitelist of
nodes (names, literals, comparisons, ``in``/``not in`` of literal sets, ``and``/``or``/``not``,
``&``/``|``/``~``); nothing is evaluated.
"""

import ast
import math
import operator
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from .errors import InvalidArgumentError
from .manifest.format import FieldStats

__all__ = ["Column", "Expr", "Field", "Fields", "as_expr", "parse"]

_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_FLIP = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}
_MAX_TEXT = 16_384
_INT64 = 1 << 62
Getter = Callable[[str], Any]


class Column:
    """One manifest column as arrays: values (nulls filled) and a null mask."""

    __slots__ = ("nulls", "values")

    def __init__(self, kind: str, data: list[Any], nulls: int | None = None) -> None:
        """``nulls``: how many values are None, when known (0 skips the per-value pass)."""
        n = len(data)
        if nulls == 0:
            self.nulls = np.zeros(n, dtype=bool)
        else:
            self.nulls = np.fromiter((v is None for v in data), bool, n)
        values: np.ndarray[Any, Any]
        if kind == "str":
            values = np.empty(n, dtype=object)
            values[:] = data if nulls == 0 else ["" if v is None else v for v in data]
        else:
            fill = data if nulls == 0 else [0 if v is None else v for v in data]
            dtype = {"int": np.int64, "float": np.float64, "bool": np.bool_}[kind]
            try:
                values = np.asarray(fill, dtype=dtype) if fill else np.zeros(0, dtype)
            except (OverflowError, TypeError, ValueError):
                values = np.empty(len(data), dtype=object)
                values[:] = fill
        self.values = values

    def __len__(self) -> int:
        return len(self.values)


def _compare(value: Any, op: str, literal: Any) -> bool:
    if value is None:
        return False
    try:
        return bool(_OPS[op](value, literal))
    except TypeError:
        return False


def _numeric(v: Any) -> bool:
    return isinstance(v, float) or (isinstance(v, int) and -_INT64 < v < _INT64)


class Expr:
    """A predicate over a sample's fields (see the module docstring)."""

    def matches(self, get: Getter) -> bool:
        raise NotImplementedError

    def mask(self, columns: Mapping[str, Column], n: int) -> "np.ndarray[Any, Any]":
        raise NotImplementedError

    def may_match(self, stats: Mapping[str, FieldStats]) -> bool:
        raise NotImplementedError

    def field_names(self) -> set[str]:
        raise NotImplementedError

    def __and__(self, other: "Expr") -> "Expr":
        return And(self, as_expr(other))

    def __or__(self, other: "Expr") -> "Expr":
        return Or(self, as_expr(other))

    def __invert__(self) -> "Expr":
        return Not(self)

    def __bool__(self) -> bool:
        raise InvalidArgumentError(
            "a query expression has no truth value: combine with & | ~ (not and/or/not), "
            "and write a < f.x < b as f.x.between(a, b) or (a < f.x) & (f.x < b)"
        )


class Compare(Expr):
    def __init__(self, name: str, op: str, literal: Any) -> None:
        if isinstance(literal, float) and math.isnan(literal):
            raise InvalidArgumentError(f"comparing $.{name} with NaN matches nothing")
        _check_literal(name, literal)
        self.name, self.op, self.literal = name, op, literal

    def matches(self, get: Getter) -> bool:
        return _compare(get(self.name), self.op, self.literal)

    def mask(self, columns: Mapping[str, Column], n: int) -> "np.ndarray[Any, Any]":
        col = columns[self.name]
        fn = _OPS[self.op]
        if col.values.dtype != object and _numeric(self.literal):
            with np.errstate(invalid="ignore"):
                return np.asarray(fn(col.values, self.literal), dtype=bool) & ~col.nulls
        if col.values.dtype == object and isinstance(self.literal, str):
            try:
                return np.asarray(fn(col.values, self.literal), dtype=bool) & ~col.nulls
            except TypeError:
                pass
        lit, op = self.literal, self.op
        return np.fromiter(
            (
                not null and _compare(v, op, lit)
                for v, null in zip(col.values, col.nulls, strict=True)
            ),
            bool,
            n,
        )

    def may_match(self, stats: Mapping[str, FieldStats]) -> bool:
        s = stats.get(self.name)
        if s is None:
            return True
        if s.count == s.nulls:
            return False
        if self.op == "!=":
            return True
        v = self.literal
        try:
            if s.min is None:  # every present value is NaN: no comparison holds
                return False
            if self.op == "==":
                if not s.min <= v <= s.max:
                    return False
                if s.values is not None:
                    return v in s.values
                return s.bloom is None or s.bloom.may_contain(v)
            if self.op in ("<", "<="):
                return bool(_OPS[self.op](s.min, v))
            return bool(_OPS[self.op](s.max, v))
        except TypeError:
            return True

    def field_names(self) -> set[str]:
        return {self.name}

    def __repr__(self) -> str:
        return f"({self.name} {self.op} {self.literal!r})"


class Between(Expr):
    """``lo <= field <= hi``."""

    def __init__(self, name: str, lo: Any, hi: Any) -> None:
        self.name = name
        self.parts = And(Compare(name, ">=", lo), Compare(name, "<=", hi))

    def matches(self, get: Getter) -> bool:
        return self.parts.matches(get)

    def mask(self, columns: Mapping[str, Column], n: int) -> "np.ndarray[Any, Any]":
        return self.parts.mask(columns, n)

    def may_match(self, stats: Mapping[str, FieldStats]) -> bool:
        return self.parts.may_match(stats)

    def field_names(self) -> set[str]:
        return {self.name}

    def __repr__(self) -> str:
        lo, hi = self.parts.left, self.parts.right
        assert isinstance(lo, Compare) and isinstance(hi, Compare)
        return f"{self.name}.between({lo.literal!r}, {hi.literal!r})"


class IsIn(Expr):
    def __init__(self, name: str, values: Iterable[Any]) -> None:
        if isinstance(values, str | bytes):
            raise InvalidArgumentError(f"isin() of $.{name} takes a collection, not a string")
        items = list(values)
        for v in items:
            if isinstance(v, float) and math.isnan(v):
                raise InvalidArgumentError(f"isin() of $.{name}: NaN matches nothing")
            _check_literal(name, v)
        self.name = name
        self.values = frozenset(items)

    def matches(self, get: Getter) -> bool:
        v = get(self.name)
        try:
            return v is not None and v in self.values
        except TypeError:  # unhashable
            return False

    def mask(self, columns: Mapping[str, Column], n: int) -> "np.ndarray[Any, Any]":
        col = columns[self.name]
        if col.values.dtype != object and self.values and all(map(_numeric, self.values)):
            return np.isin(col.values, list(self.values)) & ~col.nulls
        vals = self.values
        return np.fromiter(
            (not null and v in vals for v, null in zip(col.values, col.nulls, strict=True)),
            bool,
            n,
        )

    def may_match(self, stats: Mapping[str, FieldStats]) -> bool:
        return any(Compare(self.name, "==", v).may_match(stats) for v in self.values)

    def field_names(self) -> set[str]:
        return {self.name}

    def __repr__(self) -> str:
        return f"{self.name}.isin({sorted(map(repr, self.values))})"


class IsNull(Expr):
    def __init__(self, name: str) -> None:
        self.name = name

    def matches(self, get: Getter) -> bool:
        return get(self.name) is None

    def mask(self, columns: Mapping[str, Column], n: int) -> "np.ndarray[Any, Any]":
        return columns[self.name].nulls.copy()

    def may_match(self, stats: Mapping[str, FieldStats]) -> bool:
        s = stats.get(self.name)
        return s is None or s.nulls > 0

    def field_names(self) -> set[str]:
        return {self.name}

    def __repr__(self) -> str:
        return f"{self.name}.is_null()"


class And(Expr):
    def __init__(self, left: Expr, right: Expr) -> None:
        self.left, self.right = left, right

    def matches(self, get: Getter) -> bool:
        return self.left.matches(get) and self.right.matches(get)

    def mask(self, columns: Mapping[str, Column], n: int) -> "np.ndarray[Any, Any]":
        out: np.ndarray[Any, Any] = self.left.mask(columns, n) & self.right.mask(columns, n)
        return out

    def may_match(self, stats: Mapping[str, FieldStats]) -> bool:
        return self.left.may_match(stats) and self.right.may_match(stats)

    def field_names(self) -> set[str]:
        return self.left.field_names() | self.right.field_names()

    def __repr__(self) -> str:
        return f"({self.left!r} & {self.right!r})"


class Or(Expr):
    def __init__(self, left: Expr, right: Expr) -> None:
        self.left, self.right = left, right

    def matches(self, get: Getter) -> bool:
        return self.left.matches(get) or self.right.matches(get)

    def mask(self, columns: Mapping[str, Column], n: int) -> "np.ndarray[Any, Any]":
        out: np.ndarray[Any, Any] = self.left.mask(columns, n) | self.right.mask(columns, n)
        return out

    def may_match(self, stats: Mapping[str, FieldStats]) -> bool:
        return self.left.may_match(stats) or self.right.may_match(stats)

    def field_names(self) -> set[str]:
        return self.left.field_names() | self.right.field_names()

    def __repr__(self) -> str:
        return f"({self.left!r} | {self.right!r})"


class Not(Expr):
    def __init__(self, inner: Expr) -> None:
        self.inner = inner

    def matches(self, get: Getter) -> bool:
        return not self.inner.matches(get)

    def mask(self, columns: Mapping[str, Column], n: int) -> "np.ndarray[Any, Any]":
        return ~self.inner.mask(columns, n)

    def may_match(self, stats: Mapping[str, FieldStats]) -> bool:
        return True  # statistics bound what is present, not what is absent

    def field_names(self) -> set[str]:
        return self.inner.field_names()

    def __repr__(self) -> str:
        return f"~{self.inner!r}"


def _check_literal(name: str, value: Any) -> None:
    if value is not None and not isinstance(value, bool | int | float | str):
        raise InvalidArgumentError(
            f"$.{name} can be compared with int, float, bool or str literals, not "
            f"{type(value).__name__}"
        )


class Field:
    """A field of the samples, for building expressions: ``ds.fields.label == 3``."""

    __hash__ = None  # type: ignore[assignment]

    def __init__(self, name: str) -> None:
        self.name = name

    def _cmp(self, op: str, other: Any) -> Expr:
        if other is None:
            if op == "==":
                return IsNull(self.name)
            if op == "!=":
                return Not(IsNull(self.name))
            raise InvalidArgumentError(f"$.{self.name} {op} None: only == and != take None")
        return Compare(self.name, op, other)

    def __eq__(self, other: Any) -> Expr:  # type: ignore[override]
        return self._cmp("==", other)

    def __ne__(self, other: Any) -> Expr:  # type: ignore[override]
        return self._cmp("!=", other)

    def __lt__(self, other: Any) -> Expr:
        return self._cmp("<", other)

    def __le__(self, other: Any) -> Expr:
        return self._cmp("<=", other)

    def __gt__(self, other: Any) -> Expr:
        return self._cmp(">", other)

    def __ge__(self, other: Any) -> Expr:
        return self._cmp(">=", other)

    def isin(self, values: Iterable[Any]) -> Expr:
        return IsIn(self.name, values)

    def between(self, lo: Any, hi: Any) -> Expr:
        """``lo <= field <= hi`` (both ends included)."""
        return Between(self.name, lo, hi)

    def is_null(self) -> Expr:
        return IsNull(self.name)

    def __repr__(self) -> str:
        return f"Field({self.name!r})"


class Fields:
    """``ds.fields.label``: the fields of a dataset's samples (names checked when known)."""

    def __init__(self, names: Iterable[str] | None = None) -> None:
        self._names = None if names is None else frozenset(names)

    def __getattr__(self, name: str) -> Field:
        if name.startswith("__"):
            raise AttributeError(name)
        return self[name]

    def __getitem__(self, name: str) -> Field:
        if self._names is not None and name not in self._names:
            raise InvalidArgumentError(
                f"no field $.{name}; the samples have: {', '.join(sorted(self._names))}"
            )
        return Field(name)

    def __dir__(self) -> list[str]:
        return sorted(self._names or ())


def as_expr(value: Any, names: Iterable[str] | None = None) -> Expr:
    """An :class:`Expr` from an expression or a query string (see :func:`parse`)."""
    if isinstance(value, Expr):
        return value
    if isinstance(value, str):
        return parse(value, names)
    raise InvalidArgumentError(
        f"a query is an expression built from ds.fields or a string, not {type(value).__name__}"
    )


# --------------------------------------------------------------------------- the parser
_CMP_NODES: dict[type, str] = {
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
}


def parse(text: str, names: Iterable[str] | None = None) -> Expr:
    """Parse ``"label == 3 and score > 0.9"`` (see the module docstring); InvalidArgumentError
    names what is not allowed. ``names``, when given, are the only field names accepted."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidArgumentError("an empty query")
    if len(text) > _MAX_TEXT:
        raise InvalidArgumentError(f"a query of {len(text)} characters (at most {_MAX_TEXT})")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        raise InvalidArgumentError(f"cannot parse query {text!r}: {exc}") from None
    fields = Fields(names)
    try:
        return _node(tree.body, fields, text)
    except RecursionError:
        raise InvalidArgumentError(f"query {text[:80]!r}... nests too deeply") from None


def _node(node: ast.AST, fields: Fields, text: str) -> Expr:
    if isinstance(node, ast.BoolOp):
        parts = [_node(v, fields, text) for v in node.values]
        out = parts[0]
        for p in parts[1:]:
            out = And(out, p) if isinstance(node.op, ast.And) else Or(out, p)
        return out
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not | ast.Invert):
        return Not(_node(node.operand, fields, text))
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitAnd | ast.BitOr):
        left, right = _node(node.left, fields, text), _node(node.right, fields, text)
        return And(left, right) if isinstance(node.op, ast.BitAnd) else Or(left, right)
    if isinstance(node, ast.Compare):
        return _compare_node(node, fields, text)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        return _call_node(node, fields, text)
    if isinstance(node, ast.Name):  # a bare bool field: ``not flag``
        return fields[node.id]._cmp("==", True)
    raise InvalidArgumentError(
        f"query {text!r}: {ast.unparse(node)!r} is not a comparison (use ==, !=, <, <=, >, >=, "
        "in, not in, .between(a, b), .is_null(), and/or/not)"
    )


def _call_node(node: ast.Call, fields: Fields, text: str) -> Expr:
    func = node.func
    assert isinstance(func, ast.Attribute)
    if not isinstance(func.value, ast.Name) or node.keywords:
        raise InvalidArgumentError(f"query {text!r}: {ast.unparse(node)!r} is not allowed")
    field = fields[func.value.id]
    args = [_literal(a, text) for a in node.args]
    if func.attr == "between" and len(args) == 2:
        return field.between(args[0], args[1])
    if func.attr == "is_null" and not args:
        return field.is_null()
    if func.attr == "isin" and len(args) == 1 and isinstance(args[0], frozenset):
        return field.isin(args[0])
    raise InvalidArgumentError(f"query {text!r}: {ast.unparse(node)!r} is not allowed")


def _compare_node(node: ast.Compare, fields: Fields, text: str) -> Expr:
    out: Expr | None = None
    left = node.left
    for op, right in zip(node.ops, node.comparators, strict=True):
        part = _one_compare(left, op, right, fields, text)
        out = part if out is None else And(out, part)
        left = right
    assert out is not None
    return out


def _one_compare(left: ast.AST, op: ast.cmpop, right: ast.AST, fields: Fields, text: str) -> Expr:
    if isinstance(op, ast.In | ast.NotIn):
        if not isinstance(left, ast.Name):
            raise InvalidArgumentError(f"query {text!r}: 'in' needs a field on its left")
        values = _literal(right, text)
        if not isinstance(values, frozenset):
            raise InvalidArgumentError(f"query {text!r}: 'in' needs a literal set, list or tuple")
        e = fields[left.id].isin(values)
        return Not(e) if isinstance(op, ast.NotIn) else e
    symbol = _CMP_NODES.get(type(op))
    if symbol is None:
        raise InvalidArgumentError(f"query {text!r}: operator {type(op).__name__} is not allowed")
    if isinstance(left, ast.Name) and not isinstance(right, ast.Name):
        return fields[left.id]._cmp(symbol, _literal(right, text))
    if isinstance(right, ast.Name) and not isinstance(left, ast.Name):
        return fields[right.id]._cmp(_FLIP[symbol], _literal(left, text))
    raise InvalidArgumentError(
        f"query {text!r}: a comparison takes one field and one literal: {ast.unparse(left)} "
        f"{symbol} {ast.unparse(right)}"
    )


def _literal(node: ast.AST, text: str) -> Any:
    if isinstance(node, ast.Constant) and (
        node.value is None or isinstance(node.value, bool | int | float | str)
    ):
        return node.value
    if (
        isinstance(node, ast.UnaryOp)
        and isinstance(node.op, ast.USub | ast.UAdd)
        and isinstance(node.operand, ast.Constant)
        and isinstance(node.operand.value, int | float)
        and not isinstance(node.operand.value, bool)
    ):
        v = node.operand.value
        return -v if isinstance(node.op, ast.USub) else v
    if isinstance(node, ast.Set | ast.List | ast.Tuple):
        items = [_literal(e, text) for e in node.elts]
        if any(isinstance(i, frozenset) or i is None for i in items):
            raise InvalidArgumentError(f"query {text!r}: a set holds plain literals")
        return frozenset(items)
    raise InvalidArgumentError(f"query {text!r}: {ast.unparse(node)!r} is not a literal")
