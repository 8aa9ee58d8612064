"""Seeds, batches, guidance, progress and cancel on the tiny model."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from impasto.engine import (
    CancelToken,
    GenerationCancelled,
    InvalidRequestError,
    Progress,
    StableDiffusion,
    load_pipeline,
)
from impasto.engine.providers import cpu_choice

from .conftest import SD_TINY, small


def _pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.int32)


def test_same_seed_same_pixels_across_runs(pipe: StableDiffusion) -> None:
    first = pipe.generate(small(sampler="euler_a"))[0]
    again = pipe.generate(small(sampler="euler_a"))[0]
    other = pipe.generate(small(sampler="euler_a", seed=1235))[0]
    assert first.seed == again.seed == 1234
    assert np.array_equal(_pixels(first.image), _pixels(again.image))
    assert not np.array_equal(_pixels(first.image), _pixels(other.image))


def test_same_seed_same_pixels_in_a_fresh_pipeline(pipe: StableDiffusion) -> None:
    fresh = load_pipeline(SD_TINY, cpu_choice())
    ours = pipe.generate(small(sampler="dpmpp_2m_sde"))[0].image
    theirs = fresh.generate(small(sampler="dpmpp_2m_sde"))[0].image
    fresh.close()
    assert np.array_equal(_pixels(ours), _pixels(theirs))


@pytest.mark.parametrize("sampler", ["euler_a", "dpmpp_2m_sde"])  # both draw noise every step
def test_batch_image_i_equals_single_image_with_seed_plus_i(
    pipe: StableDiffusion, sampler: str
) -> None:
    batch = pipe.generate(small(sampler=sampler, batch_size=3, seed=40))
    assert [g.seed for g in batch] == [40, 41, 42]
    for i, generated in enumerate(batch):
        single = pipe.generate(small(sampler=sampler, seed=40 + i))[0]
        assert single.seed == 40 + i
        # Batched and single UNet calls may round differently in the last float bit.
        assert np.abs(_pixels(generated.image) - _pixels(single.image)).max() <= 1


@pytest.mark.parametrize("seed", [None, -1])
def test_missing_seed_draws_a_random_one_and_reports_it(
    pipe: StableDiffusion, seed: int | None
) -> None:
    first = pipe.generate(small(seed=seed, batch_size=2))
    second = pipe.generate(small(seed=seed))
    assert first[0].seed >= 0 and first[1].seed == first[0].seed + 1
    assert first[0].seed != second[0].seed
    replay = pipe.generate(small(seed=first[0].seed))[0]
    assert np.array_equal(_pixels(replay.image), _pixels(first[0].image))


def test_progress_counts_each_step_and_previews_every_n(pipe: StableDiffusion) -> None:
    events: list[Progress] = []
    pipe.generate(small(steps=6, preview_every=2), progress=events.append)
    assert [(e.step, e.total) for e in events] == [(i, 6) for i in range(1, 7)]
    with_preview = [e.step for e in events if e.preview is not None]
    assert with_preview == [2, 4, 6]
    preview = events[1].preview
    assert preview is not None and preview.mode == "RGB" and preview.size == (8, 8)


def test_img2img_progress_counts_only_the_steps_that_run(pipe: StableDiffusion) -> None:
    events: list[Progress] = []
    image = Image.new("RGB", (64, 64), (200, 30, 30))
    pipe.generate(small(steps=10, init_image=image, strength=0.5), progress=events.append)
    assert [(e.step, e.total) for e in events] == [(i, 5) for i in range(1, 6)]


@pytest.mark.parametrize("cancel_at", [1, 3])
def test_cancel_from_progress_stops_before_the_next_unet_call(
    pipe: StableDiffusion, cancel_at: int
) -> None:
    token = CancelToken()
    before = pipe.unet.calls

    def on_progress(progress: Progress) -> None:
        if progress.step == cancel_at:
            token.cancel()

    with pytest.raises(GenerationCancelled):
        pipe.generate(small(steps=8), progress=on_progress, cancel=token)
    # One batched (cond + uncond) UNet call per step, so exactly cancel_at calls ran.
    assert pipe.unet.calls - before == cancel_at


def test_cancelled_token_stops_before_any_unet_call(pipe: StableDiffusion) -> None:
    token = CancelToken()
    token.cancel()
    before = pipe.unet.calls
    with pytest.raises(GenerationCancelled):
        pipe.generate(small(), cancel=token)
    assert pipe.unet.calls == before


def test_guidance_batches_cond_and_uncond_in_one_call(pipe: StableDiffusion) -> None:
    assert pipe.unet.dynamic_batch
    before = pipe.unet.calls
    pipe.generate(small(steps=3, batch_size=2))
    assert pipe.unet.calls - before == 3


@pytest.mark.parametrize("cfg_scale", [1.0, 0.0])
def test_cfg_scale_one_or_less_skips_the_uncond_pass(
    pipe: StableDiffusion, cfg_scale: float
) -> None:
    """1 or less is "no guidance" (Turbo's default 0): one UNet batch per step, not two."""
    seen: list[int] = []
    run = pipe.unet.run

    def spy(sample: np.ndarray, t: float, hidden: object) -> np.ndarray:
        seen.append(sample.shape[0])
        return run(sample, t, hidden)

    pipe.unet.run = spy  # type: ignore[method-assign]
    try:
        plain = pipe.generate(small(cfg_scale=cfg_scale, negative_prompt="anything"))[0].image
        other_negative = pipe.generate(small(cfg_scale=cfg_scale, negative_prompt="x"))[0].image
    finally:
        del pipe.unet.run
    assert seen == [1] * 8  # batch 1, no uncond half
    assert np.array_equal(_pixels(plain), _pixels(other_negative))


def test_negative_prompt_changes_the_image(pipe: StableDiffusion) -> None:
    a = pipe.generate(small(negative_prompt="blurry"))[0].image
    b = pipe.generate(small(negative_prompt="green dog"))[0].image
    assert not np.array_equal(_pixels(a), _pixels(b))


def test_given_latents_must_have_the_batch_shape(pipe: StableDiffusion) -> None:
    with pytest.raises(InvalidRequestError) as info:
        pipe.generate(small(batch_size=2), latents=np.zeros((1, 4, 8, 8), np.float32))
    assert info.value.field == "latents"


def test_fp16_model_generates_and_reports_its_dtype() -> None:
    fp16 = load_pipeline(SD_TINY.parent / "sd-tiny-fp16", cpu_choice())
    assert fp16.info.dtype == "fp16"
    out = fp16.generate(small(steps=2))[0].image
    fp16.close()
    assert out.size == (64, 64) and np.asarray(out).std() > 1
