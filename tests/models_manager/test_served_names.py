"""A URL whose path names no file (Civitai's ``/api/download/models/ID``) installs under the
name its server gives in ``Content-Disposition``; a checkpoint staged under a bare name still
converts (diffusers reads a single file by its ``.safetensors`` name)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from impasto.services import staging
from impasto.services.detect import Detected
from impasto.services.sources import disposition_filename
from impasto.services.stage_job import StageJob
from tests.harness import Daemon
from tests.models_manager.conftest import TINY, wait_install
from tests.models_manager.fakehub import FakeHub

LORA = TINY / "adapters" / "loras" / "tiny-kohya.safetensors"


@pytest.mark.parametrize(
    ("header", "name"),
    [
        ('attachment; filename="dreamshaper_8.safetensors"', "dreamshaper_8.safetensors"),
        (
            "attachment; filename*=UTF-8''Neon%20Style%20%E2%9C%A8.safetensors",
            "Neon Style ✨.safetensors",
        ),
        # RFC 6266: filename* wins over filename, in either order.
        ("attachment; filename=\"old.bin\"; filename*=UTF-8''new.safetensors", "new.safetensors"),
        ("attachment; filename*=UTF-8''new.safetensors; filename=\"old.bin\"", "new.safetensors"),
        # Paths and names Windows reads as devices stay plain names in one folder.
        ('attachment; filename="../../etc/passwd"', "passwd"),
        ('attachment; filename="C:\\models\\CON.safetensors"', "_CON.safetensors"),
        ('attachment; filename=".hidden.safetensors"', "hidden.safetensors"),
        ("attachment; filename*=UTF-8''bad%FF.safetensors", ""),  # not UTF-8: no name
        ('attachment; filename=""', ""),
        ("inline", ""),
        ("", ""),
    ],
)
def test_a_content_disposition_gives_a_plain_file_name(header: str, name: str) -> None:
    assert disposition_filename(header) == name


def test_a_download_link_installs_under_the_name_its_server_gives(
    daemon: Daemon, hub: FakeHub
) -> None:
    # Civitai's shape: the link redirects to a CDN, whose answer names the file.
    hub.locations["128713"] = f"{hub.url}/files/cdn-128713"
    hub.files["cdn-128713"] = LORA.read_bytes()
    hub.dispositions["cdn-128713"] = "attachment; filename*=UTF-8''Neon%20Stripes%20v2.safetensors"
    with daemon.client() as c:
        started = c.post("/api/v1/models/install", json={"source": f"{hub.url}/files/128713"})
        assert started.status_code == 202, started.text
        assert started.json()["model_id"] == "neon-stripes-v2"
        done = wait_install(c, started.json()["id"], {"completed", "failed", "cancelled"})
        assert done["status"] == "completed", done
        listed = {m["id"]: m["type"] for m in c.get("/api/v1/models").json()}
        assert listed["neon-stripes-v2"] == "lora"
        # An id the user gives wins over the served name.
        again = c.post(
            "/api/v1/models/install", json={"source": f"{hub.url}/files/128713", "id": "mine"}
        )
        assert again.status_code == 202 and again.json()["model_id"] == "mine", again.text
        done = wait_install(c, again.json()["id"], {"completed", "failed", "cancelled"})
        assert done["status"] == "completed", done
        # Installing the same link again names the same model: a conflict, before any job.
        twice = c.post("/api/v1/models/install", json={"source": f"{hub.url}/files/128713"})
        assert twice.status_code == 409 and "neon-stripes-v2" in twice.text, twice.text
        for name in ("neon-stripes-v2", "mine"):
            assert c.delete(f"/api/v1/models/{name}").status_code == 200


def test_a_link_its_server_does_not_name_keeps_its_own_name(daemon: Daemon, hub: FakeHub) -> None:
    hub.files["128714"] = LORA.read_bytes()  # no Content-Disposition
    with daemon.client() as c:
        started = c.post("/api/v1/models/install", json={"source": f"{hub.url}/files/128714"})
        assert started.status_code == 202 and started.json()["model_id"] == "128714"
        done = wait_install(c, started.json()["id"], {"completed", "failed", "cancelled"})
        assert done["status"] == "completed", done
        assert c.delete("/api/v1/models/128714").status_code == 200
    # A link naming its file is never asked: the install's own requests are the only ones.
    hub.requests.clear()
    hub.files["named.safetensors"] = LORA.read_bytes()
    with daemon.client() as c:
        started = c.post(
            "/api/v1/models/install", json={"source": f"{hub.url}/files/named.safetensors"}
        )
        assert started.status_code == 202 and started.json()["model_id"] == "named"
        done = wait_install(c, started.json()["id"], {"completed", "failed", "cancelled"})
        assert done["status"] == "completed", done
        assert c.delete("/api/v1/models/named").status_code == 200
    gets = [r for r in hub.requests if r[0] == "GET" and r[1].endswith("/named.safetensors")]
    assert len(gets) == 1, hub.requests


def test_a_checkpoint_staged_under_a_bare_name_converts_as_safetensors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checkpoint = tmp_path / "src" / "128713"
    checkpoint.parent.mkdir()
    checkpoint.write_bytes(LORA.read_bytes())
    (tmp_path / "src" / "128713.yaml").write_text("model: {params: {parameterization: v}}\n")
    converted: list[tuple[str, bool]] = []

    def fake_convert(source: Path, output: Path, **_: Any) -> None:
        converted.append((source.name, source.with_suffix(".yaml").is_file()))
        raise staging.InstallError("stop here")

    monkeypatch.setattr(staging, "convert", fake_convert)
    monkeypatch.setattr(staging, "missing_converter", lambda: None, raising=False)
    monkeypatch.setattr(staging, "detect_file", lambda path: Detected("file", "checkpoint", "sd1"))
    job = StageJob(
        install_id="i1",
        model_id="m",
        source={"kind": "path", "path": str(checkpoint), "filename": "128713"},
        options={},
        staging=tmp_path / "staging",
        models_dir=tmp_path / "models",
        max_file_size=1 << 30,
        hub_endpoint="http://127.0.0.1:9",
        hub_token=None,
    )
    with pytest.raises(staging.InstallError, match="stop here"):
        staging.prepare(job)
    assert converted == [("checkpoint.safetensors", True)]
