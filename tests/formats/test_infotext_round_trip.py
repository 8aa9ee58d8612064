"""Every value our PNG's ``parameters`` text holds is read back to the same value by
AUTOMATIC1111's infotext parser.

The parser below is written from A1111's rules (modules/infotext_utils.py,
``parse_generation_parameters``), independently of ours, so that a writer and a reader
sharing one mistake cannot pass together: the last line is the settings when it holds at least
three ``key: value`` pairs; lines from one starting ``Negative prompt:`` on are the negative
prompt; a value in double quotes is JSON; a ``WxH`` value becomes ``key-1`` and ``key-2``.
"""

from __future__ import annotations

import contextlib
import json
import re
from typing import Any

import pytest
from PIL import Image

from impasto.formats.png import format_a1111_parameters, parse_a1111_parameters
from impasto.formats.prompt_tags import lora_tags
from impasto.plugins.png_metadata import postprocess_result
from impasto.plugins.types import PluginContext, PostprocessResult
from impasto.services.upscalers import infotext

A1111_PARAM = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
A1111_SIZE = re.compile(r"^(\d+)x(\d+)$")


def a1111_parse(text: str) -> dict[str, Any]:
    """A1111's reading of an infotext: labels -> text, as its paste and /png-info see them."""
    *lines, last = text.strip().split("\n")
    if len(A1111_PARAM.findall(last)) < 3:
        lines.append(last)
        last = ""
    prompt: list[str] = []
    negative: list[str] = []
    in_negative = False
    for raw in lines:
        line = raw.strip()
        if line.startswith("Negative prompt:"):
            in_negative = True
            line = line[16:].strip()
        (negative if in_negative else prompt).append(line)
    out: dict[str, Any] = {"Prompt": "\n".join(prompt), "Negative prompt": "\n".join(negative)}
    for key, value in A1111_PARAM.findall(last):
        if value[:1] == '"' and value[-1:] == '"':
            with contextlib.suppress(ValueError):
                value = json.loads(value)
        size = A1111_SIZE.match(value)
        if size:
            out[f"{key}-1"], out[f"{key}-2"] = size.group(1), size.group(2)
        else:
            out[key] = value
    return out


def plan(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "prompt": "a lighthouse",
        "negative_prompt": "",
        "model": "sd-tiny",
        "width": 512,
        "height": 768,
        "steps": 20,
        "cfg_scale": 6.5,
        "sampler": "dpmpp_2m",
        "schedule": "karras",
    }
    return {**base, **overrides}


def parameters(request: dict[str, Any], seed: int = 1234567890) -> str:
    """The parameters text the worker writes for ``request`` (the built-in plugin)."""
    result = PostprocessResult(job_id="j", index=0, seed=seed, model="sd-tiny", request=request)
    image = Image.new("RGB", (request["width"], request["height"]))
    postprocess_result(result, image, PluginContext(name="png_metadata", config={}))
    return result.text["parameters"]


def test_base_fields_round_trip_through_a1111() -> None:
    read = a1111_parse(parameters(plan(negative_prompt="blurry, low quality")))
    assert read["Prompt"] == "a lighthouse"
    assert read["Negative prompt"] == "blurry, low quality"
    assert read["Steps"] == "20"
    assert (read["Sampler"], read["Schedule type"]) == ("DPM++ 2M", "Karras")
    assert float(read["CFG scale"]) == 6.5
    assert read["Seed"] == "1234567890"
    assert (read["Size-1"], read["Size-2"]) == ("512", "768")
    assert read["Model"] == "sd-tiny"


def test_vae_is_written_as_a1111_writes_it() -> None:
    """A VAE swapped in is part of how the picture was made: ``VAE: <name>`` after the model."""
    text = parameters(plan(vae="kl-f8-anime2"))
    assert a1111_parse(text)["VAE"] == "kl-f8-anime2"
    assert "Model: sd-tiny, VAE: kl-f8-anime2" in text
    assert "VAE" not in a1111_parse(parameters(plan(vae=None)))


