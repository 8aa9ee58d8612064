"""The one sampler registry: per sampler its id, class, labels, A1111 names, recommended settings.

Everything that names a sampler reads this table: requests (ids), the UI's menu (through
``GET /api/v1/samplers``), the PNG ``parameters`` text and the PNG-info readers, and the
AUTOMATIC1111 compatible API. Adding a sampler is one ``SamplerSpec`` entry (or, from a plugin,
one ``register_sampler`` call); its class declares the schedules it supports.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from .common import Sampler
from .ddim import DDIMCFGPPSampler, DDIMSampler
from .dpm_2 import DPM2AncestralSampler, DPM2Sampler
from .dpm_solver import DPMAdaptiveSampler, DPMFastSampler
from .dpmpp_2m import DPMPP2MSampler
from .dpmpp_2m_sde import DPMPP2MSDEHeunSampler, DPMPP2MSDESampler
from .dpmpp_2s_a import DPMPP2SAncestralSampler
from .dpmpp_3m_sde import DPMPP3MSDESampler
from .dpmpp_sde import DPMPPSDESampler
from .euler import EulerSampler
from .euler_a import EulerAncestralSampler
from .heun import HeunSampler
from .lcm import LCMSampler
from .lms import LMSSampler
from .pndm import PNDMSampler
from .restart import RestartSampler
from .schedules import SCHEDULE_RHO, SIGMA_RANGE_SCHEDULES
from .unipc import UniPCSampler

DEFAULT_SAMPLER = "euler_a"
A1111_AUTOMATIC = "automatic"
"""A1111's default scheduler: not one schedule but each sampler's ``a1111_schedule``."""


@dataclass(frozen=True)
class SamplerSpec:
    """One sampler. ``a1111_name`` is what A1111 calls it and what PNG metadata says."""

    id: str
    cls: type[Sampler]
    label: str
    a1111_name: str
    aliases: tuple[str, ...] = ()
    recommended_steps: int = 20
    reference: str = ""
    """What it is compared with in the tests (docs/samplers.md)."""
    recommended_schedule: str = "default"
    """The schedule it is meant to run on (``_RECOMMENDED_SCHEDULES`` says where from)."""
    a1111_schedule: str = "default"
    """The schedule AUTOMATIC1111's "Automatic" scheduler runs it on (``_a1111_schedule``)."""

    @property
    def schedules(self) -> tuple[str, ...]:
        """The sigma schedules it supports ("default" first)."""
        return tuple(self.cls.schedules)

    @property
    def names(self) -> tuple[str, ...]:
        """Every name that means this sampler: id, label, A1111 name and aliases."""
        return (self.id, self.label, self.a1111_name, *self.aliases)


@dataclass(frozen=True)
class ScheduleSpec:
    """One sigma schedule with its A1111 scheduler name and label."""

    id: str
    a1111_name: str
    label: str
    reference: str = ""
    """Where its formula comes from and what the tests compare it with."""

    @property
    def rho(self) -> float:
        """Its default rho, which a run may change; -1 where it has none (A1111's
        ``default_rho``)."""
        return SCHEDULE_RHO.get(self.id, -1.0)

    @property
    def sigma_range(self) -> bool:
        """Whether a run may move its top and lowest sigmas (``sigma_max``, ``sigma_min``)."""
        return self.id in SIGMA_RANGE_SCHEDULES


