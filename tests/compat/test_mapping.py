"""The pure mappings: A1111 sampler names, LoRA tags and request checks."""

from __future__ import annotations

import pytest

from impasto.api.compat.common import checked_request
from impasto.api.compat.samplers_map import (
    UnknownSamplerError,
    sampler_label,
    sampler_list,
    schedule_label,
    scheduler_list,
    to_impasto,
)
from impasto.engine.schedulers import SAMPLER_SPECS, SAMPLERS, sampler_schedules
from impasto.services.errors import FieldError


@pytest.mark.parametrize(
    ("name", "scheduler", "sampler", "schedule"),
    [
        # No scheduler, or "Automatic": what A1111 1.9+ gives the sampler (its sampler table's
        # scheduler option, else k-diffusion's own spacing, Uniform; timestep samplers: none).
        ("Euler a", None, "euler_a", "uniform"),
        ("k_euler_a", "automatic", "euler_a", "uniform"),
        ("Euler", "Automatic", "euler", "uniform"),
        ("Heun", None, "heun", "uniform"),
        ("LMS", "", "lms", "uniform"),
        ("DPM++ 2M", None, "dpmpp_2m", "karras"),
        ("DPM++ 2M", "Automatic", "dpmpp_2m", "karras"),
        ("DPM++ 2M SDE", None, "dpmpp_2m_sde", "exponential"),
        ("DDIM", "Automatic", "ddim", "default"),
        ("LCM", None, "lcm", "default"),
        # Impasto's model spacing, by name.
        ("DPM++ 2M", "Default", "dpmpp_2m", "default"),
        ("Euler", "default", "euler", "default"),
        ("DPM++ 2M", "Karras", "dpmpp_2m", "karras"),
        ("DPM++ 2M", "karras", "dpmpp_2m", "karras"),
        ("DPM++ 2M Karras", None, "dpmpp_2m", "karras"),
        ("DPM++ 2M Karras", "automatic", "dpmpp_2m", "karras"),
        ("DPM++ 2M Karras", "Exponential", "dpmpp_2m", "exponential"),
        ("DPM++ 2M SDE Exponential", None, "dpmpp_2m_sde", "exponential"),
        ("k_lms_ka", None, "lms", "karras"),
        ("PLMS", None, "pndm", "default"),
        ("dpmpp_2m", None, "dpmpp_2m", "karras"),
        ("DPM++ SDE Karras", None, "dpmpp_sde", "karras"),
        ("DPM++ 2S a", None, "dpmpp_2s_a", "karras"),
        ("DPM2 a Karras", None, "dpm_2_a", "karras"),
        ("DPM2", "Exponential", "dpm_2", "exponential"),
        ("DPM++ 2M SDE Heun", None, "dpmpp_2m_sde_heun", "exponential"),
        ("DPM++ 3M SDE", "Karras", "dpmpp_3m_sde", "karras"),
        ("Restart", None, "restart", "karras"),
        ("dpmpp_2m_sde_gpu", None, "dpmpp_2m_sde", "exponential"),
        ("dpm_2_ancestral", None, "dpm_2_a", "karras"),
        ("euler_ancestral", None, "euler_a", "uniform"),
        ("uni_pc_bh2", None, "unipc", "default"),
        ("DPM fast", None, "dpm_fast", "uniform"),
        ("DPM adaptive", "Karras", "dpm_adaptive", "karras"),
        ("Euler", "sgm_uniform", "euler", "sgm_uniform"),
        ("DPM++ 2M", "Align Your Steps", "dpmpp_2m", "align_your_steps"),
        ("DPM++ SDE", "KL Optimal", "dpmpp_sde", "kl_optimal"),
        ("Euler a", "ddim", "euler_a", "ddim_uniform"),
        ("Heun", "Beta", "heun", "beta"),
    ],
)
def test_a1111_names_map_to_impasto(
    name: str, scheduler: str | None, sampler: str, schedule: str
) -> None:
    choice = to_impasto(name, scheduler)
    assert (choice.sampler, choice.schedule) == (sampler, schedule)


def test_every_listed_sampler_and_scheduler_maps_back_to_itself() -> None:
    listed = sampler_list()
    assert len(listed) == len(SAMPLERS)
    for entry in listed:
        choice = to_impasto(entry.name)
        assert sampler_label(choice.sampler) == entry.name
        for alias in entry.aliases:
            assert to_impasto(alias).sampler == choice.sampler
    automatic, *schedules = scheduler_list()
    assert (automatic.name, automatic.label) == ("automatic", "Automatic")
    assert to_impasto("DPM++ 2M", "automatic").schedule == "karras"
    for entry in schedules:
        choice = to_impasto("DPM++ 2M", entry.name)
        assert schedule_label(choice.schedule) == entry.label
        assert choice.schedule in sampler_schedules("dpmpp_2m")


def test_automatic_is_a_schedule_each_sampler_supports() -> None:
    """A1111's "Automatic" never picks a schedule the sampler cannot run (a 422 for nothing)."""
    for spec in SAMPLER_SPECS.values():
        assert spec.a1111_schedule in spec.schedules, spec.id
        assert to_impasto(spec.a1111_name).schedule == spec.a1111_schedule


@pytest.mark.parametrize(
    ("name", "scheduler", "field"),
    [("DEIS", None, "sampler_name"), ("Euler", "linear_quadratic", "scheduler")],
)
def test_unknown_names_say_what_exists(name: str, scheduler: str | None, field: str) -> None:
    with pytest.raises(UnknownSamplerError) as info:
        to_impasto(name, scheduler)
    assert info.value.field == field
    assert "available" in str(info.value)


def test_checked_request_uses_the_native_rules_but_allows_an_empty_prompt() -> None:
    request = checked_request({"prompt": "", "width": 64, "height": 64})
    assert request.prompt == ""
    assert request.steps is None  # left to the model's defaults by the resolution step
    with pytest.raises(FieldError) as info:
        checked_request({"prompt": "x", "width": 65})
    assert info.value.field == "width"
    assert "multiple of 8" in info.value.message
