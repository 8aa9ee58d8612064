"""AUTOMATIC1111's LoRA tags in a prompt: ``<lora:name>``, ``<lora:name:weight>``.

Prompts travel between tools with their LoRAs written in them (A1111's prompt box, its PNG
``parameters`` text, Civitai's listings), so every Impasto entry point reads the tags and the
PNG text writes them back.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# <lora:name>, <lora:name:weight>, <lora:name:te:unet> (the text encoder's weight is the one
# taken), and LyCORIS's <lyco:...>, which A1111 reads as a LoRA.
_TAG = re.compile(r"<(?:lora|lyco):([^:>]+)(?::([^:>]*))?(?::[^>]*)?>", re.IGNORECASE)
_SPACES = re.compile(r"[ \t]{2,}")


@dataclass(frozen=True)
class LoraTag:
    """One tag: its text as written, the LoRA's name and weight."""

    text: str
    name: str
    weight: float


def lora_tags(prompt: str) -> tuple[str, list[LoraTag]]:
    """``prompt`` without its LoRA tags, and the tags in order; ValueError names a tag whose
    weight is not a number."""
    tags: list[LoraTag] = []
    for match in _TAG.finditer(prompt):
        name, weight = match.group(1).strip(), (match.group(2) or "").strip()
        try:
            value = float(weight) if weight else 1.0
        except ValueError:
            raise ValueError(f"{match.group(0)}: the weight must be a number") from None
        tags.append(LoraTag(match.group(0), name, value))
    if not tags:
        return prompt, tags
    return _SPACES.sub(" ", _TAG.sub("", prompt)).strip(), tags


def with_lora_tags(prompt: str, loras: list[tuple[str, float]]) -> str:
    """``prompt`` with a tag for each ``(name, weight)`` after it, as A1111 writes its prompt."""
    tags = " ".join(f"<lora:{name}:{weight:g}>" for name, weight in loras)
    return f"{prompt} {tags}".strip() if tags else prompt
