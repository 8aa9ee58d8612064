"""A daemon with the test plugins dropped in as single files and a config for the built-ins."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import Daemon

FILES = Path(__file__).parent / "files"
REPO = Path(__file__).resolve().parents[2]

CONFIG = """
[plugins.prompt_filter]
words = ["forbidden"]
patterns = ["castle\\\\s+of\\\\s+doom"]
"""


def drop_plugins(daemon: Daemon, *names: str) -> None:
    """Copy single-file plugins from tests/plugins/files into the daemon's plugins folder."""
    folder = daemon.data_dir / "plugins"
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copy(FILES / f"{name}.py", folder / f"{name}.py")


@pytest.fixture(scope="module")
def plugin_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """A running daemon with the broken, typo, exploding, extras and slow plugins."""
    daemon = Daemon(tmp_path_factory.mktemp("plugins"), preview_every=0)
    daemon.root.mkdir(parents=True, exist_ok=True)
    (daemon.root / "config.toml").write_text(CONFIG)
    drop_plugins(daemon, "broken", "typo", "exploding", "extras", "slow")
    claimed = daemon.data_dir / "models" / "claimed-tiny"
    shutil.copytree(REPO / "models" / "tiny" / "sd-tiny", claimed)
    (claimed / "claimed-by-extras.txt").write_text("12,200,34")
    daemon.start()
    daemon.wait_worker_ready()
    yield daemon
    daemon.stop()
