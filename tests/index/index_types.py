"""Sample types shared by the index tests (importable by child processes)."""

from typing import Annotated

import numpy as np
from numpy.typing import NDArray

import atdata


@atdata.packable
class Point:
    x: int
    name: str


@atdata.packable
class Image:
    image: Annotated[NDArray[np.uint8], atdata.Shape(4, 4)]
    label: int


@atdata.packable
class Label:
    label: int


def image_to_label(sample: Image) -> Label:
    return Label(label=sample.label)


def label_into_image(view: Label, source: Image) -> Image:
    return Image(image=source.image, label=view.label)
