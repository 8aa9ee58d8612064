"""Workers on a Ray cluster (the ``cluster`` extra); imported only when ``cluster`` is set.

The daemon itself never imports Ray: ``bridge`` (a process of its own) is the Ray driver, and
``actor`` runs on the nodes. This package checks only that Ray is installed.
"""

from __future__ import annotations

import importlib.util


def _ray_installed() -> bool:
    try:
        return importlib.util.find_spec("ray") is not None
    except (ValueError, AttributeError):  # a module entry without a spec (blocked import)
        return False


if not _ray_installed():
    raise ImportError(
        "the cluster setting needs Ray: pip install 'impasto[cluster]' (docs/cluster.md)"
    )

from impasto.worker.ray.supervisor import RaySupervisor  # noqa: E402

__all__ = ["RaySupervisor"]
