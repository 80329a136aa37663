"""The index: datasets, schemas, labels and lenses, in repositories of a provider and a store."""

from .facade import Index
from .providers import (
    PostgresProvider,
    Provider,
    RedisProvider,
    SQLiteProvider,
    Transaction,
    open_provider,
    provider_from_url,
)
from .records import DatasetEntry, LabelRecord, LensRecord, SchemaRecord
from .repository import Repository, atdata_home, default_repository

__all__ = [
    "DatasetEntry",
    "Index",
    "LabelRecord",
    "LensRecord",
    "PostgresProvider",
    "Provider",
    "RedisProvider",
    "Repository",
    "SQLiteProvider",
    "SchemaRecord",
    "Transaction",
    "atdata_home",
    "default_repository",
    "open_provider",
    "provider_from_url",
]
