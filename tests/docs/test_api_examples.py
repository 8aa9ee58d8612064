"""Every code example in docs/api.md runs against a real daemon and does what the text says."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness import Daemon
from tests.tools import require

DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"
BLOCK = re.compile(r"```(bash|python|js)\n(.*?)```", re.S)
EXAMPLES = [(lang, code) for lang, code in BLOCK.findall(DOC.read_text())]


def run(lang: str, code: str, daemon: Daemon, cwd: Path) -> str:
    env = {
        **os.environ,
        "IMPASTO_URL": daemon.url,
        "IMPASTO_SOCKET": str(daemon.socket),
        "IMPASTO_RUNTIME_DIR": str(daemon.runtime_dir),
    }
    if lang == "bash":
        require("curl", "curl", linux=False)
        argv = ["bash", "-euo", "pipefail", "-c", code]
    elif lang == "python":
        argv = [sys.executable, "-c", code]
    else:
        node = require("node", "nodejs", linux=False)
        argv = [node, "--input-type=module", "-e", code]
    # In a scratch folder: examples may write files (upscaled.png).
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, cwd=cwd)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_doc_has_examples_in_each_language() -> None:
    assert {lang for lang, _ in EXAMPLES} == {"bash", "python", "js"}


@pytest.mark.parametrize(
    ("lang", "code"), EXAMPLES, ids=[f"{lang}-{i}" for i, (lang, _) in enumerate(EXAMPLES)]
)
def test_example_runs(impasto_daemon: Daemon, lang: str, code: str, tmp_path: Path) -> None:
    out = run(lang, code, impasto_daemon, tmp_path)
    if "--unix-socket" in code:
        assert '"status":"ok"' in out
    elif '"width": 65' in code:
        assert '"field":"width"' in out and "multiple of 8" in out
    elif "/upscale" in code:
        assert "200 image/png" in out
    elif "/events" in code and lang == "bash":
        assert "\nid: " in out and "\nevent: " in out and "\ndata: {" in out
    elif lang == "bash":
        assert '"status":"queued"' in out
    else:
        assert "completed" in out
