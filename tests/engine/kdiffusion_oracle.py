"""k-diffusion's own samplers and model wrappers, the reference of the sigma-loop samplers.

k-diffusion's package ``__init__`` imports its training stack (torchvision, skimage...), so
``sampling.py`` and ``external.py`` are loaded on their own, beside a one-function ``utils``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from impasto.engine.schedulers import SchedulerConfig
from impasto.engine.schedulers.sigmas import alphas_cumprod

from .scheduler_oracle import NoiseQueue, fake_unet

PACKAGE = "_k_diffusion_reference"


def _append_dims(x: torch.Tensor, target_dims: int) -> torch.Tensor:
    return x[(...,) + (None,) * (target_dims - x.ndim)]


def load() -> tuple[Any, Any]:
    """k-diffusion's ``sampling`` and ``external`` modules; skips (fails under CI) without it."""
    if PACKAGE in sys.modules:
        package = sys.modules[PACKAGE]
        return package.sampling, package.external
    spec = importlib.util.find_spec("k_diffusion")
    if spec is None or spec.submodule_search_locations is None:
        message = "the k-diffusion package (dev extra) is not installed"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    root = Path(spec.submodule_search_locations[0])
    package = types.ModuleType(PACKAGE)
    package.__path__ = [str(root)]
    utils = types.ModuleType(f"{PACKAGE}.utils")
    utils.append_dims = _append_dims  # type: ignore[attr-defined]
    sys.modules[PACKAGE] = package
    sys.modules[f"{PACKAGE}.utils"] = package.utils = utils  # type: ignore[attr-defined]
    for name in ("sampling", "external"):
        path = root / f"{name}.py"
        module_spec = importlib.util.spec_from_file_location(f"{PACKAGE}.{name}", path)
        assert module_spec is not None and module_spec.loader is not None
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[module_spec.name] = module
        module_spec.loader.exec_module(module)
        setattr(package, name, module)
    return package.sampling, package.external


def denoiser(config: SchedulerConfig) -> Any:
    """k-diffusion's wrapper of an eps (or v) UNet, around ``fake_unet``."""
    _, external = load()
    ac = torch.from_numpy(alphas_cumprod(config).astype(np.float32))

    def unet(scaled: torch.Tensor, t: torch.Tensor, **_: Any) -> torch.Tensor:
        return torch.from_numpy(fake_unet(scaled.numpy(), float(t.reshape(-1)[0])))

    if config.prediction_type == "v_prediction":
        return external.DiscreteVDDPMDenoiser(unet, ac, quantize=False)
    return external.DiscreteEpsDDPMDenoiser(unet, ac, quantize=False)


def noise_sampler(queue: NoiseQueue) -> Any:
    """A k-diffusion ``noise_sampler`` handing out ``queue``'s draws in order."""

    def draw(_sigma: Any, _sigma_next: Any) -> torch.Tensor:
        return torch.from_numpy(queue(queue.items[0].shape))

    return draw


@contextlib.contextmanager
def randn_like_from(queue: Callable[[tuple[int, ...]], np.ndarray]) -> Iterator[None]:
    """k-diffusion's ``torch.randn_like`` (the noise of the samplers without a
    ``noise_sampler``, as sigma churn's) hands out ``queue``'s draws, as A1111 patches it."""
    sampling, _ = load()

    class Shim:
        def __getattr__(self, name: str) -> Any:
            return getattr(torch, name)

        @staticmethod
        def randn_like(x: torch.Tensor) -> torch.Tensor:
            return torch.from_numpy(queue(tuple(x.shape)))

    saved = sampling.torch
    sampling.torch = Shim()
    try:
        yield
    finally:
        sampling.torch = saved
