"""``atdata login``, ``logout`` and ``whoami``: the ATProto account the CLI acts as.

``atdata login [PDS_URL] HANDLE`` logs in with an app password (``--password``, else
``$ATDATA_APP_PASSWORD``, else a hidden prompt) and keeps the session's tokens (never the
password) in ``$ATDATA_HOME/session.json``, readable only by you; refreshed tokens are written
back. The file is handled by :mod:`atdata.atmosphere.credentials`.
"""

from typing import Annotated

import typer
from rich.text import Text

from ..errors import AtmosphereError
from ._remote import load_login
from ._shared import JsonOption, emit_json, note, out_console

__all__ = ["HANDLE_RESOLVER_ENV", "PLC_ENV", "login_command", "logout_command", "register"]

# the names, for help texts: the same as atmosphere.resolve's (the one place that reads them;
# a test keeps them equal), not imported so that `atdata --help` does not load the atmosphere
PLC_ENV = "ATDATA_PLC_URL"
HANDLE_RESOLVER_ENV = "ATDATA_HANDLE_RESOLVER"
_PASSWORD_ENV = "ATDATA_APP_PASSWORD"  # atmosphere.credentials.PASSWORD_ENV (a test checks)


def login_command(
    pds_url: Annotated[
        str,
        typer.Argument(
            metavar="[PDS_URL]",
            help="Your PDS, like https://bsky.social or http://localhost:2583; leave it out "
            "to find it from your handle's DID document.",
            show_default=False,
        ),
    ],
    password: Annotated[
        str,
        typer.Option(
            "--password",
            envvar=_PASSWORD_ENV,
            prompt="App password",
            hide_input=True,
            show_default=False,
            help="An app password (prefer the environment variable or the prompt: command "
            "lines end up in shell history).",
        ),
    ],
    handle: Annotated[
        str | None,
        typer.Argument(metavar="HANDLE", help="Your handle (or DID).", show_default=False),
    ] = None,
    plc_url: Annotated[
        str | None,
        typer.Option(
            "--plc-url",
            help=f"PLC directory to resolve DIDs with, remembered (${PLC_ENV} overrides it; "
            "default https://plc.directory).",
            show_default=False,
        ),
    ] = None,
    handle_resolver: Annotated[
        str | None,
        typer.Option(
            "--handle-resolver",
            help=f"Service resolving handles, remembered (${HANDLE_RESOLVER_ENV} overrides it; "
            "default: this PDS).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Log in to a PDS with an app password and keep the session in $ATDATA_HOME/session.json.

    Only the session's tokens are stored (never the password), in a file only you can read.
    """
    from ..atmosphere import AtmosphereSession
    from ..atmosphere._http import check_service_url
    from ..atmosphere.credentials import StoredLogin, save_login

    plc = check_service_url(plc_url, "--plc-url") if plc_url else None
    resolver = check_service_url(handle_resolver, "--handle-resolver") if handle_resolver else None
    if handle is None:  # `atdata login HANDLE`: the PDS comes from the DID document
        from ..atmosphere.resolve import Resolver, resolution_settings

        plc_s, handles_s = resolution_settings(plc, resolver)
        found = Resolver(plc_url=plc_s, handle_resolver_pds=handles_s)
        session = AtmosphereSession.login(pds_url, password, resolver=found)
    else:
        session = AtmosphereSession.login(pds_url, handle, password)
    login = StoredLogin(
        session.export(), session.pds_url, session.did, session.handle, plc, resolver
    )
    path = save_login(login)
    out_console().print(
        Text.assemble(
            "Logged in as ",
            (f"@{session.handle}", "bold cyan"),
            f" ({session.did}) on {session.pds_url}",
        ),
        soft_wrap=True,
    )
    note(f"session saved to {path} (readable only by you); `atdata logout` revokes it")


def logout_command() -> None:
    """Revoke the stored session on its PDS and delete $ATDATA_HOME/session.json."""
    login = load_login(required=False)
    console = out_console()
    if login is None:
        console.print("not logged in")
        return
    from ..atmosphere import AtmosphereSession
    from ..atmosphere.credentials import session_path

    try:
        AtmosphereSession.restore(login.export, verify=False).logout()
    except AtmosphereError as exc:
        note(f"could not revoke the session on {login.pds} ({exc}); forgetting it anyway")
    session_path().unlink(missing_ok=True)
    console.print(Text.assemble("Logged out ", (f"@{login.handle}", "bold cyan")))


def whoami_command(
    as_json: JsonOption = False,
) -> None:
    """The account the stored session belongs to (read from the file; nothing is sent).

    Exit 1 when not logged in.
    """
    login = load_login(required=True)
    assert login is not None
    if as_json:
        emit_json(
            {
                "handle": login.handle,
                "did": login.did,
                "pds": login.pds,
                "plc_url": login.plc_url,
                "handle_resolver": login.handle_resolver,
            }
        )
        return
    out_console().print(
        Text.assemble((f"@{login.handle}", "bold cyan"), f" ({login.did}) on {login.pds}"),
        soft_wrap=True,
    )


def register(app: typer.Typer) -> None:
    app.command("login", short_help="Log in to a PDS (ATProto) with an app password.")(
        login_command
    )
    app.command("logout", short_help="Revoke and forget the stored session.")(logout_command)
    app.command("whoami", short_help="The account of the stored session.")(whoami_command)
