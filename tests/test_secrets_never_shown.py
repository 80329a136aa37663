"""A password or token in an index URL or DSN never shows: not in errors, reprs, reports or CLI.

Each case runs a real operation against a real (throwaway) Redis or PostgreSQL, or a port where
nothing listens, through the Python API and through the installed ``atdata`` command (its entry
point, each command line in a process of its own: tests/cli_in_forks.py), and greps everything
that came out (exception text and traceback, repr, diagnose report, warnings, logs, stdout and
stderr) for the secret.
"""

import json
import logging
import os
import subprocess
import sys
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest

from atdata import Index
from atdata._redact import redact
from atdata.diagnose import diagnose
from atdata.index.providers.url import provider_from_url
from services import refused_port

SECRET = "Sekr1tPw0rd"
CLI_IN_FORKS = Path(__file__).resolve().parent / "cli_in_forks.py"


def _dead_port() -> int:
    return refused_port()  # bound, not listening: refused, and nobody else can take it


def _forms(scheme_host: str, base: str) -> list[str]:
    """Every way of passing ``SECRET`` in a URL to ``scheme_host`` + ``base``."""
    return [
        f"{scheme_host.replace('://', f'://user:{SECRET}@', 1)}{base}",
        f"{scheme_host}{base}?password={SECRET}",
        f"{scheme_host}{base}?passwd={SECRET}&pwd={SECRET}",
        f"{scheme_host}{base}?sslpassword={SECRET}&token={SECRET}&secret={SECRET}",
    ]


def _everything(fn: Callable[[], object], caplog: pytest.LogCaptureFixture) -> str:
    """All text ``fn`` produced: its result's repr, or its exception and full traceback, the
    warnings and log records it emitted."""
    out: list[str] = []
    caplog.set_level(logging.DEBUG)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = fn()
        except Exception as exc:
            out += [str(exc), repr(exc), "".join(traceback.format_exception(exc))]
        else:
            out.append(repr(result))
            out.append(str(result))
            close = getattr(result, "close", None)
            if callable(close):
                close()
    out += [str(w.message) for w in caught]
    out += [r.getMessage() for r in caplog.records]
    return "\n".join(out)


def _assert_hidden(text: str) -> None:
    assert text.strip(), "the operation produced no text to check"
    assert SECRET not in text, text


def _cli(*commands: tuple[list[str], dict[str, str]]) -> str:
    """What ``atdata ARGV`` printed (stdout and stderr) for each ``(ARGV, env)`` in turn: each
    command in a process of its own, forked from one interpreter that imported atdata once."""
    proc = subprocess.run(
        [sys.executable, str(CLI_IN_FORKS)],
        input=json.dumps(commands),
        capture_output=True,
        check=False,
        text=True,
        timeout=240,
        env={**os.environ, **commands[0][1]},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout + proc.stderr


# -- the helper ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (f"redis://:{SECRET}@h:6379/0", "redis://:***@h:6379/0"),
        (f"redis://bob:{SECRET}@h/0?prefix=x", "redis://bob:***@h/0?prefix=x"),
        (f"postgresql://h/db?sslmode=require&PASSWORD={SECRET}", None),
        (f"host=h dbname=d password={SECRET} user=u", "host=h dbname=d password=*** user=u"),
        (f"host=h password = '{SECRET} with \\' quote' user=u", "host=h password = *** user=u"),
        (f"https://s3/x?X-Amz-Signature={SECRET}&X-Amz-Security-Token={SECRET}", None),
        (
            f"error at rediss://u:{SECRET}@h:1/0 (refused)",
            "error at rediss://u:***@h:1/0 (refused)",
        ),
    ],
)
def test_every_form_of_secret_is_masked_and_masking_is_stable(text: str, shown: str | None) -> None:
    once = redact(text)
    assert SECRET not in once
    assert redact(once) == once
    if shown is not None:
        assert once == shown


def test_text_without_secrets_is_left_alone() -> None:
    for text in [
        "postgresql://postgres@127.0.0.1:5432/db?schema=x&sslmode=require",
        "redis://127.0.0.1:6379/0?prefix=atdata:",
        "host=h port=5 dbname=d user=u",
    ]:
        assert redact(text) == text


# -- unreachable servers ------------------------------------------------------------------------
def _unreachable_urls() -> list[str]:
    port = _dead_port()
    urls = _forms(f"redis://127.0.0.1:{port}", "/0") + _forms(
        f"postgresql://127.0.0.1:{port}", "/db"
    )
    urls.append(f"host=127.0.0.1 port={port} dbname=db user=u password={SECRET}")
    urls.append(f"host=127.0.0.1 port={port} dbname=db password='{SECRET} x' user=u")
    return urls


