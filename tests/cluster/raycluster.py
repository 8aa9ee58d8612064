"""A real multi-node Ray cluster on 127.0.0.1 for the cluster tests, always torn down.

Each node is its own raylet and object store (Ray's ``cluster_utils``), sized for a small
shared CI machine: one CPU per worker node, a 100 MB object store, no dashboard.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.tools import ON_CI

NODE: dict[str, Any] = {
    "node_ip_address": "127.0.0.1",
    "object_store_memory": 100 * 1024**2,
    "include_dashboard": False,
}
# A killed node is declared dead after about two seconds instead of Ray's default fifteen, and
# a driver that lost the head gives up after five seconds instead of sixty.
FAST_HEALTH = {
    "health_check_period_ms": 500,
    "health_check_failure_threshold": 4,
    "gcs_rpc_server_reconnect_timeout_s": 5,
}
ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",
    # Ray turns a 127.0.0.1 cluster address into the machine's outward IP unless told that
    # this is a single-machine cluster; the test cluster listens on loopback only.
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    # Ray kills workers when the machine's memory is over 95% used, which a shared CI machine
    # often is because of other processes: the test workers themselves are small.
    "RAY_memory_monitor_refresh_ms": "0",
    # Ray's own token authentication, as docs/cluster.md asks for: every node, and the daemon's
    # Ray bridge (it inherits the daemon's environment), must present this token.
    "RAY_AUTH_MODE": "token",
    "RAY_AUTH_TOKEN": "impasto-cluster-tests-" + "0" * 32,
}


def require_ray() -> Any:
    """The ``ray`` module; skips (fails under CI) when the ``cluster`` extra is missing."""
    try:
        import ray
    except ImportError:
        message = "Ray is not installed: pip install 'impasto[cluster]' (make test installs it)"
        if ON_CI:
            pytest.fail(f"{message}; CI must provide it", pytrace=False)
        pytest.skip(message)
    return ray


class LocalRayCluster:
    """A head without CPUs (no worker lands on it) and worker nodes added one at a time."""

    def __init__(
        self,
        cache: Path,
        *,
        head_cpus: int = 0,
        port: int | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        # Nodes inherit the environment: every node of this cluster shares the model cache.
        # Set before Ray is first imported here: it reads its authentication mode once.
        settings = {**ENV, **(env or {}), "IMPASTO_CLUSTER_CACHE": str(cache)}
        self._saved = {k: os.environ.get(k) for k in settings}
        os.environ.update(settings)
        try:
            require_ray()
        except BaseException:
            self._restore()
            raise
        from ray.cluster_utils import Cluster

        head: dict[str, Any] = {"num_cpus": head_cpus, "_system_config": FAST_HEALTH, **NODE}
        if port:
            head["gcs_server_port"] = port
        try:
            self.cluster = Cluster(initialize_head=True, head_node_args=head)
        except BaseException:
            self._restore()
            raise

    @property
    def address(self) -> str:
        return str(self.cluster.address)

    def add_worker_node(self) -> Any:
        """A new node of one CPU; tried twice, since Ray gives a raylet a fixed 30 s to
        register, which a loaded two-core CI machine can miss."""
        try:
            return self.cluster.add_node(num_cpus=1, **NODE)
        except Exception as exc:
            if "timed out during startup" not in str(exc):
                raise
        return self.cluster.add_node(num_cpus=1, **NODE)

    def kill_node(self, node: Any) -> None:
        """SIGKILL the node's raylet and store, as when its machine loses power."""
        self.cluster.remove_node(node, allow_graceful=False)

    def close(self) -> None:
        try:
            self.cluster.shutdown()
        finally:
            self._restore()

    def _restore(self) -> None:
        for key, value in self._saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def node_id(node: Any) -> str:
    return str(node.node_id)
