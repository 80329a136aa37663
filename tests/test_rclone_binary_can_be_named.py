"""``$ATDATA_RCLONE`` names the rclone binary ``atdata.localdev`` (and the benchmarks) use."""

from pathlib import Path

import pytest

from atdata.localdev.services import RCLONE_ENV, find_rclone


def test_the_environment_names_the_binary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    exe = tmp_path / "my-rclone"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    monkeypatch.setenv(RCLONE_ENV, str(exe))
    assert find_rclone() == str(exe)
    monkeypatch.setenv(RCLONE_ENV, str(tmp_path / "missing"))
    assert find_rclone() is None  # named but absent: not silently another one
    monkeypatch.delenv(RCLONE_ENV)
    assert find_rclone() != str(exe)
