"""atdata: typed, distributed ML datasets in WebDataset shards.

Define a sample type with ``@atdata.packable``, write shards with ``atdata.write_samples``, read
them back with ``atdata.Dataset[T](...)`` as samples or stacked batches, and view them through
lenses. The public API is exactly ``__all__`` (pinned by a test).
"""

import logging

from numpy.typing import NDArray

from .batch import SampleBatch
from .dataset import Dataset, Loader
from .dataset_refs import DatasetDict, load_dataset
from .errors import (
    AtdataError,
    AtdataIndexError,
    AtdataWarning,
    AtmosphereError,
    AuthenticationError,
    ConflictError,
    IndexUnavailableError,
    IntegrityError,
    InvalidArgumentError,
    LensError,
    NotFoundError,
    SchemaError,
    ShardError,
    SourceError,
    StoreError,
    TransformError,
)
from .hf_datasets import from_hf
from .index import DatasetEntry, Index
from .lens import Lens, LensRegistry, current_registry, default_registry, lens
from .manifest.fields import Indexed
from .media import Image, ImageSpec
from .members import MemberCodec, member, register_member_codec
from .ray_ingest import from_ray
from .sample import DictSample, PackableSample, packable
from .schema import Schema, Shape
from .shards.info import ShardInfo
from .shards.writer import ShardWriter
from .stores.disk import LocalDiskStore
from .writing import write_samples

__version__ = "0.1.0"

# the library logs under "atdata.<module>" and leaves output to the application (the CLI's
# -v/--quiet configure it there); this only keeps Python's last-resort handler quiet
logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "AtdataError",
    "AtdataIndexError",
    "AtdataWarning",
    "AtmosphereError",
    "AuthenticationError",
    "ConflictError",
    "Dataset",
    "DatasetDict",
    "DatasetEntry",
    "DictSample",
    "Index",
    "Image",
    "ImageSpec",
    "IndexUnavailableError",
    "Indexed",
    "IntegrityError",
    "InvalidArgumentError",
    "Lens",
    "LensError",
    "LensRegistry",
    "Loader",
    "LocalDiskStore",
    "MemberCodec",
    "NDArray",
    "NotFoundError",
    "PackableSample",
    "SampleBatch",
    "Schema",
    "SchemaError",
    "Shape",
    "ShardError",
    "ShardInfo",
    "ShardWriter",
    "SourceError",
    "StoreError",
    "TransformError",
    "__version__",
    "current_registry",
    "default_registry",
    "from_hf",
    "from_ray",
    "lens",
    "load_dataset",
    "member",
    "packable",
    "register_member_codec",
    "write_samples",
]
