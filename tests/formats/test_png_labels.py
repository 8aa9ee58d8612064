"""Labels added to a PNG's ``parameters`` text after it was written (what the A1111 layer
applies before a job: the mask's blur and inversion), in the text and in the PNG's chunk,
without decoding a pixel; and Impasto's ``Img2img steps`` label, written where a run from an
image counts its steps other than A1111 does for that pass."""

from __future__ import annotations

import io

import pytest
from PIL import Image, PngImagePlugin

from impasto.formats.png import parse_a1111_parameters, with_labels
from impasto.formats.png_text import PngTextError, png_text, with_text
from tests.formats.test_infotext_round_trip import a1111_parse, parameters, plan

TEXT = (
    'a cat\nNegative prompt: dog\nSteps: 3, Sampler: Euler a, Lora hashes: "a: 1, b: 2", Size: 8x8'
)

HIRES = {"width": 768, "height": 1152, "strength": 0.5, "upscaler": "latent"}


def _png(text: dict[str, str], itxt: bool = False) -> bytes:
    info = PngImagePlugin.PngInfo()
    for key, value in text.items():
        (info.add_itxt if itxt else info.add_text)(key, value)
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(buffer, "PNG", pnginfo=info)
    return buffer.getvalue()


def test_labels_are_added_to_the_settings_line_and_replace_their_own() -> None:
    text = with_labels(TEXT, {"Mask blur": 0, "Steps": 5, "Mask mode": "Inpaint not masked"})
    parsed = a1111_parse(text)  # as A1111 reads it
    assert parsed["Prompt"] == "a cat" and parsed["Negative prompt"] == "dog"
    assert (parsed["Steps"], parsed["Mask blur"], parsed["Mask mode"]) == (
        "5",
        "0",
        "Inpaint not masked",
    )
    assert parsed["Lora hashes"] == "a: 1, b: 2"  # a quoted value stays whole
    assert text.count("Steps:") == 1
    assert with_labels(TEXT, {}) == TEXT
    labels = {"Mask blur": 4, "Mask mode": "x, y", "Masked content": "fill"}
    assert a1111_parse(with_labels("only a prompt", labels))["Mask mode"] == "x, y"


@pytest.mark.parametrize("itxt", [False, True])
def test_the_chunk_is_replaced_and_the_pixels_and_other_chunks_kept(itxt: bool) -> None:
    data = _png({"parameters": "old", "impasto": "{}", "other": "x"}, itxt)
    for text in ("new: text, with commas", "ünïcode ✓ text"):
        out = with_text(data, "parameters", text)
        assert png_text(out) == {"parameters": text, "impasto": "{}", "other": "x"}
        with Image.open(io.BytesIO(out)) as image:
            image.load()  # every chunk's CRC is checked here
            assert image.info["parameters"] == text
            assert image.getpixel((3, 3)) == (255, 0, 0)


def test_a_png_without_the_chunk_gets_one_and_other_bytes_are_refused() -> None:
    out = with_text(_png({}), "parameters", "Steps: 2")
    assert png_text(out) == {"parameters": "Steps: 2"}
    with pytest.raises(PngTextError):
        with_text(b"GIF89a...", "parameters", "x")


@pytest.mark.parametrize(
    ("fields", "label"),
    [
        ({"init_image": "upload:x", "strength": 0.5, "img2img_steps": "strength"}, "strength"),
        ({"init_image": "upload:x", "strength": 0.5, "img2img_steps": "exact"}, "exact"),
        ({"init_image": "upload:x", "strength": 0.5, "img2img_steps": "a1111"}, None),
        ({"hires": HIRES, "img2img_steps": "strength"}, "strength"),
        ({"hires": HIRES, "img2img_steps": "a1111"}, "a1111"),
        ({"hires": HIRES, "img2img_steps": "exact"}, None),
        ({"img2img_steps": "strength"}, None),  # no pass starts from an image
    ],
)
def test_img2img_steps_is_written_where_it_is_not_a1111s_way(
    fields: dict[str, object], label: str | None
) -> None:
    extra = parse_a1111_parameters(parameters(plan(**fields)))["extra"]
    assert extra.get("Img2img steps") == label