SAMPLER_SPECS: dict[str, SamplerSpec] = {
    s.id: s
    for s in (
        SamplerSpec(
            "euler_a",
            EulerAncestralSampler,
            "Euler a",
            "Euler a",
            ("k_euler_a", "k_euler_ancestral", "euler_ancestral"),
        ),
        SamplerSpec("euler", EulerSampler, "Euler", "Euler", ("k_euler",)),
        SamplerSpec("lms", LMSSampler, "LMS", "LMS", ("k_lms",), recommended_steps=30),
        SamplerSpec("heun", HeunSampler, "Heun", "Heun", ("k_heun",), recommended_steps=10),
        SamplerSpec("dpm_2", DPM2Sampler, "DPM2", "DPM2", ("k_dpm_2",), recommended_steps=10),
        SamplerSpec(
            "dpm_2_a",
            DPM2AncestralSampler,
            "DPM2 a",
            "DPM2 a",
            ("k_dpm_2_a", "dpm_2_ancestral"),
            recommended_steps=10,
        ),
        SamplerSpec(
            "dpmpp_2s_a",
            DPMPP2SAncestralSampler,
            "DPM++ 2S a",
            "DPM++ 2S a",
            ("k_dpmpp_2s_a", "dpmpp_2s_ancestral"),
            recommended_steps=10,
        ),
        SamplerSpec("dpmpp_2m", DPMPP2MSampler, "DPM++ 2M", "DPM++ 2M", ("k_dpmpp_2m",)),
        SamplerSpec(
            "dpmpp_sde",
            DPMPPSDESampler,
            "DPM++ SDE",
            "DPM++ SDE",
            ("k_dpmpp_sde", "dpmpp_sde_gpu"),
            recommended_steps=10,
        ),
        SamplerSpec(
            "dpmpp_2m_sde",
            DPMPP2MSDESampler,
            "DPM++ 2M SDE",
            "DPM++ 2M SDE",
            ("k_dpmpp_2m_sde", "dpmpp_2m_sde_gpu"),
        ),
        SamplerSpec(
            "dpmpp_2m_sde_heun",
            DPMPP2MSDEHeunSampler,
            "DPM++ 2M SDE Heun",
            "DPM++ 2M SDE Heun",
            ("k_dpmpp_2m_sde_heun", "dpmpp_2m_sde_heun_gpu"),
        ),
        SamplerSpec(
            "dpmpp_3m_sde",
            DPMPP3MSDESampler,
            "DPM++ 3M SDE",
            "DPM++ 3M SDE",
            ("k_dpmpp_3m_sde", "dpmpp_3m_sde_gpu"),
            recommended_steps=30,
        ),
        SamplerSpec("dpm_fast", DPMFastSampler, "DPM fast", "DPM fast", ("k_dpm_fast",), 30),
        SamplerSpec(
            "dpm_adaptive", DPMAdaptiveSampler, "DPM adaptive", "DPM adaptive", ("k_dpm_ad",), 20
        ),
        SamplerSpec("restart", RestartSampler, "Restart", "Restart", (), recommended_steps=20),
        SamplerSpec("ddim", DDIMSampler, "DDIM", "DDIM", (), recommended_steps=30),
        SamplerSpec(
            "ddim_cfg_pp", DDIMCFGPPSampler, "DDIM CFG++", "DDIM CFG++", ("ddim_cfgpp",), 30
        ),
        # 50: the step count PNDM/PLMS shipped with (diffusers' Stable Diffusion pipeline with
        # its PNDMScheduler, CompVis' txt2img --plms); its linear multistep needs more steps
        # than DDIM for the same picture (impasto-shapes: shape 78% at 30, 85% at 40 and 50).
        SamplerSpec("pndm", PNDMSampler, "PNDM (PLMS)", "PLMS", ("plms", "PNDM"), 50),
        SamplerSpec("unipc", UniPCSampler, "UniPC", "UniPC", ("uni_pc", "uni_pc_bh2"), 15),
        SamplerSpec("lcm", LCMSampler, "LCM", "LCM", ("k_lcm",), recommended_steps=4),
    )
}

