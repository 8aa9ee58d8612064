"""Without the ``cluster`` setting nothing changes: Ray is never imported, not even installed."""

from __future__ import annotations

import ast
import os
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
            # server.py or assembly.py builds the Ray supervisor; startup.py checks that Ray
            # is there first.
            starters = ("server.py", "assembly.py", "startup.py")
            if name.startswith("impasto.worker.ray") and path.name not in starters:
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
        from impasto.assembly import build_services
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


def test_the_cluster_setting_without_ray_refuses_to_start_and_says_what_to_install(
    tmp_path: Path,
) -> None:
    """``impasto serve`` with ``cluster`` set and Ray missing: one line naming the extra, exit
    status 1, no traceback, nothing listening (the binary's case: tests/packaging)."""
    script = textwrap.dedent(
        """
        import sys
        sys.modules["ray"] = None  # any `import ray` now raises ImportError
        from impasto.cli.main import main
        raise SystemExit(main(["serve"]))
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMPASTO_")}
    env.update(
        IMPASTO_CLUSTER="auto",
        IMPASTO_CONFIG=str(tmp_path / "config.toml"),
        IMPASTO_DATA_DIR=str(tmp_path / "data"),
        IMPASTO_RUNTIME_DIR=str(tmp_path / "run"),
        IMPASTO_LOG_DIR=str(tmp_path / "logs"),
        IMPASTO_PORT="1",  # never bound: the check comes first
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env
    )
    assert result.returncode == 1, result.stderr
    assert "pip install 'impasto[cluster]'" in result.stderr
    assert "cluster = 'auto'" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()