@pytest.mark.parametrize("url", _unreachable_urls())
def test_unreachable_index_hides_the_secret_from_python(
    url: str, caplog: pytest.LogCaptureFixture
) -> None:
    if url.startswith("redis"):
        pytest.importorskip("redis")
        opened = _everything(lambda: Index(url=url), caplog)
    else:
        pytest.importorskip("psycopg")
        opened = _everything(lambda: Index(provider="postgres", dsn=url), caplog)
    assert "127.0.0.1" in opened and "Error" in opened, opened  # it failed, naming the server
    _assert_hidden(opened)
    _assert_hidden(_everything(lambda: provider_from_url(url), caplog))
    report = diagnose(url)  # a keyword DSN is no index URL: refused, still without the secret
    assert not report.ok
    _assert_hidden(report.to_text() + json.dumps(report.to_dict()))


@pytest.mark.parametrize("url", _unreachable_urls()[:5:2] + _unreachable_urls()[-1:])
def test_unreachable_index_hides_the_secret_from_the_cli(url: str, tmp_path: Path) -> None:
    pytest.importorskip("redis")
    pytest.importorskip("psycopg")
    env = {"ATDATA_HOME": str(tmp_path), "ATDATA_INDEX_URL": url}
    if "://" not in url:  # a keyword DSN is not an index URL: give it to diagnose only
        env.pop("ATDATA_INDEX_URL")
        text = _cli(
            (["diagnose", "--index-url", url], env),
            (["diagnose", "--json", "--index-url", url], env),
        )
        assert "fail" in text, text
        _assert_hidden(text)
        return
    text = _cli(
        (["ls"], env),
        (["ls", "--json"], env),
        (["diagnose"], env),
        (["diagnose", "--json", "--index-url", url], env),
        (["diagnose", url], env),  # a usage error quoting the argument
        (["--debug", "ls"], env),
    )
    assert "127.0.0.1" in text and "error" in text, text
    _assert_hidden(text)


# -- real servers, wrong credentials --------------------------------------------------------------
def test_wrong_redis_password_against_a_real_server(
    redis_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The throwaway Redis has no password: AUTH as a user with one fails and names no secret;
    a password alone is accepted by a server without one, and shows nowhere either."""
    pytest.importorskip("redis")
    base = redis_url.removeprefix("redis://")
    host, _, db = base.partition("/")
    for url, fails in zip(_forms(f"redis://{host}", f"/{db}")[:2], (True, False), strict=True):
        # a password alone, to a server without one: redis-py >= 5.1 does not send AUTH, older
        # releases send it and are refused; either way the secret must not show
        text = _everything(lambda u=url: Index(url=u), caplog)  # type: ignore[misc]
        if fails:
            assert "refused the credentials" in text, text
        _assert_hidden(text)
        report = diagnose(url)
        if fails:
            assert report["index"].status == "fail", report.to_text()
        _assert_hidden(report.to_text() + json.dumps(report.to_dict()))
        env = {"ATDATA_HOME": str(tmp_path), "ATDATA_INDEX_URL": url}
        cli = _cli((["ls"], env), (["diagnose"], env), (["--debug", "ls"], env))
        if fails:
            assert "refused the credentials" in cli, cli
        _assert_hidden(cli)


def test_postgres_credentials_never_show_when_it_works_or_fails(
    postgres_dsn: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The throwaway cluster trusts every password: a good connection must not show it in
    reprs or reports; a role that does not exist fails, and that failure must not show it."""
    pytest.importorskip("psycopg")
    rest = postgres_dsn.removeprefix("postgresql://").split("@", 1)[1]
    hostport, _, db = rest.partition("/")
    host, _, port = hostport.partition(":")
    good = [
        f"postgresql://postgres:{SECRET}@{rest}",
        f"postgresql://postgres@{rest}?password={SECRET}",
        f"host={host} port={port} dbname={db} user=postgres password={SECRET}",
    ]
    bad = [
        f"postgresql://nobody:{SECRET}@{rest}",
        f"postgresql://nobody@{rest}?password={SECRET}",
        f"host={host} port={port} dbname={db} user=nobody password='{SECRET}'",
    ]
    for dsn in good:
        text = _everything(lambda d=dsn: Index(provider="postgres", dsn=d), caplog)  # type: ignore[misc]
        assert "Index" in text, text
        report = diagnose(dsn)
        if "://" in dsn:  # diagnose takes index URLs, not keyword DSNs
            assert report["index"].status == "ok", report.to_text()
        _assert_hidden(text + report.to_text() + json.dumps(report.to_dict()))
    for dsn in bad:
        text = _everything(lambda d=dsn: Index(provider="postgres", dsn=d), caplog)  # type: ignore[misc]
        assert "nobody" in text, text
        _assert_hidden(text)
        report = diagnose(dsn)
        assert not report.ok
        _assert_hidden(report.to_text() + json.dumps(report.to_dict()))
    env = {"ATDATA_HOME": str(tmp_path), "ATDATA_INDEX_URL": good[1]}
    bad_env = {**env, "ATDATA_INDEX_URL": bad[1]}
    cli = _cli(
        (["ls"], env),
        (["diagnose"], env),
        (["diagnose", "--index-url", good[2]], env),
        (["ls"], bad_env),
        (["--debug", "ls"], bad_env),
        (["diagnose"], bad_env),
    )
    assert "nobody" in cli, cli
    _assert_hidden(cli)
