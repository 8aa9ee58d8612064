"""Without the ``cluster`` setting nothing changes: Ray is never imported, not even installed."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.harness import REPO

PACKAGE = REPO / "daemon" / "impasto"
RAY_PACKAGE = PACKAGE / "worker" / "ray"


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_only_the_cluster_subpackage_imports_ray() -> None:
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.is_relative_to(RAY_PACKAGE):
            continue
        for name in _imports(path):
            if name == "ray" or name.startswith("ray."):
                offenders.append(f"{path.relative_to(PACKAGE)} imports {name}")
            if name.startswith("impasto.worker.ray") and path.name != "server.py":
                offenders.append(f"{path.relative_to(PACKAGE)} imports {name}")
    assert not offenders, offenders


def test_a_daemon_without_the_cluster_setting_never_imports_ray(tmp_path: Path) -> None:
    """Every other module imported and the services built, with Ray made unimportable."""
    script = textwrap.dedent(
        f"""
        import importlib, pkgutil, sys
        sys.modules["ray"] = None  # any `import ray` now raises ImportError
        import impasto
        from impasto.paths import resolve_paths
        from impasto.server import build_services
        from impasto.settings import Settings

        for info in pkgutil.walk_packages(impasto.__path__, "impasto."):
            if info.name.startswith("impasto.worker.ray") or ".tests" in info.name:
                continue
            importlib.import_module(info.name)
        settings = Settings(data_dir={str(tmp_path)!r}, runtime_dir={str(tmp_path / "run")!r})
        services = build_services(settings, resolve_paths(settings))
        assert type(services.supervisor).__name__ == "Supervisor", services.supervisor
        services.extra["db"].close()
        leaked = sorted(m for m in sys.modules if m == "ray" or m.startswith("ray."))
        assert leaked == ["ray"], leaked  # only the blocker we put there
        print("ok")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr


def test_the_cluster_setting_without_ray_says_what_to_install(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules["ray"] = None
        from impasto.paths import resolve_paths
        from impasto.server import build_services
        from impasto.settings import Settings

        settings = Settings(cluster="auto", data_dir={str(tmp_path)!r})
        build_services(settings, resolve_paths(settings))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert result.returncode != 0
    assert "pip install 'impasto[cluster]'" in result.stderr
