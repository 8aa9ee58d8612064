"""The LoRA rows of the Generate form: a UNet weight of its own, as A1111's <lora:name:te:unet>."""

from __future__ import annotations

import io
import json

from PIL import Image, PngImagePlugin
from playwright.sync_api import Page, Route, expect

from tests.ui.conftest import QUICK, fill_form, open_ui
from tests.ui.test_png_drop import drop_file


def impasto_png(request: dict[str, object]) -> bytes:
    """A PNG carrying Impasto's own ``impasto`` chunk: the request as JSON."""
    info = PngImagePlugin.PngInfo()
    info.add_text("impasto", json.dumps(request))
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "teal").save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


def test_a_loras_unet_weight_is_read_checked_and_sent(page: Page) -> None:
    open_ui(page)
    # Settings read back from an image keep the UNet's own weight.
    loras = [{"name": "my-style", "weight": 0.8, "unet_weight": 0.3}, {"name": "b", "weight": 1}]
    drop_file(page, impasto_png({"prompt": "two loras", "loras": loras}), "made-here.png")
    expect(page.locator("#prompt")).to_have_value("two loras")
    expect(page.locator("#lora-unet_weight-0")).to_have_value("0.3")
    expect(page.locator("#lora-unet_weight-1")).to_have_value("")
    expect(page.get_by_label("LoRA 1 UNet weight (blank: the weight)")).to_be_visible()

    page.click("#lora-card .lora-row:nth-child(2) button")  # only the first LoRA stays
    sent: list[dict[str, object]] = []

    def capture(route: Route) -> None:
        sent.append(json.loads(route.request.post_data or "{}"))
        route.fulfill(status=503, json={"detail": "not now"})

    page.route("**/api/v1/generate", capture)
    fill_form(page, **QUICK)
    page.fill("#lora-unet_weight-0", "3")
    page.click("#submit")
    expect(page.locator("#err-lora-unet_weight-0")).to_contain_text("between -2 and 2")
    expect(page.locator("#lora-unet_weight-0")).to_have_attribute("aria-invalid", "true")
    assert sent == []

    page.fill("#lora-unet_weight-0", "-0.25")
    page.click("#submit")
    expect(page.locator("#form-error")).to_contain_text("not now")
    assert sent[-1]["loras"] == [{"name": "my-style", "weight": 0.8, "unet_weight": -0.25}]

    # Blank: the weight goes to the UNet too.
    page.fill("#lora-unet_weight-0", "")
    page.click("#submit")
    for _ in range(100):
        if len(sent) == 2:
            break
        page.wait_for_timeout(100)
    assert sent[-1]["loras"] == [{"name": "my-style", "weight": 0.8, "unet_weight": None}]
