"""S3 credentials given as a dict or a ``.env`` file, turned into :class:`S3Config` fields.

The keys are the environment variable names AWS tools use: ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, and optionally ``AWS_SESSION_TOKEN``, ``AWS_ENDPOINT_URL`` (or
``endpoint``) and ``AWS_REGION`` / ``AWS_DEFAULT_REGION`` (or ``region``). A ``.env`` file is
read as text, never executed: ``KEY=VALUE`` lines, an optional ``export`` prefix, blank lines and
``#`` comments, values optionally in single or double quotes. Error messages name keys and line
numbers, never values.
"""

import os
import re
from collections.abc import Mapping
from typing import Any

from ..errors import StoreError

__all__ = ["config_fields", "read_env_file"]

_FIELDS = {
    "AWS_ACCESS_KEY_ID": "access_key_id",
    "AWS_SECRET_ACCESS_KEY": "secret_access_key",
    "AWS_SESSION_TOKEN": "session_token",
    "AWS_ENDPOINT_URL": "endpoint_url",
    "AWS_ENDPOINT_URL_S3": "endpoint_url",
    "endpoint": "endpoint_url",
    "endpoint_url": "endpoint_url",
    "AWS_REGION": "region",
    "AWS_DEFAULT_REGION": "region",
    "region": "region",
}
_LINE = re.compile(r"^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$")
_ESCAPES = {"n": "\n", "t": "\t", '"': '"', "\\": "\\"}


def read_env_file(path: str | os.PathLike[str]) -> dict[str, str]:
    """The ``KEY=VALUE`` pairs of a ``.env`` file (parsed, not executed).

    >>> import tempfile
    >>> f = tempfile.NamedTemporaryFile("w", suffix=".env", delete=False)
    >>> _ = f.write('# s3\\nexport A="x y" # note\\nB=\\'q\\'\\nC=plain # c\\n'); f.close()
    >>> read_env_file(f.name)
    {'A': 'x y', 'B': 'q', 'C': 'plain'}
    """
    try:
        with open(path, encoding="utf-8") as fh:
            lines = fh.read().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise StoreError(f"cannot read credentials file {os.fspath(path)!r}: {exc}") from exc
    out: dict[str, str] = {}
    for number, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _LINE.match(line)
        if match is None:
            raise StoreError(
                f"{os.fspath(path)}:{number}: not a KEY=VALUE line; "
                "fix or comment it out (lines starting with # are ignored)"
            )
        key, value = match.groups()
        parsed = _value(value)
        if parsed is None:
            raise StoreError(
                f"{os.fspath(path)}:{number}: the value of {key} has an unclosed quote"
            )
        out[key] = parsed
    return out


def _value(text: str) -> str | None:
    if text[:1] in ("'", '"'):
        quote = text[0]
        chars: list[str] = []
        i = 1
        while i < len(text):
            ch = text[i]
            if ch == quote:
                return "".join(chars)
            if quote == '"' and ch == "\\" and i + 1 < len(text):
                i += 1
                chars.append(_ESCAPES.get(text[i], "\\" + text[i]))
            else:
                chars.append(ch)
            i += 1
        return None
    return re.split(r"\s+#", text, maxsplit=1)[0].strip()


def config_fields(credentials: Mapping[str, Any] | str | os.PathLike[str]) -> dict[str, str]:
    """:class:`~atdata.sources.s3.S3Config` fields from a credentials dict or ``.env`` path."""
    values = dict(credentials) if isinstance(credentials, Mapping) else read_env_file(credentials)
    fields: dict[str, str] = {}
    for key, value in values.items():
        name = _FIELDS.get(key)
        if name is None:
            if isinstance(credentials, Mapping):
                raise StoreError(f"unknown S3 credentials key {key!r}; use {sorted(set(_FIELDS))}")
            continue  # a .env file may hold other settings too
        if not isinstance(value, str):
            raise StoreError(f"S3 credentials key {key!r} must be a string")
        fields[name] = value
    for required in ("access_key_id", "secret_access_key"):
        if required not in fields:
            raise StoreError(
                "S3 credentials need AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY; "
                f"{required.upper()!s} is missing"
            )
    return fields
