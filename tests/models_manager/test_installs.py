"""Installs end to end on a real daemon: hub, URL, folder, catalog name, cancel, remove, load."""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path

import numpy as np

from impasto.cli.main import main as cli_main
from tests.documented import assert_documented
from tests.harness import Daemon, wait_status
from tests.models_manager.conftest import TINY, tar_gz, unet_output, wait_install
from tests.models_manager.fakehub import FakeHub, Repo, folder_files

GEN = {"prompt": "a red fox", "width": 64, "height": 64, "steps": 2, "seed": 7}


def models_dir(daemon: Daemon) -> Path:
    return daemon.data_dir / "models"


def test_install_from_hub_resumes_a_dropped_connection(daemon: Daemon, hub: FakeHub) -> None:
    unet_sha = hashlib.sha256((TINY / "sd-tiny" / "unet" / "model.onnx").read_bytes()).hexdigest()
    hub.drop_once[unet_sha] = 300_000  # the UNet download breaks off after 300 kB
    with daemon.client() as c:
        body = {"source": "impasto/sd-tiny", "revision": "onnx", "subfolder": "onnx", "id": "hubby"}
        started = c.post("/api/v1/models/install", json=body)
        assert started.status_code == 202, started.text
        done = wait_install(c, started.json()["id"], {"completed", "failed"})
        assert done["status"] == "completed", done
        model = c.get("/api/v1/models/hubby").json()
    ranges = hub.ranges_for(f"/blobs/{unet_sha}")
    assert len(ranges) == 1  # one resume, from what had arrived before the drop
    start = int(ranges[0].removeprefix("bytes=").rstrip("-"))
    assert start == 300_000  # every byte that arrived before the drop was kept
    assert model["source"] == "hf://impasto/sd-tiny@onnx/onnx"
    assert model["family"] == "sd1" and model["precision"] == "fp32"
    assert len(model["hash"]) == 64
    with daemon.client() as c:
        # A1111's listing carries the hash, and its short form names the checkpoint, as there.
        listed = {m["model_name"]: m for m in c.get("/sdapi/v1/sd-models").json()}
        assert listed["hubby"]["sha256"] == model["hash"]
        assert listed["hubby"]["hash"] == model["hash"][:10]
        by_hash = {"sd_model_checkpoint": model["hash"][:10]}
        answer = c.post(
            "/sdapi/v1/txt2img",
            json={**GEN, "prompt": "by hash", "steps": 1, "override_settings": by_hash},
        )
        assert answer.status_code == 200, answer.text
        assert json.loads(answer.json()["info"])["sd_model_hash"] == model["hash"][:10]
        assert (
            c.get("/api/v1/history", params={"q": "by hash"}).json()["items"][0]["plan"]["model"]
            == "hubby"
        )
    installed = models_dir(daemon) / "hubby"
    # The resumed download is whole: the installed UNet (its attention fused at install)
    # computes what the original does.
    np.testing.assert_allclose(unet_output(installed), unet_output(TINY / "sd-tiny"), atol=1e-3)
    # Only the layout's files came down: no README, no pickle beside the weights.
    assert not (installed / "README.md").exists()
    assert not any(p.endswith("weights.bin") for _, p, _ in hub.requests)


def test_wrong_hash_fails_and_leaves_nothing(daemon: Daemon, hub: FakeHub) -> None:
    files = folder_files(TINY / "sd-tiny")
    hub.add_repo("impasto/bad-hash", Repo(files, wrong_sha={"unet/model.onnx"}))
    with daemon.client() as c:
        started = c.post("/api/v1/models/install", json={"source": "impasto/bad-hash"}).json()
        done = wait_install(c, started["id"], {"completed", "failed"})
        assert done["status"] == "failed"
        assert "sha256 mismatch" in done["error"] and "unet/model.onnx" in done["error"]
        assert c.get("/api/v1/models/bad-hash").status_code == 404
    assert not (models_dir(daemon) / "bad-hash").exists()
    assert not (daemon.data_dir / "temp" / "installs" / started["id"]).exists()


