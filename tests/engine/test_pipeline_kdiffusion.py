"""Whole txt2img runs of the samplers diffusers lacks, against k-diffusion on the real tiny UNet.

diffusers has no DPM2, DPM2 a, DPM++ 2S a, DPM++ SDE, DPM++ 3M SDE, DPM fast, DPM adaptive or
Restart pipeline, so the reference is AUTOMATIC1111's arrangement: optimum's text encoding,
the committed UNet graph run by ONNX Runtime behind k-diffusion's ``DiscreteEpsDDPMDenoiser``
(its own sigma -> timestep mapping), classifier-free guidance on the denoised outputs, and
k-diffusion's sampler over the schedule's sigmas, fed the noise our pipeline drew. The final
latents must agree to 1e-4 of their largest value; the tiny UNet depends on the timestep, so
a wrong timestep fails here too. DDIM CFG++ (in no library) is compared with diffusers' DDIM
step given A1111's CFG++ direction, on the same parts.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
import torch
from optimum.onnxruntime import ORTStableDiffusionPipeline
from PIL import Image

from impasto.engine import StableDiffusion
from impasto.engine.pipelines.base import UNet
from impasto.engine.schedulers import create_scheduler

from . import kdiffusion_oracle
from .conftest import SD_TINY, small
from .test_equivalence import NEGATIVE, PROMPT, _noise
from .test_loop_samplers import REFERENCES
from .test_pipeline_latents import RecordedNoise, close

CFG = 7.0
STEPS = 6
SAMPLERS = REFERENCES  # our sampler -> its k-diffusion function (test_loop_samplers.py)


@pytest.fixture(scope="module")
def reference_parts() -> tuple[torch.Tensor, Any, ort.InferenceSession]:
    """Optimum's prompt embeddings [uncond, cond], the schedule's alphas, the UNet graph."""
    ref = ORTStableDiffusionPipeline.from_pretrained(SD_TINY, provider="CPUExecutionProvider")
    cond, uncond = ref.encode_prompt(PROMPT, "cpu", 1, True, negative_prompt=NEGATIVE)
    embeds = torch.cat([uncond, cond]).float()
    alphas = torch.as_tensor(np.asarray(ref.scheduler.alphas_cumprod), dtype=torch.float32)
    unet = ort.InferenceSession(
        str(SD_TINY / "unet" / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    return embeds, alphas, unet


@dataclass(frozen=True)
class A1111Skip:
    """A1111's CFGDenoiser leaves the negative pass out of call ``step`` (counted from 0 over
    ``calls``) when ``step / calls <= early`` (early above 0), or when the call's sigma is
    below ``min_sigma`` on an odd call (any call with ``every``)."""

    min_sigma: float = 0.0
    every: bool = False
    early: float = 0.0
    calls: int = 1


def guided_denoiser(
    embeds: torch.Tensor, alphas: torch.Tensor, unet: Any, skip: A1111Skip | None = None
) -> Any:
    """A1111's CFG denoiser: uncond + CFG * (cond - uncond) of k-diffusion's denoised; with
    ``skip``, its calls without the negative pass give the prompt's denoised as it is."""
    _, external = kdiffusion_oracle.load()

    def eps(scaled: torch.Tensor, t: torch.Tensor, **_: Any) -> torch.Tensor:
        feeds = {
            "sample": scaled.float().numpy(),
            "timestep": np.array(float(t.reshape(-1)[0]), dtype=np.float32),
            # [uncond, cond], or the prompt's alone for a call without the negative pass
            "encoder_hidden_states": embeds[-scaled.shape[0] :].numpy(),
        }
        return torch.from_numpy(unet.run(None, feeds)[0]).to(scaled.dtype)

    model = external.DiscreteEpsDDPMDenoiser(eps, alphas, quantize=False)
    step = [0]

    def skips(sigma: float) -> bool:
        if skip is None:
            return False
        if skip.early and step[0] / skip.calls <= skip.early:
            return True
        odd = bool(step[0] % 2) or skip.every
        return odd and skip.min_sigma > 0 and sigma < skip.min_sigma

    def denoise(x: torch.Tensor, sigma: torch.Tensor, **_: Any) -> torch.Tensor:
        skipped = skips(float(sigma.reshape(-1)[0]))
        step[0] += 1
        if skipped:
            return model(x, sigma.reshape(1))
        both = model(torch.cat([x, x]), torch.cat([sigma.reshape(1)] * 2))
        uncond, cond = both.chunk(2)
        return uncond + CFG * (cond - uncond)

    return denoise


