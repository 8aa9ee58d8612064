"""A real daemon in a subprocess on a free port and a private socket, for integration tests."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Daemon:
    """``impasto serve`` with its own data, runtime and log folders under ``root``."""

    def __init__(self, root: Path, port: int | None = None, **settings: Any) -> None:
        self.root = root
        self.port = port or free_port()
        self.settings = settings
        self.data_dir = root / "data"
        self.runtime_dir = root / "run"
        self.log_dir = root / "logs"
        self.process: subprocess.Popen[bytes] | None = None
        # Its own process group, so a test can send Ctrl+C's SIGINT to the daemon's whole group.
        self.new_session = False
        self.token = str(settings.get("token", ""))
        # How and where the daemon starts: `python -m impasto serve` in the test's folder,
        # unless a test starts it like a user would (the console script, another folder).
        self.command: list[str] = [sys.executable, "-m", "impasto", "serve"]
        self.cwd: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def local_path(self, shown: str) -> Path:
        """The file or folder a path the API shows stands for (``<models>/x``: the API names
        a model's place by its folder's label, never by a local path)."""
        from impasto.resources import bundled_models_dir

        models = Path(str(self.settings.get("models_dir") or self.data_dir / "models"))
        labels = {"<models>": models, "<bundled models>": bundled_models_dir()}
        label, _, rest = shown.partition("/")
        return labels[label] / rest

    @property
    def socket(self) -> Path:
        return self.runtime_dir / "impasto.sock"

    @property
    def discovery_file(self) -> Path:
        return self.runtime_dir / "daemon.json"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("IMPASTO_")}
        env.update(
            IMPASTO_CONFIG=str(self.root / "config.toml"),
            IMPASTO_PORT=str(self.port),
            IMPASTO_DATA_DIR=str(self.data_dir),
            IMPASTO_RUNTIME_DIR=str(self.runtime_dir),
            IMPASTO_LOG_DIR=str(self.log_dir),
            IMPASTO_PARENT_PID=str(os.getpid()),
            # The suite runs on the bundled test models, so it lists them (users don't see them).
            IMPASTO_SHOW_TEST_MODELS="1",
            # The suite's plumbing tests run on the random tiny model, which is fast; the
            # semantic tests (tests/semantic) name the trained default, impasto-shapes.
            IMPASTO_DEFAULT_MODEL="sd-tiny",
        )
        for key, value in self.settings.items():
            env[f"IMPASTO_{key.upper()}"] = (
                ",".join(value) if isinstance(value, list) else str(value)
            )
        return env

    def refused(self, **extra_env: str) -> subprocess.CompletedProcess[str]:
        """Run ``impasto serve`` as a daemon that should refuse to start, to its end."""
        return subprocess.run(
            [sys.executable, "-m", "impasto", "serve"],
            env={**self.env(), **extra_env},
            capture_output=True,
            text=True,
            timeout=60,
        )

    def start(self, timeout: float = 60.0) -> Daemon:
        self.root.mkdir(parents=True, exist_ok=True)
        out = (self.root / "daemon.out").open("ab")
        self.process = subprocess.Popen(
            self.command,
            cwd=self.cwd,
            env=self.env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=self.new_session,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"daemon exited with {self.process.returncode}:\n{self.output()}"
                )
            if self.discovery_file.exists():
                with contextlib.suppress(httpx.HTTPError):
                    if self.client().get("/api/v1/health").status_code == 200:
                        return self
            time.sleep(0.1)
        raise RuntimeError(f"daemon did not start:\n{self.output()}")

    def output(self) -> str:
        path = self.root / "daemon.out"
        return path.read_text(errors="replace") if path.exists() else ""

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=self.headers(), timeout=30.0, **kwargs)

    def socket_client(self) -> httpx.Client:
        transport = httpx.HTTPTransport(uds=str(self.socket))
        return httpx.Client(
            transport=transport, base_url="http://impasto", headers=self.headers(), timeout=30.0
        )

    def discovery(self) -> dict[str, Any]:
        return json.loads(self.discovery_file.read_text())

    def workers(self) -> list[dict[str, Any]]:
        with self.client() as c:
            return c.get("/api/v1/system").json()["workers"]

    def wait_worker_ready(self, timeout: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready = [w for w in self.workers() if w["state"] in ("idle", "busy")]
            if ready:
                return ready[0]
            time.sleep(0.1)
        raise TimeoutError("no worker became ready")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def interrupt(self, timeout: float = 30.0) -> int:
        """Ctrl+C in a terminal: SIGINT to the daemon's process group (needs ``new_session``)."""
        assert self.process is not None and self.new_session
        os.killpg(self.process.pid, signal.SIGINT)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise

    def kill(self) -> None:
        self.stop(signal.SIGKILL)


