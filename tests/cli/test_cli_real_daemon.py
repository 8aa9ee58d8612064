"""The CLI against a real daemon: ids sent as one path segment, a closed stdout, pictures never
written over, a job's warnings, the catalog listing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from impasto.cli.common import EXIT_BROKEN_PIPE
from impasto.cli.main import main
from tests.harness import REPO, Daemon
from tests.models_manager.conftest import wait_install

TINY_MODELS = REPO / "models" / "tiny"


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """A daemon with tiny-kohya in its models folder and a catalog entry of no size."""
    root = tmp_path_factory.mktemp("cli-daemon")
    catalog = root / "catalog.toml"
    catalog.write_text(
        '[plain]\nrepo = "impasto/plain"\nfamily = "sd1"\n\n'
        '[sized]\nfamily = "sd1"\n[sized.variants.portable]\nrepo = "impasto/sized"\n'
        'precision = "fp32"\nsize = 4_300_000_000\n'
    )
    models = root / "models"
    (models / "loras").mkdir(parents=True)
    (models / "loras" / "tiny-kohya.safetensors").write_bytes(
        (TINY_MODELS / "adapters" / "loras" / "tiny-kohya.safetensors").read_bytes()
    )
    running = Daemon(root, models_dir=str(models), model_catalog=str(catalog), workers=1)
    running.start().wait_worker_ready()
    yield running
    running.stop()


@pytest.fixture
def localtiny(daemon: Daemon) -> Iterator[str]:
    """An installed (removable) model, ``localtiny``; removed again after the test."""
    with daemon.client() as c:
        body = {"source": str(TINY_MODELS / "sd-tiny"), "id": "localtiny"}
        started = c.post("/api/v1/models/install", json=body)
        assert started.status_code == 202, started.text
        done = wait_install(c, started.json()["id"], {"completed", "failed"})
        assert done["status"] == "completed", done
    yield "localtiny"
    with daemon.client() as c:
        c.delete("/api/v1/models/localtiny", params={"force": "true"})


def installed(daemon: Daemon, model_id: str) -> bool:
    with daemon.client() as c:
        return c.get(f"/api/v1/models/{model_id}").status_code == 200


def test_rm_sends_the_id_as_it_is_and_says_to_use_force(
    daemon: Daemon, localtiny: str, capsys: pytest.CaptureFixture[str]
) -> None:
    url = ["--url", daemon.url]
    with daemon.client() as c:
        assert c.post("/api/v1/queue/pause").status_code == 200
        job = c.post("/api/v1/generate", json={"prompt": "x", "model": localtiny, "steps": 1})
        assert job.status_code == 202, job.text
    try:
        # Sent raw, the first was DELETE /models/localtiny?force=true and the second walked
        # to /models/localtiny: both deleted a model a queued job uses.
        assert main(["rm", f"{localtiny}?force=true", *url]) == 1
        assert "'localtiny?force=true' is not installed (HTTP 404)" in capsys.readouterr().err
        assert main(["rm", f"CON/../{localtiny}", *url]) == 1
        assert "ids hold no '/'" in capsys.readouterr().err
        assert installed(daemon, localtiny)
        # %2F would not do: the daemon decodes it before it routes, to DELETE an install.
        with daemon.client() as c:
            installs = [i["id"] for i in c.get("/api/v1/models/installs").json()]
        assert main(["rm", f"installs/{installs[0]}", *url]) == 1
        capsys.readouterr()
        with daemon.client() as c:
            assert [i["id"] for i in c.get("/api/v1/models/installs").json()] == installs
        # In use: the CLI names its flag, not the API's query parameter.
        assert main(["rm", localtiny, *url]) == 1
        err = capsys.readouterr().err
        assert "used by 1 queued or running job" in err
        assert "remove with --force" in err and "force=true" not in err
        assert installed(daemon, localtiny)
        assert main(["rm", localtiny, "--force", *url]) == 0
        assert capsys.readouterr().out == f"removed {localtiny}\n"
        assert not installed(daemon, localtiny)
    finally:
        with daemon.client() as c:
            c.post("/api/v1/queue/clear")
            c.post("/api/v1/queue/resume")


def test_a_job_id_is_sent_as_it_is(daemon: Daemon, capsys: pytest.CaptureFixture[str]) -> None:
    with daemon.client() as c:
        assert c.post("/api/v1/queue/pause").status_code == 200
        job_id = c.post("/api/v1/generate", json={"prompt": "x", "steps": 1}).json()["id"]
    try:
        # Sent raw, POST /generate/nope/../JOB/cancel was POST /generate/JOB/cancel, and
        # /generate/JOB%3Fx would have been JOB with a query.
        assert main(["cancel", f"nope/../{job_id}", "--url", daemon.url]) == 1
        assert "ids hold no '/'" in capsys.readouterr().err
        assert main(["cancel", f"{job_id}?x=1", "--url", daemon.url]) == 1
        assert f"{job_id}?x=1" in capsys.readouterr().err
        with daemon.client() as c:
            assert c.get(f"/api/v1/generate/{job_id}").json()["status"] == "queued"
    finally:
        with daemon.client() as c:
            c.post("/api/v1/queue/clear")
            c.post("/api/v1/queue/resume")


@pytest.mark.parametrize(
    ("command", "codes"),
    [
        (["models"], {EXIT_BROKEN_PIPE}),
        (["status"], {EXIT_BROKEN_PIPE}),
        (["history"], {EXIT_BROKEN_PIPE}),
        (["pull", "--list"], {EXIT_BROKEN_PIPE}),
        (["version"], {EXIT_BROKEN_PIPE}),
        # argparse drops what it cannot write of its help, so the end may find nothing left.
        (["--help"], {0, EXIT_BROKEN_PIPE}),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, list) else "",
)
def test_a_closed_stdout_ends_the_command_quietly(
    daemon: Daemon, command: list[str], codes: set[int]
) -> None:
    """`impasto models | head -1`: the reader is gone before the output is written."""
    url = [] if command[0] in ("version", "--help") else ["--url", daemon.url]
    reader, writer = os.pipe()
    os.close(reader)  # every write to the pipe now fails with EPIPE
    try:
        done = subprocess.run(
            [sys.executable, "-m", "impasto", *command, *url],
            stdout=writer,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
    finally:
        os.close(writer)
    assert done.stderr == ""  # no "error: Broken pipe", no "Exception ignored"
    assert done.returncode in codes


def test_pictures_are_never_written_over(
    daemon: Daemon,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    Image.new("RGB", (16, 16), "red").save("img.png")
    url = ["--url", daemon.url]
    assert main(["upscale", "img.png", *url]) == 0
    assert main(["upscale", "img.png", "--scale", "3", *url]) == 0
    assert capsys.readouterr().out.splitlines() == ["img-lanczos.png", "img-lanczos-1.png"]
    assert Image.open("img-lanczos.png").size == (32, 32)  # the first is still the first
    assert Image.open("img-lanczos-1.png").size == (48, 48)
    assert main(["upscale", "img.png", "-o", "img.png", *url]) == 0
    assert capsys.readouterr().out == "img-1.png\n"
    assert Image.open("img.png").size == (16, 16)

    out = tmp_path / "out"
    generate = ["generate", "a red circle", "--steps", "1", "--width", "64", "--height", "64"]
    assert main([*generate, "--quiet", "-o", str(out), *url]) == 0
    (first,) = (Path(line) for line in capsys.readouterr().out.splitlines())
    picture = first.read_bytes()
    # `history --save` into the same folder: the same job's picture under the next free name.
    assert main(["history", "-n", "1", "--save", str(out), *url]) == 0
    (again,) = (Path(line) for line in capsys.readouterr().out.splitlines())
    assert again == first.with_name(f"{first.stem}-1.png")
    assert first.read_bytes() == again.read_bytes() == picture


def test_the_warnings_of_a_job_are_printed(
    daemon: Daemon, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """tiny-kohya was made for sd-tiny: on impasto-shapes none of its 28 keys fits a weight."""
    argv = ["generate", "a red circle", "--model", "impasto-shapes", "--lora", "tiny-kohya"]
    argv += ["--steps", "1", "--width", "64", "--height", "64", "-o", str(tmp_path)]
    assert main([*argv, "--url", daemon.url]) == 0
    printed = capsys.readouterr()
    warnings = [line for line in printed.err.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 1, printed.err
    assert warnings[0].startswith(
        "warning: LoRA tiny-kohya.safetensors changed nothing: none of its 28 keys matches"
    )
    # The job's status keeps them, for whoever looks later (history, GET /generate/{id}).
    with daemon.client() as client:
        (job,) = client.get("/api/v1/history", params={"limit": 1}).json()["items"]
        assert job["warnings"] == [warnings[0].removeprefix("warning: ")]
        status = client.get(f"/api/v1/generate/{job['id']}").json()
        assert status["warnings"] == job["warnings"]
    assert "warning" not in printed.out.replace(str(tmp_path), "")
    # On the model it was made for, nothing to warn of.
    assert main([*argv[:2], *argv[4:], "--url", daemon.url]) == 0
    assert "warning: " not in capsys.readouterr().err


def test_pull_list_says_when_a_size_is_unknown(
    daemon: Daemon, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["pull", "--list", "--url", daemon.url]) == 0
    lines = capsys.readouterr().out.splitlines()
    plain = next(line for line in lines if "impasto/plain" in line)
    sized = next(line for line in lines if "impasto/sized" in line)
    assert "size unknown" in plain and "0 B" not in plain and "?" not in plain
    assert "4.3 GB" in sized and "fp32" in sized


def test_a_file_the_daemon_refuses_is_named_as_the_user_wrote_it(
    daemon: Daemon,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Not the body field the client sent it in ("file" of an upload, "image" of an upscale)."""
    monkeypatch.chdir(tmp_path)
    Path("notes.txt").write_text("not a picture")
    url = ["--url", daemon.url]
    assert main(["generate", "a red circle", "--init-image", "notes.txt", *url]) == 1
    err = capsys.readouterr().err
    assert "error: --init-image notes.txt: is not a readable PNG, JPEG or WebP image" in err
    assert main(["upscale", "notes.txt", *url]) == 1
    assert "error: notes.txt: is not a readable PNG, JPEG or WebP image" in capsys.readouterr().err
    assert main(["upscale", "nojob/0", *url]) == 1
    assert "error: nojob/0: no job nojob" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.png"))  # nothing written for a refusal


