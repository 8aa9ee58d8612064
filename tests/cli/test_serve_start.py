"""What `impasto serve` says as it starts: a folder setting it cannot make stops it naming the
setting; the log's start line says how many workers started."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.harness import Daemon


@pytest.mark.parametrize("setting", ["log_dir", "output_dir", "models_dir", "temp_dir"])
def test_a_folder_that_cannot_be_made_names_its_setting(setting: str, tmp_path: Path) -> None:
    """Under a file (a typo, a path on another machine): not a bare "Not a directory"."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    folder = blocker / "inside"
    daemon = Daemon(tmp_path, **{setting: str(folder)})  # IMPASTO_<SETTING>, over the harness'
    refused = daemon.refused()
    assert refused.returncode == 1, refused.stderr
    flag = "--" + setting.replace("_", "-")
    assert refused.stderr == (
        f"impasto: {setting} {folder}: the folder cannot be made (Not a directory); "
        f"choose another with {flag}\n"
    )


def test_the_start_line_counts_the_workers_started_not_the_setting(tmp_path: Path) -> None:
    """workers = 0 (the default) means one per NVIDIA GPU, or 1: the line said "0 worker(s)"."""
    daemon = Daemon(tmp_path, workers=0).start()
    daemon.stop()
    (line,) = [
        line
        for line in (daemon.log_dir / "daemon.log").read_text().splitlines()
        if " started " in line
    ]
    assert re.search(r", [1-9][0-9]* worker\(s\)$", line), line  # 1 here; one per GPU on CUDA
