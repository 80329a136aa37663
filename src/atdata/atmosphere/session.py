"""A logged-in ATProto session: login, export/restore, token refresh, translated errors.

:class:`AtmosphereSession` speaks XRPC through the transport of :mod:`atdata.net` with the
public lexicon shapes: ``com.atproto.server.createSession`` (login), ``refreshSession``,
``getSession`` (checking a restored session), ``deleteSession`` (logout) and
``describeServer``; records and blobs are written with :meth:`AtmosphereSession.procedure`
(``com.atproto.repo.createRecord`` ...). The access token is refreshed shortly before it expires
(its ``exp`` claim is read, not trusted for anything else) and once more when a PDS answers
``ExpiredToken`` anyway (clock skew). Credentials (app password, tokens) are never logged,
never put in an exception message and never shown by ``repr``;
:meth:`AtmosphereSession.export` is the only way they leave the object, for callers that want
to store a session and :meth:`AtmosphereSession.restore` it later instead of logging in again.
"""

import base64
import binascii
import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, overload

from ..errors import AtmosphereError, AuthenticationError
from ._http import HttpReader, ServiceUnreachable, XrpcError, check_service_url
from .uri import is_did, is_handle

if TYPE_CHECKING:
    from .resolve import Identity, Resolver

__all__ = ["AtmosphereSession"]

EXPORT_VERSION = 1
_REFRESH_AHEAD = 120.0
"""Seconds before its expiry at which an access token is refreshed."""
_MAX_ANSWER = 1 << 20
_AUTH_ERRORS = frozenset(
    {
        "AuthenticationRequired",
        "AuthFactorTokenRequired",
        "AccountTakedown",
        "AccountDeactivated",
        "ExpiredToken",
        "InvalidToken",
        "InvalidPassword",
    }
)


@dataclass
class _Tokens:
    did: str
    handle: str
    access_jwt: str
    refresh_jwt: str


def _as_auth_error(exc: XrpcError) -> AtmosphereError:
    if exc.status in (401, 403) or exc.error in _AUTH_ERRORS:
        return AuthenticationError(str(exc))
    return exc


def _token_expiry(jwt: str) -> float | None:
    """The ``exp`` claim (seconds since the epoch) of a JWT, unverified; None if unreadable."""
    try:
        payload = jwt.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError, binascii.Error, RecursionError):
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    return float(exp) if isinstance(exp, int | float) and not isinstance(exp, bool) else None


def _tokens(answer: object, what: str) -> _Tokens:
    """The tokens of a createSession/refreshSession answer; AuthenticationError if malformed."""
    if not isinstance(answer, dict):
        raise AuthenticationError(f"{what}: the PDS answered with no session")
    did, handle = answer.get("did"), answer.get("handle")
    access, refresh = answer.get("accessJwt"), answer.get("refreshJwt")
    if not is_did(did) or not (is_handle(handle) or handle == "handle.invalid"):
        raise AuthenticationError(f"{what}: the PDS answered a malformed DID or handle")
    if not all(isinstance(t, str) and t for t in (access, refresh)):
        raise AuthenticationError(f"{what}: the PDS answered malformed tokens")
    return _Tokens(str(did), str(handle), str(access), str(refresh))


def _identifier(handle_or_did: str) -> str:
    ident = handle_or_did[1:] if handle_or_did.startswith("@") else handle_or_did
    if not (is_handle(ident) or is_did(ident)):
        raise AuthenticationError(f"{handle_or_did!r:.100} is neither a handle nor a DID")
    return ident


class _MaybeMoved(Exception):
    """A login failed in a way an account that moved to another PDS would cause (the PDS is
    unreachable, answered 4xx, or answered for another DID); ``error`` is what to raise."""

    def __init__(self, error: AuthenticationError) -> None:
        super().__init__(str(error))
        self.error = error


def _find_account(resolver: "Resolver", ident: str) -> "Identity":
    """The account's DID and PDS from its (verified) DID document; AuthenticationError if not."""
    try:
        identity = resolver.resolve(ident)
        identity_pds = check_service_url(identity.pds, "the account's PDS")
    except AtmosphereError as exc:
        raise AuthenticationError(
            f"login as {ident}: cannot find the account's PDS ({exc})"
        ) from None
    return replace(identity, pds=identity_pds)


