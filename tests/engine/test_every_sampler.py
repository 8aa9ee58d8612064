"""Every registered sampler runs through the real pipeline: txt2img, img2img, inpainting.

Progress counts exactly the UNet calls, the output is finite and depends on the sampler. The
numbers themselves are compared with references in test_schedulers.py, test_loop_samplers.py
and test_pipeline_latents.py.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from impasto.engine import Progress, StableDiffusion
from impasto.engine.schedulers import SAMPLER_SPECS

from .conftest import small


def _init() -> Image.Image:
    pixels = np.random.default_rng(2).uniform(0, 255, (64, 64, 3)).astype(np.uint8)
    return Image.fromarray(pixels, "RGB")


def _mask() -> Image.Image:
    mask = np.zeros((64, 64), np.uint8)
    mask[:, 32:] = 255
    return Image.fromarray(mask, "L")


TASKS = {
    "txt2img": {},
    "img2img": {"init_image": _init(), "strength": 0.6},
    "inpaint": {"init_image": _init(), "mask_image": _mask(), "strength": 0.8},
}


# LCM needs an LCM-distilled UNet; test_families.py runs it on one.
SAMPLERS = [s for s in SAMPLER_SPECS if s != "lcm"]


@pytest.mark.parametrize("task", list(TASKS))
@pytest.mark.parametrize("sampler", SAMPLERS)
def test_every_sampler_runs_every_task(pipe: StableDiffusion, sampler: str, task: str) -> None:
    progress: list[Progress] = []
    calls = pipe.unet.calls
    result = pipe.denoise(small(sampler=sampler, steps=6, **TASKS[task]), progress.append)
    made = pipe.unet.calls - calls
    assert np.isfinite(result.latents).all()
    assert made > 0 and [p.step for p in progress] == list(range(1, made + 1))
    assert progress[-1].total == made
    reference = pipe.denoise(small(sampler="euler", steps=6, **TASKS[task])).latents
    if sampler != "euler":
        assert not np.allclose(result.latents, reference, atol=1e-4)


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_every_sampler_runs_on_its_recommended_schedule(
    pipe: StableDiffusion, sampler: str
) -> None:
    """The schedule GET /samplers recommends is one the sampler runs (and not silently another)."""
    spec = SAMPLER_SPECS[sampler]
    assert spec.recommended_schedule in spec.schedules
    result = pipe.denoise(small(sampler=sampler, steps=6, schedule=spec.recommended_schedule))
    assert np.isfinite(result.latents).all()
    if spec.recommended_schedule != "default":
        default = pipe.denoise(small(sampler=sampler, steps=6)).latents
        assert not np.allclose(result.latents, default, atol=1e-4)


def test_a_plugin_sampler_cannot_recommend_a_schedule_it_lacks() -> None:
    from impasto.engine.schedulers import SAMPLERS as CLASSES
    from impasto.engine.schedulers import register_sampler

    with pytest.raises(ValueError, match="recommended_schedule 'karras' is not one of"):
        register_sampler(
            "test_ddim_karras", CLASSES["ddim"], "DDIM again", recommended_schedule="karras"
        )
    assert "test_ddim_karras" not in SAMPLER_SPECS
