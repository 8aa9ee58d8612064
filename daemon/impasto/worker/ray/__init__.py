"""Workers on a Ray cluster (the ``cluster`` extra); imported only when ``cluster`` is set."""

from __future__ import annotations

try:
    import ray  # noqa: F401
except ImportError as exc:  # pragma: no cover - the message is the point
    raise ImportError(
        "the cluster setting needs Ray: pip install 'impasto[cluster]' (docs/cluster.md)"
    ) from exc

from impasto.worker.ray.supervisor import RaySupervisor

__all__ = ["RaySupervisor"]
