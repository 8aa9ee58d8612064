"""Fixtures: a fake hub / file server and a daemon pointed at it."""

from __future__ import annotations

import io
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import onnxruntime as ort
import pytest

from tests.harness import REPO, Daemon
from tests.models_manager.fakehub import FakeHub, Repo, folder_files

TINY = REPO / "models" / "tiny"


@pytest.fixture(scope="module")
def hub() -> Iterator[FakeHub]:
    """A fake hub serving the tiny models: impasto/sd-tiny has them on an 'onnx' branch."""
    server = FakeHub()
    files = folder_files(TINY / "sd-tiny", "onnx/")
    files["README.md"] = b"# tiny\n"
    files["onnx/unet/weights.bin"] = b"\x80\x04not wanted"  # never fetched: not in the layout
    server.add_repo("impasto/sd-tiny", Repo(files, revisions=("main", "onnx")))
    yield server
    server.close()


@pytest.fixture(scope="module")
def daemon(hub: FakeHub, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """One daemon for the module, with the hub endpoint and a catalog naming the fake repo."""
    root = tmp_path_factory.mktemp("mm")
    catalog = root / "catalog.toml"
    catalog.write_text(
        '[tiny]\nrepo = "impasto/sd-tiny"\nrevision = "onnx"\nsubfolder = "onnx"\n'
        'family = "sd1"\nlicense = "apache-2.0"\ndescription = "the tiny test model"\n'
    )
    running = Daemon(root, hf_endpoint=hub.url, model_catalog=str(catalog), workers=1).start()
    running.wait_worker_ready()
    yield running
    running.stop()


def wait_install(
    client: httpx.Client, install_id: str, statuses: set[str], timeout: float = 60.0
) -> dict[str, Any]:
    """Poll an install until it reaches one of ``statuses``."""
    deadline = time.monotonic() + timeout
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        body = client.get(f"/api/v1/models/installs/{install_id}").json()
        if body["status"] in statuses:
            return body
        time.sleep(0.05)
    raise TimeoutError(f"install {install_id} stuck: {body}")


def tar_gz(folder: Path, top: str) -> bytes:
    """A .tar.gz of ``folder`` under one top-level directory."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        tf.add(folder, arcname=top)
    return buf.getvalue()


def unet_output(folder: Path) -> np.ndarray:
    """A pipeline folder's UNet output on fixed inputs, as fp32 (for fp32 or fp16 graphs)."""
    session = ort.InferenceSession(str(folder / "unet" / "model.onnx"))
    dtypes = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(int64)": np.int64}
    types = {i.name: dtypes[i.type] for i in session.get_inputs()}
    rng = np.random.default_rng(0)
    feeds = {
        "sample": rng.standard_normal((1, 4, 8, 8)).astype(types["sample"]),
        "timestep": np.array(500, dtype=types["timestep"]),
        "encoder_hidden_states": rng.standard_normal((1, 77, 32)).astype(
            types["encoder_hidden_states"]
        ),
    }
    return np.asarray(session.run(None, feeds)[0], dtype=np.float32)
