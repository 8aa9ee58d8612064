"""Uploads stay while a queued or running job may read them, then for the retention period."""

from __future__ import annotations

import asyncio
import io
import os
import time
from pathlib import Path

from litestar.testing import TestClient
from PIL import Image

from impasto.services.container import Services
from impasto.services.retention import sweep_uploads, sweep_uploads_forever

DAY = 24 * 3600


def _upload(api: TestClient) -> str:
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), "red").save(buf, "PNG")
    answer = api.post("/api/v1/images", files={"file": ("i.png", buf.getvalue(), "image/png")})
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def _age(path: Path, days: float) -> None:
    then = time.time() - days * DAY
    os.utime(path, (then, then))


def test_old_uploads_go_unless_a_waiting_job_names_them(
    api: TestClient, services: Services
) -> None:
    folder = services.uploads.folder
    source, unused, fresh = (_upload(api) for _ in range(3))
    # The queued job runs on a 128x128 copy of the image it was sent: its plan names the copy.
    job = api.post(
        "/api/v1/generate",
        json={"prompt": "a cat", "width": 128, "height": 128, "init_image": f"upload:{source}"},
    )
    assert job.status_code == 202, job.text
    plan = services.jobs.get(job.json()["id"]).plan
    copy = plan["init_image"].removeprefix("upload:")
    assert copy not in (source, unused, fresh)
    stale_tmp = folder / ".0123456789abcdef0123456789abcdef.tmp"
    stale_tmp.write_bytes(b"half an image")
    not_an_upload = folder / "notes.txt"
    not_an_upload.write_text("mine")
    for path in (*(folder / f"{name}.png" for name in (source, copy, unused)), stale_tmp):
        _age(path, 8)
    _age(not_an_upload, 8)

    assert services.jobs.uploads_in_use() == {copy}
    assert sweep_uploads(services, retention_hours=7 * 24) == 3  # source, unused, the .tmp
    assert {p.name for p in folder.iterdir()} == {f"{copy}.png", f"{fresh}.png", "notes.txt"}
    # A request naming a swept upload is told which field and what to do.
    gone = api.post("/api/v1/generate", json={"prompt": "a cat", "init_image": f"upload:{unused}"})
    assert gone.status_code == 422 and gone.json()["errors"][0]["field"] == "init_image"

    # Once the job is over, its copy ages like any other upload.
    api.post(f"/api/v1/generate/{job.json()['id']}/cancel")
    assert sweep_uploads(services, retention_hours=7 * 24) == 1
    assert {p.name for p in folder.iterdir()} == {f"{fresh}.png", "notes.txt"}
    assert sweep_uploads(services, retention_hours=7 * 24, now=time.time() + 8 * DAY) == 1
    assert {p.name for p in folder.iterdir()} == {"notes.txt"}


def test_an_old_upload_named_while_a_sweep_runs_is_kept(
    api: TestClient, services: Services
) -> None:
    """The sweep reads which uploads waiting jobs name, then deletes: a job that names an old
    upload in between marks it used (its time), and the sweep checks that time under the same
    lock before it deletes."""
    name = _upload(api)
    path = services.uploads.folder / f"{name}.png"
    _age(path, 8)
    in_use = services.jobs.uploads_in_use()  # the sweep's view, taken before the job came
    assert name not in in_use
    body = {"prompt": "a cat", "width": 64, "height": 64, "init_image": f"upload:{name}"}
    job = api.post("/api/v1/generate", json=body)
    assert job.status_code == 202, job.text
    assert services.jobs.get(job.json()["id"]).plan["init_image"] == f"upload:{name}"
    assert services.uploads.sweep(time.time() - 7 * DAY, in_use) == 0
    assert path.is_file()


def test_the_sweeper_sweeps_at_once_and_zero_hours_keeps_everything(
    api: TestClient, services: Services
) -> None:
    old = _upload(api)
    _age(services.uploads.folder / f"{old}.png", 8)

    async def run(hours: float) -> None:
        sweeper = asyncio.create_task(sweep_uploads_forever(services, hours, every=3600))
        for _ in range(200):  # the first sweep runs at once, in a thread
            await asyncio.sleep(0.01)
            if sweeper.done() or not (services.uploads.folder / f"{old}.png").exists():
                break
        sweeper.cancel()

    asyncio.run(run(0))
    assert (services.uploads.folder / f"{old}.png").exists()
    asyncio.run(run(7 * 24))
    assert not (services.uploads.folder / f"{old}.png").exists()


def test_a_refused_request_or_a_dry_run_stores_no_picture(
    api: TestClient, services: Services
) -> None:
    """Inline pictures are stored while the plan is made: a request refused afterwards, or a
    plan asked without a job, leaves none of them; a queued job keeps its own."""
    import base64

    buf = io.BytesIO()
    Image.new("RGB", (80, 48), "red").save(buf, "PNG")
    picture = base64.b64encode(buf.getvalue()).decode()
    body = {"prompt": "a cat", "init_image": picture, "mask_image": picture}

    def stored() -> set[str]:
        return {path.name for path in services.uploads.folder.glob("*.png")}

    before = stored()
    # Refused after both pictures are decoded and laid out (80x48 -> the run's size).
    refiner = api.post("/api/v1/generate", json={**body, "refiner": "sd-tiny"})
    bad_reference = api.post("/api/v1/generate", json={**body, "color_reference": "bad"})
    for refused in (refiner, bad_reference):
        assert refused.status_code == 422, refused.text
    assert stored() == before
    dry = api.post("/api/v1/generate/plan", json=body)
    assert dry.status_code == 200 and dry.json()["init_image"].startswith("upload:")
    assert stored() == before
    queued = api.post("/api/v1/generate", json=body)
    assert queued.status_code == 202, queued.text
    plan = services.jobs.get(queued.json()["id"]).plan
    kept = {plan[key].removeprefix("upload:") + ".png" for key in ("init_image", "mask_image")}
    assert stored() == before | kept and len(kept) == 2
