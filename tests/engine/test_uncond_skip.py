"""Leaving the negative prompt's pass out of a UNet call (A1111's "Negative Guidance minimum
sigma" and "Ignore negative prompt during early sampling"): what the guidance runs and returns.
The whole-run comparison with A1111's CFG denoiser is in test_pipeline_kdiffusion.py."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from impasto.engine.pipelines.base import Guidance, UncondSkip
from impasto.engine.sampler_setup import uncond_skip
from impasto.engine.schedulers import SchedulerConfig
from impasto.engine.schedulers.sigmas import alphas_cumprod, train_sigmas
from impasto.engine.types import GenerationParams

SHAPE = (1, 4, 4, 4)


class _Model:
    def to_device(self, name: str, value: np.ndarray) -> np.ndarray:
        return value


@dataclass
class FakeUNet:
    """Its output is the sample times the mean of each row's text states, so every row says
    which prompt it was run with; records the rows of every run."""

    dynamic_batch: bool = True
    model: _Model = field(default_factory=_Model)
    seen: list[np.ndarray] = field(default_factory=list)

    def run(self, sample: np.ndarray, t: float, hidden: Any, *_: Any) -> np.ndarray:
        hidden = np.asarray(hidden)
        self.seen.append(hidden.mean(axis=(1, 2)))
        return sample * hidden.mean(axis=(1, 2))[:, None, None, None]


def states(value: float) -> np.ndarray:
    return np.full((1, 3, 2), value, dtype=np.float32)


@pytest.mark.parametrize("dynamic", [True, False])
def test_a_skipped_call_runs_the_prompt_parts_alone_at_scale_1(dynamic: bool) -> None:
    unet = FakeUNet(dynamic_batch=dynamic)
    parts = np.concatenate([states(2.0), states(5.0)])  # "a AND b :0.3"
    guidance = Guidance(unet, parts, states(-1.0), 7.0, 1, weights=(0.7, 0.3))  # type: ignore[arg-type]
    sample = np.random.default_rng(0).standard_normal(SHAPE).astype(np.float32)
    out, uncond = guidance.predict_with_uncond(sample, 500.0, 7.0, skip_uncond=True)
    # A1111: the first part stands in for the negative pass, combined at scale 1.
    first, second = sample * 2.0, sample * 5.0
    np.testing.assert_allclose(out, first + 0.7 * (first - first) + 0.3 * (second - first))
    np.testing.assert_allclose(uncond, first)
    assert sorted(np.concatenate(unet.seen).tolist()) == [2.0, 5.0]  # no -1: no negative pass
    unet.seen.clear()
    guided = guidance.predict(sample, 500.0)
    assert -1.0 in np.concatenate(unet.seen)
    negative = sample * -1.0
    np.testing.assert_allclose(
        guided, negative + 7.0 * (0.7 * (first - negative) + 0.3 * (second - negative)), rtol=1e-6
    )


def test_without_cfg_a_skip_changes_nothing() -> None:
    unet = FakeUNet()
    guidance = Guidance(unet, states(2.0), None, 1.0, 1)  # type: ignore[arg-type]
    sample = np.ones(SHAPE, dtype=np.float32)
    np.testing.assert_array_equal(
        guidance.predict(sample, 1.0, True), guidance.predict(sample, 1.0)
    )


def test_the_calls_a1111_skips() -> None:
    config = SchedulerConfig()
    train = train_sigmas(alphas_cumprod(config))
    params = GenerationParams(prompt="x", s_min_uncond=1.0)
    skip = uncond_skip(params, config)
    assert skip is not None
    low = float(np.argmax(train > 1.0)) - 1  # the last timestep below sigma 1
    assert skip.sigma_of(low) == pytest.approx(float(train[int(low)]))
    assert [skip.skips(call, 10, low) for call in range(4)] == [False, True, False, True]
    assert not any(skip.skips(call, 10, low + 1) for call in range(4))
    every = UncondSkip(skip.sigma_of, 1.0, every_call=True)
    assert all(every.skips(call, 10, low) for call in range(4))
    early = UncondSkip(skip.sigma_of, early=0.25)
    assert [early.skips(call, 8, 999.0) for call in range(4)] == [True, True, True, False]
    assert uncond_skip(GenerationParams(prompt="x"), config) is None
