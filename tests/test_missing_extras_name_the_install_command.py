"""A missing optional dependency fails with one message naming the extra that installs it,
whether it is imported (require) or only looked for (check_installed)."""

import pytest

from atdata._optional import check_installed, install_command, require

MISSING = "atdata_test_module_that_is_not_installed"


def test_require_and_check_installed_give_the_same_message() -> None:
    with pytest.raises(ImportError) as imported:
        require(MISSING, "s3")
    with pytest.raises(ImportError) as looked_for:
        check_installed(MISSING, "s3")
    assert str(imported.value) == str(looked_for.value)
    assert f"{MISSING!r} is needed" in str(imported.value)
    assert install_command("s3") == "pip install 'atdata[s3]'"
    assert "install it with: pip install 'atdata[s3]'" in str(imported.value)
    assert isinstance(imported.value.__cause__, ModuleNotFoundError)


def test_installed_modules_pass() -> None:
    check_installed("json", "core")
    assert require("json", "core").loads("[]") == []
