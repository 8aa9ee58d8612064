"""The bundled model follows prompts: per sampler, with guidance, against a negative prompt.

Pictures come from the real daemon at the model's recommended settings and are read by the
analyser (tests/semantic/analyser.py). The thresholds are the issue's acceptance bar; the
measured figures are in docs/benchmarks.md ("impasto-shapes accuracy").
"""

from __future__ import annotations

import pytest

from tests.harness import Daemon
from tests.semantic.analyser import analyse, world
from tests.semantic.jobs import (
    PROMPT_SEED,
    SAMPLER_SCHEDULES,
    SAMPLER_STEPS,
    generate,
    score,
)

PROMPTS = world.test_prompts(40, seed=PROMPT_SEED)


# What each sampler reaches with the committed model (docs/benchmarks.md has the table), a few
# points under the measured figures; far above chance (background 1/8, colour 1/7, shape 1/5).
FLOORS = {sampler: {"background": 0.85, "colour": 0.8, "shape": 0.6} for sampler in SAMPLER_STEPS}
_SCORES: dict[str, dict[str, float]] = {}


def sampler_score(daemon: Daemon, sampler: str) -> dict[str, float]:
    """The 40 test prompts through one sampler, scored (once per session for both tests)."""
    if sampler not in _SCORES:
        bodies = [
            {
                "prompt": p,
                "seed": i,
                "sampler": sampler,
                "steps": SAMPLER_STEPS[sampler],
                "schedule": SAMPLER_SCHEDULES[sampler],
            }
            for i, p in enumerate(PROMPTS)
        ]
        _SCORES[sampler] = score(PROMPTS, generate(daemon, bodies))
    return _SCORES[sampler]


@pytest.mark.parametrize("sampler", list(SAMPLER_STEPS))
def test_each_sampler_draws_what_the_prompt_says(shapes_daemon: Daemon, sampler: str) -> None:
    result = sampler_score(shapes_daemon, sampler)
    for key, floor in FLOORS[sampler].items():
        assert result[key] >= floor, (key, result)


@pytest.mark.parametrize("sampler", list(SAMPLER_STEPS))
def test_prompt_following_per_sampler(shapes_daemon: Daemon, sampler: str) -> None:
    # The bar.
    result = sampler_score(shapes_daemon, sampler)
    assert result["colour"] >= 0.9 and result["background"] >= 0.9, result
    assert result["shape"] >= 0.8, result


def test_guidance_raises_accuracy_from_cfg_1_to_5(shapes_daemon: Daemon) -> None:
    # A flipped guidance sign pushes away from the prompt, so cfg 5 would score below cfg 1.
    # "Right" here is the mean of background, colour and shape accuracy.
    fractions = {}
    for cfg in (1.0, 5.0):
        bodies = [{"prompt": p, "seed": i, "cfg_scale": cfg} for i, p in enumerate(PROMPTS)]
        result = score(PROMPTS, generate(shapes_daemon, bodies))
        fractions[cfg] = (result["background"] + result["colour"] + result["shape"]) / 3
    assert fractions[5.0] > fractions[1.0] + 0.05, fractions


def test_negative_prompt_keeps_the_circle_from_being_red(shapes_daemon: Daemon) -> None:
    seeds = range(40)

    def red_circles(negative: str) -> int:
        bodies = [{"prompt": "a circle", "negative_prompt": negative, "seed": s} for s in seeds]
        readings = [analyse(image) for image in generate(shapes_daemon, bodies)]
        return sum(r.colour == "red" and r.shape == "circle" for r in readings)

    steered, plain = red_circles("red"), red_circles("")
    assert steered <= len(seeds) * 0.1, steered
    # The same seeds without it draw some red circles (a colour is picked at random): the
    # negative prompt steers, it is not ignored (ignored, both counts would be equal).
    assert steered < plain, (steered, plain)
