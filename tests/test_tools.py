"""A missing tool skips a test with the package to install, and fails it under CI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests import tools

REPO = Path(__file__).resolve().parents[1]


def test_a_missing_tool_skips_naming_its_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tools, "ON_CI", False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install no-such-package"):
        tools.require("no-such-tool-here", "no-such-package", linux=False)


def test_under_ci_a_missing_tool_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tools, "ON_CI", True)
    with pytest.raises(pytest.fail.Exception, match=r"no-such-package.*CI must provide it"):
        tools.require("no-such-tool-here", "no-such-package", linux=False)


def test_a_present_tool_is_found() -> None:
    assert tools.require("python3" if sys.platform != "win32" else "python", "python3", linux=False)


def test_the_host_is_changed_only_under_ci_or_by_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tools, "ON_CI", False)
    monkeypatch.delenv(tools.OPT_IN_DPKG, raising=False)
    with pytest.raises(pytest.skip.Exception, match=tools.OPT_IN_DPKG):
        tools.may_install_into_the_host()
    monkeypatch.setenv(tools.OPT_IN_DPKG, "1")
    tools.may_install_into_the_host()
    monkeypatch.delenv(tools.OPT_IN_DPKG)
    monkeypatch.setattr(tools, "ON_CI", True)
    tools.may_install_into_the_host()


@pytest.mark.skipif(sys.platform == "win32", reason="a POSIX shell script")
def test_the_package_script_installs_nothing_and_says_why_when_not_root(tmp_path: Path) -> None:
    """Without apt-get (here: an empty PATH but for sh) it exits quietly; make test goes on."""
    done = subprocess.run(
        ["/bin/sh", str(REPO / ".ci" / "test-packages"), "zzz-no-such-package"],
        env={"PATH": str(tmp_path)},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0 and done.stderr == "", done
