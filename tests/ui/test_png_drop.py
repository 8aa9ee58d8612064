"""Dropping a PNG made by Impasto or AUTOMATIC1111 on the page fills the Generate form."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

from PIL import Image, PngImagePlugin
from playwright.sync_api import Page, expect

from tests.harness import TINY, wait_status
from tests.ui.conftest import open_ui


def drop_file(page: Page, data: bytes, name: str, mime: str = "image/png") -> None:
    """Dispatch a real drop event carrying `data` as a File, as a drag from the desktop would."""
    transfer = page.evaluate_handle(
        """([b64, name, mime]) => {
            const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
            const dt = new DataTransfer();
            dt.items.add(new File([bytes], name, { type: mime }));
            return dt;
        }""",
        [base64.b64encode(data).decode(), name, mime],
    )
    page.dispatch_event("#panel-generate", "dragenter", {"dataTransfer": transfer})
    expect(page.locator("#drop-overlay")).to_be_visible()
    page.dispatch_event("#panel-generate", "drop", {"dataTransfer": transfer})


def a1111_png(parameters: str) -> bytes:
    """A PNG like AUTOMATIC1111 writes: the settings in a tEXt chunk named parameters."""
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", parameters)
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "purple").save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


def test_drop_impasto_png_fills_form(page: Page, impasto_daemon: Any) -> None:
    with impasto_daemon.client() as client:
        body = {
            **TINY,
            "prompt": "dropped impasto png, ünïcode",
            "negative_prompt": "grain",
            "steps": 9,
            "sampler": "heun",
            "cfg_scale": 4.5,
        }
        job = wait_status(
            client, client.post("/api/v1/generate", json=body).json()["id"], {"completed"}
        )
        png = client.get(job["results"][0]["url"]).content
    open_ui(page, "gallery")
    drop_file(page, png, "impasto.png")

    expect(page.locator("#panel-generate")).to_be_visible()
    expect(page.locator("#prompt")).to_have_value("dropped impasto png, ünïcode")
    expect(page.locator("#negative_prompt")).to_have_value("grain")
    expect(page.locator("#steps")).to_have_value("9")
    expect(page.locator("#sampler")).to_have_value("heun")
    expect(page.locator("#cfg_scale")).to_have_value("4.5")
    expect(page.locator("#seed")).to_have_value(str(job["results"][0]["seed"]))
    expect(page.locator("#width")).to_have_value("64")


def test_drop_automatic1111_png_fills_form(page: Page) -> None:
    text = (
        "a castle in the clouds, (masterpiece:1.2)\n"
        "Negative prompt: lowres, watermark\n"
        "Steps: 28, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 6.5, Seed: 424242, "
        'Size: 640x448, Model hash: abc123, Model: "someone, model", Eta: 0.3, '
        "Seed resize from: 512x384, RNG: CPU"
    )
    open_ui(page)
    drop_file(page, a1111_png(text), "a1111.png")

    expect(page.locator("#prompt")).to_have_value("a castle in the clouds, (masterpiece:1.2)")
    expect(page.locator("#negative_prompt")).to_have_value("lowres, watermark")
    expect(page.locator("#steps")).to_have_value("28")
    expect(page.locator("#sampler")).to_have_value("dpmpp_2m")
    expect(page.locator("#schedule")).to_have_value("karras")
    expect(page.locator("#cfg_scale")).to_have_value("6.5")
    expect(page.locator("#seed")).to_have_value("424242")
    expect(page.locator("#width")).to_have_value("640")
    expect(page.locator("#height")).to_have_value("448")
    expect(page.locator("#eta")).to_have_value("0.3")
    expect(page.locator("#seed_resize_from_width")).to_have_value("512")
    expect(page.locator("#seed_resize_from_height")).to_have_value("384")
    expect(page.locator("#rng")).to_have_value("cpu")
    # An unknown model leaves the daemon's default selected.
    expect(page.locator("#model")).to_have_value("")


def test_drop_automatic1111_png_with_sampler_noise_schedule_bounds_and_one_axis_tiling(
    page: Page,
) -> None:
    text = (
        "a frieze of lions\n"
        "Steps: 12, Sampler: Euler, Schedule type: Karras, CFG scale: 6, Seed: 5, "
        "Size: 128x64, Sigma churn: 2, Sigma tmin: 0.1, Sigma tmax: 8, Sigma noise: 1.003, "
        "Schedule min sigma: 0.2, Schedule max sigma: 9, Schedule rho: 5, NGMS: 0.5, "
        "NGMS all steps: True, Skip Early CFG: 0.25, ENSD: 31337, "
        "Discard penultimate sigma: True, SGM noise multiplier: True, "
        "UniPC order: 3, UniPC variant: bh1, Extra noise: 0.2, Conditional mask weight: 0.4, "
        "Tile X: True, Tile Y: False"
    )
    open_ui(page)
    drop_file(page, a1111_png(text), "frieze.png")

    expect(page.locator("#sampler")).to_have_value("euler")
    for field, value in (
        ("s_churn", "2"),
        ("s_tmin", "0.1"),
        ("s_tmax", "8"),
        ("s_noise", "1.003"),
        ("noise_seed_delta", "31337"),
        ("schedule", "karras"),
        ("sigma_min", "0.2"),
        ("sigma_max", "9"),
        ("rho", "5"),
        ("s_min_uncond", "0.5"),
        ("skip_early_cond", "0.25"),
        ("extra_noise", "0.2"),
        ("inpaint_mask_weight", "0.4"),
    ):
        expect(page.locator(f"#{field}")).to_have_value(value)
    expect(page.locator("#s_churn")).to_be_enabled()
    expect(page.locator("#rho")).to_be_enabled()
    expect(page.locator("#s_min_uncond_all")).to_be_checked()
    expect(page.locator("#discard_penultimate_sigma")).to_be_checked()
    expect(page.locator("#sgm_noise_multiplier")).to_be_checked()
    expect(page.locator("#unipc_order")).to_have_value("3")
    expect(page.locator("#unipc_variant")).to_have_value("bh1")
    expect(page.locator("#tiling")).to_be_checked()
    expect(page.locator("#tiling_axes")).to_have_value("x")


def test_drop_png_without_parameters_explains(page: Page) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "teal").save(buffer, format="PNG")
    open_ui(page)
    page.fill("#prompt", "unchanged")
    drop_file(page, buffer.getvalue(), "plain.png")
    expect(page.locator(".toast.error")).to_contain_text("No generation settings found")
    expect(page.locator("#prompt")).to_have_value("unchanged")


def test_a_png_chosen_with_the_button_fills_the_form(page: Page, tmp_path: Path) -> None:
    """Without dragging (a phone, the keyboard): *Read settings from a PNG…* opens a file
    chooser, and the chosen PNG's A1111 settings, its mask blur too, fill the form."""
    text = (
        "a lighthouse at dusk\n"
        "Steps: 17, Sampler: Euler a, CFG scale: 7, Seed: 99, Size: 192x256, Mask blur: 9, "
        "Img2img steps: exact"
    )
    source = tmp_path / "from-a1111.png"
    source.write_bytes(a1111_png(text))
    open_ui(page, "gallery")
    page.click("#tab-generate")
    button = page.get_by_role("button", name="Read settings from a PNG…")
    with page.expect_file_chooser() as chooser:
        button.press("Enter")
    chooser.value.set_files(str(source))
    expect(page.locator(".toast")).to_contain_text("Loaded the settings from from-a1111.png")
    expect(page.locator("#prompt")).to_have_value("a lighthouse at dusk")
    expect(page.locator("#steps")).to_have_value("17")
    expect(page.locator("#width")).to_have_value("192")
    expect(page.locator("#mask_blur")).to_have_value("9")
    expect(page.locator("#img2img_steps")).to_have_value("exact")  # Impasto's own label
    # The same file again is read again (a chooser's value is reset after each choice).
    page.fill("#prompt", "changed")
    page.set_input_files("#png-file", str(source))
    expect(page.locator("#prompt")).to_have_value("a lighthouse at dusk")
