"""Hide secrets in text meant for people: URLs, DSNs and messages that quote them.

:func:`redact` is the one helper every message, ``repr``, report and CLI line that may show a
connection string goes through. It replaces with ``***``:

- the password in a URL's userinfo (``redis://user:pw@host`` -> ``redis://user:***@host``);
- the value of a secret-looking parameter in a URL query (``?password=``, ``&sslpassword=``,
  ``?token=``, ``X-Amz-Signature=``...);
- the value of a secret-looking ``key=value`` pair in a libpq keyword DSN
  (``host=db password='it''s'``) or in free text.

A parameter is secret-looking when its name contains ``pass``, ``pwd``, ``secret``, ``token``,
``signature``, ``credential`` or ``apikey``/``api_key``, or is exactly ``key``, ``sig``, ``pw``
or ``auth`` (case-insensitive). Redacting twice gives the same text.

>>> redact("postgresql://bob:hunter2@db/app?sslmode=require&password=hunter2")
'postgresql://bob:***@db/app?sslmode=require&password=***'
>>> redact("host=db user=bob password='hunter 2' dbname=app")
'host=db user=bob password=*** dbname=app'
"""

import re

__all__ = ["MASK", "Redacted", "redact"]

MASK = "***"

_NAME = (
    r"(?:[a-z0-9_.-]*(?:pass|pwd|secret|token|signature|credential|api[_-]?key)[a-z0-9_.-]*"
    r"|key|sig|pw|auth)"
)
# scheme://netloc: the netloc ends at the first / ? # or whitespace/quote
_URL_NETLOC = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<netloc>[^/?#\s'\"<>]*)", re.I)
# ?name=value or &name=value (a URL query): the value ends at & # or whitespace/quote
_QUERY_PAIR = re.compile(
    rf"(?P<lead>[?&;]\s*)(?P<name>{_NAME})(?P<eq>=)(?P<value>[^&#\s'\"<>]*?(?=[:.,;)\]]*(?:[&#\s'\"<>]|$)))",
    re.I,
)
# name=value elsewhere (keyword DSN, free text): a quoted value, else up to whitespace
_KEYWORD_PAIR = re.compile(
    rf"(?P<lead>(?<![a-z0-9_.?&;-]))(?P<name>{_NAME})(?P<eq>\s*=\s*)"
    r"(?P<value>'(?:[^'\\]|\\.)*'?|\"(?:[^\"\\]|\\.)*\"?|\S+?(?=[:.,;)\]]*(?:\s|$)))",
    re.I,
)


def _mask_userinfo(match: "re.Match[str]") -> str:
    netloc = match["netloc"]
    userinfo, at, host = netloc.rpartition("@")
    if not at:
        return match[0]
    user, colon, _password = userinfo.partition(":")
    if not colon:
        return match[0]
    return f"{match['scheme']}{user}:{MASK}@{host}"


def _mask_pair(match: "re.Match[str]") -> str:
    if match["value"] == MASK:
        return match[0]
    return f"{match['lead']}{match['name']}{match['eq']}{MASK}"


def redact(text: str) -> str:
    """``text`` with every password, token and other secret it shows replaced by ``***``."""
    if not isinstance(text, str):
        text = str(text)
    text = _URL_NETLOC.sub(_mask_userinfo, text)
    text = _QUERY_PAIR.sub(_mask_pair, text)
    return _KEYWORD_PAIR.sub(_mask_pair, text)


class Redacted:
    """``text`` for a log call: redacted only if the record is emitted (``str()`` redacts).

    >>> str(Redacted("https://h/x?X-Amz-Signature=abc"))
    'https://h/x?X-Amz-Signature=***'
    """

    __slots__ = ("text",)

    def __init__(self, text: object) -> None:
        self.text = text

    def __str__(self) -> str:
        return redact(str(self.text))

    __repr__ = __str__
