"""The atmosphere: publishing and loading datasets over the AT Protocol.

Datasets, their schemas, lenses and labels are records in the publisher's own ATProto
repository (``science.alt.dataset.*`` lexicons, shipped in ``atdata/lexicons``); shards are
referenced by http(s)/S3 URL or uploaded to the PDS as blobs. Anyone can then find and load
them by ``at://`` URI or ``@handle/name[@version]``, with every record validated and every blob
verified against its CID. Needs ``pip install 'atdata[atmosphere]'``.

    session = AtmosphereSession.login("https://pds.example.com", "alice.example.com", app_password)
    resolver = Resolver.public()
    client = AtmosphereClient(resolver, session)
    client.list_entries("@bob.example.com")
"""

from ._http import XrpcError
from .client import AtmosphereClient, OnInvalid, StoredRecord
from .lexicon import RecordValidationError, validate_record
from .publish import (
    PublishedDataset,
    ResolvedDataset,
    parse_dataset_ref,
    publish_dataset,
    publish_lens,
    resolve_dataset,
)
from .records import (
    BlobRef,
    BlobShard,
    BlobStorage,
    CodeReference,
    DatasetSize,
    EntryRecord,
    HttpShard,
    HttpStorage,
    LabelRecord,
    LensRecord,
    S3Shard,
    S3Storage,
    SchemaRecord,
    ShardChecksum,
    Storage,
)
from .resolve import (
    HANDLE_RESOLVER_ENV,
    PLC_URL_ENV,
    PUBLIC_HANDLE_RESOLVER,
    PUBLIC_PLC_URL,
    Identity,
    Resolver,
    current_resolver,
)
from .session import AtmosphereSession
from .uri import AtUri

__all__ = [
    "HANDLE_RESOLVER_ENV",
    "PLC_URL_ENV",
    "PUBLIC_HANDLE_RESOLVER",
    "PUBLIC_PLC_URL",
    "AtUri",
    "AtmosphereClient",
    "AtmosphereSession",
    "BlobRef",
    "BlobShard",
    "BlobStorage",
    "CodeReference",
    "DatasetSize",
    "EntryRecord",
    "HttpShard",
    "HttpStorage",
    "Identity",
    "LabelRecord",
    "LensRecord",
    "OnInvalid",
    "PublishedDataset",
    "RecordValidationError",
    "ResolvedDataset",
    "Resolver",
    "S3Shard",
    "S3Storage",
    "SchemaRecord",
    "ShardChecksum",
    "Storage",
    "StoredRecord",
    "XrpcError",
    "current_resolver",
    "parse_dataset_ref",
    "publish_dataset",
    "publish_lens",
    "resolve_dataset",
    "validate_record",
]
