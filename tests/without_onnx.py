"""An install's graph step run as the single binary runs it: in a child where ``import onnx``
fails (the binary leaves the package out)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.harness import REPO


def run_step_without_onnx(step: str, model: str, tmp_path: Path) -> Path:
    """A copy of the tiny ``model`` after ``python -m impasto.services.convert STEP``; the
    step must succeed."""
    folder = tmp_path / model
    shutil.copytree(REPO / "models" / "tiny" / model, folder)
    code = (
        "import sys; sys.modules['onnx'] = None\n"  # any `import onnx` now raises ImportError
        "from impasto.services.convert import main\n"
        f"raise SystemExit(main([{step!r}, {str(folder)!r}]))\n"
    )
    done = subprocess.run([sys.executable, "-P", "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return folder
