"""View samples of one type as another with lenses, composed automatically.

Run: uv run python examples/lenses.py
"""

import tempfile
from pathlib import Path
from typing import Annotated

import numpy as np

import atdata
from atdata import NDArray


@atdata.packable
class Reading:
    """A raw sensor reading: a temperature in Celsius and a 3-axis vector."""

    sensor: str
    celsius: float
    accel: Annotated[NDArray[np.float32], atdata.Shape(3)]


@atdata.packable
class Fahrenheit:
    sensor: str
    fahrenheit: float


@atdata.packable
class Label:
    text: str


registry = atdata.LensRegistry()

with registry.use():

    @atdata.lens
    def to_fahrenheit(r: Reading) -> Fahrenheit:
        return Fahrenheit(r.sensor, r.celsius * 9 / 5 + 32)

    @to_fahrenheit.putter
    def _from_fahrenheit(f: Fahrenheit, r: Reading) -> Reading:
        return Reading(f.sensor, (f.fahrenheit - 32) * 5 / 9, r.accel)

    @atdata.lens
    def to_label(f: Fahrenheit) -> Label:
        return Label(f"{f.sensor}: {f.fahrenheit:.1f}F")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        readings = [Reading(f"s{i}", 20.0 + i, np.ones(3, np.float32) * i) for i in range(5)]
        atdata.write_samples(readings, str(Path(tmp) / "r-%06d.tar"))
        ds = atdata.Dataset[Reading](str(Path(tmp) / "r-000000.tar"))
        # No direct Reading -> Label lens exists: the registry composes the two above.
        labels = ds.as_type(Label, registry=registry)
        for label in labels.ordered():
            print(label.text)
        # The put direction writes a changed view back into the source sample.
        warmer = to_fahrenheit.put(Fahrenheit("s0", 212.0), readings[0])
        print(f"boiling point in Celsius: {warmer.celsius:.1f}")


if __name__ == "__main__":
    main()
