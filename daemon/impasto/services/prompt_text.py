"""What a request's prompts say beyond their words, read in the resolution step: AUTOMATIC1111's
LoRA tags, applied, as prompts are pasted between tools. (Its prompt editing is the engine's:
engine/prompt_schedule.py.)"""

from __future__ import annotations

import msgspec

from impasto.formats.prompt_tags import LoraTag, lora_tags
from impasto.services.errors import FieldError
from impasto.wire import GenerateRequest, LoraSpec, decode_error


def _tags(text: str, field: str) -> tuple[str, list[LoraTag]]:
    """``text`` without its LoRA tags, and the tags; a weight that is not a number names
    ``field``."""
    try:
        return lora_tags(text)
    except ValueError as exc:
        raise FieldError(field, str(exc)) from None


def prompt_loras(request: GenerateRequest) -> tuple[str, list[tuple[LoraSpec, str, str]]]:
    """The prompt without its ``<lora:name:weight>`` tags, and every LoRA to apply: ``loras``,
    then the tags; each with the field an error names and, for a tag, its text."""
    prompt, tags = _tags(request.prompt, "prompt")
    loras = [(lora, f"loras[{i}].name", "") for i, lora in enumerate(request.loras)]
    for tag in tags:
        try:
            spec = msgspec.convert(
                {"name": tag.name, "weight": tag.weight, "unet_weight": tag.unet_weight}, LoraSpec
            )
        except msgspec.ValidationError as exc:
            field, rule = decode_error(str(exc), schema=LoraSpec)
            raise FieldError("prompt", f"{tag.text}: the {field} {rule}") from None
        loras.append((spec, "prompt", tag.text))
    return prompt, loras


def hires_prompt(prompt: str | None, loras: list[LoraSpec]) -> str | None:
    """The hires prompt without its LoRA tags, which A1111 users copy from the prompt: the pass
    runs with the first pass's LoRAs, so a tag naming another LoRA or weight is refused."""
    if not prompt:
        return prompt
    text, tags = _tags(prompt, "hires.prompt")
    applied = {(lora.name, lora.weight, _unet(lora.weight, lora.unet_weight)) for lora in loras}
    for tag in tags:
        if (tag.name, tag.weight, _unet(tag.weight, tag.unet_weight)) not in applied:
            raise FieldError(
                "hires.prompt",
                f"{tag.text}: the hires pass runs with the first pass's LoRAs; name it in the "
                "prompt or loras (at the same weight), or leave it out here",
            )
    return text


def _unet(weight: float, unet_weight: float | None) -> float:
    """The UNet's weight of a LoRA given at ``weight`` and ``unet_weight``."""
    return weight if unet_weight is None else unet_weight