def _create_session(
    pds_url: str, ident: str, want_did: str | None, app_password: str, timeout: float
) -> _Tokens:
    """``createSession`` on ``pds_url``: its tokens, checked to be for ``want_did`` (if given).

    _MaybeMoved when the failure could mean the account lives elsewhere now."""
    what = f"login as {ident} on {pds_url}"
    http = HttpReader(timeout=timeout)
    try:
        answer = http.post(
            f"{pds_url}/xrpc/com.atproto.server.createSession",
            content=json.dumps({"identifier": ident, "password": app_password}).encode(),
            headers={"Content-Type": "application/json"},
            max_bytes=_MAX_ANSWER,
            what=what,
        )
    except XrpcError as exc:
        if exc.status is not None and 400 <= exc.status < 500:
            raise _MaybeMoved(AuthenticationError(str(exc))) from None
        raise AuthenticationError(str(exc)) from None
    except ServiceUnreachable as exc:
        raise _MaybeMoved(AuthenticationError(f"{what}: cannot reach the server ({exc})")) from None
    except AtmosphereError as exc:
        raise AuthenticationError(f"{what}: cannot reach the server ({exc})") from None
    tokens = _tokens(answer, what)
    if want_did is not None and tokens.did != want_did:
        raise _MaybeMoved(
            AuthenticationError(
                f"{what}: the PDS answered for {tokens.did}, not the account's DID {want_did}"
            )
        )
    return tokens


