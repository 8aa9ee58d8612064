"""Where a built Impasto program lives: one onefile executable, or Nuitka's standalone folder.

A standalone build is ``packaging/out/impasto.dist/`` (the ``impasto.bin`` executable beside the
libraries and data it loads) with ``packaging/out/impasto`` a symbolic link to that executable,
so every tool can be handed ``packaging/out/impasto`` either way. A standalone start maps the
files where they lie; a onefile start first checks (and on the first start unpacks) its whole
payload into a cache folder, about 0.45 s and an extra 67 MB bootstrap process per start.
"""

from __future__ import annotations

import shutil
from pathlib import Path

DIST = "impasto.dist"
# The standalone folder holds the `impasto` package's data as impasto/ (ui_static, the bundled
# models), so its executable cannot also be called `impasto` where names have no extension.
STANDALONE_EXECUTABLE = "impasto.bin"


def standalone_folder(binary: Path) -> Path | None:
    """The standalone folder ``binary`` runs from, or None for a onefile executable."""
    real = binary.resolve()
    return real.parent if real.parent.name.endswith(".dist") else None


def copy_program(binary: Path, into: Path) -> Path:
    """Copy the program into the folder ``into``; returns the copied executable's path."""
    into.mkdir(parents=True, exist_ok=True)
    folder = standalone_folder(binary)
    if folder is None:
        local = into / binary.name
        shutil.copy2(binary, local)
        return local
    shutil.copytree(folder, into / DIST, symlinks=True)
    return into / DIST / binary.resolve().name
