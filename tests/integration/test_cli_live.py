"""The CLI against a real daemon: status after a job, queue, config, generate to a folder."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from PIL import Image

from tests.harness import TINY, Daemon, wait_status


def cli(daemon: Daemon, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "IMPASTO_RUNTIME_DIR": str(daemon.runtime_dir)}
    return subprocess.run(
        [sys.executable, "-m", "impasto", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_status_with_a_loaded_model(impasto_daemon: Daemon) -> None:
    with impasto_daemon.client() as client:
        job = client.post("/api/v1/generate", json={"prompt": "loaded", **TINY}).json()
        wait_status(client, job["id"], {"completed"})
        loaded = client.get("/api/v1/system").json()["loaded_models"]
        assert loaded and loaded[0]["model"] == "sd-tiny" and loaded[0]["expires_at"].endswith("Z")
    done = cli(impasto_daemon, "status")
    assert done.returncode == 0, done.stderr
    assert "sd-tiny" in done.stdout and "CPU" in done.stdout.upper()


def test_generate_writes_pngs_and_queue_lists(impasto_daemon: Daemon, tmp_path: Path) -> None:
    done = cli(
        impasto_daemon,
        "generate",
        "a cli lighthouse",
        "--width",
        "64",
        "--height",
        "64",
        "--steps",
        "2",
        "--batch",
        "2",
        "--seed",
        "3",
        "-o",
        str(tmp_path),
    )
    assert done.returncode == 0, done.stderr
    paths = [Path(line) for line in done.stdout.split() if line.endswith(".png")]
    assert len(paths) == 2 and all(Image.open(p).size == (64, 64) for p in paths)
    assert cli(impasto_daemon, "queue").returncode == 0
    bad = cli(impasto_daemon, "generate", "x", "--width", "65")
    assert bad.returncode == 1 and "width" in bad.stderr


def test_every_read_command_decodes_the_live_answers(impasto_daemon: Daemon) -> None:
    for args in (
        ["models"],
        ["ps"],
        ["plugins", "list"],
        ["version"],
        ["models", "info", "sd-tiny"],
    ):
        done = cli(impasto_daemon, *args)
        assert done.returncode == 0, (args, done.stderr)
        assert "unexpected answer" not in done.stderr


def test_models_info_reads_as_aligned_fields_with_a_defaults_block(impasto_daemon: Daemon) -> None:
    done = cli(impasto_daemon, "models", "info", "sd-tiny")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    fields = dict(line.split(":", 1) for line in lines if not line.startswith(" "))
    # Every value stands one or more spaces after its name's colon, all in one column.
    assert all(value.startswith(" ") for value in fields.values() if value), lines
    assert len({len(line) - len(line.split(":", 1)[1].lstrip()) for line in lines[:3]}) == 1
    assert fields["prediction_type"].strip() == "epsilon"
    block = lines[lines.index("defaults:") + 1 :]
    assert block and all(line.startswith("  ") for line in block), lines
    assert [line.split()[0] for line in block] == [
        "width:",
        "height:",
        "steps:",
        "cfg_scale:",
        "sampler:",
        "schedule:",
    ]
    assert "ModelDefaults(" not in done.stdout


def test_generate_without_a_folder_saves_in_pictures_not_here(
    impasto_daemon: Daemon, tmp_path: Path
) -> None:
    home, here = tmp_path / "home", tmp_path / "clone"
    here.mkdir()
    env = {
        **os.environ,
        "IMPASTO_RUNTIME_DIR": str(impasto_daemon.runtime_dir),
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "USERPROFILE": str(home),
    }
    args = ["generate", "a default folder", "--width", "64", "--height", "64", "--steps", "2"]
    done = subprocess.run(
        [sys.executable, "-m", "impasto", *args],
        env=env,
        cwd=here,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    saved = Path(done.stdout.strip())
    assert saved.parent == home / "Pictures" / "Impasto" and saved.is_file()
    assert list(here.iterdir()) == []


def test_models_lists_one_type_with_the_type_option(impasto_daemon: Daemon) -> None:
    def ids(*args: str) -> list[str]:
        done = cli(impasto_daemon, *args)
        assert done.returncode == 0, (args, done.stderr)
        return [line.split()[0] for line in done.stdout.splitlines()[1:] if line.strip()]

    everything = ids("models")
    assert "sd-tiny" in everything
    with impasto_daemon.client() as client:
        types = {m["id"]: m["type"] for m in client.get("/api/v1/models").json()}
    for kind in ("checkpoint", "lora"):
        want = [i for i in everything if types[i] == kind]
        assert ids("models", "--type", kind) == want
        assert ids("models", "list", "--type", kind) == want
    both = ids("models", "list", "--type", "lora", "--type", "checkpoint")
    assert sorted(both) == sorted(i for i in everything if types[i] in ("lora", "checkpoint"))
    bad = cli(impasto_daemon, "models", "--type", "loras")
    assert bad.returncode == 2 and "invalid choice" in bad.stderr


def test_cancel_every_queued_job_then_everything(impasto_daemon: Daemon) -> None:
    """`impasto cancel --queued` empties the queue and lets the running job go on; `--all`
    stops that one too; ids are cancelled one by one, an unknown one said and skipped."""
    with impasto_daemon.client() as client:
        long = {"prompt": "a long one", "width": 1024, "height": 1024, "steps": 150}  # ~50 s
        running = client.post("/api/v1/generate", json=long).json()["id"]
        wait_status(client, running, {"processing"})
        queued = [
            client.post("/api/v1/generate", json={"prompt": f"waits {i}", **TINY}).json()["id"]
            for i in range(3)
        ]
        done = cli(impasto_daemon, "cancel", "--queued")
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "Cancelled 3 queued jobs."
        assert [client.get(f"/api/v1/generate/{j}").json()["status"] for j in queued] == [
            "cancelled"
        ] * 3
        assert client.get(f"/api/v1/generate/{running}").json()["status"] == "processing"
        assert (
            cli(impasto_daemon, "cancel", "--queued").stdout.strip() == "No queued jobs to cancel."
        )

        done = cli(impasto_daemon, "cancel", "--all")
        assert done.returncode == 0 and done.stdout.strip() == "Cancelled 1 job.", done
        assert wait_status(client, running, {"cancelled", "completed"})["status"] == "cancelled"
        assert client.get("/api/v1/queue").json()["items"] == []

        one = client.post("/api/v1/generate", json={"prompt": "by id", **long}).json()["id"]
        done = cli(impasto_daemon, "cancel", "no-such-job", one)
        assert done.returncode == 1 and "no-such-job" in done.stderr, done
        assert one in done.stdout and "no-such-job" not in done.stdout
        assert wait_status(client, one, {"cancelled", "completed"})["status"] == "cancelled"

    nothing = cli(impasto_daemon, "cancel")
    assert nothing.returncode == 2 and "--queued or --all" in nothing.stderr
    both = cli(impasto_daemon, "cancel", one, "--all")
    assert both.returncode == 2 and "not allowed with" in both.stderr


def test_history_lists_filters_and_saves_the_images(impasto_daemon: Daemon, tmp_path: Path) -> None:
    with impasto_daemon.client() as client:
        done = client.post("/api/v1/generate", json={"prompt": "history probe one", **TINY})
        first = wait_status(client, done.json()["id"], {"completed"})
        buf = io.BytesIO()
        Image.new("RGB", (64, 64), "red").save(buf, "PNG")
        upload = client.post("/api/v1/images", files={"file": ("i.png", buf.getvalue())}).json()
        assert client.post("/api/v1/queue/pause").status_code == 200
        try:
            second = client.post("/api/v1/generate", json={"prompt": "history probe two", **TINY})
            client.post(f"/api/v1/generate/{second.json()['id']}/cancel")
            # A job whose init image is gone by the time it runs fails, with the reason.
            init = {"init_image": f"upload:{upload['id']}"}
            third = client.post(
                "/api/v1/generate", json={"prompt": "history probe 3", **TINY, **init}
            )
            for stored in impasto_daemon.data_dir.glob(f"uploads/{upload['id']}*"):
                stored.unlink()
        finally:
            client.post("/api/v1/queue/resume")
        failed = wait_status(client, third.json()["id"], {"failed", "completed"})
    assert failed["status"] == "failed", failed
    assert f"init_image upload:{upload['id']} is no longer in the uploads folder" in failed["error"]
    second_id = second.json()["id"]

    table = cli(impasto_daemon, "history", "-n", "3")
    assert table.returncode == 0, table.stderr
    header, newest, why, middle, oldest = table.stdout.splitlines()
    assert header.split() == ["ID", "STATUS", "CREATED", "MODEL", "SIZE", "IMAGES", "PROMPT"]
    assert newest.split()[:2] == [failed["id"], "failed"]
    assert why == f"  {failed['error']}"
    assert middle.split()[:2] == [second_id, "cancelled"] and "history probe two" in middle
    assert oldest.split()[:2] == [first["id"], "completed"]
    assert oldest.split()[5:8] == ["64x64", "1", "history"]

    folder = tmp_path / "saved"
    saved = cli(impasto_daemon, "history", "--search", "PROBE", "--save", str(folder))
    assert saved.returncode == 0, saved.stderr
    # The cancelled job has no image; the completed one's is the daemon's own PNG, byte for byte.
    assert saved.stdout.splitlines() == [str(folder / f"{first['id']}-0.png")]
    with impasto_daemon.client() as client:
        png = client.get(first["results"][0]["url"]).content
    assert (folder / f"{first['id']}-0.png").read_bytes() == png

    as_json = cli(impasto_daemon, "history", "--search", "history probe", "--json")
    assert [job["id"] for job in json.loads(as_json.stdout)] == [
        failed["id"],
        second_id,
        first["id"],
    ]
    assert cli(impasto_daemon, "history", "--search", "no such prompt").stdout == "No jobs match.\n"
    bad = cli(impasto_daemon, "history", "--status", "done")
    assert bad.returncode == 1 and "status" in bad.stderr, bad


def test_queue_pause_and_resume(impasto_daemon: Daemon) -> None:
    paused = cli(impasto_daemon, "queue", "pause")
    try:
        assert paused.returncode == 0, paused.stderr
        assert paused.stdout.startswith("Paused: the running job finishes")
        with impasto_daemon.client() as client:
            assert client.get("/api/v1/queue").json()["paused"] is True
            job = client.post("/api/v1/generate", json={"prompt": "waits", **TINY}).json()
        listed = cli(impasto_daemon, "queue")
        assert (
            "The queue is paused: queued jobs wait until `impasto queue resume`." in listed.stdout
        )
        assert job["id"] in listed.stdout
        time.sleep(0.5)
        with impasto_daemon.client() as client:
            assert client.get(f"/api/v1/generate/{job['id']}").json()["status"] == "queued"
    finally:
        resumed = cli(impasto_daemon, "queue", "resume")
    assert resumed.returncode == 0 and resumed.stdout.strip() == "Resumed: queued jobs start again."
    with impasto_daemon.client() as client:
        assert wait_status(client, job["id"], {"completed"})["status"] == "completed"
    bad = cli(impasto_daemon, "queue", "stop")
    assert bad.returncode == 2 and "invalid choice: 'stop'" in bad.stderr
