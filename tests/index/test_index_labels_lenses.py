"""Labels naming dataset versions, and lenses recorded by reference."""

import pytest
from index_helpers import make_samples
from index_types import Image, Label, image_to_label, label_into_image

import atdata
from atdata.errors import AtdataIndexError, ConflictError, NotFoundError
from atdata.index import Index


def test_a_label_names_a_pinned_version(index: Index) -> None:
    index.write(make_samples(1), "mnist")
    record = index.label("prod", "mnist", description="serving")
    index.write(make_samples(2), "mnist")
    assert record.target == "mnist@1"
    assert index.get_label("prod").target == "mnist@1"
    assert index.get(index.get_label("prod").target).version == 1
    assert index.get_label("prod").description == "serving"
    assert [lab.name for lab in index.labels] == ["prod"]


def test_moving_a_label_needs_replace(index: Index) -> None:
    index.write(make_samples(1), "mnist")
    index.write(make_samples(1), "mnist")
    index.label("prod", "mnist@1")
    assert index.label("prod", "mnist@1").target == "mnist@1"  # same target: fine
    with pytest.raises(ConflictError, match="replace=True"):
        index.label("prod", "mnist@2")
    assert index.get_label("prod").target == "mnist@1"
    assert index.label("prod", "mnist@2", replace=True).target == "mnist@2"
    assert index.get_label("prod").target == "mnist@2"


def test_labels_must_name_existing_versions(index: Index) -> None:
    index.write(make_samples(1), "mnist")
    with pytest.raises(NotFoundError):
        index.label("prod", "mnist@7")
    with pytest.raises(NotFoundError):
        index.label("prod", "other")
    with pytest.raises(ValueError):
        index.label("../prod", "mnist")
    assert index.list_labels() == []


def test_removing_a_labelled_version_needs_force(index: Index) -> None:
    entry = index.write(make_samples(1), "mnist")
    index.label("prod", "mnist@1")
    with pytest.raises(ConflictError, match="prod"):
        index.remove("mnist@1")
    assert index.get("mnist@1") == entry
    index.remove("mnist@1", force=True)
    with pytest.raises(NotFoundError):
        index.get_label("prod")


def test_remove_label(index: Index) -> None:
    index.write(make_samples(1), "mnist")
    index.label("prod", "mnist")
    assert index.remove_label("prod").target == "mnist@1"
    with pytest.raises(NotFoundError):
        index.remove_label("prod")
    assert index.get("mnist").version == 1


def test_a_lens_is_recorded_with_its_schemas_and_code_references(index: Index) -> None:
    record = index.add_lens(image_to_label, source=Image, target=Label, putter=label_into_image)
    assert record.name == "image_to_label"
    assert record.source_schema == "atdata://local/schema/Image@1.0.0"
    assert record.target_schema == "atdata://local/schema/Label@1.0.0"
    assert record.getter == "index_types:image_to_label"
    assert record.putter == "index_types:label_into_image"
    assert {s.name for s in index.schemas} == {"Image", "Label"}
    assert index.get_lens("image_to_label") == record
    assert record.resolve_getter() is image_to_label  # module already imported


def test_an_atdata_lens_object_is_recorded(index: Index) -> None:
    lens = atdata.Lens(image_to_label, label_into_image)
    record = index.add_lens(lens, name="img2label")
    assert (record.name, record.getter, record.putter) == (
        "img2label",
        "index_types:image_to_label",
        "index_types:label_into_image",
    )
    assert record.source_schema.endswith("Image@1.0.0")


def test_find_lenses_by_type_name_or_reference(index: Index) -> None:
    index.add_lens(image_to_label, source=Image, target=Label)
    index.add_lens("index_types:label_into_image", name="other", source=Label, target=Image)
    assert [r.name for r in index.find_lenses(Image, Label)] == ["image_to_label"]
    assert [r.name for r in index.find_lenses("Image", "Label@1.0.0")] == ["image_to_label"]
    assert [r.name for r in index.find_lenses(Label, None)] == ["other"]
    assert [r.name for r in index.find_lenses(None, None)] == ["image_to_label", "other"]
    assert index.find_lenses(Label, Label) == []
    assert index.find_lenses("Label@2.0.0", None) == []


def test_changing_a_recorded_lens_needs_replace(index: Index) -> None:
    index.add_lens(image_to_label, source=Image, target=Label)
    assert index.add_lens(image_to_label, source=Image, target=Label).putter is None
    with pytest.raises(ConflictError, match="replace=True"):
        index.add_lens(image_to_label, source=Image, target=Label, putter=label_into_image)
    changed = index.add_lens(
        image_to_label, source=Image, target=Label, putter=label_into_image, replace=True
    )
    assert index.get_lens("image_to_label") == changed
    assert index.remove_lens("image_to_label") == changed
    assert index.list_lenses() == []


def test_lenses_that_cannot_be_referenced_are_refused(index: Index) -> None:
    with pytest.raises(ValueError, match="top level"):
        index.add_lens(lambda s: s, name="anon", source=Image, target=Label)

    def nested(s: Image) -> Label:
        return Label(label=s.label)

    with pytest.raises(ValueError, match="top level"):
        index.add_lens(nested, source=Image, target=Label)
    with pytest.raises(ValueError):
        index.add_lens(image_to_label, source=Image)  # no target
    with pytest.raises(NotFoundError):
        index.add_lens(image_to_label, source="Image@1.0.0", target=Label)  # unpublished
    assert index.list_lenses() == []


def test_resolving_a_lens_never_imports_unless_asked(index: Index) -> None:
    index.add_lens("some_uninstalled_module.sub:fn", name="remote", source=Image, target=Label)
    with pytest.raises(AtdataIndexError, match="allow_import"):
        index.get_lens("remote").resolve_getter()
