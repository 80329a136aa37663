"""What a derive runs on each sample, and the identity that says when outputs can be reused.

A :class:`Transform` wraps a lens or a function of one sample (``batch_size`` None) or of a list
of samples (``batch_size`` n). A sample function returns a sample, a list of samples, or None
(the sample is filtered out); a batch function returns a list of samples (or None).

The transform's **identity** is what lineage records and what incremental recompute compares:
for a lens, its name and view types; for a function, its qualified name; for both, a sha256 of
the code (the source text when it can be found, else the compiled code), of its parameters
(``functools.partial`` arguments, defaults, closure values) and of the user's ``version``
string. Two derives with the same identity over the same input bytes write the same output
bytes, so outputs are reused when the identity is unchanged and recomputed when it is not.
"""

import functools
import hashlib
import inspect
import marshal
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import InvalidArgumentError
from ..lens import Lens

__all__ = ["Transform", "TransformIdentity", "as_transform"]


@dataclass(frozen=True)
class TransformIdentity:
    """Who made a derived dataset: ``kind`` ("lens" or "function"), ``name`` (lens name or
    ``module:qualname``), the user's ``version`` string, and ``digest`` (sha256 of code,
    parameters and version)."""

    kind: str
    name: str
    version: str
    digest: str

    def to_dict(self) -> dict[str, str]:
        return {
            "kind": self.kind,
            "name": self.name,
            "version": self.version,
            "digest": self.digest,
        }

    @classmethod
    def from_dict(cls, data: Any) -> "TransformIdentity":
        keys = ("kind", "name", "version", "digest")
        if not isinstance(data, dict) or not all(isinstance(data.get(k), str) for k in keys):
            raise InvalidArgumentError(f"a transform identity needs {keys} strings: {data!r}")
        return cls(*(data[k] for k in keys))


@dataclass(frozen=True)
class Transform:
    """A picklable transform: ``fn`` (a lens or a module-level function), ``batch_size``
    (None: one sample at a time) and the user's ``version`` string."""

    fn: Callable[[Any], Any]
    batch_size: int | None = None
    version: str = ""

    def __post_init__(self) -> None:
        if not callable(self.fn):
            raise InvalidArgumentError(f"a transform must be a lens or a function, got {self.fn!r}")
        if self.batch_size is not None and self.batch_size < 1:
            raise InvalidArgumentError(f"batch_size must be at least 1, got {self.batch_size}")
        if not isinstance(self.version, str):
            raise InvalidArgumentError(f"a transform version is a string, got {self.version!r}")

    @property
    def output_type(self) -> type | None:
        """The sample type the transform declares (a lens's view, a function's return
        annotation when it is a class), else None (taken from the first output sample)."""
        if isinstance(self.fn, Lens):
            return self.fn.view
        if self.batch_size is not None:
            return None
        try:
            hint = inspect.signature(self.fn).return_annotation
        except (TypeError, ValueError):
            return None
        return hint if isinstance(hint, type) and hint is not inspect.Signature.empty else None

    def identity(self) -> TransformIdentity:
        h = hashlib.sha256()
        h.update(f"batch={self.batch_size}\0version={self.version}\0".encode())
        if isinstance(self.fn, Lens):
            lens = self.fn
            kind, name = "lens", _lens_name(lens)
            h.update(f"{_type_name(lens.source)}->{_type_name(lens.view)}\0".encode())
            _hash_callable(h, lens._get)
        else:
            kind, name = "function", _qualified(self.fn)
            _hash_callable(h, self.fn)
        return TransformIdentity(kind, name, self.version, h.hexdigest())


def as_transform(transform: Any, *, batch_size: int | None = None, version: str = "") -> Transform:
    """``transform`` as a :class:`Transform` (one already is: returned as it is)."""
    if isinstance(transform, Transform):
        return transform
    return Transform(transform, batch_size, version)


def _type_name(t: type) -> str:
    return f"{t.__module__}.{t.__qualname__}"


def _qualified(fn: Any) -> str:
    inner = fn.func if isinstance(fn, functools.partial) else fn
    module = getattr(inner, "__module__", None) or type(inner).__module__
    qualname = getattr(inner, "__qualname__", None) or type(inner).__qualname__
    return f"{module}:{qualname}"


def _lens_name(lens: Lens[Any, Any]) -> str:
    return str(lens.name)


def _hash_callable(h: "hashlib._Hash", fn: Any, depth: int = 0) -> None:
    """Feed ``fn``'s code and parameters into ``h`` (partials and callables unwrapped)."""
    if depth > 8:
        return
    if isinstance(fn, functools.partial):
        _hash_callable(h, fn.func, depth + 1)
        h.update(_stable(("partial", fn.args, sorted(fn.keywords.items()))))
        return
    code = getattr(fn, "__code__", None)
    if code is None:  # a callable object: its class's __call__ and its state
        call = type(fn).__dict__.get("__call__")
        if getattr(call, "__code__", None) is not None:
            _hash_callable(h, call, depth + 1)
        h.update(_stable(getattr(fn, "__dict__", None)))
        return
    try:
        h.update(inspect.getsource(fn).encode())
    except (OSError, TypeError):
        h.update(marshal.dumps(code))
    h.update(_stable(getattr(fn, "__defaults__", None)))
    h.update(_stable(sorted((getattr(fn, "__kwdefaults__", None) or {}).items())))
    cells = getattr(fn, "__closure__", None) or ()
    h.update(_stable([_cell_value(c) for c in cells]))


def _cell_value(cell: Any) -> Any:
    try:
        value = cell.cell_contents
    except ValueError:  # an empty cell
        return None
    return _qualified(value) if callable(value) else value


def _stable(value: Any) -> bytes:
    """Bytes that stand for ``value`` from one run to the next (pickle; repr when it cannot)."""
    try:
        return pickle.dumps(value, protocol=4)
    except Exception:
        return repr(value).encode()
