"""Models at run time, as a user switching between them sees it through a real daemon: load
and unload, keep_alive, and a model folder damaged or removed while a worker holds it."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from impasto.cli.main import main
from tests.harness import REPO, Daemon, running_daemon, wait_status

TINY_MODELS = REPO / "models" / "tiny"


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    root = tmp_path_factory.mktemp("model-runtime")
    models = root / "models"
    (models / "loras").mkdir(parents=True)
    shutil.copy(
        TINY_MODELS / "shapes-adapters" / "loras" / "shapes-dotted.safetensors", models / "loras"
    )
    # A keep-alive long enough that a load "kept for the setting" would show in the test.
    shutil.copytree(
        TINY_MODELS / "sd-tiny" / "vae_decoder", models / "vae" / "tinyvae" / "vae_decoder"
    )
    sources = root / "sources"
    sources.mkdir()
    with running_daemon(
        root, models_dir=str(models), keep_alive=600, install_roots=[str(sources)]
    ) as running:
        yield running


def _copy(daemon: Daemon, name: str) -> Path:
    folder = Path(str(daemon.settings["models_dir"])) / name
    shutil.copytree(TINY_MODELS / "sd-tiny", folder)
    (folder / "impasto-test-model").unlink(missing_ok=True)
    return folder


def _loaded(client: httpx.Client) -> list[dict[str, Any]]:
    return list(client.get("/api/v1/models/loaded").json())


def _wait_loaded(client: httpx.Client, want: set[str], timeout: float = 30.0) -> list[Any]:
    deadline = time.monotonic() + timeout
    held: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        held = _loaded(client)
        if {m["model"] for m in held} == want:
            return held
        time.sleep(0.05)
    raise AssertionError(f"workers hold {held}, not {want}")


def test_keep_alive_zero_drops_the_model_once_loaded(daemon: Daemon) -> None:
    _copy(daemon, "brief")
    with daemon.client() as client:
        answer = client.post("/api/v1/models/brief/load", params={"keep_alive": 0})
        assert answer.status_code == 200, answer.text
        # Not the keep_alive setting (600 s): dropped as soon as it is idle.
        _wait_loaded(client, set())
        kept = client.post("/api/v1/models/brief/load", params={"keep_alive": 120})
        assert kept.status_code == 200
        (held,) = _wait_loaded(client, {"brief"})
        assert 100 < held["expires_in"] <= 120
        assert client.post("/api/v1/models/brief/unload").status_code == 200
        _wait_loaded(client, set())


def _unknown_op_decoder(path: Path) -> None:
    """A well-formed VAE decoder graph whose one node is an operator nobody implements."""
    import onnx
    from onnx import TensorProto, helper

    dims = ["batch", 4, "h", "w"]
    graph = helper.make_graph(
        [helper.make_node("NoSuchOperator", ["latent_sample"], ["sample"], domain="impasto.x")],
        "vae_decoder",
        [helper.make_tensor_value_info("latent_sample", TensorProto.FLOAT, dims)],
        [helper.make_tensor_value_info("sample", TensorProto.FLOAT, ["batch", 3, "H", "W"])],
    )
    opsets = [helper.make_opsetid("", 18), helper.make_opsetid("impasto.x", 1)]
    for stale in path.parent.iterdir():
        stale.unlink()
    onnx.save(helper.make_model(graph, opset_imports=opsets), str(path))


def test_a_load_answers_once_the_model_is_held_or_says_why_it_could_not(daemon: Daemon) -> None:
    # `ollama run`: the answer comes when the model is in memory, or with the reason it is
    # not (here a graph only ONNX Runtime reads: the folder checks pass).
    _copy(daemon, "held-at-once")
    broken = _copy(daemon, "bad-graph")
    _unknown_op_decoder(broken / "vae_decoder" / "model.onnx")
    with daemon.client() as client:
        answer = client.post("/api/v1/models/held-at-once/load")
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"model": "held-at-once", "workers": 1, "loading": 0}
        assert [m["model"] for m in _loaded(client)] == ["held-at-once"]  # no waiting
        assert client.get("/api/v1/models/bad-graph").json()["problem"] == ""
        refused = client.post("/api/v1/models/bad-graph/load")
        assert refused.status_code == 422, refused.text
        (error,) = refused.json()["errors"]
        assert error["field"] == "model_id"
        assert error["message"].startswith("'bad-graph' could not be loaded: "), error
        assert str(daemon.settings["models_dir"]) not in refused.text  # as <models>
        assert _loaded(client) == []  # the one it held went first: one model at a time


def test_a_loaded_model_damaged_on_disk_is_refused_yet_can_be_unloaded(daemon: Daemon) -> None:
    folder = _copy(daemon, "damaged")
    with daemon.client() as client:
        assert client.post("/api/v1/models/damaged/load").status_code == 200
        _wait_loaded(client, {"damaged"})
        shutil.rmtree(folder / "tokenizer")

        listed = client.get("/api/v1/models/damaged").json()
        assert listed["problem"].startswith("unusable: tokenizer/vocab.json: missing"), listed
        job = client.post("/api/v1/generate", json={"prompt": "x", "model": "damaged"})
        assert job.status_code == 422, job.text
        assert job.json()["errors"][0]["field"] == "model"
        assert "tokenizer/vocab.json" in job.text
        (held,) = _loaded(client)
        assert held["size"] > 0  # still matched to its model, not shown as an unknown folder

        unloaded = client.post("/api/v1/models/damaged/unload")
        assert unloaded.status_code == 200, unloaded.text
        _wait_loaded(client, set())


def test_a_loaded_model_whose_folder_vanished_can_be_unloaded(daemon: Daemon) -> None:
    folder = _copy(daemon, "vanishing")
    with daemon.client() as client:
        assert client.post("/api/v1/models/vanishing/load").status_code == 200
        _wait_loaded(client, {"vanishing"})
        shutil.rmtree(folder)
        assert client.get("/api/v1/models/vanishing").status_code == 404
        unloaded = client.post("/api/v1/models/vanishing/unload")
        assert unloaded.status_code == 200, unloaded.text
        _wait_loaded(client, set())
        # Nothing loaded and nothing installed under that id: a plain 404 again.
        assert client.post("/api/v1/models/vanishing/unload").status_code == 404


def test_loading_an_adapter_says_what_it_is(daemon: Daemon) -> None:
    with daemon.client() as client:
        answer = client.post("/api/v1/models/shapes-dotted/load")
        assert answer.status_code == 422, answer.text
        error = answer.json()["errors"][0]
        assert error["field"] == "model_id"
        assert "is a lora" in error["message"]
        assert client.post("/api/v1/models/no-such-model/load").status_code == 404


def _worker_rss(client: httpx.Client) -> int:
    """Resident bytes of the daemon's (one) worker process, from /proc."""
    (worker,) = client.get("/api/v1/system").json()["workers"]
    for line in Path(f"/proc/{worker['pid']}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads RSS from /proc")
