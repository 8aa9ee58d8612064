"""Builds this machine cannot run: refused after the graphs, before the weights, on a real daemon.

The daemon's workers run on the real CPU provider; the fake hub serves a CUDA-only build (Olive
style contrib operators, weights in model.onnx_data) and the portable tiny model.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from impasto.cli.main import main as cli_main
from tests.harness import Daemon
from tests.models_manager.conftest import TINY, wait_install
from tests.models_manager.fakehub import FakeHub, Repo, folder_files
from tests.models_manager.unrunnable import WEIGHTS, cuda_only_pipeline

CATALOG = """
[dual]
family = "sd1"
license = "mit"
description = "one model, a CUDA build and a portable one"
checked = "2026-12-02: the fake hub"

[dual.variants.cuda]
repo = "impasto/sd-cuda"
precision = "fp16"
size = 3_000_000

[dual.variants.portable]
repo = "impasto/sd-portable"
precision = "fp32"
size = 2_600_000
"""


@pytest.fixture(scope="module")
def olive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return cuda_only_pipeline(tmp_path_factory.mktemp("olive") / "sd-cuda", fp16=True)


@pytest.fixture(scope="module")
def inline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CUDA-only build with 12 MB of weights inside unet/model.onnx (no external data)."""
    return cuda_only_pipeline(
        tmp_path_factory.mktemp("inline") / "sd-inline", fp16=True, inline_bytes=12_000_000
    )


@pytest.fixture(scope="module")
def hub(olive: Path, inline: Path) -> Iterator[FakeHub]:
    server = FakeHub()
    server.add_repo("impasto/sd-cuda", Repo(folder_files(olive)))
    server.add_repo("impasto/sd-inline", Repo(folder_files(inline)))
    server.add_repo("impasto/sd-portable", Repo(folder_files(TINY / "sd-tiny")))
    yield server
    server.close()


