"""Sample types and lenses for the pickling and lens-identity tests.

A module of its own (not a test module) so that spawn-started children import it by name. Its
lenses live in :data:`REGISTRY`, not the default registry, so importing it changes nothing else.
"""

from typing import Annotated, Any

import numpy as np
from numpy.typing import NDArray

import atdata


@atdata.packable
class Frame:
    """A small RGB frame with a label and a caption."""

    image: Annotated[NDArray[np.uint8], atdata.Shape(4, 4, 3)]
    label: int
    caption: str

    def brightness(self) -> float:
        """A method only the user's class has (a rebuilt class has fields, not methods)."""
        return float(self.image.mean())


@atdata.packable
class Gray:
    image: Annotated[NDArray[np.uint8], atdata.Shape(4, 4)]
    label: int


@atdata.packable
class Label:
    label: int


@atdata.packable
class Tagged:
    """A nested sample field and a list field."""

    label: Label
    tags: list[str]
    raw: bytes


@atdata.packable
class Blob:
    """An untyped field; bodies of 64 KiB and more are decoded without copying their bytes."""

    payload: Any
    n: int


REGISTRY = atdata.LensRegistry()

with REGISTRY.use():

    @atdata.lens
    def frame_to_gray(frame: Frame) -> Gray:
        return Gray(image=frame.image.mean(axis=2).astype(np.uint8), label=frame.label)

    @frame_to_gray.putter
    def gray_into_frame(view: Gray, source: Frame) -> Frame:
        image = np.repeat(view.image[:, :, None], 3, axis=2)
        return Frame(image=image, label=view.label, caption=source.caption)

    @atdata.lens
    def gray_to_label(gray: Gray) -> Label:
        return Label(label=gray.label)

    @gray_to_label.putter
    def label_into_gray(view: Label, source: Gray) -> Gray:
        return Gray(image=source.image, label=view.label)


def make_frames(n: int, start: int = 0) -> list[Frame]:
    """``n`` frames whose pixels and label come from their number."""
    return [
        Frame(
            image=np.full((4, 4, 3), (start + i) % 256, dtype=np.uint8),
            label=start + i,
            caption=f"frame {start + i}",
        )
        for i in range(n)
    ]


def make_tagged(n: int) -> list[Tagged]:
    return [Tagged(label=Label(label=i), tags=[f"t{i}", "x"], raw=bytes([i])) for i in range(n)]


def label_plus_one(frame: Frame) -> Frame:
    """A module-level map function (picklable by reference)."""
    return Frame(image=frame.image, label=frame.label + 1, caption=frame.caption)
