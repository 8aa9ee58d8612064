"""LoRAs, embeddings and VAEs have one place each in the models folder (loras/, embeddings/,
vae/): installs put them there, requests find them there by name, the model list shows what
is there (copied by hand too), and removing one deletes its file."""

from __future__ import annotations

import json
import pickle
import shutil
import struct
from pathlib import Path

from impasto.worker.files import adapter_path
from tests.harness import Daemon, wait_status
from tests.models_manager.conftest import TINY, wait_install
from tests.models_manager.fakehub import FakeHub

GEN = {"prompt": "a red fox", "width": 64, "height": 64, "steps": 2, "seed": 7}
ADAPTERS = TINY / "adapters"


def _models(daemon: Daemon) -> Path:
    return daemon.data_dir / "models"


def _install(daemon: Daemon, body: dict[str, object]) -> dict:
    with daemon.client() as c:
        started = c.post("/api/v1/models/install", json=body)
        assert started.status_code == 202, started.text
        return wait_install(c, started.json()["id"], {"completed", "failed", "cancelled"})


def _safetensors(path: Path, names: list[str]) -> Path:
    """A .safetensors file holding one float32 zero per tensor name."""
    header = {
        n: {"dtype": "F32", "shape": [1], "data_offsets": [4 * i, 4 * i + 4]}
        for i, n in enumerate(names)
    }
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + bytes(4 * len(names)))
    return path


def test_an_installed_lora_and_embedding_are_used_by_name_and_removed(
    daemon: Daemon, hub: FakeHub
) -> None:
    hub.files["lora.safetensors"] = (ADAPTERS / "loras" / "tiny-kohya.safetensors").read_bytes()
    lora = _install(daemon, {"source": f"{hub.url}/files/lora.safetensors", "id": "mylora"})
    emb = _install(
        daemon, {"source": str(ADAPTERS / "embeddings" / "tiny-a1111.safetensors"), "id": "myemb"}
    )
    assert lora["status"] == emb["status"] == "completed", (lora, emb)
    models = _models(daemon)
    assert (models / "loras" / "mylora.safetensors").is_file()
    assert (models / "embeddings" / "myemb.safetensors").is_file()
    with daemon.client() as c:
        listed = {m["id"]: m["type"] for m in c.get("/api/v1/models").json()}
        assert listed["mylora"] == "lora" and listed["myemb"] == "embedding"
        # Requests find them by the id they were installed under.
        body = {**GEN, "model": "sd-tiny", "loras": [{"name": "mylora", "weight": 1.0}]}
        job = c.post("/api/v1/generate", json=body)
        assert job.status_code == 202, job.text
        assert wait_status(c, job.json()["id"], {"completed", "failed"})["status"] == "completed"
        embeddings = c.get("/sdapi/v1/embeddings").json()
        assert "myemb" in {**embeddings["loaded"], **embeddings["skipped"]}
        loras = [item["name"] for item in c.get("/sdapi/v1/loras").json()]
        assert "mylora" in loras
        # Removing deletes the file, and leaves nothing half-deleted behind.
        assert c.delete("/api/v1/models/mylora").status_code == 200
        assert c.get("/api/v1/models/mylora").status_code == 404
    assert not (models / "loras" / "mylora.safetensors").exists()
    assert not list(models.glob(".*deleting"))


def test_adapters_put_in_place_by_hand_are_listed_and_removable(daemon: Daemon) -> None:
    models = _models(daemon)
    (models / "loras").mkdir(parents=True, exist_ok=True)
    shutil.copy(
        ADAPTERS / "loras" / "tiny-peft.safetensors", models / "loras" / "handmade.safetensors"
    )
    shutil.copytree(ADAPTERS / "vae" / "sd-tiny-vae-alt", models / "vae" / "handvae")
    with daemon.client() as c:
        listed = {m["id"]: m for m in c.get("/api/v1/models", params={"type": "lora,vae"}).json()}
        assert listed["handmade"]["type"] == "lora" and listed["handvae"]["type"] == "vae"
        assert (
            listed["handmade"]["size"] == (models / "loras" / "handmade.safetensors").stat().st_size
        )
        # Its name is taken: an install under it is refused before anything is fetched.
        taken = c.post(
            "/api/v1/models/install",
            json={"source": str(ADAPTERS / "loras" / "tiny-kohya.safetensors"), "id": "handmade"},
        )
        assert taken.status_code == 409, taken.text
        assert c.delete("/api/v1/models/handmade").status_code == 200
        assert c.delete("/api/v1/models/handvae").status_code == 200
    assert not (models / "loras" / "handmade.safetensors").exists()
    assert not (models / "vae" / "handvae").exists()


