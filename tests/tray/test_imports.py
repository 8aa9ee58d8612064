"""`serve` must never import the tray: pystray fails without a display, and not with ImportError."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

TRAY = Path(__file__).resolve().parents[2] / "tray" / "impasto_tray"


def test_the_daemon_side_never_loads_pystray() -> None:
    code = (
        "import sys, impasto.cli.main, impasto.server, impasto.worker.main, impasto_tray; "
        "print(sorted(m for m in sys.modules if m.startswith(('pystray', 'Xlib'))))"
    )
    env = {k: v for k, v in os.environ.items() if k != "DISPLAY"}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_the_tray_talks_to_the_daemon_only_through_the_client() -> None:
    banned = (
        "impasto.api",
        "impasto.services",
        "impasto.store",
        "impasto.engine",
        "impasto.server",
    )
    offenders = []
    for path in TRAY.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.startswith(banned)]
    assert not offenders
