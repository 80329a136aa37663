"""Reading the atmosphere from the CLI: the stored login, an anonymous client with the
configured resolver, and the small forms remote records are shown in.

Reading needs no login. ``@handle/name[@version]`` and ``at://`` references are resolved with:

* the PLC directory (DID documents): ``$ATDATA_PLC_URL``, else the ``--plc-url`` given to
  ``login``, else https://plc.directory;
* the service resolving handles (``com.atproto.identity.resolveHandle``):
  ``$ATDATA_HANDLE_RESOLVER``, else the ``--handle-resolver`` given to ``login``, else the PDS
  of the stored session, else https://bsky.social.

Every record read is validated and every shard verified (blobs against their CID, URLs against
the record's sha256) before it is trusted; nothing in a record is executed. The atmosphere
package (and its extra, ``atdata[atmosphere]``) is imported only when a command needs it.
"""

import contextlib
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ..errors import AtdataWarning
from ._shared import note

if TYPE_CHECKING:
    from ..atmosphere import AtmosphereClient
    from ..atmosphere.credentials import StoredLogin

__all__ = [
    "label_text",
    "load_login",
    "reader",
    "record_kind",
    "short_url",
    "storage_kind",
    "warnings_as_notes",
]

#: The collections of the records ``preview`` and ``verify`` accept.
DATASET_COLLECTIONS = ("science.alt.dataset.entry", "science.alt.dataset.label")


def load_login(*, required: bool) -> "StoredLogin | None":
    """The stored login (see :mod:`atdata.atmosphere.credentials`), with a note on stderr when
    the file can be read by other users."""
    from ..atmosphere import credentials

    login = credentials.load_login(required=required)
    path = credentials.session_path()
    if login is not None and credentials.exposed(path):
        note(f"{path} is readable by other users; it grants access to your account: chmod 600 it")
    return login


@contextlib.contextmanager
def reader() -> Iterator["AtmosphereClient"]:
    """An anonymous client with the configured resolver, made current for blob URLs; atdata
    warnings (invalid records skipped) are printed as notes on stderr."""
    from ..atmosphere import AtmosphereClient
    from ..atmosphere.credentials import make_resolver

    resolver = make_resolver(load_login(required=False))
    try:
        with resolver.activate(), warnings_as_notes():
            yield AtmosphereClient(resolver=resolver)
    finally:
        resolver.close()


@contextlib.contextmanager
def warnings_as_notes() -> Iterator[list[str]]:
    """Collect atdata warnings (skipped invalid records) and print them as notes at the end."""
    messages: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", AtdataWarning)
        try:
            yield messages
        finally:
            for w in caught:
                if issubclass(w.category, AtdataWarning):
                    messages.append(str(w.message))
                else:
                    warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    for message in messages:
        note(f"warning: {message}")


def record_kind(ref: str) -> str | None:
    """The collection of an ``at://`` record URI, "repo" for a bare repository (``at://did``,
    ``@handle``), None for a dataset name (``@handle/name``)."""
    from ..atmosphere import AtUri

    if ref.startswith("at://"):
        at = AtUri.parse(ref)
        return at.collection or "repo"
    return "repo" if "/" not in ref else None


def storage_kind(storage: Any) -> str:
    """``blob``, ``http`` or ``s3``: how an entry record keeps its shards."""
    from ..atmosphere import BlobStorage, HttpStorage

    if isinstance(storage, BlobStorage):
        return "blob"
    return "http" if isinstance(storage, HttpStorage) else "s3"


def label_text(label: Any) -> str:
    """``name@version`` of a label record (``name`` without a version)."""
    return f"{label.name}@{label.version}" if label.version else str(label.name)


def short_url(url: str) -> str:
    """Blob URLs without their ``?pds=`` part (the PDS is shown once, elsewhere)."""
    return url.split("?", 1)[0] if url.startswith("at://") else url
