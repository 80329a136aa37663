"""The main job end to end, on the embedded default index (what ``atdata demo`` runs).

:func:`run_demo` writes a few thousand typed samples (:class:`DemoImage`: a small RGB image, a
label and a caption) into an index (default ``Index()``: SQLite at ``$ATDATA_HOME/index.db``,
shards under ``$ATDATA_HOME/data``), loads them back by name with
``load_dataset("@local/<name>", split="train")`` and no Python class (the type is rebuilt from the
stored schema), iterates shuffled batches, views the samples through a lens
(:func:`thumbnail`: ``DemoImage`` -> :class:`Thumbnail`), verifies every shard's checksum and
returns a :class:`DemoResult`. Each run writes a new version of the dataset.

The lens lives in this module's own :data:`registry` (not the default one), so importing the
module changes nothing global.
"""

import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Annotated, Any

import numpy as np
from numpy.typing import NDArray

from .dataset_refs import load_dataset
from .errors import InvalidArgumentError
from .index import Index
from .lens import LensRegistry, lens
from .sample import PackableSample
from .schema import Shape

__all__ = [
    "CLASSES",
    "DemoImage",
    "DemoResult",
    "Thumbnail",
    "make_samples",
    "registry",
    "run_demo",
    "thumbnail",
]

#: The ten labels of the demo images (CIFAR-10's, for familiarity).
CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
IMAGE_SHAPE = (32, 32, 3)
THUMB_STEP = 4


class DemoImage(PackableSample):
    """A small RGB image with its class label and a caption."""

    image: Annotated[NDArray[np.uint8], Shape(*IMAGE_SHAPE)]
    label: int
    caption: str


class Thumbnail(PackableSample):
    """A smaller view of a :class:`DemoImage`: an 8x8 thumbnail and the label."""

    image: Annotated[NDArray[np.uint8], Shape(8, 8, 3)]
    label: int


#: The lenses of the demo (a registry of its own; pass it to ``as_type(..., registry=)``).
registry = LensRegistry()

with registry.use():

    @lens
    def thumbnail(sample: DemoImage) -> Thumbnail:
        """Every fourth pixel in each direction, and the label."""
        return Thumbnail(
            np.ascontiguousarray(sample.image[::THUMB_STEP, ::THUMB_STEP]), sample.label
        )


@dataclass(frozen=True)
class DemoResult:
    """What a demo run did, measured."""

    name: str
    version: int
    ref: str
    uri: str
    count: int
    shards: int
    size: int
    schema_ref: str | None
    loaded_type: str
    loaded_type_is_rebuilt: bool
    batch_size: int
    batches: int
    batch_image_shape: tuple[int, ...]
    labels_seen: int
    view_type: str
    view_image_shape: tuple[int, ...]
    view_samples: int
    lens: str
    verified_shards: int
    problems: tuple[str, ...]
    write_seconds: float
    read_seconds: float
    lens_seconds: float
    verify_seconds: float
    index_path: str | None
    data_dir: str | None
    versions: tuple[int, ...]

    @property
    def ok(self) -> bool:
        return not self.problems and self.view_samples == self.count

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["ok"] = self.ok
        return out


