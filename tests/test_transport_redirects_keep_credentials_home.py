"""The one HTTP transport (atdata.net.transport): redirects only to http(s), credentials never
follow a redirect to another origin, errors never show a secret, and idempotent requests are
retried after transient failures only. httpx's MockTransport stands in for the network."""

from collections.abc import Callable

import httpx
import pytest

from atdata.errors import AtdataError
from atdata.net.deadlines import RetryPolicy
from atdata.net.transport import TransportError, origin, retrying, send, transient

Handler = Callable[[httpx.Request], httpx.Response]


def _client(handler: Handler) -> httpx.Client:
    return httpx.Client(transport=httpx.MockTransport(handler), follow_redirects=False)


def test_authorization_is_dropped_when_a_redirect_leaves_the_origin() -> None:
    seen: list[tuple[str, str | None, str | None]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(
            (str(request.url), request.headers.get("Authorization"), request.headers.get("Cookie"))
        )
        if request.url.host == "pds.example.com" and request.url.path == "/a":
            return httpx.Response(302, headers={"Location": "/b"})  # same origin: keep
        if request.url.path == "/b":
            return httpx.Response(307, headers={"Location": "https://cdn.example.net/c"})
        return httpx.Response(200, content=b"ok")

    with _client(handler) as client:
        resp = send(
            client,
            "GET",
            "https://pds.example.com/a",
            headers={"Authorization": "Bearer s3cret", "Cookie": "sid=1", "X-Other": "kept"},
        )
        assert resp.read() == b"ok"
    assert seen == [
        ("https://pds.example.com/a", "Bearer s3cret", "sid=1"),
        ("https://pds.example.com/b", "Bearer s3cret", "sid=1"),
        ("https://cdn.example.net/c", None, None),
    ]


@pytest.mark.parametrize("target", ["file:///etc/passwd", "ftp://x.example.com/a", "gopher://x/"])
def test_a_redirect_to_another_scheme_is_refused(target: str) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(301, headers={"Location": target})

    with _client(handler) as client, pytest.raises(TransportError, match="not http"):
        send(client, "GET", "https://example.com/a")


def test_redirects_are_bounded_and_not_followed_when_not_asked() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(302, headers={"Location": "/again"})

    with _client(handler) as client:
        with pytest.raises(TransportError, match="more than 3 redirects"):
            send(client, "GET", "https://example.com/a", max_redirects=3)
        assert send(client, "GET", "https://example.com/a", max_redirects=0).status_code == 302


def test_errors_name_the_url_without_its_secrets() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    url = "https://bob:hunter2@example.com/a.tar?X-Amz-Signature=abcdef&part=1"
    with _client(handler) as client, pytest.raises(TransportError) as info:
        send(client, "GET", url)
    text = str(info.value)
    assert isinstance(info.value, AtdataError) and info.value.transient
    assert "example.com/a.tar" in text and "hunter2" not in text and "abcdef" not in text


def test_only_transient_failures_are_retried() -> None:
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise TransportError("reset", transient=True)
        return "done"

    fast = RetryPolicy(attempts=5, initial_delay=0.0, max_delay=0.0)
    assert retrying(flaky, policy=fast, total=10, retry_if=transient) == "done"
    assert len(calls) == 3

    def refused() -> str:
        calls.append(1)
        raise TransportError("not http(s)")

    calls.clear()
    with pytest.raises(TransportError, match="not http"):
        retrying(refused, policy=fast, total=10, retry_if=transient)
    assert len(calls) == 1


def test_origin_ignores_userinfo_and_case() -> None:
    assert origin("HTTPS://u:p@Example.COM:8443/x") == ("https", "example.com:8443")
