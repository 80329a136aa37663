"""Exact deep equality for what the codec and lenses give back: arrays by dtype (byte order
included), shape and bytes; NaN equal to NaN; samples, dataclasses, dicts, lists and tuples
field by field and item by item, each of the same type as its counterpart."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from atdata.sample import DictSample


def same(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (
            isinstance(a, np.ndarray)
            and isinstance(b, np.ndarray)
            and a.dtype.str == b.dtype.str
            and a.shape == b.shape
            and a.tobytes() == b.tobytes()
        )
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    if isinstance(a, DictSample):
        return isinstance(b, DictSample) and same(a.to_dict(), b.to_dict())
    if dataclasses.is_dataclass(a) and not isinstance(a, type):
        return type(a) is type(b) and all(
            same(getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(a)
        )
    if hasattr(a, "__atdata_schema__"):
        return type(a) is type(b) and same(a.__dict__, b.__dict__)
    if isinstance(a, list | tuple):
        return (
            type(a) is type(b)
            and len(a) == len(b)
            and all(same(x, y) for x, y in zip(a, b, strict=True))
        )
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b