def test_a_local_file_is_checked_against_the_sha256_given(daemon: Daemon) -> None:
    lora = TINY / "adapters" / "loras" / "tiny-kohya.safetensors"
    digest = hashlib.sha256(lora.read_bytes()).hexdigest()
    with daemon.client() as c:
        body = {"source": str(lora), "id": "lora-checked", "sha256": "0" * 64}
        started = c.post("/api/v1/models/install", json=body).json()
        done = wait_install(c, started["id"], {"completed", "failed"})
        assert done["status"] == "failed" and "sha256 mismatch" in done["error"], done
        assert digest in done["error"]
        assert c.get("/api/v1/models/lora-checked").status_code == 404
        body["sha256"] = digest.upper()  # hex in either case, as for URLs
        started = c.post("/api/v1/models/install", json=body).json()
        done = wait_install(c, started["id"], {"completed", "failed"})
        assert done["status"] == "completed", done


def test_the_model_list_filters_by_type(daemon: Daemon) -> None:
    lora = TINY / "adapters" / "loras" / "tiny-kohya.safetensors"
    with daemon.client() as c:
        started = c.post("/api/v1/models/install", json={"source": str(lora), "id": "typed"})
        assert (
            wait_install(c, started.json()["id"], {"completed", "failed"})["status"] == "completed"
        )

        def listed(query: str) -> dict[str, str]:
            response = c.get(f"/api/v1/models{query}")
            assert response.status_code == 200, response.text
            return {m["id"]: m["type"] for m in response.json()}

        everything = listed("")
        assert set(listed("?type=lora").values()) == {"lora"} and "typed" in listed("?type=lora")
        assert set(listed("?type=checkpoint").values()) == {"checkpoint"}
        both = listed("?type=lora,checkpoint")
        assert both == {k: v for k, v in everything.items() if v in ("lora", "checkpoint")}
        refused = c.get("/api/v1/models?type=loras")
        assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "type"
        assert "checkpoint, lora, embedding, vae" in refused.text


def test_not_enough_disk_space_is_refused_before_downloading(daemon: Daemon, hub: FakeHub) -> None:
    files = folder_files(TINY / "sd-tiny")
    huge = Repo(files, declared_size={"unet/model.onnx": 2**50})
    hub.add_repo("impasto/huge", huge)
    with daemon.client() as c:
        body = {"source": "impasto/huge", "id": "huge"}
        started = c.post("/api/v1/models/install", json=body).json()
        done = wait_install(c, started["id"], {"completed", "failed"})
    assert done["status"] == "failed"
    assert "max_file_size" in done["error"] or "disk space" in done["error"]
    assert not any("/blobs/" in p for _, p, _ in hub.requests if "huge" in p)


def test_install_from_folder_then_generate(daemon: Daemon) -> None:
    with daemon.client() as c:
        body = {"source": str(TINY / "sd-tiny-v"), "id": "my-v", "name": "My V model"}
        started = c.post("/api/v1/models/install", json=body).json()
        assert wait_install(c, started["id"], {"completed", "failed"})["status"] == "completed"
        listed = {m["id"]: m for m in c.get("/api/v1/models").json()}
        assert listed["my-v"]["family"] == "sd2-v" and listed["my-v"]["name"] == "My V model"
        assert listed["sd-tiny"]["read_only"] is True  # the bundled ones are still listed
        job = c.post("/api/v1/generate", json={**GEN, "model": "my-v"}).json()
        finished = wait_status(c, job["id"], {"completed", "failed"})
    assert finished["status"] == "completed", finished


def test_install_by_catalog_name_with_the_cli(daemon: Daemon, capsys: object) -> None:
    code = cli_main(["pull", "tiny", "--url", daemon.url])
    out = capsys.readouterr().out  # type: ignore[attr-defined]
    assert code == 0, out
    assert "installed tiny" in out
    with daemon.client() as c:
        model = c.get("/api/v1/models/tiny").json()
    assert model["license"] == "apache-2.0" and model["description"] == "the tiny test model"
    assert cli_main(["models", "--url", daemon.url]) == 0
    assert "tiny" in capsys.readouterr().out  # type: ignore[attr-defined]


