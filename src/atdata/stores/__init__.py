"""Where shard bytes live: the :class:`DataStore` interface, local disk, and S3 (``atdata[s3]``)."""

from typing import Any

from .base import DataStore, ShardProblem, validate_dataset_name
from .disk import LocalDiskStore

__all__ = [
    "DataStore",
    "LocalDiskStore",
    "S3DataStore",
    "ShardProblem",
    "validate_dataset_name",
]


def __getattr__(name: str) -> Any:
    if name == "S3DataStore":  # imported on first use: it needs the optional boto3
        import importlib

        return importlib.import_module(".s3", __name__).S3DataStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