@pytest.fixture(scope="module")
def daemon(hub: FakeHub, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    root = tmp_path_factory.mktemp("runnable")
    catalog = root / "catalog.toml"
    catalog.write_text(CATALOG)
    running = Daemon(root, hf_endpoint=hub.url, model_catalog=str(catalog), workers=1).start()
    running.wait_worker_ready()  # the workers report the CPU provider
    yield running
    running.stop()


def weight_requests(hub: FakeHub, olive: Path) -> list[str]:
    """Requests for the CUDA build's weights: by name through resolve, or by blob hash."""
    sha = hashlib.sha256((olive / "unet" / WEIGHTS).read_bytes()).hexdigest()
    return [p for _, p, _ in hub.requests if p.endswith(f"unet/{WEIGHTS}") or sha in p]


def test_hub_install_stops_after_the_graph_files(daemon: Daemon, hub: FakeHub, olive: Path) -> None:
    with daemon.client() as c:
        started = c.post("/api/v1/models/install", json={"source": "impasto/sd-cuda"}).json()
        done = wait_install(c, started["id"], {"completed", "failed"})
        assert c.get("/api/v1/models/sd-cuda").status_code == 404
    assert done["status"] == "failed", done
    error = done["error"]
    assert "cannot run on this machine's execution provider (CPU)" in error
    assert "GroupNorm" in error and "NhwcConv" in error and "com.microsoft" in error
    assert "It runs on: CUDA, DirectML" in error
    assert "portable" in error and "--force" in error
    # The graph was read; its weights never left the hub.
    assert any("/resolve/" in p and p.endswith("/unet/model.onnx") for _, p, _ in hub.requests)
    assert weight_requests(hub, olive) == []
    weights = (olive / "unet" / WEIGHTS).stat().st_size
    assert done["bytes_total"] - done["bytes_done"] == weights  # all but the weights came down
    assert not (daemon.data_dir / "models" / "sd-cuda").exists()


def test_force_installs_it_listed_as_not_runnable_here(
    daemon: Daemon, hub: FakeHub, olive: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli_main(
        ["pull", "impasto/sd-cuda", "--id", "cuda-copy", "--force", "--url", daemon.url]
    )
    captured = capsys.readouterr()
    assert code == 0, captured
    assert "installed cuda-copy" in captured.out
    assert "warning:" in captured.err and "NhwcConv" in captured.err
    assert (daemon.data_dir / "models" / "cuda-copy" / "unet" / WEIGHTS).is_file()
    assert weight_requests(hub, olive)  # forced: the weights came down this time
    with daemon.client() as c:
        model = c.get("/api/v1/models/cuda-copy").json()
    assert model["runs_here"] is False
    assert model["runs_on"] == ["CUDA", "DirectML"]
    assert "GroupNorm" in model["not_here"]
    assert cli_main(["models", "info", "cuda-copy", "--url", daemon.url]) == 0
    out = capsys.readouterr().out
    lines = [" ".join(line.split()) for line in out.splitlines()]
    assert "runs on: CUDA, DirectML" in lines
    assert any(line.startswith("not here: no CPU kernel for GroupNorm") for line in lines)


def test_local_folder_install_is_flagged_with_the_reason(daemon: Daemon, olive: Path) -> None:
    with daemon.client() as c:
        body = {"source": str(olive), "id": "local-cuda"}
        started = c.post("/api/v1/models/install", json=body).json()
        done = wait_install(c, started["id"], {"completed", "failed"})
        model = c.get("/api/v1/models/local-cuda").json()
        listed = {m["id"]: m for m in c.get("/api/v1/models").json()}
    assert done["status"] == "completed", done
    assert "local-cuda cannot run" in done["warning"] and "NhwcConv" in done["warning"]
    assert model["runs_here"] is False and "no CPU kernel" in model["not_here"]
    assert listed["local-cuda"]["runs_here"] is False
    assert listed["sd-tiny"]["runs_here"] is True  # the bundled portable models run here


def test_catalog_name_gets_the_build_this_machine_runs(
    daemon: Daemon, hub: FakeHub, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli_main(["pull", "--list", "--url", daemon.url]) == 0
    listing = capsys.readouterr().out
    assert "dual  (sd1, license mit)" in listing
    assert "* portable" in listing and "  cuda" in listing
    assert "this machine: CPU gets the portable build: impasto/sd-portable" in listing
    code = cli_main(["pull", "dual", "--url", daemon.url])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "dual: CPU gets the portable build: impasto/sd-portable (fp32" in out
    with daemon.client() as c:
        model = c.get("/api/v1/models/dual").json()
        catalog = {e["name"]: e for e in c.get("/api/v1/models/catalog").json()}
    assert model["source"].startswith("hf://impasto/sd-portable") and model["runs_here"] is True
    assert catalog["dual"]["chosen"] == "portable"
    assert {v["key"] for v in catalog["dual"]["variants"]} == {"cuda", "portable"}


def test_naming_the_cuda_build_on_cpu_is_refused_before_its_weights(
    daemon: Daemon, hub: FakeHub, olive: Path
) -> None:
    before = len(weight_requests(hub, olive))
    with daemon.client() as c:
        body = {"source": "dual", "variant": "cuda", "id": "dual-cuda"}
        started = c.post("/api/v1/models/install", json=body)
        assert started.status_code == 202, started.text
        done = wait_install(c, started.json()["id"], {"completed", "failed"})
        bad = c.post("/api/v1/models/install", json={"source": "dual", "variant": "gpu"})
    assert done["status"] == "failed" and "NhwcConv" in done["error"]
    assert len(weight_requests(hub, olive)) == before
    assert bad.status_code == 422 and "variant" in bad.text
    assert "no 'gpu' build; it has: cuda, portable" in bad.text


def test_int8_of_an_fp16_build_is_refused_before_the_download(daemon: Daemon, hub: FakeHub) -> None:
    """int8 quantises an fp32 UNet: naming the fp16 CUDA build with it is a 422 on the request,
    not a failure after the download; without the name, the fp32 build is taken."""
    requests = len(hub.requests)
    with daemon.client() as c:
        body = {"source": "dual", "variant": "cuda", "precision": "int8", "id": "dual-int8"}
        refused = c.post("/api/v1/models/install", json=body)
        installs = c.get("/api/v1/models/installs").json()
    assert refused.status_code == 422, refused.text
    error = refused.json()["errors"][0]
    assert error["field"] == "precision"
    assert "cuda build is fp16" in error["message"] and "variant" in error["message"]
    assert len(hub.requests) == requests  # nothing was fetched
    assert all(i.get("model_id") != "dual-int8" for i in installs)


def test_inline_weights_are_peeked_at_not_downloaded(
    daemon: Daemon, hub: FakeHub, inline: Path
) -> None:
    unet = (inline / "unet" / "model.onnx").read_bytes()
    blob = f"/blobs/{hashlib.sha256(unet).hexdigest()}"
    with daemon.client() as c:
        started = c.post("/api/v1/models/install", json={"source": "impasto/sd-inline"}).json()
        done = wait_install(c, started["id"], {"completed", "failed"})
    assert done["status"] == "failed" and "NhwcConv" in done["error"], done
    gets = [r for m, p, r in hub.requests if m == "GET" and p == blob]
    # Two ranged reads (the head with the nodes, the tail with the opsets), never the whole file.
    assert len(gets) == 2 and gets[0] == "bytes=0-"
    assert int(gets[1].removeprefix("bytes=").rstrip("-")) > len(unet) - 1000
    assert done["bytes_total"] - done["bytes_done"] == len(unet)
