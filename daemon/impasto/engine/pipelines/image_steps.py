"""How a run from an image (img2img, inpainting, the hires pass) counts its steps."""

from __future__ import annotations

from impasto.engine.schedulers.base import Scheduler


def image_steps(steps: int, strength: float, mode: str = "strength") -> tuple[int, int]:
    """A run from an image (img2img, inpainting, the hires pass): the steps its schedule is
    laid out for, and the step it starts at; it runs the rest.

    - ``strength``: the last int(steps x strength) of ``steps``, as diffusers runs them;
    - ``a1111``: one more, int(steps x min(strength, 0.999)) + 1, AUTOMATIC1111's img2img;
    - ``exact``: ``steps`` of a schedule laid out for int(steps / min(strength, 0.999)),
      A1111's hires pass and its "img2img_fix_steps" option, and ComfyUI's denoise.

    At strength 0 no step runs.
    """
    if strength <= 0:
        return steps, steps
    capped = min(strength, 0.999)
    if mode == "exact":
        laid = int(steps / capped)
        return laid, laid - steps
    if mode == "a1111":
        return steps, steps - int(capped * steps) - 1
    return steps, steps - min(int(steps * strength), steps)


def start_index(scheduler: Scheduler, steps: int, strength: float, mode: str = "strength") -> int:
    """The first timestep index of a run from an image on ``scheduler``, laid out for
    ``image_steps(steps, strength, mode)[0]`` steps."""
    return scheduler.start_at(image_steps(steps, strength, mode)[1])