def test_lora_tags_keep_their_weights() -> None:
    loras = [
        {"name": "detail", "weight": 0.35},
        {"name": "style v2", "weight": 1.25, "unet_weight": 0.5},
        {"name": "neg", "weight": -1.5},
        {"name": "fine", "weight": 0.123456789, "unet_weight": -0.987654321},
    ]
    read = a1111_parse(parameters(plan(prompt="a cat", loras=loras)))
    _, tags = lora_tags(read["Prompt"])
    assert [(t.name, t.weight, t.unet_weight) for t in tags] == [
        ("detail", 0.35, None),
        ("style v2", 1.25, 0.5),
        ("neg", -1.5, None),
        ("fine", 0.123456789, -0.987654321),
    ]


def test_hires_img2img_clip_skip_and_seeds_round_trip() -> None:
    hires = {
        "width": 1024,
        "height": 1536,
        "strength": 0.55,
        "steps": 12,
        "upscaler": "lanczos",
        "sampler": "euler",
        "prompt": 'detailed, sharp: "crisp"',
        "negative_prompt": "blurry\nnoisy",
        "cfg_scale": 4.5,
    }
    read = a1111_parse(
        parameters(plan(hires=hires, clip_skip=2, subseed=77, subseed_strength=0.25))
    )
    assert read["Denoising strength"] == "0.55"
    assert (read["Hires resize-1"], read["Hires resize-2"]) == ("1024", "1536")
    assert read["Hires upscale"] == "2" and read["Hires steps"] == "12"
    assert read["Hires upscaler"] == "Lanczos" and read["Hires sampler"] == "Euler"
    assert read["Hires prompt"] == 'detailed, sharp: "crisp"'
    assert read["Hires negative prompt"] == "blurry\nnoisy"
    assert float(read["Hires CFG Scale"]) == 4.5
    assert read["Clip skip"] == "2"
    assert (read["Variation seed"], read["Variation seed strength"]) == ("77", "0.25")

    img2img = a1111_parse(parameters(plan(init_image="upload:" + "a" * 32, strength=0.6)))
    assert img2img["Denoising strength"] == "0.6"


@pytest.mark.parametrize(
    "value",
    [
        '"quoted"',  # starts and ends with a quote: A1111 would take them for quoting
        '"quoted" then more',
        "a, b",
        "key: value",
        "line\nbreak",
        "ünïcødé 🎨 画",
        'back\\slash "and" quote',
    ],
)
def test_any_text_value_reads_back_unchanged(value: str) -> None:
    """A text value (a hires prompt, a model's name) survives A1111's unquoting."""
    text = parameters(
        plan(
            hires={
                "width": 1024,
                "height": 1536,
                "strength": 0.5,
                "prompt": value,
                "upscaler": "lanczos",
            }
        )
    )
    assert a1111_parse(text)["Hires prompt"] == value
    assert parse_a1111_parameters(text)["extra"]["Hires prompt"] == value
    model = format_a1111_parameters(
        prompt="p",
        negative_prompt=None,
        steps=1,
        sampler_name="Euler",
        schedule_type=None,
        cfg_scale=7,
        seed=1,
        width=64,
        height=64,
        model=value,
    )
    assert a1111_parse(model)["Model"] == value
    assert parse_a1111_parameters(model)["model"] == value


@pytest.mark.parametrize(
    ("prompt", "negative"),
    [
        ("line one\nline two, with a comma: and a colon", "neg one\nneg two"),
        ("ünïcødé prompt 🎨, 画像", "🙅 negative"),
        ("word " * 400 + "end", ""),
        ("Steps: 1, Sampler: Euler, Seed: 3", ""),  # a prompt that looks like settings
    ],
)
def test_prompts_round_trip(prompt: str, negative: str) -> None:
    read = a1111_parse(parameters(plan(prompt=prompt, negative_prompt=negative)))
    assert read["Prompt"] == prompt.strip()
    assert read["Negative prompt"] == negative
    assert read["Steps"] == "20"  # the real settings, not the prompt's


def test_upscale_postprocessing_text_quotes_as_the_parameters_do() -> None:
    """The upscale's ``postprocessing`` chunk follows the same quoting rule (one rule)."""
    text = infotext({"Postprocess upscale by": 2.0, "Postprocess upscaler": '"odd", name'})
    read = a1111_parse(f"\n{text}, Extra: 1")
    assert read["Postprocess upscale by"] == "2"
    assert read["Postprocess upscaler"] == '"odd", name'
