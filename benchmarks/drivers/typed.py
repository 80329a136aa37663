"""The scenarios' sample types for our atdata (the drivers of atdata 0.7 build their own)."""

from typing import Annotated, Any

import numpy as np
from numpy.typing import NDArray

import atdata

from ..scenarios import Scenario


def sample_type(sc: Scenario) -> type:
    """The scenario's sample type, with dtypes and shapes declared."""
    kinds: dict[str, Any] = {"int": int, "str": str, "float": float}
    ann: dict[str, Any] = {}
    for f in sc.fields:
        if f.kind in kinds:
            ann[f.name] = kinds[f.kind]
        else:
            ann[f.name] = Annotated[NDArray[np.dtype(f.kind).type], atdata.Shape(*f.shape)]
    cls = type(f"{sc.id}Sample", (), {"__annotations__": ann, "__module__": __name__})
    return atdata.packable(cls)
