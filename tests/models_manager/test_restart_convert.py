"""A daemon killed mid-download resumes the install; checkpoints are converted and used.

A diffusers folder and an original-layout single-file checkpoint both become ONNX; fp16 is an
extra optimize stage.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import onnx
import pytest
from safetensors.numpy import save_file

from impasto.cli.main import main as cli_main
from tests.harness import REPO, Daemon, wait_status
from tests.models_manager.conftest import TINY, tar_gz, unet_output, wait_install
from tests.models_manager.fakehub import FakeHub, Repo, folder_files
from tests.models_manager.ldm import write_single_file

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
    work = tmp_path_factory.mktemp("tokenizer-work")  # the builder's scratch, removed by pytest
    script = (
        "import sys; from pathlib import Path; sys.path.insert(0, 'models');"
        "import build_tiny as b;"
        f"b.build_pipeline(b.TINY['sd-tiny'], Path({str(work)!r}), full=False)"
        f".save_pretrained({str(out)!r})"
    )
    subprocess.run([sys.executable, "-c", script], cwd=REPO, check=True, capture_output=True)
    return out


def _install(c: httpx.Client, body: dict[str, Any]) -> tuple[dict[str, Any], set[str]]:
    """Start an install and follow it to its end; returns the last state and every stage seen."""
    started = c.post("/api/v1/models/install", json=body)
    assert started.status_code == 202, started.text
    stages = set()
    deadline = time.monotonic() + 180
    while True:
        state = c.get(f"/api/v1/models/installs/{started.json()['id']}").json()
        stages.add(state["stage"])
        if state["status"] not in ("queued", "running"):
            return state, stages
        assert time.monotonic() < deadline, state
        time.sleep(0.1)


@pytest.fixture(scope="module")
def converted(daemon: Daemon, diffusers_folder: Path) -> tuple[dict[str, Any], set[str]]:
    """The tiny diffusers folder installed (converted) as 'converted': its model and stages."""
    with daemon.client() as c:
        state, stages = _install(c, {"source": str(diffusers_folder), "id": "converted"})
        assert state["status"] == "completed", state
        return c.get("/api/v1/models/converted").json(), stages


def test_convert_a_diffusers_folder_then_generate(
    daemon: Daemon, converted: tuple[dict[str, Any], set[str]]
) -> None:
    model, stages = converted
    # fp32 on the CPU: no fp16 rewrite, but the optimise stage fuses attention and the cache
    # stage warms ONNX Runtime's optimised graphs.
    assert {"convert", "optimize", "cache"} <= stages
    assert model["family"] == "sd1" and model["precision"] == "fp32"
    installed = daemon.local_path(model["path"])
    assert b"MultiHeadAttention" in (installed / "unet" / "model.onnx").read_bytes()
    assert not list(installed.rglob("*.safetensors"))  # the torch weights stay behind
    # Every text encoder layer's output is exported (optimum does so for SDXL only), so
    # AUTOMATIC1111's clip skip works on converted SD 1.x models.
    encoder = onnx.load(str(installed / "text_encoder" / "model.onnx"), load_external_data=False)
    outputs = {output.name for output in encoder.graph.output}
    assert {"last_hidden_state", "hidden_states.0", "hidden_states.2"} <= outputs, outputs
    pictures = []
    with daemon.client() as c:
        for clip_skip in (1, 2):
            body = {**GEN, "model": "converted", "clip_skip": clip_skip}
            job = c.post("/api/v1/generate", json=body).json()
            done = wait_status(c, job["id"], {"completed", "failed"})
            assert done["status"] == "completed", done
            pictures.append(c.get(done["results"][0]["url"]).content)
    assert pictures[0] != pictures[1]


def test_a_single_file_checkpoint_converts_with_configs_from_the_hub(
    daemon: Daemon,
    hub: FakeHub,
    diffusers_folder: Path,
    converted: tuple[dict[str, Any], set[str]],
    tmp_path: Path,
) -> None:
    # The original-layout checkpoint people download from model sites, made from the same
    # weights as the diffusers folder; diffusers picks SD 1.5's repo from its tensor names and
    # fetches only that repo's configs, here from the fake hub.
    checkpoint = write_single_file(diffusers_folder, tmp_path / "tiny-ldm.safetensors")
    configs = {
        name: data
        for name, data in folder_files(diffusers_folder).items()
        if name.endswith((".json", ".txt"))
    }
    hub.add_repo("stable-diffusion-v1-5/stable-diffusion-v1-5", Repo(configs))
    hub.files["tiny-ldm.safetensors"] = checkpoint.read_bytes()
    with daemon.client() as c:
        body = {"source": f"{hub.url}/files/tiny-ldm.safetensors", "id": "single-file"}
        state, stages = _install(c, body)
        assert state["status"] == "completed", state
        assert "convert" in stages
        model = c.get("/api/v1/models/single-file").json()
        assert model["family"] == "sd1" and model["type"] == "checkpoint"
        job = c.post("/api/v1/generate", json={**GEN, "model": "single-file"}).json()
        assert wait_status(c, job["id"], {"completed", "failed"})["status"] == "completed"
    fetched = {path for _, path, _ in hub.requests if "stable-diffusion-v1-5" in path}
    assert any(path.endswith("unet/config.json") for path in fetched), fetched
    assert not any(path.endswith(".safetensors") for path in fetched)
    # Same weights as the folder converted above, so the same UNet.
    installed = daemon.local_path(model["path"])
    reference = daemon.local_path(converted[0]["path"])
    np.testing.assert_allclose(unet_output(installed), unet_output(reference), atol=1e-5)


def test_a_configs_folder_that_does_not_exist_is_refused(daemon: Daemon, tmp_path: Path) -> None:
    checkpoint = tmp_path / "x.safetensors"
    checkpoint.write_bytes(b"")
    with daemon.client() as c:
        body = {"source": str(checkpoint), "config": str(tmp_path / "nowhere")}
        refused = c.post("/api/v1/models/install", json=body)
        assert refused.status_code == 422, refused.text
        assert refused.json()["errors"][0]["field"] == "config"
        assert all(i["model_id"] != "x" for i in c.get("/api/v1/models/installs").json())


def test_fp16_conversion_is_an_optimize_stage(
    daemon: Daemon, diffusers_folder: Path, converted: tuple[dict[str, Any], set[str]]
) -> None:
    with daemon.client() as c:
        body = {"source": str(diffusers_folder), "id": "converted-fp16", "precision": "fp16"}
        state, stages = _install(c, body)
        assert state["status"] == "completed", state
        assert {"convert", "optimize"} <= stages
        model = c.get("/api/v1/models/converted-fp16").json()
        assert model["precision"] == "fp16"
        job = c.post("/api/v1/generate", json={**GEN, "model": "converted-fp16"}).json()
        assert wait_status(c, job["id"], {"completed", "failed"})["status"] == "completed"
    # The weights become fp16 and the UNet stays close to the fp32 conversion.
    fp16, fp32 = daemon.local_path(model["path"]), daemon.local_path(converted[0]["path"])
    for component in ("unet", "text_encoder", "vae_decoder"):
        weights = onnx.load(str(fp16 / component / "model.onnx")).graph.initializer
        halves = sum(w.data_type == onnx.TensorProto.FLOAT16 for w in weights)
        singles = sum(w.data_type == onnx.TensorProto.FLOAT for w in weights)
        assert halves > 10 * singles, (component, halves, singles)
    np.testing.assert_allclose(unet_output(fp16), unet_output(fp32), atol=0.05)


def test_cli_single_file_with_configs_from_a_local_folder(
    daemon: Daemon,
    hub: FakeHub,
    diffusers_folder: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    checkpoint = write_single_file(diffusers_folder, tmp_path / "local-ldm.safetensors")
    before = len(hub.requests)
    args = ["pull", str(checkpoint), "--id", "sf-local", "--url", daemon.url]
    code = cli_main([*args, "--diffusers-config", str(diffusers_folder)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "installed sf-local" in out
    assert hub.requests[before:] == []  # the configs came from the folder, not the hub
    with daemon.client() as c:
        assert c.get("/api/v1/models/sf-local").json()["family"] == "sd1"


def test_a_single_file_says_v_prediction_by_marker_or_a1111_yaml(
    daemon: Daemon, diffusers_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """diffusers' configs for a single file are the base model's (epsilon); a v-prediction
    fine-tune says so with ComfyUI's marker tensors or an A1111 ``.yaml`` beside it."""
    markers = write_single_file(
        diffusers_folder, tmp_path / "zsnr.safetensors", markers=("v_pred", "ztsnr")
    )
    sidecar = write_single_file(diffusers_folder, tmp_path / "yaml-v.safetensors")
    sidecar.with_suffix(".yaml").write_text(
        "model:\n  target: ldm.models.diffusion.ddpm.LatentDiffusion\n"
        '  params:\n    parameterization: "v"\n',
        encoding="utf-8",
    )
    plain = write_single_file(diffusers_folder, tmp_path / "plain.safetensors")
    for path in (markers, sidecar, plain):
        args = ["pull", str(path), "--id", path.stem, "--url", daemon.url]
        code = cli_main([*args, "--diffusers-config", str(diffusers_folder)])
        assert code == 0, capsys.readouterr().out
    with daemon.client() as c:
        models = {m: c.get(f"/api/v1/models/{m}").json() for m in ("zsnr", "yaml-v", "plain")}
    predictions = {m: models[m]["prediction_type"] for m in models}
    assert predictions == {"zsnr": "v_prediction", "yaml-v": "v_prediction", "plain": "epsilon"}
    # The tiny model's text width is 32, not SD 1.x's 768: v-prediction makes it sd2-v.
    assert [models[m]["family"] for m in ("zsnr", "yaml-v", "plain")] == ["sd2-v", "sd2-v", "sd1"]
    config = json.loads(
        (
            daemon.local_path(models["zsnr"]["path"]) / "scheduler" / "scheduler_config.json"
        ).read_text()
    )
    assert config["rescale_betas_zero_snr"] is True and config["timestep_spacing"] == "trailing"
    plain_config = (
        daemon.local_path(models["plain"]["path"]) / "scheduler" / "scheduler_config.json"
    )
    assert not json.loads(plain_config.read_text()).get("rescale_betas_zero_snr")


def test_a_linked_yaml_beside_a_checkpoint_is_refused(daemon: Daemon, tmp_path: Path) -> None:
    secret = tmp_path / "elsewhere.txt"
    secret.write_text("model: {}\n", encoding="utf-8")
    checkpoint = tmp_path / "linked.safetensors"
    save_file({"model.diffusion_model.out.2.bias": np.zeros(4, np.float32)}, str(checkpoint))
    checkpoint.with_suffix(".yaml").symlink_to(secret)
    with daemon.client() as c:
        state, _ = _install(c, {"source": str(checkpoint), "id": "linked"})
    assert state["status"] == "failed" and "symbolic link" in state["error"], state
