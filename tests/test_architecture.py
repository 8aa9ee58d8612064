"""The dependency direction of STYLE.md, checked on every module's imports."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "daemon" / "impasto"

# layer -> module prefixes it must never import (top-level or lazily inside functions)
FORBIDDEN = {
    "formats": ["onnxruntime", "litestar", "httpx", "sqlite3"],
    "engine": [
        "impasto.api",
        "impasto.services",
        "impasto.store",
        "impasto.server",
        "impasto.assembly",
        "impasto.client",
        "impasto.cli",
        "impasto.worker",
        "litestar",
        "granian",
        "httpx",
        "sqlite3",
        "torch",
        "diffusers",
        "optimum",
        "transformers",
    ],
    "store": [
        "impasto.api",
        "impasto.services",
        "impasto.engine",
        "impasto.server",
        "impasto.assembly",
        "impasto.client",
        "impasto.cli",
        "impasto.worker",
        "litestar",
        "httpx",
        "onnxruntime",
    ],
    "services": [
        "impasto.api",
        "impasto.server",
        "impasto.assembly",
        "impasto.client",
        "impasto.cli",
        "litestar",
        "granian",
    ],
    "worker": [
        "impasto.api",
        "impasto.server",
        "impasto.assembly",
        "impasto.client",
        "impasto.cli",
        "impasto.store",
        "litestar",
    ],
    "api": ["impasto.client", "impasto.cli", "impasto.store", "impasto.worker.main", "sqlite3"],
    "client": [
        "impasto.api",
        "impasto.services",
        "impasto.store",
        "impasto.engine",
        "impasto.server",
        "impasto.assembly",
        "impasto.worker",
        "litestar",
        "sqlite3",
        "onnxruntime",
    ],
}


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def modules(layer: str) -> list[Path]:
    root = PACKAGE / layer
    return sorted(root.rglob("*.py")) if root.is_dir() else [PACKAGE / f"{layer}.py"]


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_imports_point_one_way(layer: str) -> None:
    offenders = []
    for path in modules(layer):
        for name in imports_of(path):
            for banned in FORBIDDEN[layer]:
                if name == banned or name.startswith(banned + "."):
                    offenders.append(f"{path.relative_to(PACKAGE)} imports {name}")
    assert not offenders, "\n".join(offenders)


# The bottom of the stack: what each of these may import from Impasto itself, nothing more.
# wire (the public types) and formats (file formats) sit below the engine; the engine reads the
# schema's limits from wire and its files through formats.
BOTTOM = {
    "wire": {"impasto.wire"},
    "formats": {"impasto.formats"},
    "engine": {"impasto.engine", "impasto.formats", "impasto.wire"},
}


@pytest.mark.parametrize("layer", sorted(BOTTOM))
def test_the_bottom_layers_import_nothing_above_them(layer: str) -> None:
    offenders = []
    for path in modules(layer):
        for name in imports_of(path):
            inside = name == "impasto" or name.startswith("impasto.")
            if inside and not any(name == a or name.startswith(a + ".") for a in BOTTOM[layer]):
                offenders.append(f"{path.relative_to(PACKAGE)} imports {name}")
    assert not offenders, "\n".join(offenders)


def test_the_wire_types_are_defined_once() -> None:
    """The client decodes the daemon's own Structs: no class of the same name in the client."""
    import impasto.wire as wire

    names = {
        n
        for n, v in vars(wire).items()
        if isinstance(v, type) and v.__module__.startswith(wire.__name__ + ".")
    }
    assert "GenerateRequest" in names and "Health" in names
    offenders = []
    for path in modules("client"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and node.name in names:
                offenders.append(f"{path.name} redefines {node.name}")
    assert not offenders, offenders


def test_cli_uses_the_client_not_the_daemon_internals() -> None:
    allowed_lazy = {
        "impasto.server",
        "impasto.assembly",
        "impasto.worker.main",
        "impasto.services.convert",
        "impasto_tray",
    }  # `serve`, `worker`, `convert-step` (the daemon's children in the binary), `tray`
    offenders = []
    for path in modules("cli"):
        for name in imports_of(path):
            for banned in ("impasto.api", "impasto.services", "impasto.store", "impasto.engine"):
                if name.startswith(banned) and name not in allowed_lazy:
                    offenders.append(f"{path.name} imports {name}")
    assert not offenders, offenders


def test_the_checker_sees_lazy_imports(tmp_path: Path) -> None:
    sample = tmp_path / "m.py"
    sample.write_text("def f():\n    import litestar.app\n    from sqlite3 import connect\n")
    assert imports_of(sample) == {"litestar.app", "sqlite3"}
