"""AUTOMATIC1111's built-in always-on scripts, sent in a request's ``alwayson_scripts``.

A1111 1.6+ moved the Seed, Sampler and Refiner controls into always-on scripts. They are
``ScriptBuiltinUI`` scripts, whose ``setup`` runs in the browser UI only: through the API their
``args`` are accepted and change nothing, and the request's own fields (``seed``, ``steps``,
``refiner_checkpoint``, ...) decide, so a client that sends the script defaults it read from
``/script-info`` keeps its settings. Impasto does the same. A script it does not have
(ControlNet, ADetailer, ...) is refused as A1111 refuses one that is not installed, rather than
run without it, and a selectable script there is refused as A1111 refuses it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from impasto.api.compat.a1111_schemas import ScriptArg, ScriptInfo
from impasto.api.compat.errors import CompatError
from impasto.services.scripts.registry import find_script

FIELD = "alwayson_scripts"


@dataclass(frozen=True)
class AlwaysOn:
    """A built-in always-on script: its A1111 title and its arguments (label, UI default) in
    ``args`` order."""

    title: str
    args: tuple[tuple[str, Any], ...]

    def info(self, is_img2img: bool) -> ScriptInfo:
        """A1111's ScriptInfo entry (GET /script-info)."""
        return ScriptInfo(
            name=self.title.lower(),
            is_alwayson=True,
            is_img2img=is_img2img,
            args=[
                ScriptArg(
                    label=label, value=value, minimum=None, maximum=None, step=None, choices=None
                )
                for label, value in self.args
            ],
        )


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
        ),
        AlwaysOn(
            "Sampler",
            (
                ("Sampling steps", 20),
                ("Sampling method", "Euler a"),
                ("Schedule type", "Automatic"),
            ),
        ),
        AlwaysOn(
            "Refiner",
            (("Refiner", False), ("Checkpoint", None), ("Switch at", 0.8)),
        ),
    )
}


def check_alwayson_scripts(body: dict[str, Any], is_img2img: bool) -> None:
    """Refuse what A1111 refuses in ``alwayson_scripts``; the built-ins' args change nothing."""
    scripts = body.get(FIELD)
    if not scripts:
        return
    if not isinstance(scripts, dict):
        raise CompatError(422, "must be an object of script name -> {args: [...]}", FIELD)
    for name, entry in scripts.items():
        if find_script(str(name), is_img2img) is not None:
            raise CompatError(
                422, "Cannot have a selectable script in the always on scripts params", FIELD
            )
        if str(name).strip().lower() not in BUILT_IN:
            runs = ", ".join(script.title for script in BUILT_IN.values())
            raise CompatError(
                422, f"always on script {name} not found; Impasto runs: {runs}", FIELD
            )
        args = entry.get("args", []) if isinstance(entry, dict) else None
        if not isinstance(args, list):
            raise CompatError(422, f'{name}: send {{"args": [...]}}', FIELD)
