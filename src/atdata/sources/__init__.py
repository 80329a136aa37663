"""How shard bytes are opened: a scheme registry with file, http(s), s3, at and hf sources.

Importing this package registers every built-in scheme; none of them imports its optional
dependency (httpx, boto3) until a URL of that scheme is opened.
"""

from . import at as _at
from . import file as _file
from . import hf as _hf
from . import http as _http
from . import s3 as _s3
from ._retry import RetryPolicy
from .base import (
    ShardSource,
    glob_expander,
    open_source,
    register_glob,
    register_scheme,
    registered_schemes,
    scheme_of,
)
from .cache import CachedSource, ShardCache, wrap_source

__all__ = [
    "CachedSource",
    "RetryPolicy",
    "ShardCache",
    "ShardSource",
    "glob_expander",
    "open_source",
    "register_glob",
    "register_scheme",
    "registered_schemes",
    "scheme_of",
    "wrap_source",
]

register_glob("s3", _s3.expand_s3_glob)
del _at, _file, _hf, _http
