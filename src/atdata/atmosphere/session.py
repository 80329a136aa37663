"""A logged-in ATProto session: login, export/restore, token refresh, translated errors.

:class:`AtmosphereSession` wraps the ``atproto`` SDK's ``Client``. Its access token is refreshed
before it expires (the SDK does this ahead of each call) and once more when a PDS answers
``ExpiredToken`` anyway (clock skew). Credentials (app password, tokens) are never logged, never
put in an exception message and never shown by ``repr``; :meth:`AtmosphereSession.export` is the
only way they leave the object, for callers that want to store a session and
:meth:`AtmosphereSession.restore` it later instead of logging in again.
"""

import json
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from .._optional import require
from ..errors import AtmosphereError, AuthenticationError
from ._http import XrpcError, check_service_url, printable
from .uri import is_did, is_handle

if TYPE_CHECKING:
    from atproto import Client

__all__ = ["AtmosphereSession", "translate_sdk_error"]

T = TypeVar("T")
EXPORT_VERSION = 1
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


def translate_sdk_error(exc: BaseException, what: str) -> AtmosphereError:
    """An atdata error for an exception raised by the atproto SDK while doing ``what``.

    Only the status, the XRPC error name and a printable, shortened server message are kept,
    so nothing from request headers (tokens) can end up in the message.
    """
    from atproto_client import exceptions as sdk

    if isinstance(exc, sdk.LoginRequiredError):
        return AuthenticationError(f"{what}: not logged in")
    if isinstance(exc, sdk.RequestErrorBase):
        response = exc.response
        if response is None:
            cause = exc.__cause__
            detail = printable(str(cause)) if cause is not None else type(exc).__name__
            return AtmosphereError(f"{what}: cannot reach the server ({detail})")
        status = response.status_code
        content = response.content
        name = getattr(content, "error", None)
        message = getattr(content, "message", None)
        name = printable(name, 60) if isinstance(name, str) else None
        summary = f"HTTP {status}" + (f" {name}" if name else "")
        if isinstance(message, str) and message:
            summary += f": {printable(message)}"
        if status in (401, 403) or name in _AUTH_ERRORS:
            err: AtmosphereError = AuthenticationError(f"{what} failed: {summary}")
        else:
            err = XrpcError(f"{what} failed: {summary}", status=status, error=name)
        return err
    if isinstance(exc, AtmosphereError):
        return exc
    return AtmosphereError(f"{what} failed: {printable(str(exc)) or type(exc).__name__}")


def _is_expired_token(exc: BaseException) -> bool:
    from atproto_client import exceptions as sdk

    if not isinstance(exc, sdk.RequestErrorBase) or exc.response is None:
        return False
    return getattr(exc.response.content, "error", None) == "ExpiredToken"


