"""impasto-styles through a real daemon: the stored prompt carries the style's text."""

from __future__ import annotations

import io
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from impasto.formats.png import read_png_metadata
from tests.harness import TINY, Daemon, wait_status

STYLES = """
[cinematic]
prompt = "cinematic still of {prompt}, film grain"
negative_prompt = "cartoon"

[moody]
prompt = "dark and moody"
"""


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    running = Daemon(tmp_path_factory.mktemp("styles"), preview_every=0)
    running.data_dir.mkdir(parents=True)
    (running.data_dir / "my-styles.toml").write_text(STYLES)
    running.root.joinpath("config.toml").write_text('[plugins.styles]\nfile = "my-styles.toml"\n')
    running.start().wait_worker_ready()
    yield running
    running.stop()


def test_styles_rewrite_the_stored_prompt(daemon: Daemon) -> None:
    with daemon.client() as client:
        body = {**TINY, "prompt": "a lighthouse", "negative_prompt": "blurry"}
        job = client.post(
            "/api/v1/generate", json={**body, "plugins": {"styles": ["cinematic", "moody"]}}
        )
        assert job.status_code == 202, job.text
        done = wait_status(client, job.json()["id"], {"completed", "failed"})
        png = client.get(done["results"][0]["url"]).content
    expected = "cinematic still of a lighthouse, film grain, dark and moody"
    assert done["request"]["prompt"] == expected
    assert done["request"]["negative_prompt"] == "blurry, cartoon"
    assert read_png_metadata(png)["impasto"]["prompt"] == expected
    assert Image.open(io.BytesIO(png)).size == (64, 64)


def test_unknown_style_is_a_422_listing_the_known_ones(daemon: Daemon) -> None:
    with daemon.client() as client:
        body = {**TINY, "prompt": "x", "plugins": {"styles": ["noir"]}}
        response = client.post("/api/v1/generate", json=body)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert "'styles'" in detail and "noir" in detail and "cinematic, moody" in detail
    assert response.json()["errors"][0]["field"] == "plugins.styles"


@pytest.mark.parametrize("options", [5, {"name": "noir"}, [1, 2]])
def test_options_of_another_type_are_a_422_saying_what_it_takes(
    daemon: Daemon, options: object
) -> None:
    """Not ``TypeError: 'int' object is not iterable`` from inside the plugin."""
    with daemon.client() as client:
        body = {**TINY, "prompt": "x", "plugins": {"styles": options}}
        response = client.post("/api/v1/generate", json=body)
    assert response.status_code == 422, response.text
    error = response.json()["errors"][0]
    assert error["field"] == "plugins.styles"
    assert error["message"].startswith("plugin 'styles' takes list[str] | str | None here: ")
    assert "TypeError" not in error["message"]


def test_thousands_of_unknown_names_are_not_all_repeated(daemon: Daemon) -> None:
    names = [f"style{i}" for i in range(5000)]
    with daemon.client() as client:
        body = {**TINY, "prompt": "x", "plugins": {"styles": names}}
        response = client.post("/api/v1/generate", json=body)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert "style0, style1, style2, style3, style4 and 4995 more" in detail, detail
    assert len(detail) < 500


def test_an_a1111_client_is_told_about_the_field_it_sent(daemon: Daemon) -> None:
    with daemon.client() as client:
        body = {"prompt": "x", "styles": ["noir"], "steps": 2, "width": 64, "height": 64}
        response = client.post("/sdapi/v1/txt2img", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["body", "styles"], response.text
    assert "noir" in response.json()["detail"][0]["msg"]


def test_route_lists_the_styles(daemon: Daemon) -> None:
    with daemon.client() as client:
        styles = client.get("/api/v1/plugins/styles/").json()
    assert styles["cinematic"]["negative_prompt"] == "cartoon" and set(styles) == {
        "cinematic",
        "moody",
    }


def test_a_broken_styles_file_is_named_and_an_edit_keeps_the_last_good_styles(
    daemon: Daemon,
) -> None:
    styles = daemon.data_dir / "my-styles.toml"
    body = {**TINY, "prompt": "x", "plugins": {"styles": ["moody"]}}
    with daemon.client() as client:
        assert client.get("/api/v1/plugins/styles/").status_code == 200  # read once: good
        styles.write_text(STYLES + "[[broken\n")
        os.utime(styles, (time.time() + 5, time.time() + 5))  # a new mtime, whatever the clock
        # The styles as last read stay in use, for requests and listings alike.
        assert set(client.get("/api/v1/plugins/styles/").json()) == {"cinematic", "moody"}
        assert client.post("/api/v1/generate/plan", json=body).json()["prompt"] == (
            "x, dark and moody"
        )
        log = (daemon.log_dir / "daemon.log").read_text()
        assert "my-styles.toml: not readable as TOML" in log and "as last read" in log
        styles.write_text(STYLES)


def test_a_styles_file_broken_from_the_start_is_a_422_naming_it(tmp_path: Path) -> None:
    running = Daemon(tmp_path / "d", preview_every=0)
    running.data_dir.mkdir(parents=True)
    (running.data_dir / "styles.toml").write_text("[[broken\n")
    running.start()
    try:
        with running.client() as client:
            body = {**TINY, "prompt": "x", "plugins": {"styles": ["moody"]}}
            answer = client.post("/api/v1/generate", json=body)
            assert client.get("/api/v1/plugins/styles/").json() == {}
            assert client.get("/sdapi/v1/prompt-styles").status_code == 200
    finally:
        running.stop()
    assert answer.status_code == 422
    detail = answer.json()["detail"]
    assert "<data>/styles.toml: not readable as TOML" in detail, detail
    assert str(running.data_dir) not in detail  # the local path stays on this machine
