"""A1111's mask blur in the inpaint card: the painted mask is sent with a soft edge."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from PIL import Image
from playwright.sync_api import Page, expect

from tests.ui.conftest import QUICK, fill_form, finished_job, open_ui


def record_uploads(page: Page) -> None:
    """Keep each file the form uploads (``POST /images``) in ``window.sent``."""
    page.evaluate(
        """() => {
            const form = window.impasto.form;
            const upload = form.upload.bind(form);
            window.sent = [];
            form.upload = (blob) => { window.sent.push(blob); return upload(blob); };
        }"""
    )


def uploaded(page: Page) -> list[Image.Image]:
    """The files the form uploaded since ``record_uploads``, as grey pictures."""
    files = page.evaluate(
        """() => Promise.all(window.sent.map(
            async (blob) => Array.from(new Uint8Array(await blob.arrayBuffer()))))"""
    )
    return [Image.open(io.BytesIO(bytes(data))).convert("L") for data in files]


def paint_band(page: Page) -> None:
    """A thick stroke across the middle of the init image."""
    page.fill("#mask-brush", "64")
    canvas = page.locator(".mask-canvas")
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    assert box
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + 2, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] - 2, y, steps=10)
    page.mouse.up()
    expect(page.locator("#img-summary")).to_have_text("· inpaint")


def test_the_mask_is_blurred_as_a1111_blurs_it(
    page: Page, impasto_daemon: Any, tmp_path: Path
) -> None:
    source = tmp_path / "init.png"
    Image.new("RGB", (96, 64), (30, 160, 90)).save(source)
    warnings: list[str] = []
    page.on("console", lambda m: warnings.append(m.text) if m.type == "warning" else None)
    open_ui(page)
    fill_form(page, prompt="soft seam", **QUICK)
    page.click("#img-card > summary")
    page.set_input_files("#init-file", str(source))
    expect(page.locator("#mask_blur")).to_have_value("4")  # A1111's default
    paint_band(page)
    record_uploads(page)

    # Past A1111's range: said on the field, nothing sent.
    page.fill("#mask_blur", "65")
    page.click("#submit")
    expect(page.locator("#err-mask_blur")).to_have_text("must be an integer between 0 and 64")
    expect(page.locator("#mask_blur")).to_have_attribute("aria-invalid", "true")
    assert uploaded(page) == []

    page.fill("#mask_blur", "6")
    page.click("#submit")
    job = finished_job(page, impasto_daemon)
    assert "mask_blur" not in job["request"]  # the page blurs; the API has no such field
    init, mask = uploaded(page)
    assert init.size == mask.size == (96, 64)
    column = [mask.getpixel((48, y)) for y in range(64)]
    assert column[0] == column[-1] == 0  # far from the stroke: kept
    assert column[32] > 200  # the middle of the stroke: repainted
    # The edge fades over several pixels (a sharp one goes from 0 to 255 within a pixel or two).
    assert sum(1 for v in column if 20 < v < 235) >= 8

    # Reading the mask back after each stroke is what its canvas is made for: no warning.
    assert not [w for w in warnings if "willReadFrequently" in w]

    page.reload()
    open_ui(page)
    expect(page.locator("#mask_blur")).to_have_value("6")