def test_unloading_gives_the_memory_back_and_the_expiry_counts_from_the_job_end(
    daemon: Daemon,
) -> None:
    from datetime import datetime

    with daemon.client() as client:
        body = {"prompt": "a red circle", "model": "impasto-shapes", "steps": 4}
        job = client.post("/api/v1/generate", json={**body, "width": 512, "height": 512})
        assert job.status_code == 202, job.text
        done = wait_status(client, job.json()["id"], {"completed", "failed"})
        assert done["status"] == "completed", done
        (held,) = _wait_loaded(client, {"impasto-shapes"})
        # The keep-alive (600 s) runs from the job's end, as the report says.
        deadline = time.monotonic() + 10
        finished = datetime.fromisoformat(done["completed_at"].replace("Z", "+00:00"))
        while time.monotonic() < deadline:
            (held,) = _loaded(client)
            expires = datetime.fromisoformat(held["expires_at"].replace("Z", "+00:00"))
            if (expires - finished).total_seconds() >= 599:
                break
            time.sleep(0.05)
        assert (expires - finished).total_seconds() >= 599, (held, done["completed_at"])

        loaded_rss = _worker_rss(client)
        assert client.post("/api/v1/models/impasto-shapes/unload").status_code == 200
        _wait_loaded(client, set())
        time.sleep(0.5)
        freed = loaded_rss - _worker_rss(client)
        # The model's sessions and its run's working memory: about 60 MB back to the system
        # (the C allocator kept all but about 14 MB of it before it was trimmed).
        assert freed > 35 * 1024 * 1024, freed


def test_a_model_is_listed_whole_while_its_install_warms_the_cache(daemon: Daemon) -> None:
    source = daemon.root / "sources" / "warming"
    shutil.copytree(TINY_MODELS / "sd-tiny", source)
    (source / "impasto-test-model").unlink(missing_ok=True)
    seen: list[dict[str, Any]] = []
    with daemon.client() as client:
        started = client.post("/api/v1/models/install", json={"source": str(source)})
        assert started.status_code == 202, started.text
        install = started.json()["id"]
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            stage = client.get(f"/api/v1/models/installs/{install}").json()["stage"]
            listed = [m for m in client.get("/api/v1/models").json() if m["id"] == "warming"]
            if stage == "cache":
                seen += listed
            if stage in ("completed", "failed", "cancelled"):
                break
        assert stage == "completed"
        final = client.get("/api/v1/models/warming").json()
    assert seen, "the install's cache step was never seen"
    for entry in seen:  # the same record as once completed, not a bare folder
        assert (entry["source"], entry["created_at"]) == (final["source"], final["created_at"])
        assert entry["source"], entry


