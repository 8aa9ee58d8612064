"""The Generate form against what the API takes, on a models folder holding LoRAs, an embedding
and VAEs: each menu offers only what a request can name there, the VAE is chosen as A1111's
"SD VAE" is and travels with the settings, the menus follow installs and removals, and the hires
pass's own sampler, CFG, prompts and size can be set, sent, reused and read from a PNG."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import Browser, Page, expect
from safetensors.numpy import save_file

from tests.harness import Daemon, running_daemon
from tests.ui.conftest import QUICK, checked_page, fill_form, finished_job, open_ui
from tests.ui.test_loras import impasto_png
from tests.ui.test_png_drop import a1111_png, drop_file

ADAPTERS = Path(__file__).resolve().parents[2] / "models" / "tiny" / "adapters"
OFT = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.oft_blocks"


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """A daemon whose models folder holds, copied in by hand, two LoRAs, one LoRA it cannot
    use (OFT), an embedding and a VAE, beside the bundled checkpoints."""
    root = tmp_path_factory.mktemp("ui-menus")
    models = root / "models"
    for folder in ("loras", "embeddings", "vae"):
        (models / folder).mkdir(parents=True)
    shutil.copy(
        ADAPTERS / "loras" / "tiny-kohya.safetensors", models / "loras" / "kohya.safetensors"
    )
    shutil.copy(ADAPTERS / "loras" / "tiny-peft.safetensors", models / "loras" / "peft.safetensors")
    save_file({OFT: np.zeros(1, np.float32)}, str(models / "loras" / "oftlora.safetensors"))
    shutil.copy(
        ADAPTERS / "embeddings" / "tiny-a1111.safetensors",
        models / "embeddings" / "emb.safetensors",
    )
    shutil.copytree(ADAPTERS / "vae" / "sd-tiny-vae-alt", models / "vae" / "altvae")
    with running_daemon(root, models_dir=str(models), workers=1) as running:
        yield running


@pytest.fixture
def page(browser: Browser, daemon: Daemon) -> Iterator[Page]:
    with checked_page(browser, daemon.url) as page:
        yield page


def options(page: Page, select: str) -> list[str]:
    return list(page.eval_on_selector_all(f"{select} option", "os => os.map((o) => o.value)"))


def test_each_menu_offers_only_what_a_request_can_name(page: Page, daemon: Daemon) -> None:
    with daemon.client() as client:
        listed = client.get("/api/v1/models").json()
    checkpoints = [
        m["id"]
        for m in listed
        if m["type"] == "checkpoint" and not m["problem"] and m["family"] != "sdxl-refiner"
    ]
    open_ui(page)
    # No embedding, VAE, LoRA or refiner among the models to generate with.
    assert options(page, "#model") == ["", *checkpoints]
    assert options(page, "#vae") == ["", "altvae"]
    expect(page.locator("#vae option[value='']")).to_have_text("Automatic (the model's own)")
    # The OFT LoRA, which no request can use, is not offered as a LoRA's name.
    assert sorted(options(page, "#lora-names")) == ["kohya", "peft"]


def test_a_chosen_vae_is_sent_kept_and_reused(page: Page, daemon: Daemon) -> None:
    open_ui(page)
    page.select_option("#model", "sd-tiny")
    expect(page.locator("#model-defaults-note")).to_contain_text("sd-tiny")
    page.select_option("#vae", "altvae")
    fill_form(page, prompt="a lighthouse, other vae", **QUICK)
    page.click("#submit")
    job = finished_job(page, daemon)
    assert job["request"]["vae"] == "altvae"
    page.reload()  # the form's saved settings keep it
    open_ui(page)
    expect(page.locator("#vae")).to_have_value("altvae")

    # A past job's "use these settings" brings its VAE back, and Automatic for one without.
    page.select_option("#vae", "")
    open_ui(page, "gallery")
    page.locator(f".thumb[data-job='{job['id']}']").click()
    expect(page.locator("#viewer [data-param='VAE']")).to_have_text("altvae")
    page.click("#viewer-use")
    expect(page.locator("#vae")).to_have_value("altvae")

    # PNG info: Impasto's own chunk, and A1111's "VAE: <file>" text ("None": the model's own).
    drop_file(page, a1111_png("a cat\nSteps: 4, Sampler: Euler, Size: 64x64"), "no-vae.png")
    expect(page.locator("#prompt")).to_have_value("a cat")
    expect(page.locator("#vae")).to_have_value("")
    text = "a dog\nSteps: 4, Sampler: Euler, Size: 64x64, VAE: altvae.safetensors"
    drop_file(page, a1111_png(text), "a1111.png")
    expect(page.locator("#prompt")).to_have_value("a dog")
    expect(page.locator("#vae")).to_have_value("altvae")
    # One not installed is said, and the form does not keep the VAE chosen before.
    drop_file(page, impasto_png({"prompt": "a fox", "vae": "gone-vae"}), "elsewhere.png")
    expect(page.locator("#prompt")).to_have_value("a fox")
    expect(page.locator("#vae")).to_have_value("")
    expect(page.locator(".toast.error")).to_contain_text("VAE gone-vae is not installed")


def test_the_plot_sends_the_vae_and_the_hires_pass_settings(page: Page) -> None:
    """The X/Y/Z plot runs through /sdapi/v1, where a VAE left out is the one /options holds
    and the hires pass's own settings have A1111's names."""
    open_ui(page)
    sent = page.evaluate(
        """async () => {
            const { toA1111 } = await import('./js/xyz-request.js');
            const body = (req) => toA1111({ prompt: 'p', ...req }, null).body;
            const hires = { scale: 2, upscaler: 'latent', steps: 0, strength: 0.5,
                sampler: 'euler', cfg_scale: 3, prompt: 'sharp', width: 128 };
            const { hr_sampler_name, hr_cfg, hr_prompt, hr_resize_x, hr_scheduler } =
                body({ hires });
            return [body({ vae: 'altvae' }).override_settings.sd_vae,
                body({ vae: null }).override_settings.sd_vae,
                [hr_sampler_name, hr_cfg, hr_prompt, hr_resize_x, hr_scheduler ?? null]];
        }"""
    )
    assert sent == ["altvae", "Automatic", ["euler", 3, "sharp", 128, None]]
    page.click("#xyz-card > summary")
    page.select_option("#xyz-x-type", "VAE")
    page.click("#xyz-x-fill")
    expect(page.locator("#xyz-x-values")).to_have_value("Automatic, altvae")


def test_the_menus_follow_the_models_folder(page: Page, daemon: Daemon) -> None:
    models = Path(daemon.env()["IMPASTO_MODELS_DIR"])
    open_ui(page)
    page.select_option("#vae", "altvae")
    # Copied in by hand: the Models panel lists it, and so do the Generate form's menus.
    shutil.copytree(ADAPTERS / "vae" / "sd-tiny-vae-alt", models / "vae" / "handvae")
    shutil.copy(
        ADAPTERS / "loras" / "tiny-kohya.safetensors", models / "loras" / "handlora.safetensors"
    )
    page.click("#tab-models")
    expect(page.locator(".model[data-model=handvae]")).to_be_visible()
    page.click("#tab-generate")
    expect(page.locator("#vae option[value=handvae]")).to_have_count(1)
    expect(page.locator("#lora-names option[value=handlora]")).to_have_count(1)
    expect(page.locator("#vae")).to_have_value("altvae")
    # Removed by another client: the menu drops it.
    with daemon.client() as client:
        assert client.delete("/api/v1/models/handvae").status_code == 200
    expect(page.locator("#vae option[value=handvae]")).to_have_count(0)
    # Deleted by hand while chosen: the daemon's refusal is shown under the VAE menu.
    shutil.rmtree(models / "vae" / "altvae")
    fill_form(page, prompt="a vanished vae", **QUICK)
    page.click("#submit")
    expect(page.locator("#err-vae")).to_contain_text("'altvae' is not installed")
    expect(page.locator("#vae")).to_have_attribute("aria-invalid", "true")


def test_the_hires_pass_takes_its_own_settings(page: Page, daemon: Daemon, tmp_path: Path) -> None:
    open_ui(page)
    page.select_option("#model", "sd-tiny")
    expect(page.locator("#model-defaults-note")).to_contain_text("sd-tiny")
    fill_form(page, prompt="a harbour", **{**QUICK, "steps": "2"})
    page.click("#hires-card summary")
    page.check("#hires")
    fill_form(page, hires_scale="1.5", hires_steps="1", hires_width="128", hires_cfg_scale="3")
    page.select_option("#hires_sampler", "euler")
    page.fill("#hires_prompt", "a harbour, <lora:kohya:0.5>")
    # A LoRA the first pass does not run: the daemon's refusal is shown under the hires prompt.
    page.click("#submit")
    expect(page.locator("#err-hires_prompt")).to_contain_text("lora")
    page.fill("#hires_prompt", "a sharp harbour")
    page.click("#submit")
    hires = finished_job(page, daemon)["request"]["hires"]
    assert (hires["sampler"], hires["cfg_scale"], hires["prompt"]) == (
        "euler",
        3,
        "a sharp harbour",
    )
    assert (hires["width"], hires["height"], hires["scale"]) == (128, None, 1.5)
    assert hires["schedule"] is None and hires["negative_prompt"] is None
    page.reload()  # the saved settings keep them
    open_ui(page)
    expect(page.locator("#hires_prompt")).to_have_value("a sharp harbour")
    expect(page.locator("#hires_sampler")).to_have_value("euler")

    # A1111's hires labels fill the card; a PNG without them turns the pass off.
    text = (
        "a cat\nSteps: 4, Sampler: Euler, Size: 64x64, Denoising strength: 0.4, Hires upscale: 2,"
        " Hires steps: 3, Hires upscaler: Latent (bicubic), Hires sampler: DPM++ 2M,"
        ' Hires schedule type: Karras, Hires CFG Scale: 4, Hires prompt: "a cat, sharp"'
    )
    drop_file(page, a1111_png(text), "hires.png")
    expect(page.locator("#prompt")).to_have_value("a cat")
    expect(page.locator("#hires")).to_be_checked()
    values = {
        "hires_scale": "2",
        "hires_steps": "3",
        "hires_upscaler": "latent-bicubic",
        "hires_strength": "0.4",
        "hires_sampler": "dpmpp_2m",
        "hires_schedule": "karras",
        "hires_cfg_scale": "4",
        "hires_prompt": "a cat, sharp",
        "hires_width": "",
    }
    for field, value in values.items():
        expect(page.locator(f"#{field}")).to_have_value(value)
    # With an init image the daemon refuses the pass: said under its box, not at the top.
    image = tmp_path / "init.png"
    Image.new("RGB", (64, 64), "navy").save(image)
    page.set_input_files("#init-file", str(image))
    page.click("#submit")
    expect(page.locator("#err-hires")).to_contain_text("hires fix is for txt2img")
    expect(page.locator("#form-error")).to_be_hidden()
    drop_file(page, a1111_png("a dog\nSteps: 4, Sampler: Euler, Size: 64x64"), "plain.png")
    expect(page.locator("#prompt")).to_have_value("a dog")
    expect(page.locator("#hires")).not_to_be_checked()