_REFERENCES = {
    "euler_a": "diffusers EulerAncestralDiscreteScheduler; k-diffusion sample_euler_ancestral",
    "euler": "diffusers EulerDiscreteScheduler; k-diffusion sample_euler",
    "lms": "diffusers LMSDiscreteScheduler; k-diffusion sample_lms",
    "heun": "diffusers HeunDiscreteScheduler; k-diffusion sample_heun",
    "dpm_2": "k-diffusion sample_dpm_2",
    "dpm_2_a": "k-diffusion sample_dpm_2_ancestral",
    "dpmpp_2s_a": "k-diffusion sample_dpmpp_2s_ancestral",
    "dpmpp_2m": "diffusers DPMSolverMultistepScheduler (dpmsolver++); k-diffusion sample_dpmpp_2m",
    "dpmpp_sde": "k-diffusion sample_dpmpp_sde",
    "dpmpp_2m_sde": "diffusers DPMSolverMultistepScheduler (sde-dpmsolver++); "
    "k-diffusion sample_dpmpp_2m_sde",
    "dpmpp_2m_sde_heun": "diffusers DPMSolverMultistepScheduler (sde-dpmsolver++, heun); "
    "k-diffusion sample_dpmpp_2m_sde (heun)",
    "dpmpp_3m_sde": "k-diffusion sample_dpmpp_3m_sde",
    "dpm_fast": "k-diffusion sample_dpm_fast (eta 1 unless asked, as A1111)",
    "dpm_adaptive": "k-diffusion sample_dpm_adaptive (eta 1 unless asked, as A1111)",
    "restart": "A1111 restart_sampler: k-diffusion sample_heun between restarts",
    "ddim": "diffusers DDIMScheduler",
    "ddim_cfg_pp": "diffusers DDIMScheduler with the CFG++ direction (uncond noise, scale / 12.5)",
    "pndm": "diffusers PNDMScheduler (skip_prk_steps)",
    "unipc": "diffusers UniPCMultistepScheduler",
    "lcm": "diffusers LCMScheduler",
}
# The scheduler AUTOMATIC1111 (1.9 and later) gives a sampler when its "Automatic" is chosen:
# the sampler's own ``scheduler`` option in A1111's sampler table.
_A1111_OPTION_SCHEDULES = {
    "dpm_2": "karras",
    "dpm_2_a": "karras",
    "dpmpp_2s_a": "karras",
    "dpmpp_2m": "karras",
    "dpmpp_sde": "karras",
    "restart": "karras",
    "dpmpp_2m_sde": "exponential",
    "dpmpp_2m_sde_heun": "exponential",
    "dpmpp_3m_sde": "exponential",
}
# Samplers A1111 runs through k-diffusion with no scheduler option: its "Automatic" is then
# the model wrapper's get_sigmas, which is the ``uniform`` schedule here. (DDIM, PLMS, UniPC and
# DDIM CFG++ step over timesteps there, so no scheduler applies; LCM here has only ``default``.)
_A1111_UNIFORM = ("euler_a", "euler", "lms", "heun", "dpm_fast", "dpm_adaptive")
# The schedule each sampler is meant to run on, where it is not the model's own spacing: A1111's
# per-sampler choice above, and for Heun the Karras schedule its second-order method runs on in
# Karras et al. 2022 (EDM, Algorithm 1). (Restart lays Karras steps between its schedule's end
# points on every schedule, so it keeps the model's own spacing.) The UI selects it when a
# sampler is picked; the "default" request value stays the model's own spacing
# (docs/samplers.md).
_RECOMMENDED_SCHEDULES = {
    **{key: value for key, value in _A1111_OPTION_SCHEDULES.items() if key != "restart"},
    "heun": "karras",
}


def _a1111_schedule(spec: SamplerSpec) -> str:
    """What A1111's "Automatic" means for ``spec``: its option, k-diffusion's spacing, or none."""
    wanted = _A1111_OPTION_SCHEDULES.get(spec.id)
    if wanted is None and spec.id in _A1111_UNIFORM:
        wanted = "uniform"
    return wanted if wanted in spec.schedules else "default"


SAMPLER_SPECS = {
    key: replace(
        spec,
        reference=_REFERENCES.get(key, ""),
        recommended_schedule=_RECOMMENDED_SCHEDULES.get(key, "default"),
        a1111_schedule=_a1111_schedule(spec),
    )
    for key, spec in SAMPLER_SPECS.items()
}