def kdiffusion_run(
    sampler_id: str, parts: tuple[Any, Any, Any], start: np.ndarray, draws: list[np.ndarray]
) -> np.ndarray:
    """k-diffusion's sampler over the schedule's sigmas, with ``draws`` as its noise."""
    sampling, _ = kdiffusion_oracle.load()
    sched = create_scheduler(sampler_id, _folder_config())
    sched.set_timesteps(STEPS)
    sigmas = torch.from_numpy(np.asarray(sched.step_sigmas, dtype=np.float32))
    model = guided_denoiser(*parts)
    queue = iter(draws)
    extra: dict[str, Any] = {"disable": True}
    if sampler_id not in ("dpm_2", "restart"):
        extra["noise_sampler"] = lambda *_: torch.from_numpy(next(queue))
    x = torch.from_numpy(start) * sigmas[0]
    name = SAMPLERS[sampler_id]
    with torch.no_grad():
        if name == "sample_dpm_fast":  # as A1111 calls it: the non-zero range, eta 1
            out = sampling.sample_dpm_fast(
                model, x, sigmas[-2], sigmas[0], len(sigmas) - 1, eta=1.0, **extra
            )
        elif name == "sample_dpm_adaptive":  # in float64, as ours
            out = sampling.sample_dpm_adaptive(
                model, x.double(), sigmas[-2].double(), sigmas[0].double(), eta=1.0, **extra
            ).float()
        else:
            out = getattr(sampling, name)(model, x, sigmas, **extra)
    return out.numpy()


def _folder_config() -> Any:
    from impasto.engine.model_folder import open_model_folder

    return open_model_folder(SD_TINY).scheduler


def ours_and_theirs(
    pipe: StableDiffusion, parts: Any, sampler_id: str, monkeypatch: pytest.MonkeyPatch
) -> tuple[np.ndarray, np.ndarray]:
    start = _noise()
    recorded = RecordedNoise(monkeypatch)
    ours = pipe.denoise(small(sampler=sampler_id, steps=STEPS), latents=start).latents
    return ours, kdiffusion_run(sampler_id, parts, start, recorded.draws)


