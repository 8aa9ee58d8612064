"""Bad requests fail with a typed error naming the field, before any session runs."""

from __future__ import annotations

from typing import Any

import pytest
from PIL import Image

from impasto.engine import InvalidRequestError, StableDiffusion, validate_params

from .conftest import small

RGB = Image.new("RGB", (64, 64))
MASK = Image.new("L", (64, 64))

BAD: list[tuple[str, dict[str, Any], str]] = [
    ("width", {"width": 65}, "multiple of 8"),
    ("width", {"width": 56}, "from 64 to 2048"),
    ("height", {"height": 2056}, "from 64 to 2048"),
    ("height", {"height": 64.0}, "integer"),
    ("steps", {"steps": 0}, "from 1 to 150"),
    ("steps", {"steps": 151}, "from 1 to 150"),
    ("cfg_scale", {"cfg_scale": -0.5}, "from 0 to 30"),
    ("cfg_scale", {"cfg_scale": float("nan")}, "from 0 to 30"),
    ("seed", {"seed": 2**63}, "0..9223372036854775807"),
    ("batch_size", {"batch_size": 11}, "from 1 to 10"),
    ("strength", {"strength": 1.5}, "from 0 to 1"),
    ("seed", {"seed": -2}, "-1 (random)"),
    ("sampler", {"sampler": "euler_b"}, "dpmpp_2m"),
    ("schedule", {"sampler": "ddim", "schedule": "karras"}, "default"),
    ("schedule", {"schedule": "cosine"}, "karras"),
    ("init_image", {"init_image": Image.new("RGB", (64, 72))}, "must equal width x height"),
    ("init_image", {"init_image": Image.new("CMYK", (64, 64))}, "RGB, RGBA, L"),
    ("init_image", {"mask_image": MASK}, "needs an init image"),
    ("mask_image", {"init_image": RGB, "mask_image": Image.new("RGB", (64, 64))}, "L, 1"),
    ("mask_image", {"init_image": RGB, "mask_image": Image.new("L", (32, 64))}, "64x64"),
    ("prompt", {"prompt": None}, "string"),
    ("sgm_noise_multiplier", {"init_image": RGB, "sgm_noise_multiplier": True}, "txt2img"),
    ("unipc_order", {"sampler": "unipc", "unipc_order": 4}, "from 1 to 3"),
    ("unipc_variant", {"sampler": "unipc", "unipc_variant": "bh3"}, "bh1, bh2"),
]


@pytest.mark.parametrize(("field", "overrides", "allowed"), BAD, ids=[b[0] for b in BAD])
def test_each_bad_field_is_named_with_its_allowed_values(
    pipe: StableDiffusion, field: str, overrides: dict[str, Any], allowed: str
) -> None:
    before = pipe.session_seconds
    with pytest.raises(InvalidRequestError) as info:
        pipe.generate(small(**overrides))
    assert info.value.field == field
    assert allowed in info.value.message
    assert pipe.session_seconds == before  # no session ran


def test_good_requests_pass() -> None:
    validate_params(small())
    validate_params(small(init_image=RGB, mask_image=Image.new("1", (64, 64)), strength=0.0))
    validate_params(small(sampler="euler", schedule="karras", width=2048, height=64, seed=-1))


def test_an_init_images_transparent_parts_are_flattened_onto_white() -> None:
    from impasto.formats.pixels import flattened

    image = Image.new("RGBA", (2, 1), (0, 0, 0, 0))
    image.putpixel((1, 0), (200, 10, 10, 128))  # half see-through red
    flat = flattened(image)
    assert flat.mode == "RGB"
    assert flat.getpixel((0, 0)) == (255, 255, 255)
    assert flat.getpixel((1, 0)) == (227, 132, 132)  # red over white, half and half
    palette = Image.new("P", (1, 1), 0)
    palette.info["transparency"] = 0
    assert flattened(palette).getpixel((0, 0)) == (255, 255, 255)
    assert flattened(Image.new("RGB", (1, 1), (1, 2, 3))).getpixel((0, 0)) == (1, 2, 3)
