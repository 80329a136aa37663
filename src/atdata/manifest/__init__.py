"""Shard manifests: per-field statistics and a columnar block of the scalar fields of each shard,
kept beside it as ``<shard>.manifest`` and used by ``Dataset.where`` to skip what cannot match."""

from .build import VALUE_BOUND, ManifestBuilder, summarise
from .fields import Indexed, indexed_fields
from .format import MANIFEST_SUFFIX, FieldStats, Manifest

__all__ = [
    "MANIFEST_SUFFIX",
    "VALUE_BOUND",
    "FieldStats",
    "Indexed",
    "Manifest",
    "ManifestBuilder",
    "indexed_fields",
    "summarise",
]
