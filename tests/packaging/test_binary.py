"""The built program (`make package`): serve, health, generate, stop, with no Python.

Either build works: Nuitka's standalone folder (Linux's default, packaging/nuitka_layout.py)
or the onefile executable, whose payload is unpacked into a cache folder.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "packaging"))
sys.path.insert(0, str(REPO / "packaging" / "linux"))

import build_linux  # noqa: E402
import httpx  # noqa: E402
import smoke  # noqa: E402
from nuitka_layout import copy_program, standalone_folder  # noqa: E402

from tests.tools import ON_CI, linux_only, require  # noqa: E402

BINARY = Path(os.environ.get("IMPASTO_BINARY", REPO / "packaging" / "out" / "impasto"))

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _built() -> None:
    # These tests read /proc and unpack a .deb; build.yml smoke-tests the other systems' binaries.
    linux_only("the binary's process and package checks")
    # CI builds the binary before the tests (.ci/run, test.yml), so there a missing one fails.
    if not BINARY.is_file():
        message = f"no binary at {BINARY}: build it with `make package`"
        if ON_CI:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)


def test_the_binary_serves_generates_and_stops_cleanly(tmp_path: Path) -> None:
    summary = smoke.smoke(BINARY, tmp_path)
    cold = summary["cold"]
    assert cold["socket_health"] == "ok" and cold["images"], summary
    assert cold["exit_code"] == 0 and cold["discovery_removed"], summary
    assert summary["warm"]["exit_code"] == 0, summary
    cache = tmp_path / "cache" / "impasto"
    if summary["standalone"]:  # it runs where it lies: nothing is unpacked anywhere
        assert not cache.exists() or not any(cache.iterdir())
    else:  # the warm start reuses the unpacked files instead of unpacking them again
        assert len(list(cache.iterdir())) == 1


def _program_tree(tmp_path: Path) -> Path:
    """The folder the program's files run from: its standalone folder, or the unpacked cache."""
    folder = standalone_folder(BINARY)
    return folder if folder is not None else next((tmp_path / "cache" / "impasto").iterdir())


def test_the_binary_carries_its_own_runtime_and_no_torch(tmp_path: Path) -> None:
    env = smoke.clean_env(tmp_path, smoke.free_port())
    version = subprocess.run([BINARY, "version"], env=env, capture_output=True, text=True)
    assert version.returncode == 0 and version.stdout.startswith("impasto "), version
    unpacked = _program_tree(tmp_path)
    names = {p.name for p in unpacked.iterdir()}
    assert "torch" not in names and "diffusers" not in names and "optimum" not in names
    assert (unpacked / "impasto" / "ui_static" / "index.html").is_file()
    assert (unpacked / "impasto" / "bundled_models" / "sd-tiny" / "model_index.json").is_file()
    assert list((unpacked / "impasto" / "store" / "migrations").glob("*.sql"))
    assert any(p.name.startswith("libonnxruntime") for p in unpacked.rglob("*.so*"))