def test_install_from_url_archive_and_cancel(daemon: Daemon, hub: FakeHub) -> None:
    hub.files["inpaint.tar.gz"] = tar_gz(TINY / "sd-tiny-inpaint", "sd-tiny-inpaint")
    hub.files["slow.tar.gz"] = hub.files["inpaint.tar.gz"]
    with daemon.client() as c:
        url = f"{hub.url}/files/inpaint.tar.gz"
        started = c.post("/api/v1/models/install", json={"source": url}).json()
        assert started["model_id"] == "inpaint"
        done = wait_install(c, started["id"], {"completed", "failed"})
        assert done["status"] == "completed", done
        assert c.get("/api/v1/models/inpaint").json()["family"] == "inpaint"
        # Each answer is what the document says: the started task, the finished one, the list.
        assert_documented(c, "/api/v1/models/install", started, method="post")
        assert_documented(c, "/api/v1/models/installs/{install_id}", done)
        assert_documented(c, "/api/v1/models/installs", c.get("/api/v1/models/installs").json())

        hub.rate = 200_000  # about 12 s for the archive: time to cancel
        try:
            slow = c.post("/api/v1/models/install", json={"source": f"{hub.url}/files/slow.tar.gz"})
            install_id = slow.json()["id"]
            wait_install(c, install_id, {"running"})
            cancelled = c.post(f"/api/v1/models/installs/{install_id}/cancel")
            assert cancelled.status_code == 200
            route = "/api/v1/models/installs/{install_id}/cancel"
            assert_documented(c, route, cancelled.json(), method="post")
            final = wait_install(c, install_id, {"cancelled", "completed", "failed"})
        finally:
            hub.rate = 0
        assert final["status"] == "cancelled"
        again = c.post(f"/api/v1/models/installs/{install_id}/cancel")
        assert again.status_code == 409
    assert not (models_dir(daemon) / "slow").exists()
    assert not (daemon.data_dir / "temp" / "installs" / install_id).exists()


def test_remove_refuses_bundled_and_in_use_models(daemon: Daemon) -> None:
    with daemon.client() as c:
        body = {"source": str(TINY / "sd-tiny"), "id": "doomed"}
        started = c.post("/api/v1/models/install", json=body).json()
        assert wait_install(c, started["id"], {"completed", "failed"})["status"] == "completed"
        bundled = c.delete("/api/v1/models/sd-tiny")
        assert bundled.status_code == 409 and "bundled" in bundled.json()["detail"]
        c.post("/api/v1/queue/pause")
        try:
            job = c.post("/api/v1/generate", json={**GEN, "model": "doomed"}).json()
            busy = c.delete("/api/v1/models/doomed")
            assert busy.status_code == 409 and job["id"] in busy.json()["detail"]
            c.post(f"/api/v1/generate/{job['id']}/cancel")
        finally:
            c.post("/api/v1/queue/resume")
        removed = c.delete("/api/v1/models/doomed")
        assert removed.status_code == 200, removed.text
        assert c.get("/api/v1/models/doomed").status_code == 404
        assert c.delete("/api/v1/models/doomed").status_code == 404
    assert not (models_dir(daemon) / "doomed").exists()