@contextlib.contextmanager
def running_daemon(root: Path, **settings: Any) -> Iterator[Daemon]:
    """A daemon started in ``root`` with ``settings``, its worker ready; stopped on exit."""
    daemon = Daemon(root, **settings).start()
    try:
        daemon.wait_worker_ready()
        yield daemon
    finally:
        daemon.stop()


@contextlib.contextmanager
def daemon_with_models(root: Path, models: Path) -> Iterator[Daemon]:
    """A running daemon whose models folder is a copy of ``models``."""
    shutil.copytree(models, root / "models")
    with running_daemon(root, models_dir=str(root / "models")) as daemon:
        yield daemon


@contextlib.contextmanager
def http_with_models(root: Path, models: Path) -> Iterator[httpx.Client]:
    """An httpx client (120 s reads) of a running daemon whose models folder is a copy of
    ``models``."""
    with (
        daemon_with_models(root, models) as daemon,
        httpx.Client(base_url=daemon.url, headers=daemon.headers(), timeout=120.0) as client,
    ):
        yield client


def wait_gone(pids: list[int], timeout: float = 30.0) -> None:
    """Wait for these processes to exit (workers notice their daemon's pipe closed)."""
    for pid in pids:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)


def wait_status(
    client: httpx.Client, job_id: str, statuses: set[str], timeout: float = 120.0
) -> dict[str, Any]:
    """Poll a job until it reaches one of ``statuses``."""
    deadline = time.monotonic() + timeout
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        body = client.get(f"/api/v1/generate/{job_id}").json()
        if body["status"] in statuses:
            return body
        time.sleep(0.05)
    raise TimeoutError(f"job {job_id} stuck at {body.get('status')}: {body}")


def statuses_of_prompt(
    client: httpx.Client, prompt: str, until: list[str], timeout: float
) -> list[str]:
    """The statuses of the newest jobs of ``prompt`` in the history, polled until they are
    ``until`` or ``timeout`` seconds have passed (for jobs a client queued without an id to
    show, as the compat routes do)."""
    deadline = time.monotonic() + timeout
    statuses: list[str] = []
    while time.monotonic() < deadline:
        items = client.get("/api/v1/history", params={"limit": 20}).json()["items"]
        statuses = [i["status"] for i in items if i["request"]["prompt"] == prompt]
        if statuses == until:
            break
        time.sleep(0.1)
    return statuses


def generated_pixels(client: httpx.Client, body: dict[str, Any]) -> np.ndarray:
    """Generate ``body`` through the native API; its first picture as int16 pixels."""
    response = client.post("/api/v1/generate", json=body)
    assert response.status_code == 202, response.text
    done = wait_status(client, response.json()["id"], {"completed", "failed"})
    assert done["status"] == "completed", done
    png = client.get(done["results"][0]["url"]).content
    return np.asarray(Image.open(io.BytesIO(png)), dtype=np.int16)


TINY = {"width": 64, "height": 64, "steps": 4, "cfg_scale": 5.0}