class AtmosphereSession:
    """An authenticated connection to one account on one PDS.

    Build one with :meth:`login` or :meth:`restore`. ``did``, ``handle`` and ``pds_url`` say who
    and where; :meth:`call` runs an SDK request with error translation and refresh-on-expiry.
    ``on_refresh`` (if given) is called with a fresh :meth:`export` string whenever the tokens
    change, so a stored session can be kept current.
    """

    def __init__(
        self,
        client: "Client",
        *,
        pds_url: str,
        on_refresh: Callable[[str], None] | None = None,
    ) -> None:
        session = client._session
        if session is None:
            raise AuthenticationError("the atproto client is not logged in")
        self._client = client
        self._pds_url = pds_url
        self._lock = threading.RLock()
        self._on_refresh = on_refresh
        self._blob_limit: int | None = None
        client.on_session_change(self._session_changed)

    # -- construction ---------------------------------------------------------------------
    @classmethod
    def login(
        cls,
        pds_url: str,
        handle_or_did: str,
        app_password: str,
        *,
        timeout: float = 120.0,
        on_refresh: Callable[[str], None] | None = None,
    ) -> "AtmosphereSession":
        """Log in to the PDS at ``pds_url`` as a handle or DID with an app password."""
        pds_url = check_service_url(pds_url, "pds_url")
        ident = handle_or_did[1:] if handle_or_did.startswith("@") else handle_or_did
        if not (is_handle(ident) or is_did(ident)):
            raise AuthenticationError(f"{handle_or_did!r:.100} is neither a handle nor a DID")
        client = cls._new_client(pds_url, timeout)
        try:
            client.login(ident, app_password, fetch_bsky_profile=False)
        except Exception as exc:
            err = translate_sdk_error(exc, f"login as {ident} on {pds_url}")
            raise (
                err if isinstance(err, AuthenticationError) else AuthenticationError(str(err))
            ) from None
        return cls(client, pds_url=pds_url, on_refresh=on_refresh)

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
        client = cls._new_client(pds_url, timeout)
        session_string = ":::".join([handle, did, access, refresh, pds_url])
        try:
            client.login(session_string=session_string, fetch_bsky_profile=False)
        except Exception as exc:
            raise AuthenticationError(
                str(translate_sdk_error(exc, "restoring the session"))
            ) from None
        session = cls(client, pds_url=pds_url, on_refresh=on_refresh)
        if verify:
            got = session.call(
                "checking the restored session", lambda c: c.com.atproto.server.get_session()
            )
            if got.did != did:
                raise AuthenticationError("the restored session belongs to a different account")
        return session

    @staticmethod
    def _new_client(pds_url: str, timeout: float) -> "Client":
        require("atproto", "atmosphere")
        from atproto import Client
        from atproto_client.request import Request

        return Client(base_url=pds_url, request=Request(timeout=timeout, trust_env=False))

    # -- identity ---------------------------------------------------------------------------
    @property
    def did(self) -> str:
        return str(self._state().did)

    @property
    def handle(self) -> str:
        return str(self._state().handle)

    @property
    def pds_url(self) -> str:
        """The PDS base URL this session talks to."""
        return self._pds_url

    def _state(self) -> Any:
        session = self._client._session
        if session is None:
            raise AuthenticationError("the session was closed or never logged in")
        return session

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

    def refresh(self) -> None:
        """Exchange the refresh token for new tokens now (normally automatic)."""
        with self._lock:
            try:
                self._client._refresh_and_set_session()
            except Exception as exc:
                raise AuthenticationError(
                    str(translate_sdk_error(exc, f"refreshing the session of {self.did}"))
                ) from None

    def _session_changed(self, event: Any, _session: Any) -> None:
        if self._on_refresh is not None and getattr(event, "value", None) == "refresh":
            self._on_refresh(self.export())

    def call(self, what: str, fn: "Callable[[Client], T]") -> T:
        """Run ``fn(client)``, translating SDK errors; refresh and retry once on ExpiredToken."""
        with self._lock:
            for attempt in (0, 1):
                try:
                    return fn(self._client)
                except Exception as exc:
                    if attempt == 0 and _is_expired_token(exc):
                        self.refresh()
                        continue
                    raise translate_sdk_error(exc, what) from None
            raise AssertionError("unreachable")

    def auth_headers(self) -> dict[str, str]:
        """The Authorization header of the current access token (refreshed if due)."""
        with self._lock:
            try:
                if self._client._should_refresh_session():
                    self.refresh()
            except AuthenticationError:
                raise
            except Exception as exc:
                raise translate_sdk_error(exc, "checking the session") from None
            return {"Authorization": f"Bearer {self._state().access_jwt}"}

    # -- server facts -----------------------------------------------------------------------
    def blob_upload_limit(self) -> int | None:
        """The PDS's blob size limit in bytes from ``describeServer``, or None if it does not say."""
        if self._blob_limit is None:
            info = self.call(
                f"describing the server {self._pds_url}",
                lambda c: c.invoke_query("com.atproto.server.describeServer"),
            )
            content = getattr(info, "content", None)
            limit = content.get("blobUploadLimit") if isinstance(content, dict) else None
            if isinstance(limit, int) and not isinstance(limit, bool) and limit > 0:
                self._blob_limit = limit
            else:
                self._blob_limit = -1
        return None if self._blob_limit < 0 else self._blob_limit

    # -- lifetime -----------------------------------------------------------------------------
    def logout(self) -> None:
        """Revoke the session on the PDS (its refresh token stops working) and forget it."""
        with self._lock:
            try:
                self._client.com.atproto.server.delete_session(
                    headers=self._client._get_refresh_auth_headers(), ignore_session_check=True
                )
            except Exception as exc:
                raise translate_sdk_error(exc, "logging out") from None
            finally:
                self._client._session_dispatcher._session = None