def make_samples(count: int, *, seed: int = 0) -> Iterator[DemoImage]:
    """``count`` deterministic demo images: a colour gradient per class plus noise."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 1, IMAGE_SHAPE[0], dtype=np.float32)
    gradient = ramp[:, None, None] * ramp[None, :, None]  # (32, 32, 1)
    palette = rng.integers(40, 255, (len(CLASSES), 3)).astype(np.float32)
    block = 1024
    for start in range(0, count, block):
        n = min(block, count - start)
        labels = rng.integers(0, len(CLASSES), n)
        noise = rng.integers(0, 40, (n, *IMAGE_SHAPE), dtype=np.uint8)
        images = (gradient[None] * palette[labels][:, None, None, :]).astype(np.uint8) + noise
        for i in range(n):
            label = int(labels[i])
            noun = CLASSES[label]
            article = "an" if noun[0] in "aeiou" else "a"
            yield DemoImage(images[i], label, f"{article} {noun}, picture #{start + i}")


def run_demo(
    index: Index | None = None,
    *,
    name: str = "demo",
    count: int = 4096,
    shard_size: int = 1024,
    batch_size: int = 256,
    progress: Callable[[int], None] | None = None,
    stage: Callable[[str], None] | None = None,
) -> DemoResult:
    """Run the demo against ``index`` (default ``Index()``) and return what happened.

    ``progress(n)`` is called as samples are written (n more each time) and ``stage(text)``
    when each step begins, for a caller that shows them.
    """
    if count < 1:
        raise InvalidArgumentError("the demo needs at least one sample")
    own_index = index is None
    ix = Index() if index is None else index
    say = stage or (lambda _text: None)
    try:
        # 1. write a typed dataset into the index (a new version on every run)
        say(f"writing {count:,} samples of DemoImage into the index as {name!r}")
        t0 = time.perf_counter()
        entry = ix.write(
            _counted(make_samples(count), progress),
            name=name,
            maxcount=shard_size,
            description="atdata demo: small RGB images with a label and a caption",
            tags=("demo",),
        )
        write_s = time.perf_counter() - t0

        # 2. load it back by name, with no Python class: the type is rebuilt from the schema
        say(f"loading @local/{entry.ref} with load_dataset and iterating shuffled batches")
        t0 = time.perf_counter()
        ds = load_dataset(f"@local/{entry.ref}", split="train", index=ix)
        loaded = ds.sample_type
        batches = 0
        seen = 0
        labels: set[int] = set()
        shape: tuple[int, ...] = ()
        for batch in ds.shuffled(seed=0, batch_size=batch_size):
            batches += 1
            seen += len(batch.label)
            labels.update(int(x) for x in batch.label)
            shape = shape or tuple(batch.image.shape)
        read_s = time.perf_counter() - t0
        if seen != entry.count:
            raise AssertionError(f"read {seen} samples back, wrote {entry.count}")

        # 3. view the samples through a lens, from a Dataset typed with the real class
        say("viewing the dataset as Thumbnail through the thumbnail lens")
        t0 = time.perf_counter()
        typed = ix.load(entry, DemoImage)
        views = typed.as_type(Thumbnail, registry=registry)
        view_samples = 0
        view_shape: tuple[int, ...] = ()
        for vb in views.ordered(batch_size=batch_size):
            view_samples += len(vb.label)
            view_shape = view_shape or tuple(vb.image.shape[1:])
        lens_s = time.perf_counter() - t0

        # 4. verify every shard against the checksums recorded in the index
        say("verifying shard checksums")
        t0 = time.perf_counter()
        problems = ix.verify(entry.ref)
        verify_s = time.perf_counter() - t0

        versions = tuple(e.version for e in ix.history(name))
        repo = ix.repository(entry.repo)
        return DemoResult(
            name=entry.name,
            version=entry.version,
            ref=entry.ref,
            uri=entry.uri,
            count=entry.count,
            shards=len(entry.shards),
            size=entry.size,
            schema_ref=entry.schema_ref,
            loaded_type=f"{loaded.__module__}.{loaded.__qualname__}",
            loaded_type_is_rebuilt=bool(getattr(loaded, "__atdata_rebuilt__", False)),
            batch_size=batch_size,
            batches=batches,
            batch_image_shape=shape,
            labels_seen=len(labels),
            view_type=Thumbnail.__name__,
            view_image_shape=view_shape,
            view_samples=view_samples,
            lens=f"{thumbnail.name}: {DemoImage.__name__} -> {Thumbnail.__name__}",
            verified_shards=len(entry.shards),
            problems=tuple(str(p) for p in problems),
            write_seconds=write_s,
            read_seconds=read_s,
            lens_seconds=lens_s,
            verify_seconds=verify_s,
            index_path=_str_attr(repo.provider, "path"),
            data_dir=_str_attr(repo.store, "root"),
            versions=versions,
        )
    finally:
        if own_index:
            ix.close()


def _counted(
    samples: Iterator[DemoImage], progress: Callable[[int], None] | None
) -> Iterator[DemoImage]:
    if progress is None:
        yield from samples
        return
    pending = 0
    for sample in samples:
        yield sample
        pending += 1
        if pending == 256:
            progress(pending)
            pending = 0
    if pending:
        progress(pending)


def _str_attr(obj: object, attr: str) -> str | None:
    value = getattr(obj, attr, None)
    return None if value is None else str(value)
