"""Workers on a real multi-node Ray cluster on loopback: one queue on the head, nothing lost.

One cluster (a head and two CPU worker nodes) and one daemon serve the whole module, to stay
within CI's time; the last test kills a node, so the tests run in file order.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.cluster.raycluster import LocalRayCluster, node_id
from tests.harness import REPO, TINY, Daemon, wait_status
from tests.integration.test_cli_live import cli
from tests.integration.test_daemon import sse_events

pytestmark = pytest.mark.timeout(150)
LONG = {"width": 128, "height": 128, "steps": 40}
# Long enough that a node's worker process cannot finish it in the moment it outlives its
# killed raylet (it talks to the driver directly, so a job ending then completes normally).
VICTIM = {"width": 256, "height": 256, "steps": 150}
HEAD_ONLY = "head-only-tiny"


class Setup:
    def __init__(self, cluster: LocalRayCluster, nodes: list[Any], daemon: Daemon, cache: Path):
        self.cluster = cluster
        self.nodes = nodes
        self.daemon = daemon
        self.cache = cache

    def db(self) -> sqlite3.Connection:
        return sqlite3.connect(f"file:{self.daemon.data_dir / 'impasto.db'}?mode=ro", uri=True)

    def worker_of(self, job_id: str) -> str:
        with self.db() as db:
            return str(
                db.execute("SELECT worker_id FROM jobs WHERE id = ?", (job_id,)).fetchone()[0]
            )

    def events(self, job_id: str, kind: str) -> list[dict[str, Any]]:
        with self.db() as db:
            rows = db.execute(
                "SELECT data FROM events WHERE job_id = ? AND type = ?", (job_id, kind)
            ).fetchall()
        return [json.loads(row[0]) for row in rows]

    def wait_workers(self, nodes: list[Any], timeout: float = 90.0) -> None:
        """Until every node in ``nodes`` has an idle or busy worker."""
        wanted = {node_id(n) for n in nodes}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            up = {w["node"]["id"] for w in self.daemon.workers() if w["state"] in ("idle", "busy")}
            if wanted <= up:
                return
            time.sleep(0.3)
        raise TimeoutError(f"workers did not start on every node: {self.daemon.workers()}")


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    root = tmp_path_factory.mktemp("cluster")
    cache = root / "node-cache"
    cluster = LocalRayCluster(cache)
    daemon = Daemon(root / "daemon", cluster=cluster.address, max_attempts=3)
    try:
        nodes = [cluster.add_worker_node(), cluster.add_worker_node()]
        # A model only the head daemon has: no node can read it but through the head.
        shutil.copytree(
            REPO / "models" / "tiny" / "sd-tiny", daemon.data_dir / "models" / HEAD_ONLY
        )
        # LoRAs and VAEs only the head has, too.
        shutil.copytree(
            REPO / "models" / "tiny" / "adapters", daemon.data_dir / "models", dirs_exist_ok=True
        )
        daemon.start()
        state = Setup(cluster, nodes, daemon, cache)
        state.wait_workers(nodes)
        yield state
    finally:
        daemon.stop()
        cluster.close()


def test_jobs_are_spread_over_the_nodes_with_progress(setup: Setup) -> None:
    with setup.daemon.client() as client:
        ids = [
            client.post(
                "/api/v1/generate", json={"prompt": f"spread {i}", **TINY, "steps": 8}
            ).json()["id"]
            for i in range(6)
        ]
        done = [wait_status(client, job_id, {"completed", "failed"}) for job_id in ids]
    assert [d["status"] for d in done] == ["completed"] * 6, done
    workers = {setup.worker_of(job_id) for job_id in ids}
    nodes = {node_id(n)[:6] for n in setup.nodes}
    assert {w.split("/")[1] for w in workers} == nodes, workers
    for job_id in ids:
        steps = [e["step"] for e in setup.events(job_id, "progress")]
        assert steps == list(range(1, 9)), steps
    image = setup.daemon.client().get(done[0]["results"][0]["url"])
    assert image.status_code == 200 and image.content.startswith(b"\x89PNG")


def test_the_events_stream_carries_previews_from_a_node(setup: Setup) -> None:
    with setup.daemon.client() as client:
        # Paused, so every event after 'queued' is sent live (previews are never replayed).
        client.post("/api/v1/queue/pause")
        job = client.post("/api/v1/generate", json={"prompt": "live", **TINY}).json()
        resume = threading.Timer(0.5, lambda: setup.daemon.client().post("/api/v1/queue/resume"))
        resume.start()
        try:
            live = sse_events(client, f"/api/v1/events?job={job['id']}&since=0", until="completed")
        finally:
            resume.join()
            client.post("/api/v1/queue/resume")
    assert [e["type"] for e in live][:2] == ["queued", "started"]
    progress = [e for e in live if e["type"] == "progress"]
    assert [e["data"]["step"] for e in progress] == list(range(1, TINY["steps"] + 1))
    previews = [e["data"]["preview"] for e in progress if "preview" in e["data"]]
    assert len(previews) == TINY["steps"] // 2  # preview_every: 2 by default
    assert all(p.startswith("data:image/jpeg;base64,") for p in previews)
    assert setup.worker_of(job["id"]).split("/")[1] in {node_id(n)[:6] for n in setup.nodes}


def test_cancel_reaches_a_job_on_another_node(setup: Setup) -> None:
    with setup.daemon.client() as client:
        job = client.post("/api/v1/generate", json={"prompt": "stop me", **LONG, "steps": 150})
        job_id = job.json()["id"]
        deadline = time.monotonic() + 60
        while client.get(f"/api/v1/generate/{job_id}").json()["current_step"] < 2:
            assert time.monotonic() < deadline, "the job never started"
            time.sleep(0.05)
        assert client.post(f"/api/v1/generate/{job_id}/cancel").status_code == 200
        done = wait_status(client, job_id, {"cancelled", "completed", "failed"}, timeout=30)
    assert done["status"] == "cancelled", done
    assert done["current_step"] < 150
    assert setup.worker_of(job_id).split("/")[1] in {node_id(n)[:6] for n in setup.nodes}


def test_a_model_only_on_the_head_is_fetched_verified_and_cached(setup: Setup) -> None:
    with setup.daemon.client() as client:
        job = client.post(
            "/api/v1/generate", json={"prompt": "fetched", "model": HEAD_ONLY, **TINY}
        )
        assert job.status_code in (200, 201, 202), job.text
        done = wait_status(client, job.json()["id"], {"completed", "failed"})
    assert done["status"] == "completed", done
    head_folder = setup.daemon.data_dir / "models" / HEAD_ONLY
    files = sorted(p for p in head_folder.rglob("*") if p.is_file())
    roots = list((setup.cache / "roots").iterdir())
    assert roots, "no models root was made on the node"
    for path in files:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        blob = setup.cache / "blobs" / digest
        assert blob.is_file(), f"{path.name} was not cached by content"
        linked = [r / HEAD_ONLY / path.relative_to(head_folder) for r in roots]
        assert any(p.exists() and os.path.samefile(p, blob) for p in linked), path
    assert not list((setup.cache / "blobs").glob(".*.part")), "a partial download was left"


def _image(setup: Setup, **fields: Any) -> bytes:
    with setup.daemon.client() as client:
        job = client.post(
            "/api/v1/generate", json={"prompt": "house", "seed": 11, **TINY, **fields}
        )
        assert job.status_code == 202, job.text
        done = wait_status(client, job.json()["id"], {"completed", "failed"})
        assert done["status"] == "completed", done
        return client.get(done["results"][0]["url"]).content


def test_adapters_only_on_the_head_reach_the_node(setup: Setup) -> None:
    plain = _image(setup)
    with_lora = _image(setup, loras=[{"name": "tiny-peft", "weight": 1.0}])
    with_vae = _image(setup, vae="sd-tiny-vae-alt")
    assert with_lora != plain and with_vae != plain and with_lora != with_vae
    lora = setup.daemon.data_dir / "models" / "loras" / "tiny-peft.safetensors"
    assert (setup.cache / "blobs" / hashlib.sha256(lora.read_bytes()).hexdigest()).is_file()
    vae = setup.daemon.data_dir / "models" / "vae" / "sd-tiny-vae-alt"
    for path in (p for p in vae.rglob("*") if p.is_file()):
        assert (setup.cache / "blobs" / hashlib.sha256(path.read_bytes()).hexdigest()).is_file()


def test_an_uploaded_init_image_and_mask_reach_the_node(setup: Setup) -> None:
    def png(image: Image.Image) -> bytes:
        buf = io.BytesIO()
        image.save(buf, format="PNG")
        return buf.getvalue()

    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (16, 16, 48, 48))
    with setup.daemon.client() as client:
        init = client.post(
            "/api/v1/images",
            files={
                "file": ("init.png", png(Image.new("RGB", (64, 64), (200, 30, 30))), "image/png")
            },
        ).json()["id"]
        fields = {"prompt": "inpaint", "model": "sd-tiny-inpaint", **TINY}
        job = client.post(
            "/api/v1/generate",
            json={
                **fields,
                "init_image": f"upload:{init}",
                "mask_image": "data:image/png;base64," + base64.b64encode(png(mask)).decode(),
            },
        ).json()
        done = wait_status(client, job["id"], {"completed", "failed"})
    assert done["status"] == "completed", done
    upload = setup.daemon.data_dir / "uploads" / f"{init}.png"
    assert (setup.cache / "blobs" / hashlib.sha256(upload.read_bytes()).hexdigest()).is_file()


def test_load_ps_and_unload_reach_every_node(setup: Setup) -> None:
    """A head-only model loaded ahead of jobs shows in `impasto ps` per worker, by node."""
    head_dir = f"<models>/{HEAD_ONLY}"  # the API names it by its folder's label
    with setup.daemon.client() as client:
        loaded = client.post(f"/api/v1/models/{HEAD_ONLY}/load", json={"keep_alive": 60})
        assert loaded.status_code == 200, loaded.text
        deadline = time.monotonic() + 60
        rows: list[dict[str, Any]] = []
        while len({r["worker"] for r in rows if r["model"] == HEAD_ONLY}) < len(setup.nodes):
            assert time.monotonic() < deadline, rows
            rows = client.get("/api/v1/models/loaded").json()
            time.sleep(0.2)
        assert {r["path"] for r in rows if r["model"] == HEAD_ONLY} == {head_dir}
        workers = {r["worker"].split("/")[1] for r in rows if r["model"] == HEAD_ONLY}
        assert workers == {node_id(n)[:6] for n in setup.nodes}
        ps = cli(setup.daemon, "ps")
        assert ps.returncode == 0, ps.stderr
        lines = [line.split() for line in ps.stdout.splitlines()[1:]]
        shown = {line[1] for line in lines if line and line[0] == HEAD_ONLY}
        assert shown == {r["worker"] for r in rows if r["model"] == HEAD_ONLY}, ps.stdout
        assert client.post(f"/api/v1/models/{HEAD_ONLY}/unload").status_code == 200
        # A bundled model is on every node already: loading it sends no file.
        assert client.post("/api/v1/models/sd-tiny/load", json={"keep_alive": 1}).status_code == 200
        while not any(r["model"] == "sd-tiny" for r in client.get("/api/v1/models/loaded").json()):
            assert time.monotonic() < deadline + 30, "the bundled model never loaded"
            time.sleep(0.2)
        roots = list((setup.cache / "roots").iterdir())
        assert not [r for r in roots if (r / "sd-tiny").exists()], "a bundled model was sent"
        while any(r["model"] == HEAD_ONLY for r in client.get("/api/v1/models/loaded").json()):
            assert time.monotonic() < deadline + 30, "the model stayed loaded"
            time.sleep(0.2)


def test_a_node_added_later_takes_jobs(setup: Setup) -> None:
    late = setup.cluster.add_worker_node()
    setup.nodes.append(late)
    setup.wait_workers([late])
    with setup.daemon.client() as client:
        ids = [
            client.post(
                "/api/v1/generate", json={"prompt": f"late {i}", **TINY, "steps": 12}
            ).json()["id"]
            for i in range(6)
        ]
        for job_id in ids:
            assert wait_status(client, job_id, {"completed", "failed"})["status"] == "completed"
    assert node_id(late)[:6] in {setup.worker_of(j).split("/")[1] for j in ids}


def test_a_daemon_without_the_clusters_token_is_refused_and_says_so(
    setup: Setup, tmp_path: Path
) -> None:
    """Ray's token authentication guards the cluster, model transfer and results included."""
    outsider = Daemon(tmp_path / "outsider", cluster=setup.cluster.address)
    env = outsider.env()
    outsider.env = lambda: {**env, "RAY_AUTH_TOKEN": "not-the-cluster-token-" + "1" * 32}  # type: ignore[method-assign]
    try:
        outsider.start()
        deadline = time.monotonic() + 90
        with outsider.client() as client:
            while True:
                health = client.get("/api/v1/health").json()
                if health.get("problem"):
                    break
                assert time.monotonic() < deadline, health
                time.sleep(0.5)
        assert "cannot connect to the Ray cluster" in health["problem"], health
        assert outsider.workers() == []
        log = (outsider.log_dir / "ray-bridge.log").read_text()
        assert "Authentication token is missing or incorrect" in log, log[-2000:]
    finally:
        outsider.stop()


