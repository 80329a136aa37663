"""Sample types and lenses for the pickling tests (a module that spawn children can import)."""

from typing import Annotated

import numpy as np
from numpy.typing import NDArray

import atdata


@atdata.packable
class Frame:
    """A small RGB frame with a label."""

    image: Annotated[NDArray[np.uint8], atdata.Shape(4, 4, 3)]
    label: int
    caption: str


@atdata.packable
class Gray:
    image: Annotated[NDArray[np.uint8], atdata.Shape(4, 4)]
    label: int


@atdata.packable
class Label:
    label: int


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
