"""The example in ``atdata.atmosphere``'s docstring runs as written against a real local PDS.

Only the names change: the example's PDS URL and handle become the local PDS and a fresh
account on it; the resolver settings come from ``ATDATA_PLC_URL`` / ``ATDATA_HANDLE_RESOLVER``,
as the example says. No traffic leaves the machine (``loopback_only``).
"""

import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import atdata
import atdata.atmosphere
from atmosphere_helpers import loopback_only  # noqa: F401 - autouse guard
from services import PDS_TEST_PASSWORD

pytestmark = pytest.mark.services


@atdata.packable
class Digit:
    pixels: atdata.NDArray[np.uint8]
    label: int


def _example() -> str:
    doc = atdata.atmosphere.__doc__ or ""
    block = doc.split("::\n", 1)[1].split("\n\n(", 1)[0]
    lines = [line[4:] if line.startswith("    ") else line for line in block.splitlines()]
    code = "\n".join(lines).strip()
    assert "publish_dataset" in code and "load_dataset" in code, code
    return code


def _new_account(pds: dict[str, Any]) -> str:
    from atproto import Client, models

    handle = f"ex{os.urandom(5).hex()}.test"
    Client(base_url=pds["pds"]).com.atproto.server.create_account(
        models.ComAtprotoServerCreateAccount.Data(
            handle=handle, email=f"{handle}@example.test", password=PDS_TEST_PASSWORD
        )
    )
    return handle


def test_the_atmosphere_module_example_runs(
    pds: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("ATDATA_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("ATDATA_INDEX_URL", raising=False)
    monkeypatch.setenv("ATDATA_PLC_URL", pds["plc"])
    monkeypatch.setenv("ATDATA_HANDLE_RESOLVER", pds["pds"])
    handle = _new_account(pds)
    with atdata.Index() as index:
        index.write([Digit(np.full(4, i, np.uint8), i) for i in range(6)], "mnist")
    code = _example().replace("https://pds.example.com", pds["pds"])
    code = re.sub(r"alice\.example\.com", handle, code)
    namespace: dict[str, Any] = {"app_password": PDS_TEST_PASSWORD}
    exec(compile(code, "atdata.atmosphere example", "exec"), namespace)
    printed = capsys.readouterr().out
    assert f"at://{namespace['session'].did}/" in printed and " mnist" in printed, printed
    ds = namespace["ds"]
    assert sorted(int(s.label) for s in ds) == list(range(6))
    assert str(namespace["published"].uri) in printed