def test_concurrent_removals_remove_once_and_the_rest_are_not_found(daemon: Daemon) -> None:
    from concurrent.futures import ThreadPoolExecutor

    folder = _copy(daemon, "twice")

    def remove(_: int) -> int:
        with daemon.client() as client:
            return client.delete("/api/v1/models/twice").status_code

    for _ in range(3):  # a race: a few rounds make it likely
        if not folder.exists():
            folder = _copy(daemon, "twice")
        with ThreadPoolExecutor(8) as pool:
            codes = sorted(pool.map(remove, range(8)))
        assert codes.count(200) == 1 and set(codes) <= {200, 404}, codes
        assert not folder.exists()
    with daemon.client() as client:
        assert "twice" not in {m["id"] for m in client.get("/api/v1/models").json()}


def test_an_adapter_a_queued_job_names_is_not_removed_without_force(daemon: Daemon) -> None:
    models = Path(str(daemon.settings["models_dir"]))
    shutil.copy(
        TINY_MODELS / "shapes-adapters" / "loras" / "shapes-dotted.safetensors",
        models / "loras" / "dots.safetensors",
    )
    body = {
        "prompt": "a red circle",
        "model": "sd-tiny",
        "steps": 2,
        "width": 64,
        "height": 64,
        "vae": "tinyvae",
        "loras": [{"name": "dots", "weight": 0.5}],
    }
    with daemon.client() as client:
        assert client.post("/api/v1/queue/pause").status_code in (200, 204)
        try:
            job = client.post("/api/v1/generate", json=body).json()["id"]
            for name in ("tinyvae", "dots"):
                refused = client.delete(f"/api/v1/models/{name}")
                assert refused.status_code == 409, refused.text
                assert job in refused.text and "force" in refused.text
            assert (models / "vae" / "tinyvae").is_dir()
            assert (models / "loras" / "dots.safetensors").is_file()
            forced = client.delete("/api/v1/models/tinyvae", params={"force": True})
            assert forced.status_code == 200, forced.text
        finally:
            client.post("/api/v1/queue/resume")
        done = wait_status(client, job, {"completed", "failed"})
        assert done["status"] == "failed" and "tinyvae" in done["error"], done
        assert client.delete("/api/v1/models/dots").status_code == 200


def _cached_sources(daemon: Daemon) -> list[str]:
    cache = daemon.data_dir / "cache" / "ort"
    return sorted(
        (entry / "source.txt").read_text()
        for entry in cache.glob("*/")
        if (entry / "source.txt").is_file()
    )


def test_removing_a_model_deletes_its_optimised_graphs_from_the_cache(daemon: Daemon) -> None:
    folder = _copy(daemon, "cached")
    keep = _copy(daemon, "cached-too")  # a name that starts the same: its entries stay
    with daemon.client() as client:
        for name in ("cached", "cached-too"):
            assert client.post(f"/api/v1/models/{name}/load").status_code == 200
            _wait_loaded(client, {name})
        root = str(folder.resolve())
        mine = [s for s in _cached_sources(daemon) if s.startswith(root + "/")]
        assert len(mine) >= 3, _cached_sources(daemon)  # text encoder, UNet, VAE decoder
        assert client.delete("/api/v1/models/cached").status_code == 200
    left = _cached_sources(daemon)
    assert not [s for s in left if s.startswith(root + "/")], left
    assert [s for s in left if s.startswith(str(keep.resolve()) + "/")]


def test_the_cli_loads_for_a_while_and_unloads(
    daemon: Daemon, capsys: pytest.CaptureFixture[str]
) -> None:
    # `impasto models load/unload` (ollama run / stop): the client had no keep_alive to send.
    _copy(daemon, "by-cli")
    url = ["--url", daemon.url, *(["--token", daemon.token] if daemon.token else [])]
    assert main(["models", "load", "by-cli", "--keep-alive", "90", *url]) == 0
    assert "loaded by-cli in 1 worker(s)" in capsys.readouterr().out
    with daemon.client() as client:
        (held,) = _wait_loaded(client, {"by-cli"})
        assert 60 < held["expires_in"] <= 90  # not the daemon's keep_alive (600 s)
        assert main(["models", "unload", "by-cli", *url]) == 0
        _wait_loaded(client, set())
    assert "unloading by-cli" in capsys.readouterr().out
