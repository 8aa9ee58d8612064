"""docs/cli.md's "From Python" example runs against a real daemon and saves the picture."""

from __future__ import annotations

import re
from pathlib import Path

from PIL import Image

from tests.docs.test_api_examples import run
from tests.harness import Daemon

DOC = Path(__file__).resolve().parents[2] / "docs" / "cli.md"


def test_the_python_example_saves_each_picture(impasto_daemon: Daemon, tmp_path: Path) -> None:
    (code,) = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    out = run("python", code, impasto_daemon, tmp_path)
    steps = [line for line in out.splitlines() if line.startswith("progress ")]
    assert steps[-1] == "progress 25"  # the example's steps=25, each reported
    (picture,) = tmp_path.glob("*-0.png")
    assert Image.open(picture).format == "PNG"
