"""A daemon killed mid-download resumes the install; a diffusers folder is converted and used."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.harness import REPO, Daemon, wait_status
from tests.models_manager.conftest import TINY, tar_gz, wait_install
from tests.models_manager.fakehub import FakeHub

GEN = {"prompt": "a red fox", "width": 64, "height": 64, "steps": 2, "seed": 7}


def test_killed_daemon_resumes_the_download(tmp_path: Path, hub: FakeHub) -> None:
    archive = tar_gz(TINY / "sd-tiny", "sd-tiny")
    hub.files["resume.tar.gz"] = archive
    hub.rate = 150_000  # several seconds for the archive
    daemon = Daemon(tmp_path / "d", workers=1).start()
    try:
        with daemon.client() as c:
            body = {"source": f"{hub.url}/files/resume.tar.gz"}
            install_id = c.post("/api/v1/models/install", json=body).json()["id"]
            deadline = time.monotonic() + 30
            while c.get(f"/api/v1/models/installs/{install_id}").json()["bytes_done"] < 200_000:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        daemon.kill()
        models = daemon.data_dir / "models"
        # Killed mid-download: no model and no half folder in the models dir.
        assert not any(models.iterdir()) if models.exists() else True
        hub.rate = 0
        daemon.start()
        with daemon.client() as c:
            done = wait_install(c, install_id, {"completed", "failed", "cancelled"})
            assert done["status"] == "completed", done
            assert c.get("/api/v1/models/resume").json()["family"] == "sd1"
    finally:
        hub.rate = 0
        daemon.stop()
    ranges = hub.ranges_for("/files/resume.tar.gz")
    assert len(ranges) == 1 and int(ranges[0][6:-1]) >= 200_000


@pytest.fixture(scope="module")
def diffusers_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny SD pipeline saved in diffusers format (torch, a few seconds)."""
    out = tmp_path_factory.mktemp("diffusers") / "tiny-diffusers"
    script = (
        "import sys, tempfile; from pathlib import Path; sys.path.insert(0, 'models');"
        "import build_tiny as b;"
        "b.build_pipeline(b.TINY['sd-tiny'], Path(tempfile.mkdtemp()), full=False)"
        f".save_pretrained({str(out)!r})"
    )
    subprocess.run([sys.executable, "-c", script], cwd=REPO, check=True, capture_output=True)
    return out


def test_convert_a_diffusers_folder_then_generate(daemon: Daemon, diffusers_folder: Path) -> None:
    with daemon.client() as c:
        body = {"source": str(diffusers_folder), "id": "converted"}
        started = c.post("/api/v1/models/install", json=body)
        assert started.status_code == 202, started.text
        stages = set()
        deadline = time.monotonic() + 120
        while True:
            state = c.get(f"/api/v1/models/installs/{started.json()['id']}").json()
            stages.add(state["stage"])
            if state["status"] not in ("queued", "running"):
                break
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert state["status"] == "completed", state
        assert "convert" in stages
        model = c.get("/api/v1/models/converted").json()
        assert model["family"] == "sd1" and model["precision"] == "fp32"
        installed = Path(model["path"])
        assert (installed / "unet" / "model.onnx").is_file()
        assert not list(installed.rglob("*.safetensors"))  # the torch weights stay behind
        job = c.post("/api/v1/generate", json={**GEN, "model": "converted"}).json()
        assert wait_status(c, job["id"], {"completed", "failed"})["status"] == "completed"
