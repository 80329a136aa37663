"""The loopback Hub server (tests/hub_server.py) as a pytest fixture: started per test module,
``$HF_ENDPOINT`` and ``$HF_TOKEN`` pointing the real ``huggingface_hub`` client at it, its own
HF cache, and Xet off (``$HF_HUB_DISABLE_XET``: the server speaks LFS "basic" uploads)."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from hub_server import HubServer
from services import unavailable

__all__ = ["hub"]


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[HubServer]:
    try:
        import huggingface_hub.constants as hf_constants
    except ImportError:
        unavailable("huggingface_hub missing: uv sync --all-extras")

    server = HubServer(str(tmp_path / "hub")).start()
    env = {
        "HF_ENDPOINT": server.endpoint,
        "HF_TOKEN": server.token,
        "HF_HUB_DISABLE_XET": "1",
        "HF_HOME": str(tmp_path / "hf-home"),
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "HF_HUB_OFFLINE": "0",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    # huggingface_hub reads these once at import; the fixture's values must win in this process.
    monkeypatch.setattr(hf_constants, "ENDPOINT", server.endpoint)
    monkeypatch.setattr(hf_constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hf-home" / "hub"))
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    try:
        yield server
    finally:
        server.stop()
