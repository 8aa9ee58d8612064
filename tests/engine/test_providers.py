"""Execution provider ranking, proof by probe, rejection reasons, forcing."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import onnxruntime as ort
import pytest

from impasto.engine import EngineError, select_providers
from impasto.engine.providers import (
    CPU,
    OPTIMIZATION_LEVEL,
    SystemEnvironment,
    physical_cores,
    probe_model_bytes,
    resolve_name,
)

CUDA, TRT, DML = "CUDAExecutionProvider", "TensorrtExecutionProvider", "DmlExecutionProvider"


@dataclass
class FakeEnvironment:
    """A machine with ``available`` providers; ``works`` lists those whose probe succeeds."""

    available: list[str]
    gpus: int = 0
    works: set[str] = field(default_factory=lambda: {CPU})
    broken: dict[str, str] = field(default_factory=dict)
    probed: list[list[str]] = field(default_factory=list)

    def available_providers(self) -> list[str]:
        return self.available

    def nvidia_gpus(self) -> tuple[int, str]:
        return self.gpus, "" if self.gpus else "no NVIDIA driver found (fake)"

    def probe(self, providers: Sequence[tuple[str, dict[str, str]]]) -> list[str]:
        names = [name for name, _ in providers]
        self.probed.append(names)
        if names[0] in self.broken:
            raise RuntimeError(self.broken[names[0]])
        return [n for n in names if n in self.works]  # ORT drops what failed, silently


def test_cuda_is_chosen_when_a_gpu_is_found_and_proven() -> None:
    env = FakeEnvironment([TRT, CUDA, CPU], gpus=1, works={CUDA, CPU})
    choice = select_providers(env=env, device_id=1)
    assert choice.name == CUDA and choice.is_gpu
    assert choice.providers == [(CUDA, {"device_id": "1"}), (CPU, {})]
    assert choice.rejected[0] == (TRT, "disabled in config (set enable_tensorrt = true to use it)")
    assert choice.optimization_level == "all"
    assert env.probed == [[CUDA, CPU]]


def test_tensorrt_is_first_when_enabled() -> None:
    env = FakeEnvironment([TRT, CUDA, CPU], gpus=1, works={TRT, CUDA, CPU})
    choice = select_providers(env=env, enable_tensorrt=True, cache_dir="/tmp/trt")
    assert choice.name == TRT
    assert choice.providers[0][1]["trt_engine_cache_path"] == "/tmp/trt"


def test_cuda_without_a_gpu_is_rejected_with_the_driver_reason() -> None:
    env = FakeEnvironment([CUDA, CPU], gpus=0)
    choice = select_providers(env=env)
    assert choice.name == CPU and choice.optimization_level == OPTIMIZATION_LEVEL[CPU]
    assert (CUDA, "no NVIDIA driver found (fake)") in choice.rejected
    assert (DML, "not in this onnxruntime build") in choice.rejected
    assert [CUDA, CPU] not in env.probed  # no GPU: not even probed


def test_silent_fallback_to_cpu_is_detected() -> None:
    env = FakeEnvironment([CUDA, CPU], gpus=1, works={CPU})
    choice = select_providers(env=env)
    assert choice.name == CPU
    assert any(name == CUDA and "fell back to CPU" in why for name, why in choice.rejected)


def test_a_provider_that_fails_to_open_is_rejected_with_its_error() -> None:
    env = FakeEnvironment([DML, CPU], works={DML, CPU}, broken={DML: "D3D12 device lost"})
    choice = select_providers(env=env)
    assert choice.name == CPU
    assert (DML, "failed to open a session: D3D12 device lost") in choice.rejected


def test_forced_provider_is_used_or_refused() -> None:
    env = FakeEnvironment([CUDA, CPU], gpus=1, works={CUDA, CPU})
    assert select_providers("cpu", env=env).name == CPU
    assert select_providers("CUDAExecutionProvider", env=env).name == CUDA
    no_gpu = FakeEnvironment([CUDA, CPU], gpus=0)
    with pytest.raises(EngineError, match=r"'cuda' is not usable here.*no NVIDIA driver"):
        select_providers("cuda", env=no_gpu)
    with pytest.raises(EngineError, match="unknown execution provider 'vulkan'; use one of"):
        select_providers("vulkan", env=env)


def test_forcing_tensorrt_enables_it() -> None:
    env = FakeEnvironment([TRT, CPU], gpus=1, works={TRT, CPU})
    assert select_providers("tensorrt", env=env).name == TRT


def test_aliases() -> None:
    assert resolve_name(" DirectML ") == DML
    assert resolve_name("coreml") == "CoreMLExecutionProvider"


class FakeNvml:
    """pynvml's three calls; ``error`` makes nvmlInit fail like a machine without a driver."""

    def __init__(self, count: int = 0, error: Exception | None = None) -> None:
        self.count, self.error, self.shutdowns = count, error, 0

    def nvmlInit(self) -> None:
        if self.error:
            raise self.error

    def nvmlDeviceGetCount(self) -> int:
        return self.count

    def nvmlShutdown(self) -> None:
        self.shutdowns += 1


def test_system_environment_reads_the_gpu_count_through_nvml() -> None:
    nvml = FakeNvml(count=2)
    assert SystemEnvironment(nvml=nvml).nvidia_gpus() == (2, "")
    assert nvml.shutdowns == 1
    count, why = SystemEnvironment(nvml=FakeNvml(error=OSError("libnvidia-ml.so.1"))).nvidia_gpus()
    assert count == 0 and "libnvidia-ml.so.1" in why
    assert SystemEnvironment(nvml=FakeNvml(count=0)).nvidia_gpus()[0] == 0


def test_real_machine_selection_is_proven_by_a_real_session() -> None:
    choice = select_providers()
    assert choice.name in ort.get_available_providers()
    assert choice.threads == physical_cores() >= 1
    session = ort.InferenceSession(probe_model_bytes(), providers=[p for p, _ in choice.providers])
    assert session.get_providers()[0] == choice.name
    for name, reason in choice.rejected:
        assert name != choice.name and reason


def test_probe_model_runs_relu() -> None:
    import numpy as np

    session = ort.InferenceSession(probe_model_bytes(), providers=[CPU])
    (out,) = session.run(None, {"x": np.array([-2.0], np.float32)})
    assert out.tolist() == [0.0]
