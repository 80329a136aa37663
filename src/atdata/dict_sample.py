"""``DictSample``: a schema-free sample, the decoded msgpack map with attribute access.

It lives below :mod:`atdata.codec` (which encodes it) and is re-exported by :mod:`atdata.sample`,
its public home.
"""

from collections.abc import Iterator, Mapping
from typing import Any

__all__ = ["DictSample", "values_equal"]


class DictSample(Mapping[str, Any]):
    """A schema-free sample: the decoded msgpack map, with attribute and item access.

    Values are exactly what msgpack decoded; ``bin`` values stay ``bytes`` unless a schema says
    they are arrays. Members of the same key with other suffixes appear under their suffix.
    """

    __slots__ = ("_data",)
    __module__ = "atdata.sample"  # its public home (pickles name it there)

    def __init__(self, data: Mapping[str, Any] | None = None, /, **kwargs: Any) -> None:
        merged = dict(data or {})
        merged.update(kwargs)
        object.__setattr__(self, "_data", merged)

    def __getattr__(self, name: str) -> Any:
        if name == "_data":  # not set yet (e.g. during unpickling): never recurse
            raise AttributeError(name)
        try:
            return self._data[name]
        except KeyError:
            raise AttributeError(
                f"DictSample has no field {name!r}; fields: {list(self._data)}"
            ) from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("DictSample is read-only; build a new one with DictSample({...})")

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def to_dict(self) -> dict[str, Any]:
        """A shallow copy of the data as a plain dict."""
        return dict(self._data)

    def __reduce__(self) -> tuple[type["DictSample"], tuple[dict[str, Any]]]:
        return (DictSample, (self._data,))

    def __repr__(self) -> str:
        return f"DictSample({self._data!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, DictSample):
            mine, theirs = self._data, other._data
            return mine.keys() == theirs.keys() and all(
                values_equal(mine[k], theirs[k]) for k in mine
            )  # values may be arrays (``.npy`` members)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]


def values_equal(a: Any, b: Any) -> bool:
    """Equality of two field values, arrays compared by value."""
    import numpy as np

    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return bool(np.array_equal(a, b))
    return bool(a == b)