def test_an_adapter_of_the_wrong_kind_is_refused_before_a_job_is_queued(daemon: Daemon) -> None:
    models = _models(daemon)
    for folder in ("loras", "vae"):
        (models / folder).mkdir(parents=True, exist_ok=True)
    shutil.copy(
        ADAPTERS / "embeddings" / "tiny-a1111.safetensors", models / "loras" / "notlora.safetensors"
    )
    (models / "loras" / "dirlora.safetensors").mkdir(exist_ok=True)
    _safetensors(models / "vae" / "filevae.safetensors", ["decoder.conv_in.weight"])
    oft = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.oft_blocks"
    _safetensors(models / "loras" / "oftlora.safetensors", [oft])  # copied in by hand
    (models / "embeddings").mkdir(exist_ok=True)
    for pickled in (models / "loras" / "oldlora.pt", models / "embeddings" / "oldemb.pt"):
        pickled.write_bytes(pickle.dumps({"emb_params": [0.0]}))  # never opened
    cases = [
        ({"loras": [{"name": "oftlora", "weight": 1.0}]}, "loras[0].name", "OFT is not supported"),
        ({"loras": [{"name": "notlora", "weight": 1.0}]}, "loras[0].name", "holds no LoRA weights"),
        ({"loras": [{"name": "dirlora", "weight": 1.0}]}, "loras[0].name", "is a folder"),
        ({"vae": "filevae"}, "vae", "is a single file"),
        ({"loras": [{"name": "oldlora", "weight": 1.0}]}, "loras[0].name", "is a pickle"),
    ]
    with daemon.client() as c:
        before = c.get("/api/v1/queue").json()
        for extra, field, words in cases:
            answer = c.post("/api/v1/generate", json={**GEN, "model": "sd-tiny", **extra})
            assert answer.status_code == 422, (extra, answer.text)
            error = answer.json()["errors"][0]
            assert error["field"] == field and words in error["message"], error
        # A name that is not installed lists what could be named instead: not the single-file
        # VAE or the pickled LoRA, which no request can use.
        for extra, field, unusable in (
            ({"vae": "novae"}, "vae", "filevae"),
            ({"loras": [{"name": "nolora", "weight": 1.0}]}, "loras[0].name", "oldlora"),
        ):
            answer = c.post("/api/v1/generate", json={**GEN, "model": "sd-tiny", **extra})
            error = answer.json()["errors"][0]
            assert error["field"] == field and "installed: " in error["message"], error
            assert unusable not in error["message"], error
        assert c.get("/api/v1/queue").json() == before
        # The model list says the same of each, before anyone asks for it.
        listed = {m["id"]: m for m in c.get("/api/v1/models", params={"type": "lora"}).json()}
        for name, words in (("notlora", "holds no"), ("oftlora", "OFT"), ("dirlora", "folder")):
            assert words in listed[name]["problem"], listed[name]
        # A1111's pickled LoRAs and embeddings, copied over, say why they are not used...
        assert "is a pickle (oldlora.pt)" in listed["oldlora"]["problem"], listed["oldlora"]
        embeddings = {
            m["id"]: m for m in c.get("/api/v1/models", params={"type": "embedding"}).json()
        }
        assert "is a pickle (oldemb.pt)" in embeddings["oldemb"]["problem"], embeddings
        # ...and go when removed.
        for name in ("oldlora", "oldemb"):
            assert c.delete(f"/api/v1/models/{name}").status_code == 200
        assert not (models / "loras" / "oldlora.pt").exists()
        assert not (models / "embeddings" / "oldemb.pt").exists()


def test_a_vae_in_one_safetensors_file_is_refused_at_install(
    daemon: Daemon, tmp_path: Path
) -> None:
    names = ["decoder.conv_in.weight", "encoder.conv_in.weight"]
    vae = _safetensors(tmp_path / "onefile-vae.safetensors", names)
    done = _install(daemon, {"source": str(vae)})
    assert done["status"] == "failed", done
    assert (
        "VAE in one .safetensors file" in done["error"]
        and "vae_decoder/model.onnx" in done["error"]
    )
    assert not (_models(daemon) / "vae" / "onefile-vae.safetensors").exists()


def test_the_lookup_a_request_uses_finds_what_an_install_wrote(tmp_path: Path) -> None:
    """adapter_path is how the services and the worker turn a name into a file."""
    models = tmp_path / "models"
    (models / "loras").mkdir(parents=True)
    path = shutil.copy(
        ADAPTERS / "loras" / "tiny-kohya.safetensors", models / "loras" / "x.safetensors"
    )
    assert adapter_path(models, "loras", "x") == Path(path)


def test_adapters_installed_in_the_old_layout_move_to_their_folders(tmp_path: Path) -> None:
    """Before, a LoRA was installed as MODELS/ID/FILE.safetensors, where no request found it;
    the daemon moves such installs into loras/ (embeddings/) when it starts."""
    from impasto.store.models import ModelRecord
    from tests.api.conftest import make_services

    services = make_services(tmp_path)
    assert services.models is not None
    models = services.models.catalog.models_dir
    old = models / "oldlora" / "tiny-kohya.safetensors"
    old.parent.mkdir(parents=True)
    shutil.copy(ADAPTERS / "loras" / "tiny-kohya.safetensors", old)
    record = ModelRecord(id="oldlora", name="oldlora", type="lora", path=str(old), size=1)
    services.models.store.put(record)
    try:
        assert services.models.relocate_adapters() == 1
        moved = models / "loras" / "oldlora.safetensors"
        assert moved.is_file() and not old.parent.exists()
        assert services.models.store.get("oldlora").path == str(moved)  # type: ignore[union-attr]
        assert adapter_path(models, "loras", "oldlora") == moved
        assert services.models.relocate_adapters() == 0  # once
    finally:
        services.extra["db"].close()  # type: ignore[attr-defined]
