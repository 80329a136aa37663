"""The stored login: an ATProto session kept between runs in ``$ATDATA_HOME/session.json``.

``atdata login`` writes it and every command that needs an account (``publish``, ``logout``,
``whoami``) reads it; Python code can use it too::

    from atdata.atmosphere.credentials import load_login, open_session

    login = load_login(required=True)
    session = open_session(login)  # refreshed tokens are written back to the file

What is kept: the session's tokens as :meth:`AtmosphereSession.export` gives them (never the app
password) and the resolution settings given to ``login`` (``--plc-url``,
``--handle-resolver``). The file is written atomically, readable and writable by its owner only
(``0600`` whatever the umask, never through a symlink). A file that is not one of ours is an
:class:`~atdata.errors.AuthenticationError` saying to log in again.
"""

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .._home import atdata_home
from ..errors import AuthenticationError

if TYPE_CHECKING:
    from .resolve import Resolver
    from .session import AtmosphereSession

__all__ = [
    "PASSWORD_ENV",
    "SESSION_FILE",
    "StoredLogin",
    "exposed",
    "load_login",
    "login_again",
    "make_resolver",
    "open_session",
    "resolution_settings",
    "save_login",
    "session_path",
]

#: Where the logged-in session is kept, under ``$ATDATA_HOME``.
SESSION_FILE = "session.json"
#: The environment variable ``atdata login`` reads the app password from.
PASSWORD_ENV = "ATDATA_APP_PASSWORD"
_FILE_VERSION = 1


def session_path() -> Path:
    """``$ATDATA_HOME/session.json``."""
    return atdata_home() / SESSION_FILE


@dataclass(frozen=True)
class StoredLogin:
    """What ``atdata login`` keeps: the exported session and the resolution settings."""

    export: str
    pds: str
    did: str
    handle: str
    plc_url: str | None = None
    handle_resolver: str | None = None

    def to_json(self) -> str:
        return json.dumps(
            {
                "v": _FILE_VERSION,
                "session": json.loads(self.export),
                "plc_url": self.plc_url,
                "handle_resolver": self.handle_resolver,
            },
            indent=2,
        )

    @classmethod
    def from_json(cls, text: str, where: Path) -> "StoredLogin":
        broken = AuthenticationError(
            f"{where} is not a session saved by `atdata login`; log in again"
        )
        try:
            data = json.loads(text)
        except ValueError:
            raise broken from None
        if not isinstance(data, dict) or data.get("v") != _FILE_VERSION:
            raise broken
        session = data.get("session")
        if not isinstance(session, dict) or not all(
            isinstance(session.get(k), str) for k in ("pds", "did", "handle")
        ):
            raise broken
        settings = [data.get("plc_url"), data.get("handle_resolver")]
        if not all(s is None or isinstance(s, str) for s in settings):
            raise broken
        return cls(
            json.dumps(session),
            session["pds"],
            session["did"],
            session["handle"],
            settings[0],
            settings[1],
        )

    def with_export(self, export: str) -> "StoredLogin":
        fields = json.loads(export)
        return StoredLogin(
            export,
            fields["pds"],
            fields["did"],
            fields["handle"],
            self.plc_url,
            self.handle_resolver,
        )


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically, readable and writable by the owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(tmp, flags, 0o600)
    try:
        if hasattr(os, "fchmod"):
            os.fchmod(fd, 0o600)  # whatever the umask
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def save_login(login: StoredLogin) -> Path:
    """Write ``login`` to :func:`session_path` (privately, atomically); the path."""
    path = session_path()
    _write_private(path, login.to_json())
    return path


def load_login(*, required: bool) -> StoredLogin | None:
    """The stored login; None (or, when ``required``, an error saying to log in) without one."""
    path = session_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if required:
            raise AuthenticationError(
                f"not logged in (no {path}); run: atdata login PDS_URL HANDLE"
            ) from None
        return None
    except OSError as exc:
        raise AuthenticationError(f"cannot read {path}: {exc.strerror or exc}") from None
    return StoredLogin.from_json(text, path)


def exposed(path: Path) -> bool:
    """Whether the session file at ``path`` can be read by other users (POSIX)."""
    try:
        return os.name == "posix" and bool(path.stat().st_mode & 0o077)
    except OSError:
        return False


def login_again(exc: AuthenticationError, login: StoredLogin) -> AuthenticationError:
    """``exc`` with the command that logs in again."""
    return AuthenticationError(f"{exc}; log in again: atdata login {login.pds} {login.handle}")


def open_session(login: StoredLogin) -> "AtmosphereSession":
    """The stored session, restored; refreshed tokens are written back to the file."""
    from .session import AtmosphereSession

    current = [login]

    def saved(export: str) -> None:
        current[0] = current[0].with_export(export)
        save_login(current[0])

    try:
        return AtmosphereSession.restore(login.export, verify=False, on_refresh=saved)
    except AuthenticationError as exc:
        raise login_again(exc, login) from None


def resolution_settings(login: StoredLogin | None) -> tuple[str, str]:
    """(PLC directory URL, handle-resolving service URL): the environment, then what ``login``
    remembered (its ``--plc-url``, its ``--handle-resolver`` else its PDS), then the public
    services (:func:`atdata.atmosphere.resolve.resolution_settings`)."""
    from .resolve import resolution_settings as settings

    if login is None:
        return settings()
    return settings(login.plc_url, login.handle_resolver or login.pds)


def make_resolver(login: StoredLogin | None) -> "Resolver":
    """A resolver with :func:`resolution_settings` for ``login`` (None: no stored login)."""
    from .resolve import Resolver

    plc, handles = resolution_settings(login)
    return Resolver(plc_url=plc, handle_resolver_pds=handles)
