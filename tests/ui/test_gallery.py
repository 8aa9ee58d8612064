"""The Gallery panel: thumbnails, full-size view, "use these settings", delete, infinite scroll."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import Page, Route, expect

from tests.harness import TINY, wait_status
from tests.ui.conftest import finished_job, open_ui


def make_jobs(daemon: Any, prompts: list[str], **overrides: Any) -> list[dict[str, Any]]:
    """Generate through the API (not the page) and wait for each job to finish."""
    jobs = []
    with daemon.client() as client:
        for prompt in prompts:
            body = {**TINY, "prompt": prompt, **overrides}
            job_id = client.post("/api/v1/generate", json=body).json()["id"]
            jobs.append(wait_status(client, job_id, {"completed"}))
    return jobs


def test_gallery_shows_image_and_use_these_settings_restores_form(
    page: Page, impasto_daemon: Any
) -> None:
    [job] = make_jobs(
        impasto_daemon,
        ["gallery restore test"],
        steps=7,
        cfg_scale=6.5,
        sampler="dpmpp_2m",
        schedule="karras",
        negative_prompt="fog",
    )
    seed = job["results"][0]["seed"]
    open_ui(page, "gallery")
    thumb = page.locator(f".thumb[data-job='{job['id']}']")
    expect(thumb).to_have_count(1)
    # Thumbnails come from ?thumb=256 and load lazily once visible.
    img = thumb.locator("img")
    assert "thumb=256" in (img.get_attribute("src") or "")
    page.wait_for_function(
        "id => document.querySelector(`.thumb[data-job='${id}'] img`).naturalWidth > 0",
        arg=job["id"],
    )

    thumb.click()
    viewer = page.locator("#viewer")
    expect(viewer).to_be_visible()
    expect(viewer.locator("[data-param='Prompt']")).to_have_text("gallery restore test")
    expect(viewer.locator("[data-param='Seed']")).to_have_text(str(seed))
    href = page.locator("#viewer-download").get_attribute("href") or ""
    assert href.endswith(f"/api/v1/images/{job['id']}/0")
    page.wait_for_function("document.querySelector('#viewer-img').naturalWidth === 64")

    page.click("#viewer-use")
    expect(viewer).to_be_hidden()
    expect(page.locator("#panel-generate")).to_be_visible()
    expect(page.locator("#prompt")).to_have_value("gallery restore test")
    expect(page.locator("#negative_prompt")).to_have_value("fog")
    expect(page.locator("#seed")).to_have_value(str(seed))
    expect(page.locator("#steps")).to_have_value("7")
    expect(page.locator("#cfg_scale")).to_have_value("6.5")
    expect(page.locator("#sampler")).to_have_value("dpmpp_2m")
    expect(page.locator("#schedule")).to_have_value("karras")
    expect(page.locator("#model")).to_have_value(job["request"]["model"])


def test_new_images_appear_live_and_delete_removes_them(page: Page, impasto_daemon: Any) -> None:
    open_ui(page, "gallery")
    page.wait_for_selector("#gallery-empty, .thumb", state="attached")
    [job] = make_jobs(impasto_daemon, ["arrives while watching"])
    thumb = page.locator(f".thumb[data-job='{job['id']}']")
    expect(thumb).to_have_count(1)
    # Newest first: the job that just finished leads the grid.
    expect(page.locator(".thumb").first).to_have_attribute("data-job", job["id"])

    thumb.click()
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#viewer-delete")
    expect(thumb).to_have_count(0)
    with impasto_daemon.client() as client:
        assert client.get(f"/api/v1/generate/{job['id']}").status_code == 404


def test_deleting_from_the_viewer_leaves_focus_on_the_next_thumbnail(
    page: Page, impasto_daemon: Any
) -> None:
    """The thumbnail that opened the viewer is gone with its image: focus goes on from the one
    now in its place, not back to the top of the page."""
    older, newer = make_jobs(impasto_daemon, ["focus kept older", "focus kept newer"])
    open_ui(page, "gallery")
    thumb = page.locator(f".thumb[data-job='{newer['id']}']")
    thumb.focus()
    page.keyboard.press("Enter")
    expect(page.locator("#viewer")).to_be_visible()
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#viewer-delete")
    expect(thumb).to_have_count(0)
    expect(page.locator(f".thumb[data-job='{older['id']}']")).to_be_focused()


def test_infinite_scroll_follows_next_cursor(page: Page, impasto_daemon: Any) -> None:
    make_jobs(impasto_daemon, [f"scroll {i}" for i in range(3)])
    with impasto_daemon.client() as client:
        total = sum(
            len(j["results"])
            for j in client.get("/api/v1/history?status=completed&limit=200").json()["items"]
        )
    # Pages of 2 force several cursor hops to reach everything.
    page.add_init_script("window.IMPASTO_GALLERY_PAGE = 2")
    cursors: list[str] = []
    page.on("request", lambda r: cursors.append(r.url) if "cursor=" in r.url else None)
    open_ui(page, "gallery")
    for _ in range(total):
        if page.locator(".thumb").count() >= total:
            break
        page.locator("#gallery-sentinel").scroll_into_view_if_needed()
        page.wait_for_timeout(150)
    expect(page.locator(".thumb")).to_have_count(total)
    assert cursors, "later pages must be fetched with the previous page's next_cursor"
    expect(page.locator("#gallery-more")).to_be_hidden()


def test_send_to_img2img_loads_the_image_and_its_settings_at_its_size(
    page: Page, impasto_daemon: Any
) -> None:
    """A1111's "Send to img2img": the picture becomes the init image, its settings fill the
    form at the picture's own size, and a hires pass is not stacked on top of it."""
    [job] = make_jobs(
        impasto_daemon, ["send me to img2img"], steps=3, hires={"scale": 2, "steps": 1}
    )
    result = job["results"][0]
    assert (result["width"], result["height"]) == (128, 128)
    open_ui(page, "gallery")
    page.locator(f".thumb[data-job='{job['id']}']").click()
    page.click("#viewer-img2img")
    expect(page.locator("#viewer")).to_be_hidden()
    expect(page.locator("#panel-generate")).to_be_visible()
    expect(page.locator("#img-card")).to_have_attribute("open", "")
    expect(page.locator("#img-summary")).to_have_text("· img2img")
    expect(page.locator("#prompt")).to_have_value("send me to img2img")
    expect(page.locator("#seed")).to_have_value(str(result["seed"]))
    expect(page.locator("#width")).to_have_value("128")
    expect(page.locator("#height")).to_have_value("128")
    expect(page.locator("#hires")).not_to_be_checked()
    taken = page.evaluate(
        "async () => Array.from(new Uint8Array(await window.impasto.form.mask.file.arrayBuffer()))"
    )
    with impasto_daemon.client() as client:
        assert bytes(taken) == client.get(result["url"]).content

    page.fill("#steps", "2")
    page.click("#submit")
    sent = finished_job(page, impasto_daemon)
    assert sent["request"]["init_image"].startswith("upload:")
    assert sent["request"]["hires"] is None
    assert (sent["results"][0]["width"], sent["results"][0]["height"]) == (128, 128)


def test_next_in_the_viewer_loads_the_next_page(page: Page, impasto_daemon: Any) -> None:
    """At the last thumbnail loaded, Next goes on into the next page (loading it), as the
    gallery's scrolling would."""
    make_jobs(impasto_daemon, [f"paged {i}" for i in range(3)])
    page.add_init_script("window.IMPASTO_GALLERY_PAGE = 2")
    # Later pages wait until the test lets them through: the viewer is at the end of page one.
    held: list[Route] = []
    page.route(lambda url: "cursor=" in url, lambda route: held.append(route))
    open_ui(page, "gallery")
    expect(page.locator(".thumb")).to_have_count(2)
    page.locator(".thumb").nth(1).click()
    expect(page.locator("#viewer")).to_be_visible()
    expect(page.locator("#viewer-next")).to_be_enabled()
    page.click("#viewer-next")
    page.wait_for_timeout(200)
    assert held, "the next page was asked for"
    for route in held:
        route.continue_()
    page.wait_for_function("window.impasto.viewer.index === 2")
    expect(page.locator("#viewer-prev")).to_be_enabled()
