"""Fields annotated with type aliases (``typing[_extensions].TypeAliasType``, ``type X = ...``).

numpy 2.5 defines ``numpy.typing.NDArray`` as a ``TypeAliasType``; ``@packable`` must treat
``NDArray[np.uint8]`` as the array it stands for. The aliases here are built the same way.
"""

import sys
from typing import Annotated, Any, TypeVar

import numpy as np
import pytest
import typing_extensions

import atdata
from atdata import SchemaError, Shape
from atdata.schema import Schema, field_type_of

ScalarT = TypeVar("ScalarT", bound=np.generic)
K = TypeVar("K")
V = TypeVar("V")

ALIAS_KINDS = [typing_extensions.TypeAliasType]
if sys.version_info >= (3, 12):
    import typing

    ALIAS_KINDS.append(typing.TypeAliasType)  # type: ignore[attr-defined]


def _ndarray_alias(kind: Any) -> Any:
    """``NDArray`` as numpy 2.5 defines it."""
    return kind("NDArray", np.ndarray[tuple[Any, ...], np.dtype[ScalarT]], type_params=(ScalarT,))


@pytest.fixture(params=ALIAS_KINDS, ids=lambda k: f"{k.__module__}.TypeAliasType")
def alias_kind(request: pytest.FixtureRequest) -> Any:
    return request.param


def test_an_ndarray_type_alias_is_an_array_field(alias_kind: Any) -> None:
    nd = _ndarray_alias(alias_kind)

    @atdata.packable
    class Frame:
        image: Annotated[nd[np.uint8], Shape(2, 3)]
        depth: nd[np.float32] | None
        anything: nd[Any]
        label: int = 0

    fields = {f.name: f.type for f in Schema.from_type(Frame).fields}
    assert (fields["image"].kind, fields["image"].dtype, fields["image"].shape) == (
        "array",
        "|u1",
        (2, 3),
    )
    assert (fields["depth"].dtype, fields["depth"].optional) == ("<f4", True)
    assert fields["anything"].kind == "array" and fields["anything"].dtype is None
    frame = Frame(np.ones((2, 3), np.uint8), None, np.arange(3), 7)
    back = Frame.from_bytes(frame.to_bytes())
    assert np.array_equal(back.image, frame.image) and back.depth is None and back.label == 7
    with pytest.raises(SchemaError):
        Frame(np.ones((2, 3), np.float32), None, np.arange(3)).to_bytes()


def test_plain_and_nested_aliases_expand(alias_kind: Any) -> None:
    label = alias_kind("Label", int)
    labels = alias_kind("Labels", list[label])
    maybe = alias_kind("Maybe", str | None)
    assert field_type_of(label, "$.x").kind == "int"
    assert field_type_of(labels, "$.x").item == field_type_of(int, "$.x")
    assert field_type_of(maybe, "$.x").optional is True


def test_type_parameters_bind_by_name_not_by_position(alias_kind: Any) -> None:
    # parameters declared (V, K) but used as dict[K, V]
    mapping = alias_kind("Mapping", dict[K, V], type_params=(V, K))
    ft = field_type_of(mapping[float, str], "$.x")
    assert (ft.kind, ft.item and ft.item.kind) == ("dict", "float")
    with pytest.raises(SchemaError, match="keys must be str"):
        field_type_of(mapping[str, int], "$.x")


def test_an_alias_given_the_wrong_number_of_arguments_is_a_schema_error(alias_kind: Any) -> None:
    pair = alias_kind("Pair", list[K], type_params=(K, V))
    with pytest.raises(SchemaError, match="takes 2 argument"):
        field_type_of(pair[int], "$.x")


@pytest.mark.skipif(sys.version_info < (3, 12), reason="the type statement needs Python 3.12")
def test_the_type_statement_makes_usable_aliases() -> None:
    namespace: dict[str, Any] = {"np": np, "Any": Any}
    exec(  # a constant, local test snippet: 3.11 cannot parse the syntax in this file
        "type NDArray[S: np.generic] = np.ndarray[tuple[Any, ...], np.dtype[S]]\n"
        "type Scores = list[float]\n",
        namespace,
    )
    nd, score_list = namespace["NDArray"], namespace["Scores"]

    @atdata.packable
    class Row:
        x: nd[np.int16]
        scores: score_list

    row = Row.from_bytes(Row(np.arange(4, dtype=np.int16), [0.5]).to_bytes())
    assert row.x.dtype == np.int16 and row.scores == [0.5]