def test_upscale_makes_the_folder_of_its_output(
    daemon: Daemon,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """As `generate -o` makes its folder; one left empty by a refusal is removed again."""
    monkeypatch.chdir(tmp_path)
    Image.new("RGB", (16, 16), "red").save("img.png")
    url = ["--url", daemon.url]
    assert main(["upscale", "img.png", "-o", "new/deeper/big.png", *url]) == 0
    assert capsys.readouterr().out == "new/deeper/big.png\n"
    assert Image.open("new/deeper/big.png").size == (32, 32)
    assert main(["upscale", "img.png", "--scale", "100", "-o", "other/big.png", *url]) == 1
    assert "scale: must be a number between 1 and 8" in capsys.readouterr().err
    assert not Path("other").exists()


def test_plugin_options_are_sent_and_a_refused_one_names_the_option(
    daemon: Daemon, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["generate", "a red circle", "--steps", "1", "--width", "64", "--height", "64"]
    argv += ["-o", str(tmp_path), "--quiet", "--url", daemon.url]
    # impasto-upscale (plugins/): its options are the factor, as JSON.
    assert main([*argv, "--plugin", "upscale=2"]) == 0
    (saved,) = (Path(line) for line in capsys.readouterr().out.splitlines())
    assert Image.open(saved).size == (128, 128)
    assert main([*argv, "--plugin", "upscale=3"]) == 1
    err = capsys.readouterr().err
    assert "plugins.upscale (--plugin): " in err, err
    assert main([*argv, "--plugin", "=2"]) == 2  # a usage error, nothing sent
    assert "a plugin's name comes before '='" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("command", "endpoint"),
    [
        (["models"], "/api/v1/models"),
        (["models", "info", "sd-tiny"], "/api/v1/models/sd-tiny"),
        (["ps"], "/api/v1/models/loaded"),
        (["queue"], "/api/v1/queue"),
        (["plugins", "list"], "/api/v1/plugins"),
        (["upscalers"], "/api/v1/upscalers"),
        (["pull", "--list"], "/api/v1/models/catalog"),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, list) else "",
)
def test_every_listing_prints_json_as_the_api_answers(
    daemon: Daemon, command: list[str], endpoint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """For scripts, as `history --json`: only tables, which `awk` reads badly, were printed."""
    if command == ["ps"]:  # something loaded to list
        assert main(["models", "load", "impasto-shapes", "--url", daemon.url]) == 0
        capsys.readouterr()
    assert main([*command, "--json", "--url", daemon.url]) == 0
    printed = json.loads(capsys.readouterr().out)
    with daemon.client() as c:
        answer = c.get(endpoint).json()
    if isinstance(answer, dict):  # the queue, one model
        assert printed == answer
        return
    key = {"models": "id", "upscalers": "id", "ps": "model"}.get(command[0], "name")
    assert [item[key] for item in printed] == [item[key] for item in answer]
    assert printed  # something to compare: no listing here is empty


def test_status_json_holds_health_and_system(
    daemon: Daemon, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["status", "--json", "--url", daemon.url]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["health"]["status"] == "ok"
    assert printed["system"]["workers"][0]["id"] == "worker-0"
