"""External tools the suite needs (a browser, Xvfb, Debian's packaging tools...), found once.

`make test` installs the system packages when it can (`.ci/test-packages`); where a tool is
still missing, the tests that need it skip with a reason naming the package that provides it,
except under CI (the ``CI`` environment variable set), where a missing tool is a failure.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import NoReturn

import pytest

ON_CI = bool(os.environ.get("CI"))
OPT_IN_DPKG = "IMPASTO_TEST_DPKG"
"""Set to 1 to let the packaging tests `dpkg -i` the .deb onto this machine (CI does)."""


def missing(what: str, package: str) -> NoReturn:
    """Skip the test (fail it under CI): ``what`` is needed and ``package`` provides it."""
    message = f"{what} is not installed: apt-get install {package} (or run `make test` as root)"
    if ON_CI:
        pytest.fail(f"{message}; CI must provide it", pytrace=False)
    pytest.skip(message)


def linux_only(what: str) -> None:
    """Skip on other systems: ``what`` exists only on Linux (CI's Linux jobs run these tests)."""
    if not sys.platform.startswith("linux"):
        pytest.skip(f"{what} is Linux-only")


def require(command: str, package: str, *, linux: bool = True) -> str:
    """The path of ``command``; skips (fails under CI) naming ``package`` when it is missing.

    ``linux``: the tool is Linux's, so on other systems the test is skipped, not failed.
    """
    if linux:
        linux_only(command)
    path = shutil.which(command)
    if path is None:
        missing(f"`{command}`", package)
    return path


# Chromium or Chrome where each system puts it; IMPASTO_TEST_BROWSER overrides.
BROWSER_NAMES = ["chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome"]
BROWSER_PATHS = [
    "/Applications/Google Chrome.app/Contents/MacOS/Google Chrome",
    "/Applications/Chromium.app/Contents/MacOS/Chromium",
    r"C:\Program Files\Google\Chrome\Application\chrome.exe",
    r"C:\Program Files (x86)\Google\Chrome\Application\chrome.exe",
    r"C:\Program Files (x86)\Microsoft\Edge\Application\msedge.exe",
]


def find_browser() -> str | None:
    """A Chromium-family browser already on this machine (never one downloaded by the tests)."""
    chosen = os.environ.get("IMPASTO_TEST_BROWSER")
    if chosen:
        return chosen
    for name in BROWSER_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return next((p for p in BROWSER_PATHS if Path(p).is_file()), None)


def require_browser() -> str:
    """The browser the UI tests drive; skips (fails under CI) when there is none."""
    path = find_browser()
    if path is None:
        missing("Chromium (or Chrome; IMPASTO_TEST_BROWSER=path picks one)", "chromium")
    return path


def may_install_into_the_host() -> None:
    """Skip unless CI or ``IMPASTO_TEST_DPKG=1`` allow changing this machine's packages."""
    if not ON_CI and os.environ.get(OPT_IN_DPKG) != "1":
        pytest.skip(
            f"installs the .deb into this machine: runs under CI or with {OPT_IN_DPKG}=1 "
            "(as root or with passwordless sudo)"
        )
