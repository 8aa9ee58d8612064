"""The pure mappings: A1111 sampler names, LoRA tags and request checks."""

from __future__ import annotations

import pytest

from impasto.api.compat.common import checked_request, parse_loras
from impasto.api.compat.samplers_map import (
    UnknownSamplerError,
    sampler_label,
    sampler_list,
    schedule_label,
    scheduler_list,
    to_impasto,
)
from impasto.engine.schedulers import SAMPLERS, sampler_schedules
from impasto.services.errors import FieldError


@pytest.mark.parametrize(
    ("name", "scheduler", "sampler", "schedule"),
    [
        ("Euler a", None, "euler_a", "default"),
        ("k_euler_a", "automatic", "euler_a", "default"),
        ("DPM++ 2M", "Karras", "dpmpp_2m", "karras"),
        ("DPM++ 2M", "karras", "dpmpp_2m", "karras"),
        ("DPM++ 2M Karras", None, "dpmpp_2m", "karras"),
        ("DPM++ 2M Karras", "automatic", "dpmpp_2m", "karras"),
        ("DPM++ 2M Karras", "Exponential", "dpmpp_2m", "exponential"),
        ("DPM++ 2M SDE Exponential", None, "dpmpp_2m_sde", "exponential"),
        ("k_lms_ka", None, "lms", "karras"),
        ("PLMS", None, "pndm", "default"),
        ("dpmpp_2m", None, "dpmpp_2m", "default"),
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
        choice = to_impasto(str(entry["name"]))
        assert sampler_label(choice.sampler) == entry["name"]
        for alias in entry["aliases"]:  # type: ignore[attr-defined]
            assert to_impasto(alias).sampler == choice.sampler
    for entry in scheduler_list():
        choice = to_impasto("DPM++ 2M", str(entry["name"]))
        assert schedule_label(choice.schedule) == entry["label"]
        assert choice.schedule in sampler_schedules("dpmpp_2m")


@pytest.mark.parametrize(
    ("name", "scheduler", "field"),
    [("DPM fast", None, "sampler_name"), ("Euler", "sgm_uniform", "scheduler")],
)
def test_unknown_names_say_what_exists(name: str, scheduler: str | None, field: str) -> None:
    with pytest.raises(UnknownSamplerError) as info:
        to_impasto(name, scheduler)
    assert info.value.field == field
    assert "available" in str(info.value)


def test_lora_tags_leave_the_prompt_and_become_the_lora_list() -> None:
    prompt, loras = parse_loras("a cat <lora:paper:0.6>, sunset <lora:grain> <LORA:x:1.2:0.5>")
    assert prompt == "a cat , sunset"
    assert loras == [
        {"name": "paper", "weight": 0.6},
        {"name": "grain", "weight": 1.0},
        {"name": "x", "weight": 1.2},
    ]
    with pytest.raises(FieldError):
        parse_loras("<lora:paper:strong>")


def test_checked_request_uses_the_native_rules_but_allows_an_empty_prompt() -> None:
    request = checked_request({"prompt": "", "width": 64, "height": 64})
    assert request.prompt == ""
    assert request.steps is None  # left to the model's defaults by the resolution step
    with pytest.raises(FieldError) as info:
        checked_request({"prompt": "x", "width": 65})
    assert info.value.field == "width"
    assert "multiple of 8" in info.value.message
