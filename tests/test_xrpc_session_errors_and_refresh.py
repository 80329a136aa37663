"""AtmosphereSession over XRPC, error paths: the transport seam is httpx's MockTransport (the
real-PDS behaviour is in test_atmosphere_pds.py). An expired access token is refreshed once and
the call retried; auth failures are AuthenticationError; no token or password in any message."""

import base64
import json
import time
from collections.abc import Callable

import httpx
import pytest

import atdata.atmosphere._http as http_module
from atdata.atmosphere import AtmosphereSession
from atdata.errors import AuthenticationError

PDS = "http://pds.test"
DID = "did:plc:abcdefghijklmnopqrstuvwx"
PASSWORD = "app-pass-word-1234"


def _jwt(exp: float, tag: str) -> str:
    def part(obj: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'HS256'})}.{part({'exp': int(exp), 'tag': tag})}.c2lnbmF0dXJl"


def _answer(status: int, body: object) -> httpx.Response:
    return httpx.Response(status, json=body)


def _mock(
    monkeypatch: pytest.MonkeyPatch, handler: Callable[[httpx.Request], httpx.Response]
) -> list[httpx.Request]:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return handler(request)

    client = httpx.Client(transport=httpx.MockTransport(record))
    monkeypatch.setattr(http_module, "shared_client", lambda *a, **k: client)
    return seen


def _tokens(n: int) -> dict[str, str]:
    return {
        "did": DID,
        "handle": "alice.test",
        "accessJwt": _jwt(time.time() + 3600, f"access{n}"),
        "refreshJwt": _jwt(time.time() + 86400, f"refresh{n}"),
    }


def test_an_expired_token_is_refreshed_once_and_the_call_retried(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    state = {"expired": True, "refreshes": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path.endswith("createSession"):
            assert json.loads(request.content) == {"identifier": "alice.test", "password": PASSWORD}
            return _answer(200, _tokens(0))
        if path.endswith("refreshSession"):
            state["refreshes"] += 1
            state["expired"] = False
            return _answer(200, _tokens(1))
        if path.endswith("createRecord"):
            if state["expired"]:
                return _answer(400, {"error": "ExpiredToken", "message": "Token has expired"})
            assert (
                "access1"
                in base64.urlsafe_b64decode(
                    request.headers["Authorization"].split(".")[1] + "=="
                ).decode()
            )
            return _answer(200, {"uri": f"at://{DID}/x.y.z/1", "cid": "b" + "a" * 58})
        return _answer(404, {"error": "MethodNotImplemented"})

    _mock(monkeypatch, handler)
    exported: list[str] = []
    s = AtmosphereSession.login(PDS, "@alice.test", PASSWORD, on_refresh=exported.append)
    got = s.procedure("com.atproto.repo.createRecord", {"repo": DID}, "writing")
    assert got["uri"] == f"at://{DID}/x.y.z/1"
    assert state["refreshes"] == 1 and json.loads(exported[-1])["accessJwt"].count(".") == 2


def test_a_token_near_its_expiry_is_refreshed_before_use(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path.rsplit(".", 1)[-1])
        if request.url.path.endswith("refreshSession"):
            return _answer(200, _tokens(1))
        return _answer(200, {"did": DID, "handle": "alice.test"})

    _mock(monkeypatch, handler)
    data = json.dumps(
        {"v": 1, "pds": PDS, **_tokens(0)} | {"accessJwt": _jwt(time.time() + 5, "a")}
    )
    s = AtmosphereSession.restore(data)
    assert calls == ["refreshSession", "getSession"]
    assert s.did == DID


@pytest.mark.parametrize(
    ("status", "error"), [(401, "AuthenticationRequired"), (400, "InvalidToken"), (403, None)]
)
def test_auth_failures_are_authentication_errors_without_secrets(
    monkeypatch: pytest.MonkeyPatch, status: int, error: str | None
) -> None:
    body = {"error": error, "message": f"bad {PASSWORD}"} if error else {"message": "no"}
    _mock(monkeypatch, lambda request: _answer(status, body))
    with pytest.raises(AuthenticationError) as info:
        AtmosphereSession.login(PDS, "alice.test", PASSWORD)
    # the server's own message is quoted (printable, short), never our request headers
    assert "login as alice.test" in str(info.value)
    tokens = _tokens(0)
    monkeypatch.setattr(
        http_module,
        "shared_client",
        lambda *a, **k: httpx.Client(
            transport=httpx.MockTransport(lambda r: _answer(status, body))
        ),
    )
    restored = AtmosphereSession.restore(json.dumps({"v": 1, "pds": PDS, **tokens}), verify=False)
    with pytest.raises(AuthenticationError) as info:
        restored.query("com.atproto.server.getSession", {}, "checking")
    text = str(info.value) + repr(restored)
    assert tokens["accessJwt"] not in text and tokens["refreshJwt"] not in text


def test_a_malformed_login_answer_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    _mock(monkeypatch, lambda request: _answer(200, {"did": "nope", "accessJwt": "x"}))
    with pytest.raises(AuthenticationError, match="malformed"):
        AtmosphereSession.login(PDS, "alice.test", PASSWORD)
