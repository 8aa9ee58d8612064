"""Names a request carries that the file system cannot hold: too long for a file name (over
255 bytes, or 255 characters that take more), or with a NUL. Looking one up raised instead of
finding nothing (``Path.is_dir()`` raises ENAMETOOLONG; a NUL is a ValueError), so the daemon
answered 500. Each is now what it is: nothing by that name."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import pytest

from impasto.fsnames import NAME_MAX, exists, plain_name
from impasto.worker.files import NotInstalledError, adapter_path
from tests.harness import Daemon

# 300 bytes; 256 bytes in 128 characters; a NUL; 250 bytes, whose ".safetensors" file name
# would be 262.
NAMES = ["a" * 300, "é" * 128, "a\x00b", "a" * 250]


@pytest.mark.parametrize("name", NAMES, ids=["long", "long-bytes", "nul", "long-with-suffix"])
def test_odd_names_are_missing_things_not_server_errors(impasto_daemon: Daemon, name: str) -> None:
    quoted = quote(name, safe="")
    missing = [
        ("GET", f"/api/v1/models/{quoted}"),
        ("POST", f"/api/v1/models/{quoted}/load"),
        ("POST", f"/api/v1/models/{quoted}/unload"),
        ("GET", f"/{quoted}"),  # the web UI's files
        ("GET", f"/index.html/{quoted}"),  # a name under a file
        ("GET", f"/js/{quoted}"),
        ("GET", f"/schema-assets/{quoted}"),
    ]
    refused = [
        ("/api/v1/generate", {"prompt": "x", "model": name}, "model"),
        ("/api/v1/generate/plan", {"prompt": "x", "vae": name}, "vae"),
        ("/api/v1/generate/plan", {"prompt": "x", "loras": [{"name": name}]}, "loras[0].name"),
        ("/api/v1/models/install", {"source": f"/tmp/{name}"}, "source"),
        ("/api/v1/models/install", {"source": name}, "source"),
    ]
    with impasto_daemon.client() as client:
        for method, path in missing:
            assert client.request(method, path).status_code == 404, (method, path)
        for path, body, field in refused:
            response = client.post(path, json=body)
            assert response.status_code == 422, (path, response.text[:300])
            assert response.json()["errors"][0]["field"] == field
        # AUTOMATIC1111's options name a checkpoint: not one of ours, so a 422, not a 500.
        options = client.post("/sdapi/v1/options", json={"sd_model_checkpoint": name})
        assert options.status_code == 422, options.text[:300]
        assert client.get("/api/v1/health").json()["status"] == "ok"


def test_plain_name_is_one_entry_the_file_system_can_hold() -> None:
    assert plain_name("sd-tiny") and plain_name("a" * NAME_MAX) and plain_name("é" * 127)
    for name in ["", ".", "..", ".hidden", "a/b", "a\\b", "a\x00b", "a" * 256, "é" * 128]:
        assert not plain_name(name), name


def test_lookups_answer_false_for_what_cannot_exist(tmp_path: Path) -> None:
    for path in [tmp_path / ("a" * 300), tmp_path / "a\x00b", tmp_path / "a" / ("b" * 300)]:
        assert not exists(path)
    assert exists(tmp_path)


def test_an_adapter_whose_file_name_would_be_too_long_is_not_installed(tmp_path: Path) -> None:
    (tmp_path / "loras").mkdir()
    with pytest.raises(NotInstalledError):
        adapter_path(tmp_path, "loras", "a" * 250)  # "a" * 250 + ".safetensors": 262 bytes