def test_a_node_killed_mid_job_loses_nothing(setup: Setup) -> None:
    with setup.daemon.client() as client:
        ids = [
            client.post(
                "/api/v1/generate", json={"prompt": f"survive {i}", "seed": i, **VICTIM}
            ).json()["id"]
            for i in range(len(setup.nodes))
        ]
        victim_job, victim = None, None
        deadline = time.monotonic() + 60
        while victim is None:
            assert time.monotonic() < deadline, "no job started"
            for job_id in ids:
                job = client.get(f"/api/v1/generate/{job_id}").json()
                if job["status"] == "processing" and job["current_step"] >= 2:
                    worker = setup.worker_of(job_id)
                    victim_job = job_id
                    victim = next(n for n in setup.nodes if node_id(n)[:6] == worker.split("/")[1])
                    break
            time.sleep(0.05)
        setup.cluster.kill_node(victim)
        setup.nodes.remove(victim)
        done = {job_id: wait_status(client, job_id, {"completed", "failed"}, 120) for job_id in ids}
    assert all(d["status"] == "completed" for d in done.values()), done
    assert done[victim_job]["attempts"] == 1
    assert "Ray node" in setup.events(victim_job, "queued")[-1]["retry"]
    for job_id in ids:
        assert len(setup.events(job_id, "completed")) == 1
    written = sorted(p.name for p in (setup.daemon.data_dir / "outputs").rglob("*") if p.is_file())
    survivors = [name for name in written if name.split("-0.png")[0] in ids]
    assert sorted(survivors) == sorted(f"{job_id}-0.png" for job_id in ids)
    assert not [name for name in written if not name.endswith(".png")], written
