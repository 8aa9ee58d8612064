"""A TAESD build installs like any model (AutoencoderTiny weights, converted to ONNX here) and
then serves live previews and ``decoder: "fast"`` for the models of its family."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import pytest

from tests.harness import Daemon, wait_status
from tests.models_manager.conftest import TINY, wait_install
from tests.models_manager.fakehub import FakeHub, Repo, folder_files

GEN = {"prompt": "a red fox", "width": 64, "height": 64, "steps": 2, "seed": 7}


def _autoencoder_tiny_files() -> dict[str, bytes]:
    """A seeded AutoencoderTiny saved as diffusers saves it (as madebyollin/taesd holds it)."""
    sys.path.insert(0, str(TINY.parent))
    try:
        import build_tiny
    finally:
        sys.path.remove(str(TINY.parent))
    with tempfile.TemporaryDirectory() as tmp:
        build_tiny.make_taesd(full=False).save_pretrained(tmp, safe_serialization=True)
        files = folder_files(Path(tmp))
    files["README.md"] = b"# tiny taesd\n"
    return files


@pytest.fixture(scope="module")
def hub(hub: FakeHub) -> FakeHub:
    hub.add_repo("impasto/taesd-tiny", Repo(_autoencoder_tiny_files()))
    return hub


# The converter child imports torch and diffusers: minutes on a loaded machine.
@pytest.mark.timeout(900)
def test_install_taesd_then_decode_fast(hub: FakeHub, daemon: Daemon) -> None:
    with daemon.client() as c:
        refused = c.post("/api/v1/generate", json={**GEN, "decoder": "fast"})
        assert refused.status_code == 422, refused.text
        assert "decoder" in refused.text and "impasto pull taesd" in refused.text

        started = c.post("/api/v1/models/install", json={"source": "impasto/taesd-tiny"}).json()
        done = wait_install(c, started["id"], {"completed", "failed"}, timeout=600)
        assert done["status"] == "completed", done
        installed = daemon.data_dir / "models" / "taesd-tiny"
        assert (installed / "taesd_decoder" / "model.onnx").is_file()
        model = c.get("/api/v1/models/taesd-tiny").json()
        assert model["type"] == "vae"

        job = c.post("/api/v1/generate", json={**GEN, "decoder": "fast"}).json()
        finished = wait_status(c, job["id"], {"completed", "failed"})
        assert finished["status"] == "completed", finished
        assert finished["plan"]["decoder"] == "fast"
        assert finished["plan"]["fast_decoder"] == "taesd-tiny"
        # Without asking for it, the final decode stays the model's VAE; previews use TAESD.
        plain = c.post("/api/v1/generate", json=GEN).json()
        plan = wait_status(c, plain["id"], {"completed", "failed"})["plan"]
        assert plan["decoder"] == "full" and plan["fast_decoder"] == "taesd-tiny"