@pytest.mark.parametrize("sampler_id", list(SAMPLERS))
def test_txt2img_latents_match_k_diffusion(
    pipe: StableDiffusion, reference_parts: Any, sampler_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    ours, theirs = ours_and_theirs(pipe, reference_parts, sampler_id, monkeypatch)
    assert close(ours, theirs), np.abs(ours - theirs).max() / np.abs(theirs).max()


@pytest.mark.parametrize("sampler_id", ["dpm_2", "dpmpp_sde"])
def test_a_wrong_timestep_fails_the_comparison(
    pipe: StableDiffusion, reference_parts: Any, sampler_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The timestep one step off (t + 1 of 1000) in every UNet call must be caught.
    run = UNet.run

    def shifted(self: UNet, sample: np.ndarray, t: float, *args: Any, **kwargs: Any) -> Any:
        return run(self, sample, t + 1.0, *args, **kwargs)

    monkeypatch.setattr(UNet, "run", shifted)
    ours, theirs = ours_and_theirs(pipe, reference_parts, sampler_id, monkeypatch)
    assert not close(ours, theirs)


def test_ddim_cfg_pp_latents_match_a_ddim_loop_with_the_cfg_pp_direction(
    pipe: StableDiffusion, reference_parts: Any
) -> None:
    # A1111's DDIM CFG++: guidance at CFG / 12.5, x0 from the guided noise, the step back to
    # noise along the unconditional noise. diffusers' DDIM step (eta 0) gives the first part.
    from diffusers import DDIMScheduler

    embeds, _, unet = reference_parts
    ddim = DDIMScheduler.from_pretrained(SD_TINY, subfolder="scheduler", clip_sample=False)
    ddim.set_timesteps(STEPS)
    start = _noise()
    x = torch.from_numpy(start)
    scale = CFG / 12.5
    for t in ddim.timesteps:
        feeds = {
            "sample": torch.cat([x, x]).numpy(),
            "timestep": np.array(float(t), dtype=np.float32),
            "encoder_hidden_states": embeds.numpy(),
        }
        uncond, cond = torch.from_numpy(unet.run(None, feeds)[0]).chunk(2)
        guided = uncond + scale * (cond - uncond)
        prev_t = int(t) - ddim.config.num_train_timesteps // STEPS
        a_prev = ddim.alphas_cumprod[prev_t] if prev_t >= 0 else ddim.final_alpha_cumprod
        x = ddim.step(guided, t, x).prev_sample + (1 - a_prev) ** 0.5 * (uncond - guided)
    ours = pipe.denoise(small(sampler="ddim_cfg_pp", steps=STEPS), latents=start).latents
    assert close(ours, x.numpy()), np.abs(ours - x.numpy()).max() / np.abs(x.numpy()).max()


@pytest.mark.parametrize(
    ("multiplier", "strength", "extra"),
    [(0.5, 0.6, 0.0), (1.25, 1.0, 0.0), (1.0, 0.6, 0.5), (0.5, 0.6, 0.3)],
)
def test_img2img_noise_multiplier_matches_a1111s_start(
    pipe: StableDiffusion, reference_parts: Any, multiplier: float, strength: float, extra: float
) -> None:
    # A1111's img2img with "Noise multiplier": the init latents plus the seed's noise times the
    # multiplier times the first sigma of the schedule's tail, then the sampler over that tail
    # (the tail as diffusers and Impasto count it: int(steps * strength) steps). "Extra noise"
    # adds that (multiplied) noise once more, times extra (sd_samplers_kdiffusion).
    from impasto.engine.vae import image_to_array

    sampling, _ = kdiffusion_oracle.load()
    image = Image.new("RGB", (64, 64), (200, 40, 40))
    image.paste((30, 60, 220), (16, 16, 48, 48))
    params = small(
        sampler="dpm_2",
        steps=STEPS,
        init_image=image,
        strength=strength,
        noise_multiplier=multiplier,
        extra_noise=extra,
    )
    start = _noise()
    ours = pipe.denoise(params, latents=start).latents
    init = pipe.vae_for(params).encode(image_to_array(image))
    sched = create_scheduler("dpm_2", _folder_config())
    sched.set_timesteps(STEPS)
    tail = torch.from_numpy(np.asarray(sched.step_sigmas, dtype=np.float32))
    tail = tail[STEPS - int(STEPS * strength) :]
    x = torch.from_numpy(init) + torch.from_numpy(start) * multiplier * tail[0]
    x = x + torch.from_numpy(start) * multiplier * extra
    with torch.no_grad():
        theirs = sampling.sample_dpm_2(guided_denoiser(*reference_parts), x, tail, disable=True)
    assert close(ours, theirs.numpy()), np.abs(ours - theirs.numpy()).max()
    plain = pipe.denoise(
        small(sampler="dpm_2", steps=STEPS, init_image=image, strength=strength), latents=start
    ).latents
    assert not close(plain, theirs.numpy())  # the multiplier is what makes them agree


def test_sigma_churn_through_the_pipeline_matches_k_diffusion(
    pipe: StableDiffusion, reference_parts: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The pipeline's loop prepares each call's latents (the churn before the first call too),
    # as k-diffusion's sample_dpm_2 with s_churn/s_tmin/s_noise does, fed the noise we drew.
    sampling, _ = kdiffusion_oracle.load()
    start = _noise()
    recorded = RecordedNoise(monkeypatch)
    params = small(sampler="dpm_2", steps=STEPS, s_churn=2.0, s_tmin=0.3, s_noise=0.95)
    ours = pipe.denoise(params, latents=start).latents
    sched = create_scheduler("dpm_2", _folder_config())
    sched.set_timesteps(STEPS)
    sigmas = torch.from_numpy(np.asarray(sched.step_sigmas, dtype=np.float32))
    draws = iter(recorded.draws)
    model = guided_denoiser(*reference_parts)
    with torch.no_grad(), kdiffusion_oracle.randn_like_from(lambda _: next(draws)):
        theirs = sampling.sample_dpm_2(
            model,
            torch.from_numpy(start) * sigmas[0],
            sigmas,
            disable=True,
            s_churn=2.0,
            s_tmin=0.3,
            s_noise=0.95,
        ).numpy()
    assert len(recorded.draws) == STEPS  # one churn draw per step
    assert close(ours, theirs), np.abs(ours - theirs).max() / np.abs(theirs).max()
    plain = pipe.denoise(small(sampler="dpm_2", steps=STEPS), latents=start).latents
    assert not close(plain, theirs)


@pytest.mark.parametrize("schedule", ["karras", "polyexponential"])
def test_a_moved_schedule_through_the_pipeline_matches_k_diffusion(
    pipe: StableDiffusion, reference_parts: Any, schedule: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The request's sigma_min, sigma_max and rho reach the schedule a run walks, as A1111
    # passes its schedule options to k-diffusion's get_sigmas_karras/polyexponential.
    sampling, _ = kdiffusion_oracle.load()
    start = _noise()
    RecordedNoise(monkeypatch)
    bounds = {"sigma_min": 0.2, "sigma_max": 8.0, "rho": 4.0}
    params = small(sampler="dpm_2", schedule=schedule, steps=STEPS, **bounds)
    ours = pipe.denoise(params, latents=start).latents
    made = getattr(sampling, f"get_sigmas_{schedule}")
    # A1111's DPM2: one step more, its next-to-last sigma discarded.
    sigmas = made(STEPS + 1, 0.2, 8.0, rho=4.0).float()
    sigmas = torch.cat([sigmas[:-2], sigmas[-1:]])
    model = guided_denoiser(*reference_parts)
    with torch.no_grad():
        theirs = sampling.sample_dpm_2(
            model, torch.from_numpy(start) * sigmas[0], sigmas, disable=True
        ).numpy()
    assert close(ours, theirs), np.abs(ours - theirs).max() / np.abs(theirs).max()
    own = pipe.denoise(small(sampler="dpm_2", schedule=schedule, steps=STEPS), latents=start)
    assert not close(own.latents, theirs)


def test_the_sgm_start_through_the_pipeline_matches_a1111(
    pipe: StableDiffusion, reference_parts: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A1111's SGM noise multiplier: k-diffusion's sampler from x * sqrt(1 + sigmas[0] ** 2).
    sampling, _ = kdiffusion_oracle.load()
    start = _noise()
    RecordedNoise(monkeypatch)
    run = {"schedule": "polyexponential", "sigma_min": 0.2, "sigma_max": 8.0, "steps": STEPS}
    params = small(sampler="euler", sgm_noise_multiplier=True, **run)
    ours = pipe.denoise(params, latents=start).latents
    sigmas = sampling.get_sigmas_polyexponential(STEPS, 0.2, 8.0).float()
    model = guided_denoiser(*reference_parts)
    with torch.no_grad():
        scaled = torch.from_numpy(start) * torch.sqrt(1.0 + sigmas[0] ** 2.0)
        theirs = sampling.sample_euler(model, scaled, sigmas, disable=True).numpy()
    assert close(ours, theirs), np.abs(ours - theirs).max() / np.abs(theirs).max()
    own = pipe.denoise(replace(params, sgm_noise_multiplier=False), latents=start)
    assert not close(own.latents, theirs)


def a1111_img2img_steps(steps: int, strength: float, fixed: bool) -> tuple[int, int]:
    """A1111's ``setup_img2img_steps``: the steps it lays the schedule out for, and t_enc
    (its k-diffusion samplers run ``sigmas[steps - t_enc - 1:]``, t_enc + 1 steps); fixed
    for its hires pass and with "img2img_fix_steps"."""
    if fixed:
        return int(steps / min(strength, 0.999)), steps - 1
    return steps, int(min(strength, 0.999) * steps)


@pytest.mark.parametrize(("mode", "strength"), [("a1111", 0.5), ("a1111", 0.63), ("exact", 0.6)])
def test_a1111_img2img_steps_through_the_pipeline_match_k_diffusion(
    pipe: StableDiffusion,
    reference_parts: Any,
    monkeypatch: pytest.MonkeyPatch,
    mode: str,
    strength: float,
) -> None:
    # A1111's img2img: the init latents plus noise at sigma_sched[0], then its sampler over
    # sigma_sched (k-diffusion's Euler here).
    sampling, _ = kdiffusion_oracle.load()
    start, init = _noise(), _noise(11)
    RecordedNoise(monkeypatch)
    params = small(sampler="euler", schedule="uniform", steps=STEPS, strength=strength)
    ours = pipe.denoise(
        replace(params, img2img_steps=mode), latents=start, init_latents=init
    ).latents
    laid, t_enc = a1111_img2img_steps(STEPS, strength, fixed=mode == "exact")
    model = guided_denoiser(*reference_parts)
    _, external = kdiffusion_oracle.load()
    k_model = external.DiscreteEpsDDPMDenoiser(None, reference_parts[1], quantize=False)
    sigmas = k_model.get_sigmas(laid).float()  # k-diffusion's get_sigmas: A1111's uniform
    schedule = sigmas[laid - t_enc - 1 :]
    assert len(schedule) - 1 == (STEPS if mode == "exact" else t_enc + 1)
    with torch.no_grad():
        noised = torch.from_numpy(init) + torch.from_numpy(start) * schedule[0]
        theirs = sampling.sample_euler(model, noised, schedule, disable=True).numpy()
    assert close(ours, theirs), np.abs(ours - theirs).max() / np.abs(theirs).max()
    diffusers_way = pipe.denoise(params, latents=start, init_latents=init).latents
    assert not close(diffusers_way, theirs)


def test_sigma_bounds_the_model_cannot_take_are_refused_before_the_run(
    pipe: StableDiffusion,
) -> None:
    from impasto.engine import InvalidRequestError

    with pytest.raises(InvalidRequestError) as refused:
        pipe.denoise(small(sampler="euler", schedule="karras", steps=STEPS, sigma_min=30.0))
    assert refused.value.field == "sigma_min" and "top sigma" in refused.value.message


@pytest.mark.parametrize(
    "skip",
    # DPM2's 6 steps are 11 calls: early 3/11 takes calls 0 to 3, the last one on the bound.
    [A1111Skip(min_sigma=3.0), A1111Skip(min_sigma=1.5, every=True), A1111Skip(early=3 / 11)],
    ids=["alternate-below-3", "every-call-below-1.5", "early-3-of-11"],
)
def test_skipping_the_negative_pass_matches_a1111s_cfg_denoiser(
    pipe: StableDiffusion, reference_parts: Any, skip: A1111Skip, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A1111's "Negative Guidance minimum sigma" (all steps or every other) and "Ignore negative
    # prompt during early sampling": the calls it picks run the prompt's pass alone, unguided.
    sampling, _ = kdiffusion_oracle.load()
    start = _noise()
    RecordedNoise(monkeypatch)
    fields = {
        "s_min_uncond": skip.min_sigma,
        "s_min_uncond_all": skip.every,
        "skip_early_cond": skip.early,
    }
    before = pipe.unet.calls
    ours = pipe.denoise(small(sampler="dpm_2", steps=STEPS, **fields), latents=start).latents
    calls = pipe.unet.calls - before
    sched = create_scheduler("dpm_2", _folder_config())
    sched.set_timesteps(STEPS)
    sigmas = torch.from_numpy(np.asarray(sched.step_sigmas, dtype=np.float32))
    model = guided_denoiser(*reference_parts, replace(skip, calls=len(sched.timesteps)))
    with torch.no_grad():
        theirs = sampling.sample_dpm_2(
            model, torch.from_numpy(start) * sigmas[0], sigmas, disable=True
        ).numpy()
    assert close(ours, theirs), np.abs(ours - theirs).max() / np.abs(theirs).max()
    guided = pipe.denoise(small(sampler="dpm_2", steps=STEPS), latents=start).latents
    assert not close(guided, theirs)
    assert calls == len(sched.timesteps)  # one UNet run a call, half the batch when skipping
