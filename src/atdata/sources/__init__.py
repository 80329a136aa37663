"""How shard bytes are opened: a scheme registry with file, http(s), s3 and at sources."""

from . import file as _file  # registers file://
from .base import ShardSource, open_source, register_scheme, registered_schemes, scheme_of

__all__ = ["ShardSource", "open_source", "register_scheme", "registered_schemes", "scheme_of"]
del _file