def test_the_deb_of_the_real_binary_runs_from_its_unpacked_tree(tmp_path: Path) -> None:
    require("dpkg-deb", "dpkg")
    work = tmp_path / "w"
    deb = build_linux.build_deb(BINARY, tmp_path / "out", "0.0.1", "amd64", work, "none")
    root = tmp_path / "root"
    subprocess.run(["dpkg", "-x", str(deb), str(root)], check=True)
    env = smoke.clean_env(tmp_path, smoke.free_port())
    # /usr/bin/impasto is an absolute link into /opt/impasto: follow it inside the unpacked tree.
    program = root / os.readlink(root / "usr" / "bin" / "impasto").lstrip("/")
    result = subprocess.run([program, "version"], env=env, capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.startswith("impasto ")


def test_workers_start_from_the_unpacked_binary_not_the_onefile_bootstrap(
    tmp_path: Path,
) -> None:
    local = copy_program(BINARY, tmp_path / "bin")
    port = smoke.free_port()
    env = smoke.clean_env(tmp_path, port)
    log = (tmp_path / "daemon.out").open("wb")
    daemon = subprocess.Popen([local, "serve"], env=env, stdout=log, stderr=log)
    try:
        smoke.wait_health(f"http://127.0.0.1:{port}", tmp_path / "run" / "impasto.sock", daemon)
        deadline = time.monotonic() + 60
        workers: list[int] = []
        while not workers and time.monotonic() < deadline:
            workers = [
                pid
                for pid in smoke.descendants(daemon.pid)
                if b"worker" in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            ]
            time.sleep(0.1)
        assert workers, "no worker process started"
        folder = standalone_folder(local)
        unpacked = folder if folder is not None else tmp_path / "cache" / "impasto"
        # A onefile start is a bootstrap whose child is the daemon; a standalone start is the
        # daemon itself.
        processes = [*smoke.descendants(daemon.pid), *([daemon.pid] if folder else [])]
        exes = {pid: os.readlink(f"/proc/{pid}/exe") for pid in processes}
        # Only the process we started runs the one file; the daemon and its worker run the
        # unpacked executable, with no second bootstrap process per worker.
        assert all(Path(exe).is_relative_to(unpacked) for exe in exes.values()), exes
        assert len(exes) >= 2, exes  # the daemon and its workers
    finally:
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(60) == 0
        log.close()


def test_the_binary_runs_the_tray_which_starts_and_stops_its_daemon(tmp_path: Path) -> None:
    """`impasto tray` from the binary, as the menu entry runs it: pystray's X backend and Xlib
    are in it, the daemon it starts is the binary again (`impasto serve`), and SIGTERM (as at
    logout) stops the tray and that daemon, leaving no process behind."""
    require("Xvfb", "xvfb")
    from tests.tray.xserver import FakeSystemTray, IconWindow, Xvfb

    xvfb = Xvfb(tmp_path / "xvfb.log")
    panel = FakeSystemTray(xvfb.name)
    env = {**smoke.clean_env(tmp_path, smoke.free_port()), "DISPLAY": xvfb.name}
    env.update(PYSTRAY_BACKEND="xorg", IMPASTO_TRAY_HOST_WAIT="30")
    output = tmp_path / "tray.out"
    with output.open("wb") as out:
        tray = subprocess.Popen([BINARY, "tray"], env=env, stdout=out, stderr=subprocess.STDOUT)
    icon: IconWindow | None = None
    try:
        deadline = time.monotonic() + 180
        while not panel.docked:
            assert tray.poll() is None and time.monotonic() < deadline, output.read_text()
            time.sleep(0.1)
        icon = IconWindow(xvfb.name, panel.docked[0])
        while icon.title() != "Impasto: Idle":  # the daemon it started answers
            assert tray.poll() is None and time.monotonic() < deadline, output.read_text()
            time.sleep(0.2)
        children = smoke.descendants(tray.pid)
        assert children, "the tray started no daemon"
        assert (tmp_path / "run" / "daemon.json").is_file()
        tray.send_signal(signal.SIGTERM)
        assert tray.wait(60) == 0, output.read_text()
        assert not (tmp_path / "run" / "daemon.json").exists()  # the daemon stopped cleanly
        left = [pid for pid in children if Path(f"/proc/{pid}").exists()]
        assert not left, f"processes left behind: {left}"
    finally:
        if tray.poll() is None:
            tray.kill()
            tray.wait()
        if icon is not None:
            icon.close()
        panel.close()
        xvfb.stop()


def test_the_binary_fuses_attention_and_quantises_when_it_installs_a_model(
    tmp_path: Path,
) -> None:
    """The binary carries no onnx package; its install still fuses (in an ``impasto
    convert-step`` child of its own), gives the text encoder clip skip's outputs and makes
    an int8 UNet on request."""
    from impasto.formats.onnx_model import OnnxModel
    from impasto.services.fusion import count_ops

    source = tmp_path / "home" / "sd-tiny"  # the home folder is a local install root
    shutil.copytree(REPO / "models" / "tiny" / "sd-tiny", source)
    port = smoke.free_port()
    env = smoke.clean_env(tmp_path, port)
    log = (tmp_path / "daemon.out").open("wb")
    daemon = subprocess.Popen([BINARY, "serve"], env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    models: dict[str, dict[str, object]] = {}
    try:
        smoke.wait_health(url, tmp_path / "run" / "impasto.sock", daemon)
        with httpx.Client(base_url=url, timeout=30) as client:
            for model_id, precision in (("f", "fp32"), ("q", "int8")):
                body = {"source": str(source), "id": model_id, "precision": precision}
                started = client.post("/api/v1/models/install", json=body)
                assert started.status_code == 202, started.text
                deadline = time.monotonic() + 300
                install: dict[str, object] = {}
                while install.get("status") not in ("completed", "failed"):
                    assert time.monotonic() < deadline, install
                    time.sleep(0.2)
                    install = client.get(f"/api/v1/models/installs/{started.json()['id']}").json()
                assert install["status"] == "completed", install
                models[model_id] = client.get(f"/api/v1/models/{model_id}").json()
    finally:
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(60) == 0
        log.close()
    # The API names an installed model's folder by its label, <models>/ID.
    assert models["f"]["path"] == "<models>/f", models["f"]
    installed = tmp_path / "data" / "models" / "f"
    for part, blocks in {"text_encoder": 2, "unet": 8, "vae_decoder": 1, "vae_encoder": 1}.items():
        counts = count_ops(OnnxModel.load(installed / part / "model.onnx"), ["MultiHeadAttention"])
        assert counts == {"MultiHeadAttention": blocks}, part
    assert models["f"]["clip_skip_max"] == 2, models["f"]
    assert models["q"]["precision"] == "int8", models["q"]
    quantised = OnnxModel.load(tmp_path / "data" / "models" / "q" / "unet" / "model.onnx")
    counts = count_ops(quantised, ["DynamicQuantizeMatMul", "MultiHeadAttention"])
    assert counts == {"DynamicQuantizeMatMul": 50, "MultiHeadAttention": 8}, counts


def test_the_binary_refuses_the_cluster_setting_it_cannot_serve(tmp_path: Path) -> None:
    """Ray is never compiled in: ``cluster`` set is one clear line and exit status 1."""
    env = {**smoke.clean_env(tmp_path, smoke.free_port()), "IMPASTO_CLUSTER": "auto"}
    result = subprocess.run([BINARY, "serve"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1, result.stderr
    assert "single binary runs local workers only" in result.stderr, result.stderr
    assert "pip install 'impasto[cluster]'" in result.stderr and "Traceback" not in result.stderr
