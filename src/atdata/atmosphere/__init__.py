"""The atmosphere: publishing and loading datasets over the AT Protocol.

Datasets, their schemas, lenses and labels are records in the publisher's own ATProto
repository (``science.alt.dataset.*`` lexicons, shipped in ``atdata/lexicons``); shards are
referenced by http(s)/S3 URL or uploaded to the PDS as blobs. Anyone can then find and load
them by ``at://`` URI or ``@handle/name[@version]``, with every record validated and every blob
verified against its CID. Needs ``pip install 'atdata[atmosphere]'``.

Publish a dataset of the local index, list what an account published, load it by name::

    import atdata
    from atdata.atmosphere import AtmosphereClient, AtmosphereSession, Resolver, publish_dataset

    session = AtmosphereSession.login("https://pds.example.com", "alice.example.com", app_password)
    published = publish_dataset(atdata.Index(), "mnist", to=session)  # shards, schema, entry
    resolver = Resolver.default()  # $ATDATA_PLC_URL / $ATDATA_HANDLE_RESOLVER, else the public ones
    client = AtmosphereClient(session, resolver=resolver)
    for entry in client.list_entries("@alice.example.com"):
        print(entry.uri, entry.value.name)
    ds = atdata.load_dataset("@alice.example.com/mnist", split="train")

(``tests/test_atmosphere_example_runs.py`` runs this block against a local PDS.)
"""

from ..shards.info import Checksum
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
    CodeReference,
    DatasetRecord,
    DatasetSize,
    LabelRecord,
    LensRecord,
    SchemaRecord,
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
from .storage import (
    BlobRef,
    BlobShard,
    BlobStorage,
    HttpShard,
    HttpStorage,
    S3Shard,
    S3Storage,
    Storage,
)
from .uri import AtUri

__all__ = [
    "Checksum",
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
    "DatasetRecord",
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