def test_load_unload_and_loaded(daemon: Daemon) -> None:
    with daemon.client() as c:
        assert c.post("/api/v1/models/sd-tiny-v/load", params={"keep_alive": 60}).json() == {
            "model": "sd-tiny-v",
            "workers": 1,
            "loading": 0,
        }
        loaded = c.get("/api/v1/models/loaded").json()  # held once the load answers
        entry = next(m for m in loaded if m["model"] == "sd-tiny-v")
        assert 0 < entry["expires_in"] <= 60
        assert_documented(c, "/api/v1/models/loaded", loaded)
        system = c.get("/api/v1/system").json()
        assert_documented(c, "/api/v1/system", system)
        [held] = [m for m in system["loaded_models"] if m["model"] == "sd-tiny-v"]
        assert held["expires_at"] == entry["expires_at"]
        [worker] = [w for w in system["workers"] if w["id"] == held["worker"]]
        assert held in worker["loaded"]  # the same entry, times included, in its worker
        c.post("/api/v1/models/sd-tiny-v/unload")
        for _ in range(100):
            loaded = c.get("/api/v1/models/loaded").json()
            if not any(m["model"] == "sd-tiny-v" for m in loaded):
                break
            time.sleep(0.1)
        assert not any(m["model"] == "sd-tiny-v" for m in loaded)
        assert c.post("/api/v1/models/nope/load").status_code == 404
        # A refiner runs only beside an SDXL model: refused as generating with it is, not a 200
        # for a load the worker then fails.
        refiner = c.post("/api/v1/models/sdxl-tiny-refiner/load")
        assert refiner.status_code == 422, refiner.text
        assert refiner.json()["errors"][0]["field"] == "model_id"
        assert "SDXL refiner" in refiner.json()["detail"]


def test_bad_input_names_the_field(daemon: Daemon) -> None:
    cases = [
        ({"source": "/no/such/folder"}, "source"),
        ({"source": "not a thing"}, "source"),
        ({"source": str(TINY / "sd-tiny"), "id": "../escape"}, "id"),
        ({"source": str(TINY / "sd-tiny"), "sha256": "xyz"}, "sha256"),
        ({"source": "impasto/sd-tiny", "subfolder": "../../etc"}, "subfolder"),
        ({"source": "impasto/sd-tiny", "precision": "int3"}, "precision"),
        # Fields that mean nothing for the source's kind are refused, not ignored.
        ({"source": str(TINY / "sd-tiny"), "revision": "v1"}, "revision"),
        ({"source": str(TINY / "sd-tiny"), "subfolder": "unet"}, "subfolder"),
        ({"source": str(TINY / "sd-tiny"), "sha256": "a" * 64}, "sha256"),  # a folder
        ({"source": "impasto/sd-tiny", "sha256": "a" * 64}, "sha256"),
        ({"source": "https://example.org/m.safetensors", "revision": "main"}, "revision"),
        ({"source": str(TINY / "sd-tiny"), "id": "sd-tiny"}, None),  # exists: 409
    ]
    with daemon.client() as c:
        for body, field in cases:
            response = c.post("/api/v1/models/install", json=body)
            if field is None:
                assert response.status_code == 409, response.text
                continue
            assert response.status_code == 422, (body, response.text)
            assert response.json()["errors"][0]["field"] == field, response.text
        assert c.get("/api/v1/models/installs/nope").status_code == 404


def test_a_folder_whose_unet_is_another_graph_fails_to_install(
    daemon: Daemon, tmp_path: Path
) -> None:
    folder = tmp_path / "wrong-unet"
    shutil.copytree(TINY / "sd-tiny", folder)
    shutil.copy(folder / "vae_decoder" / "model.onnx", folder / "unet" / "model.onnx")
    with daemon.client() as c:
        started = c.post("/api/v1/models/install", json={"source": str(folder)}).json()
        done = wait_install(c, started["id"], {"completed", "failed"})
        assert done["status"] == "failed", done
        assert "unet/model.onnx is not a unet graph" in done["error"], done
        assert c.get("/api/v1/models/wrong-unet").status_code == 404
    # Copied into the models folder by hand, it is listed as unusable and refused by name.
    shutil.copytree(folder, models_dir(daemon) / "wrong-unet")
    with daemon.client() as c:
        listed = c.get("/api/v1/models/wrong-unet").json()
        assert "not a unet graph" in listed["problem"], listed
        refused = c.post("/api/v1/generate", json={**GEN, "model": "wrong-unet"})
        assert refused.status_code == 422 and "not a unet graph" in refused.text
