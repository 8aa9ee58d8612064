"""AUTOMATIC1111's LoRA tags in a prompt: ``<lora:name>``, ``<lora:name:weight>``,
``<lora:name:te:unet>``.

Prompts travel between tools with their LoRAs written in them (A1111's prompt box, its PNG
``parameters`` text, Civitai's listings), so every Impasto entry point reads the tags and the
PNG text writes them back.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# <lora:name>, <lora:name:weight>, <lora:name:te:unet> and the named forms te=, unet=; and
# LyCORIS's <lyco:...>, which A1111 reads as a LoRA.
_TAG = re.compile(r"<(?:lora|lyco):([^:>]+)((?::[^:>]*)*)>", re.IGNORECASE)
_SPACES = re.compile(r"[ \t]{2,}")
_PARTS = ("te", "unet")  # the weights a tag may give, in their positional order


@dataclass(frozen=True)
class LoraTag:
    """One tag: its text as written, the LoRA's name, the text encoders' weight and the UNet's
    where the tag gives it apart (None: the same)."""

    text: str
    name: str
    weight: float
    unet_weight: float | None = None


def _weights(tag: str, parts: list[str]) -> dict[str, float]:
    """The weights a tag's parts after its name give, by name (A1111's extra network params:
    positional ``te``, ``unet``, or ``te=``/``unet=``); ValueError names what is wrong."""
    given: dict[str, str] = {}
    for index, part in enumerate(parts):
        key, sep, value = part.partition("=")
        if not sep:
            if index >= len(_PARTS):
                raise ValueError(
                    f"{tag}: a LoRA tag gives at most two weights, the text encoders' and the "
                    "UNet's (<lora:name:te:unet>); a rank limit (dyn) is not supported"
                )
            key, value = _PARTS[index], part
        key = key.strip().lower()
        if key not in _PARTS:
            raise ValueError(f"{tag}: {key}= is not a LoRA weight; allowed: te=, unet=")
        given[key] = value.strip()
    weights: dict[str, float] = {}
    for key, value in given.items():
        if not value:
            continue
        try:
            weights[key] = float(value)
        except ValueError:
            raise ValueError(f"{tag}: the weight must be a number") from None
    return weights


def lora_tags(prompt: str) -> tuple[str, list[LoraTag]]:
    """``prompt`` without its LoRA tags, and the tags in order; ValueError names a tag whose
    weight is not a number."""
    tags: list[LoraTag] = []
    for match in _TAG.finditer(prompt):
        parts = match.group(2).split(":")[1:]
        weights = _weights(match.group(0), parts)
        te = weights.get("te", 1.0)
        tags.append(LoraTag(match.group(0), match.group(1).strip(), te, weights.get("unet")))
    if not tags:
        return prompt, tags
    return _SPACES.sub(" ", _TAG.sub("", prompt)).strip(), tags


def lora_tag(name: str, weight: float, unet_weight: float | None = None) -> str:
    """The tag of a LoRA at ``weight``, with the UNet's weight where it differs."""
    unet = f":{_weight(unet_weight)}" if unet_weight is not None and unet_weight != weight else ""
    return f"<lora:{name}:{_weight(weight)}{unet}>"


def _weight(value: float) -> str:
    """A weight as its shortest exact text ("1", "0.35", "0.123456789"): ``:g`` would round it
    to six digits, and the PNG's tag would read back another weight."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def with_lora_tags(prompt: str, loras: list[tuple[str, float, float | None]]) -> str:
    """``prompt`` with a tag for each ``(name, weight, unet_weight)`` after it, as A1111 writes
    its prompt."""
    tags = " ".join(lora_tag(*lora) for lora in loras)
    return f"{prompt} {tags}".strip() if tags else prompt
