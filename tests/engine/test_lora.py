"""Run-time LoRA against diffusers with the same LoRA loaded and fused, on the tiny SD model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import EulerDiscreteScheduler

from impasto.engine import AppliedLora, StableDiffusion
from impasto.engine.lora import load_lora

from .conftest import small
from .families_oracle import LORAS, MAX_PIXEL_DIFF, SIZE, max_diff, noise, torch_pipeline

PEFT = LORAS / "tiny-peft.safetensors"
KOHYA = LORAS / "tiny-kohya.safetensors"


def _reference(
    loras: list[tuple[Path, float | dict[str, float]]], latents: np.ndarray
) -> np.ndarray:
    pipe = torch_pipeline("sd-tiny")
    pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)
    names = [f"lora{index}" for index in range(len(loras))]
    for name, (path, _) in zip(names, loras, strict=True):
        pipe.load_lora_weights(str(path.parent), weight_name=path.name, adapter_name=name)
    if loras:
        pipe.set_adapters(names, adapter_weights=[w for _, w in loras])
        pipe.fuse_lora(adapter_names=names)
    with torch.no_grad():
        return pipe(
            prompt="a red cat in a garden",
            negative_prompt="blurry",
            num_inference_steps=4,
            guidance_scale=7.0,
            height=SIZE,
            width=SIZE,
            latents=torch.from_numpy(latents),
            output_type="np",
        ).images[0]


def test_torch_reference_is_the_committed_model(pipe: StableDiffusion) -> None:
    latents = noise(1)
    reference = _reference([], latents)
    ours = pipe.generate(small(steps=4), latents=latents)[0].image
    assert max_diff(reference, ours) <= MAX_PIXEL_DIFF


@pytest.mark.parametrize(("weight", "unet_weight"), [(1.0, 0.0), (0.0, 1.0), (0.5, -0.8)])
def test_text_encoder_and_unet_weights_match_diffusers(
    pipe: StableDiffusion, weight: float, unet_weight: float
) -> None:
    # A1111's <lora:name:te:unet>: diffusers takes one weight per component.
    latents = noise(3)
    per_component = {"text_encoder": weight, "unet": unet_weight}
    reference = _reference([(PEFT, per_component)], latents)
    lora = AppliedLora(PEFT, weight, unet_weight)
    ours = pipe.generate(small(steps=4, loras=[lora]), latents=latents)[0].image
    assert max_diff(reference, ours) <= MAX_PIXEL_DIFF
    same = pipe.generate(small(steps=4, loras=[(PEFT, weight)]), latents=latents)[0].image
    assert max_diff(reference, same) > 2 * MAX_PIXEL_DIFF, "the UNet's weight must count"


@pytest.mark.parametrize("weight", [0.5, 1.0])
def test_peft_lora_matches_diffusers(pipe: StableDiffusion, weight: float) -> None:
    latents = noise(2)
    reference = _reference([(PEFT, weight)], latents)
    images = pipe.generate(small(steps=4, loras=[(PEFT, weight)]), latents=latents)
    assert max_diff(reference, images[0].image) <= MAX_PIXEL_DIFF
    assert images[0].warnings == ()
    plain = pipe.generate(small(steps=4), latents=latents)[0].image
    assert max_diff(reference, plain) > 2 * MAX_PIXEL_DIFF, "the LoRA must change the image"


def test_kohya_lora_matches_diffusers(pipe: StableDiffusion) -> None:
    latents = noise(3)
    reference = _reference([(KOHYA, 1.0)], latents)
    ours = pipe.generate(small(steps=4, loras=[(KOHYA, 1.0)]), latents=latents)[0].image
    assert max_diff(reference, ours) <= MAX_PIXEL_DIFF


def test_two_loras_at_once_match_diffusers(pipe: StableDiffusion) -> None:
    latents = noise(4)
    loras = [(PEFT, 0.7), (KOHYA, -0.8)]
    reference = _reference(loras, latents)
    ours = pipe.generate(small(steps=4, loras=loras), latents=latents)[0].image
    assert max_diff(reference, ours) <= MAX_PIXEL_DIFF


def test_weight_zero_equals_no_lora(pipe: StableDiffusion) -> None:
    latents = noise(5)
    plain = pipe.generate(small(steps=2), latents=latents)[0].image
    zero = pipe.generate(small(steps=2, loras=[(PEFT, 0.0)]), latents=latents)[0].image
    assert np.array_equal(np.asarray(plain), np.asarray(zero))


def test_sessions_are_cached_per_lora_set(pipe: StableDiffusion) -> None:
    before = pipe.adapters.opened
    for _ in range(2):
        pipe.generate(small(steps=1, loras=[(KOHYA, 0.3)]), latents=noise(6))
    assert pipe.adapters.opened == before + 1
    pipe.generate(small(steps=1, loras=[(KOHYA, 0.4)]), latents=noise(6))
    assert pipe.adapters.opened == before + 2


def test_unmatched_keys_come_back_as_warnings(pipe: StableDiffusion, tmp_path: Path) -> None:
    from safetensors.numpy import save_file

    lora = load_lora(KOHYA)
    module = lora.components["unet"][0]
    save_file(
        {
            "lora_unet_no_such_block_to_q.lora_down.weight": module.down,
            "lora_unet_no_such_block_to_q.lora_up.weight": module.up,
            f"lora_unet_{module.key}.lora_down.weight": module.down,
            f"lora_unet_{module.key}.lora_up.weight": module.up,
        },
        str(tmp_path / "partial.safetensors"),
    )
    images = pipe.generate(
        small(steps=1, loras=[(tmp_path / "partial.safetensors", 1.0)]), latents=noise(7)
    )
    assert len(images[0].warnings) == 1
    assert "no_such_block_to_q" in images[0].warnings[0]
    assert module.key not in images[0].warnings[0]


def test_lora_scale_is_alpha_over_rank() -> None:
    assert {m.scale for m in load_lora(PEFT).components["unet"]} == {2.0}  # alpha 8, rank 4
    assert {m.scale for m in load_lora(KOHYA).components["unet"]} == {0.5}  # alpha 1, rank 2


def test_fp16_model_takes_a_lora() -> None:
    from impasto.engine import load_pipeline
    from impasto.engine.providers import cpu_choice

    from .conftest import TINY

    fp16 = load_pipeline(TINY / "sd-tiny-fp16", cpu_choice())
    latents = noise(8)
    plain = fp16.generate(small(steps=2), latents=latents)[0].image
    adapted = fp16.generate(small(steps=2, loras=[(PEFT, 1.0)]), latents=latents)
    assert adapted[0].warnings == ()
    assert np.abs(np.asarray(plain, np.int32) - np.asarray(adapted[0].image, np.int32)).max() > 4
