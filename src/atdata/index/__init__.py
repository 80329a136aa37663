"""The index: datasets, schemas, labels and lenses, in repositories of a provider and a store."""

from .facade import Index
from .providers.base import Provider, Transaction
from .providers.sqlite import SQLiteProvider
from .records import DatasetEntry, LabelRecord, LensRecord, SchemaRecord
from .repository import Repository, atdata_home, default_repository

__all__ = [
    "DatasetEntry",
    "Index",
    "LabelRecord",
    "LensRecord",
    "Provider",
    "Repository",
    "SQLiteProvider",
    "SchemaRecord",
    "Transaction",
    "atdata_home",
    "default_repository",
]
