"""Lenses match sample types by schema identity: a lens written for your class applies to the
class rebuilt from the same stored schema, and gives back the type that was asked for."""

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import atdata
from atdata import LensError, LensRegistry, Schema
from atdata.index import Index
from pickling_types import REGISTRY, Frame, Gray, Label, Tagged, make_frames, make_tagged


@pytest.fixture
def index(tmp_path: Path) -> Iterator[Index]:
    idx = Index(home=tmp_path / "home")
    idx.write(make_frames(30), "frames", maxcount=10)
    idx.write([Gray(image=np.zeros((4, 4), np.uint8), label=0)], "grays")
    idx.write(make_tagged(5), "tagged")
    yield idx
    idx.close()


def classless(index: Index, name: str) -> atdata.Dataset[object]:
    ds: atdata.Dataset[object] = atdata.load_dataset(f"@local/{name}", split="train", index=index)
    return ds


def test_a_lens_on_your_class_applies_to_a_class_less_load_dataset(index: Index) -> None:
    ds = classless(index, "frames")
    assert ds.sample_type is not Frame and ds.sample_type.__name__ == "Frame"
    grays = ds.as_type(Gray, registry=REGISTRY)
    got = list(grays.ordered())
    assert [type(g) for g in got] == [Gray] * 30
    assert [g.label for g in got[:3]] == [0, 1, 2] and int(got[2].image[0, 0]) == 2


def test_the_view_comes_back_as_the_rebuilt_class_when_that_is_asked_for(index: Index) -> None:
    rebuilt_gray = classless(index, "grays").sample_type
    assert rebuilt_gray is not Gray
    got = classless(index, "frames").as_type(rebuilt_gray, registry=REGISTRY).head(2)
    assert [type(g) for g in got] == [rebuilt_gray] * 2 and got[1].label == 1


def test_the_getter_receives_an_instance_of_the_class_it_was_written_for(index: Index) -> None:
    """A lens may call methods that only your class has; it gets your class, not the rebuilt one."""
    registry = LensRegistry()
    with registry.use():

        @atdata.lens
        def frame_to_label(frame: Frame) -> Label:
            return Label(label=int(frame.brightness()))

    got = classless(index, "frames").as_type(Label, registry=registry).head(3)
    assert [s.label for s in got] == [0, 1, 2]


def test_nested_samples_reach_the_getter_as_the_nested_classes_it_was_written_for(
    index: Index,
) -> None:
    registry = LensRegistry()
    with registry.use():

        @atdata.lens
        def tagged_to_label(tagged: Tagged) -> Label:
            assert type(tagged.label) is Label, type(tagged.label)
            return tagged.label

    ds = classless(index, "tagged")
    assert type(ds[0].label) is not Label  # the rebuilt nested class
    got = ds.as_type(Label, registry=registry).head(3)
    assert [type(s) for s in got] == [Label] * 3 and [s.label for s in got] == [0, 1, 2]


def test_the_putter_writes_back_into_the_source_class_given(index: Index) -> None:
    ds = classless(index, "frames")
    rebuilt_frame = ds.sample_type
    lens = REGISTRY.find(rebuilt_frame, Gray)
    source = ds[4]
    view = lens.get(source)
    assert type(view) is Gray and view.label == 4
    written = lens.put(Gray(image=np.full((4, 4), 9, np.uint8), label=40), source)
    assert type(written) is rebuilt_frame
    assert (written.label, written.caption, int(written.image[1, 1, 2])) == (40, "frame 4", 9)


def test_composed_paths_are_found_across_your_and_rebuilt_classes(index: Index) -> None:
    ds = classless(index, "frames")
    lens = REGISTRY.find(ds.sample_type, Label)  # Frame -> Gray -> Label, both written for yours
    assert lens.get(ds[5]) == Label(label=5)
    written = lens.put(Label(label=50), ds[5])
    assert type(written) is ds.sample_type and (written.label, written.caption) == (50, "frame 5")


def test_classes_of_one_schema_view_each_other_without_a_lens(index: Index) -> None:
    ds = classless(index, "frames")
    mine = ds.as_type(Frame, registry=LensRegistry()).head(2)
    assert [type(s) for s in mine] == [Frame] * 2 and mine[1].brightness() == 1.0
    back = LensRegistry().find(Frame, ds.sample_type).get(mine[1])
    assert type(back) is ds.sample_type and back.caption == "frame 1"


def test_identity_ignores_version_and_descriptions_but_not_fields_or_name() -> None:
    schema = Schema.from_type(Frame)
    same = schema.with_version("3.1.0")
    same = Schema(same.name, same.fields, same.version, description="other words")
    assert same.identity == schema.identity
    renamed = Schema("Frame2", schema.fields)
    fewer = Schema("Frame", schema.fields[:2])
    assert len({schema.identity, renamed.identity, fewer.identity}) == 3


def test_a_class_of_the_same_name_with_other_fields_gets_no_lens() -> None:
    other = Schema("Frame", Schema.from_type(Frame).fields[:2]).to_sample_type()
    with pytest.raises(LensError, match="no lens from Frame to Gray"):
        REGISTRY.find(other, Gray)
