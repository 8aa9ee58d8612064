"""AUTOMATIC1111's built-in always-on scripts, sent in a request's ``alwayson_scripts``.

A1111 1.6+ moved Seed, Sampler and Refiner into always-on scripts whose ``setup`` writes their
arguments over the request's own fields; API clients send them as ``{"Refiner": {"args":
[true, "sdxl_refiner", 0.8]}}``. Impasto applies the same arguments to the same fields. A
script it does not have (ControlNet, ADetailer, ...) is refused as A1111 refuses one that is
not installed, rather than run without it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from impasto.api.compat.errors import CompatError

FIELD = "alwayson_scripts"
NO_REFINER = (None, "", "None")


def _seed(args: list[Any]) -> dict[str, Any]:
    # setup(p, seed, seed_checkbox, subseed, subseed_strength, resize_w, resize_h)
    fields: dict[str, Any] = {}
    if args:
        fields["seed"] = args[0]
    if len(args) >= 4 and args[1]:
        fields["subseed"], fields["subseed_strength"] = args[2], args[3]
    return fields


def _sampler(args: list[Any]) -> dict[str, Any]:
    # setup(p, steps, sampler_name, scheduler)
    names = ("steps", "sampler_name", "scheduler")
    return dict(zip(names, args, strict=False))


def _refiner(args: list[Any]) -> dict[str, Any]:
    # setup(p, enable_refiner, refiner_checkpoint, refiner_switch_at)
    if not args:
        return {}
    checkpoint = args[1] if len(args) > 1 else None
    if not args[0] or checkpoint in NO_REFINER:
        return {"refiner_checkpoint": None}
    fields = {"refiner_checkpoint": checkpoint}
    if len(args) > 2:
        fields["refiner_switch_at"] = args[2]
    return fields


@dataclass(frozen=True)
class AlwaysOn:
    """A built-in always-on script: its A1111 title, its arguments (label, UI default) in
    ``args`` order, and the request fields its arguments set."""

    title: str
    args: tuple[tuple[str, Any], ...]
    fields: Callable[[list[Any]], dict[str, Any]]

    def info(self, is_img2img: bool) -> dict[str, Any]:
        """A1111's ScriptInfo entry (GET /script-info)."""
        return {
            "name": self.title.lower(),
            "is_alwayson": True,
            "is_img2img": is_img2img,
            "args": [
                {
                    "label": label,
                    "value": value,
                    "minimum": None,
                    "maximum": None,
                    "step": None,
                    "choices": None,
                }
                for label, value in self.args
            ],
        }


BUILT_IN = {
    script.title.lower(): script
    for script in (
        AlwaysOn(
            "Seed",
            (
                ("Seed", -1),
                ("Extra", False),
                ("Variation seed", -1),
                ("Variation strength", 0.0),
                ("Resize seed from width", 0),
                ("Resize seed from height", 0),
            ),
            _seed,
        ),
        AlwaysOn(
            "Sampler",
            (
                ("Sampling steps", 20),
                ("Sampling method", "Euler a"),
                ("Schedule type", "Automatic"),
            ),
            _sampler,
        ),
        AlwaysOn(
            "Refiner",
            (("Refiner", False), ("Checkpoint", None), ("Switch at", 0.8)),
            _refiner,
        ),
    )
}


def with_alwayson_scripts(body: dict[str, Any]) -> dict[str, Any]:
    """``body`` with its always-on scripts' arguments written over the fields they set."""
    scripts = body.get(FIELD)
    if not scripts:
        return body
    if not isinstance(scripts, dict):
        raise CompatError(422, "must be an object of script name -> {args: [...]}", FIELD)
    fields: dict[str, Any] = {}
    for name, entry in scripts.items():
        script = BUILT_IN.get(str(name).strip().lower())
        if script is None:
            runs = ", ".join(script.title for script in BUILT_IN.values())
            raise CompatError(
                422, f"always on script {name} not found; Impasto runs: {runs}", FIELD
            )
        args = entry.get("args", []) if isinstance(entry, dict) else None
        if not isinstance(args, list):
            raise CompatError(422, f'{name}: send {{"args": [...]}}', FIELD)
        fields.update(script.fields(args))
    return {**body, **fields}