class AtmosphereSession:
    """An authenticated connection to one account on one PDS.

    Build one with :meth:`login` or :meth:`restore`. ``did``, ``handle`` and ``pds_url`` say who
    and where; :meth:`query` and :meth:`procedure` call XRPC methods as the account, with error
    translation and refresh-on-expiry. ``on_refresh`` (if given) is called with a fresh
    :meth:`export` string whenever the tokens change, so a stored session can be kept current.
    """

    def __init__(
        self,
        tokens: _Tokens,
        *,
        pds_url: str,
        timeout: float = 120.0,
        on_refresh: Callable[[str], None] | None = None,
    ) -> None:
        self._tokens: _Tokens | None = tokens
        self._pds_url = pds_url
        self._http = HttpReader(timeout=timeout)
        self._lock = threading.RLock()
        self._on_refresh = on_refresh
        self._blob_limit: int | None = None

    # -- construction ---------------------------------------------------------------------
    @overload
    @classmethod
    def login(
        cls,
        handle_or_did: str,
        app_password: str,
        /,
        *,
        resolver: "Resolver | None" = None,
        timeout: float = 120.0,
        on_refresh: Callable[[str], None] | None = None,
    ) -> "AtmosphereSession": ...

    @overload
    @classmethod
    def login(
        cls,
        pds_url: str,
        handle_or_did: str,
        app_password: str,
        /,
        *,
        timeout: float = 120.0,
        on_refresh: Callable[[str], None] | None = None,
    ) -> "AtmosphereSession": ...

    @classmethod
    def login(
        cls,
        first: str,
        second: str,
        third: str | None = None,
        /,
        *,
        resolver: "Resolver | None" = None,
        timeout: float = 120.0,
        on_refresh: Callable[[str], None] | None = None,
    ) -> "AtmosphereSession":
        """Log in with an app password: ``login(handle_or_did, password)`` finds the PDS from
        the account's DID document (handle -> DID -> ``#atproto_pds`` service, with ``resolver``,
        else the current one, else :meth:`Resolver.default` — ``$ATDATA_HANDLE_RESOLVER`` and
        ``$ATDATA_PLC_URL``, else the public services); ``login(pds_url, handle_or_did,
        password)`` names the PDS. Either way the PDS must answer for the account asked for."""
        if third is None:
            handle_or_did, app_password = first, second
            ident = _identifier(handle_or_did)
            from .resolve import Resolver, current_resolver

            found = resolver or current_resolver() or Resolver.default(timeout=timeout)
            identity = _find_account(found, ident)
            try:
                tokens = _create_session(identity.pds, ident, identity.did, app_password, timeout)
            except _MaybeMoved as moved:
                # The PDS came from a DID document kept for up to cache_ttl (memory and
                # $ATDATA_HOME/cache/identity): the account may have moved since. Resolve afresh
                # (verified as the first time) and log in once more, only where that document
                # points somewhere else; the password never goes to a PDS no document names.
                found.forget(identity.did)
                fresh = _find_account(found, ident)
                if (fresh.did, fresh.pds) == (identity.did, identity.pds):
                    raise moved.error from None
                identity = fresh
                try:
                    tokens = _create_session(
                        identity.pds, ident, identity.did, app_password, timeout
                    )
                except _MaybeMoved as again:
                    raise again.error from None
            pds_url = identity.pds
        else:
            if resolver is not None:
                raise AuthenticationError("pass either a PDS URL or resolver=, not both")
            pds_url, handle_or_did, app_password = first, second, third
            ident = _identifier(handle_or_did)
            want_did = ident if is_did(ident) else None
            pds_url = check_service_url(pds_url, "pds_url")
            try:
                tokens = _create_session(pds_url, ident, want_did, app_password, timeout)
            except _MaybeMoved as failed:
                raise failed.error from None
        return cls(tokens, pds_url=pds_url, timeout=timeout, on_refresh=on_refresh)

    @classmethod
    def restore(
        cls,
        data: str,
        *,
        verify: bool = True,
        timeout: float = 120.0,
        on_refresh: Callable[[str], None] | None = None,
    ) -> "AtmosphereSession":
        """A session from an :meth:`export` string. With ``verify`` the PDS confirms it (and the
        tokens are refreshed first if they are about to expire); AuthenticationError if the
        session is no longer valid (log in again)."""
        try:
            fields = json.loads(data)
        except (TypeError, ValueError):
            fields = None
        if not isinstance(fields, dict) or fields.get("v") != EXPORT_VERSION:
            raise AuthenticationError(
                "not an exported atdata session (expected the output of export())"
            )
        try:
            pds_url = check_service_url(fields["pds"], "session pds")
            did, handle = fields["did"], fields["handle"]
            access, refresh = fields["accessJwt"], fields["refreshJwt"]
        except KeyError as exc:
            raise AuthenticationError(f"exported session lacks {exc.args[0]!r}") from None
        if not is_did(did) or not (is_handle(handle) or handle == "handle.invalid"):
            raise AuthenticationError("exported session has a malformed DID or handle")
        if not all(isinstance(t, str) and t and ":::" not in t for t in (access, refresh)):
            raise AuthenticationError("exported session has malformed tokens")
        session = cls(
            _Tokens(did, handle, access, refresh),
            pds_url=pds_url,
            timeout=timeout,
            on_refresh=on_refresh,
        )
        if verify:
            got = session.query(
                "com.atproto.server.getSession", {}, "checking the restored session"
            )
            if got.get("did") != did:
                raise AuthenticationError("the restored session belongs to a different account")
        return session

    # -- identity ---------------------------------------------------------------------------
    @property
    def did(self) -> str:
        return self._state().did

    @property
    def handle(self) -> str:
        return self._state().handle

    @property
    def pds_url(self) -> str:
        """The PDS base URL this session talks to."""
        return self._pds_url

    def _state(self) -> _Tokens:
        tokens = self._tokens
        if tokens is None:
            raise AuthenticationError("the session was closed or never logged in")
        return tokens

    def __repr__(self) -> str:
        try:
            who = f"handle={self.handle!r}, did={self.did!r}"
        except AuthenticationError:
            who = "closed"
        return f"AtmosphereSession({who}, pds={self._pds_url!r})"

    __str__ = __repr__

    def __reduce__(self) -> Any:
        raise TypeError("AtmosphereSession holds credentials and is not picklable; use export()")

    # -- tokens ---------------------------------------------------------------------------
    def export(self) -> str:
        """A JSON string holding this session's tokens; pass it to :meth:`restore`.

        It grants access to the account: store it like a password (it is never logged).
        """
        with self._lock:
            s = self._state()
            return json.dumps(
                {
                    "v": EXPORT_VERSION,
                    "pds": self._pds_url,
                    "did": s.did,
                    "handle": s.handle,
                    "accessJwt": s.access_jwt,
                    "refreshJwt": s.refresh_jwt,
                }
            )

    @staticmethod
    def _now() -> float:
        """Seconds since the epoch (a seam for tests of token expiry)."""
        return time.time()

    def refresh(self) -> None:
        """Exchange the refresh token for new tokens now (normally automatic)."""
        with self._lock:
            s = self._state()
            what = f"refreshing the session of {s.did}"
            try:
                answer = self._http.post(
                    f"{self._pds_url}/xrpc/com.atproto.server.refreshSession",
                    content=b"",
                    headers={"Authorization": f"Bearer {s.refresh_jwt}"},
                    max_bytes=_MAX_ANSWER,
                    what=what,
                )
            except AtmosphereError as exc:
                raise AuthenticationError(str(exc)) from None
            fresh = _tokens(answer, what)
            if fresh.did != s.did:
                raise AuthenticationError(f"{what}: the PDS answered for another account")
            self._tokens = fresh
            if self._on_refresh is not None:
                self._on_refresh(self.export())

    def auth_headers(self) -> dict[str, str]:
        """The Authorization header of the current access token (refreshed if due)."""
        with self._lock:
            expiry = _token_expiry(self._state().access_jwt)
            if expiry is not None and expiry - self._now() < _REFRESH_AHEAD:
                self.refresh()
            return {"Authorization": f"Bearer {self._state().access_jwt}"}

    def _authed(self, what: str, send: Callable[[dict[str, str]], Any]) -> Any:
        """``send(auth headers)``, translating errors; refresh and retry once on ExpiredToken."""
        with self._lock:
            for attempt in (0, 1):
                try:
                    return send(self.auth_headers())
                except XrpcError as exc:
                    if attempt == 0 and exc.error == "ExpiredToken":
                        self.refresh()
                        continue
                    raise _as_auth_error(exc) from None
            raise AssertionError("unreachable")

    def query(self, nsid: str, params: Mapping[str, str | int], what: str) -> dict[str, Any]:
        """GET ``/xrpc/<nsid>`` as this account; the JSON object answered."""
        return dict(
            self._authed(
                what,
                lambda auth: self._http.xrpc(
                    self._pds_url, nsid, params, headers=auth, max_bytes=_MAX_ANSWER, what=what
                ),
            )
        )

    def procedure(self, nsid: str, body: Mapping[str, Any], what: str) -> dict[str, Any]:
        """POST a JSON ``body`` to ``/xrpc/<nsid>`` as this account; the JSON object answered."""
        content = json.dumps(body, separators=(",", ":")).encode()
        answer = self._authed(
            what,
            lambda auth: self._http.post(
                f"{self._pds_url}/xrpc/{nsid}",
                content=content,
                headers={**auth, "Content-Type": "application/json"},
                max_bytes=_MAX_ANSWER,
                what=what,
            ),
        )
        if not isinstance(answer, dict):
            raise AtmosphereError(f"{what}: expected a JSON object, got {type(answer).__name__}")
        return answer

    # -- server facts -----------------------------------------------------------------------
    def blob_upload_limit(self) -> int | None:
        """The PDS's blob size limit in bytes from ``describeServer``, or None if it does not say."""
        if self._blob_limit is None:
            info = self._http.xrpc(
                self._pds_url,
                "com.atproto.server.describeServer",
                {},
                max_bytes=_MAX_ANSWER,
                what=f"describing the server {self._pds_url}",
            )
            limit = info.get("blobUploadLimit")
            if isinstance(limit, int) and not isinstance(limit, bool) and limit > 0:
                self._blob_limit = limit
            else:
                self._blob_limit = -1
        return None if self._blob_limit < 0 else self._blob_limit

    # -- lifetime -----------------------------------------------------------------------------
    def logout(self) -> None:
        """Revoke the session on the PDS (its refresh token stops working) and forget it."""
        with self._lock:
            s = self._state()
            try:
                self._http.post(
                    f"{self._pds_url}/xrpc/com.atproto.server.deleteSession",
                    content=b"",
                    headers={"Authorization": f"Bearer {s.refresh_jwt}"},
                    max_bytes=_MAX_ANSWER,
                    what="logging out",
                    expect_json=False,
                )
            except XrpcError as exc:
                raise _as_auth_error(exc) from None
            finally:
                self._tokens = None