SCHEDULE_SPECS: dict[str, ScheduleSpec] = {
    s.id: s
    for s in (
        ScheduleSpec(
            "default", "default", "Default", reference="the model's own (diffusers) spacing"
        ),
        ScheduleSpec("karras", "karras", "Karras", "diffusers use_karras_sigmas"),
        ScheduleSpec("exponential", "exponential", "Exponential", "diffusers"),
        ScheduleSpec("uniform", "uniform", "Uniform", "k-diffusion get_sigmas"),
        ScheduleSpec(
            "polyexponential",
            "polyexponential",
            "Polyexponential",
            "k-diffusion get_sigmas_polyexponential",
        ),
        ScheduleSpec("sgm_uniform", "sgm_uniform", "SGM Uniform", "A1111 / ComfyUI"),
        ScheduleSpec("kl_optimal", "kl_optimal", "KL Optimal", "A1111 (arctan steps)"),
        ScheduleSpec(
            "align_your_steps",
            "align_your_steps",
            "Align Your Steps",
            "NVIDIA's SD 1.5 table (diffusers AysSchedules), A1111 resampling",
        ),
        ScheduleSpec(
            "align_your_steps_sdxl",
            "align_your_steps_sdxl",
            "Align Your Steps SDXL",
            "NVIDIA's SDXL table (diffusers AysSchedules), A1111 resampling",
        ),
        ScheduleSpec("simple", "simple", "Simple", "ComfyUI"),
        ScheduleSpec("normal", "normal", "Normal", "ComfyUI / A1111 (k-diffusion t)"),
        ScheduleSpec("ddim_uniform", "ddim", "DDIM", "ComfyUI ddim_uniform"),
        ScheduleSpec("beta", "beta", "Beta", "ComfyUI beta (scipy beta.ppf)"),
    )
}

SAMPLERS: dict[str, type[Sampler]] = {s.id: s.cls for s in SAMPLER_SPECS.values()}
"""Sampler id -> class (a view of ``SAMPLER_SPECS``)."""

SAMPLER_NAMES: dict[str, str] = {s.id: s.label for s in SAMPLER_SPECS.values()}
"""Sampler id -> display label (a view of ``SAMPLER_SPECS``)."""


def register_sampler(
    sampler_id: str,
    cls: type[Sampler],
    name: str,
    *,
    a1111_name: str | None = None,
    aliases: tuple[str, ...] = (),
    recommended_steps: int = 20,
    recommended_schedule: str = "default",
    a1111_schedule: str = "default",
) -> None:
    """Add a sampler (a plugin's); its class declares ``schedules``. Ids cannot be reused."""
    existing = SAMPLERS.get(sampler_id)
    if existing is not None and existing is not cls:
        raise ValueError(f"sampler id {sampler_id!r} is already taken by {existing.__name__}")
    if not isinstance(cls, type) or "default" not in getattr(cls, "schedules", ()):
        raise TypeError(f"sampler {sampler_id!r} must be a class whose schedules include default")
    for setting, schedule in (
        ("recommended_schedule", recommended_schedule),
        ("a1111_schedule", a1111_schedule),
    ):
        if schedule not in cls.schedules:
            raise ValueError(
                f"sampler {sampler_id!r}: {setting} {schedule!r} is not one of its schedules "
                f"({', '.join(cls.schedules)})"
            )
    spec = SamplerSpec(
        sampler_id,
        cls,
        name,
        a1111_name or name,
        aliases,
        recommended_steps,
        recommended_schedule=recommended_schedule,
        a1111_schedule=a1111_schedule,
    )
    SAMPLER_SPECS[sampler_id] = spec
    SAMPLERS[sampler_id] = cls
    SAMPLER_NAMES[sampler_id] = name


def schedule_for_model(schedule: str, sdxl: bool) -> str:
    """A1111 picks the Align Your Steps table by model: SDXL models get the SDXL one."""
    return "align_your_steps_sdxl" if schedule == "align_your_steps" and sdxl else schedule


def sampler_spec(name: str) -> SamplerSpec:
    """The registered sampler ``name``; ValueError naming the registered ones if none."""
    try:
        return SAMPLER_SPECS[name]
    except KeyError:
        raise ValueError(
            f"unknown sampler {name!r}; choose one of: {', '.join(SAMPLER_SPECS)}"
        ) from None
