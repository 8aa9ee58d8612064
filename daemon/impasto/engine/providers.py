"""Rank the ONNX Runtime execution providers this machine offers and prove the choice works."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from impasto.engine.types import EngineError
from impasto.formats.protobuf import encode_key, encode_varint, length_delimited

CPU = "CPUExecutionProvider"

# Best first. TensorRT only when the config enables it: its engine build takes minutes per shape.
RANKING = (
    "TensorrtExecutionProvider",
    "CUDAExecutionProvider",
    "DmlExecutionProvider",
    "CoreMLExecutionProvider",
    "ROCMExecutionProvider",
    "MIGraphXExecutionProvider",
    "OpenVINOExecutionProvider",
    CPU,
)
ALIASES = {
    "tensorrt": "TensorrtExecutionProvider",
    "trt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "directml": "DmlExecutionProvider",
    "dml": "DmlExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
    "rocm": "ROCMExecutionProvider",
    "migraphx": "MIGraphXExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
    "cpu": CPU,
}
GPU_PROVIDERS = frozenset(
    {
        "TensorrtExecutionProvider",
        "CUDAExecutionProvider",
        "DmlExecutionProvider",
        "ROCMExecutionProvider",
        "MIGraphXExecutionProvider",
    }
)
# Measured on an SD 1.5-shaped UNet on CPU (docs/benchmarks.md, `bench/engine.py --levels`), with
# onnxruntime 1.32: "all" stepped 4-5% faster than "extended" (VAE decode 10%), which beat
# "basic", but takes 4-28 s to open the UNet, so CPU caches the optimised model (next table).
# GPU providers keep ORT's default (all), where fusions pay.
OPTIMIZATION_LEVEL = {CPU: "all", "CoreMLExecutionProvider": "basic"}
DEFAULT_OPTIMIZATION_LEVEL = "all"
# Levels slow enough to optimise that a saved copy pays: "all" took 4-28 s on that UNet and its
# saved copy opens in about 1 s; "basic" and "extended" open in about 1 s without one.
CACHED_LEVELS = frozenset({"all"})
# Providers that compile the graph themselves (TensorRT, CoreML, OpenVINO, MIGraphX) cannot save
# ORT's optimised model; TensorRT keeps its own engine cache instead.
SAVES_OPTIMIZED = frozenset(
    {CPU, "CUDAExecutionProvider", "ROCMExecutionProvider", "DmlExecutionProvider"}
)


@dataclass(frozen=True)
class ProviderChoice:
    """The provider picked, the ORT provider list with options, and why others were rejected."""

    name: str
    providers: list[tuple[str, dict[str, str]]]
    rejected: list[tuple[str, str]] = field(default_factory=list)
    device_id: int = 0
    threads: int = 1
    optimization_level: str = "basic"
    cache_optimized: bool = False  # save ORT's optimised models in the caller's cache dir

    @property
    def is_gpu(self) -> bool:
        """Whether tensors should stay on a device between calls (IO binding)."""
        return self.name in GPU_PROVIDERS


class ProviderEnvironment(Protocol):
    """What provider selection asks of the machine; tests pass a fake."""

    def available_providers(self) -> list[str]:
        """The providers compiled into the installed onnxruntime."""
        ...

    def nvidia_gpus(self) -> tuple[int, str]:
        """How many NVIDIA GPUs the driver reports, and why none when zero."""
        ...

    def probe(self, providers: Sequence[tuple[str, dict[str, str]]]) -> list[str]:
        """Open a tiny session with ``providers`` and return ``get_providers()``."""
        ...


class SystemEnvironment:
    """The real machine: onnxruntime, pynvml and a one-node in-memory model.

    ``nvml`` and ``onnxruntime`` default to the real modules; tests pass stand-ins.
    """

    def __init__(self, nvml: Any = None, onnxruntime: Any = None) -> None:
        self._nvml = nvml
        self._ort = onnxruntime

    def _onnxruntime(self) -> Any:
        if self._ort is None:
            import onnxruntime

            self._ort = onnxruntime
        return self._ort

    def available_providers(self) -> list[str]:
        return list(self._onnxruntime().get_available_providers())

    def nvidia_gpus(self) -> tuple[int, str]:
        nvml = self._nvml
        if nvml is None:
            try:
                nvml = importlib.import_module("pynvml")
            except ImportError:
                return 0, "nvidia-ml-py is not installed"
        try:
            nvml.nvmlInit()
        except Exception as exc:  # pynvml raises NVMLError subclasses, or OSError without a lib
            return 0, f"no NVIDIA driver found ({exc})"
        try:
            count = int(nvml.nvmlDeviceGetCount())
        except Exception as exc:
            return 0, f"the NVIDIA driver failed to list GPUs ({exc})"
        finally:
            nvml.nvmlShutdown()
        return count, "" if count else "the NVIDIA driver reports no GPU"

    def probe(self, providers: Sequence[tuple[str, dict[str, str]]]) -> list[str]:
        ort = self._onnxruntime()
        options = ort.SessionOptions()
        options.log_severity_level = 3  # a failed provider is reported by us, not as ORT noise
        session = ort.InferenceSession(probe_model_bytes(), options, providers=list(providers))
        return list(session.get_providers())


def physical_cores() -> int:
    """Physical cores this process may use; SMT siblings only slow ORT's CPU kernels down."""
    logical = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    logical = logical or 1
    cores: set[tuple[str, str]] = set()
    if sys.platform.startswith("linux"):
        try:
            physical = core = ""
            with open("/proc/cpuinfo", encoding="ascii", errors="replace") as cpuinfo:
                for line in cpuinfo:
                    key, _, value = line.partition(":")
                    key = key.strip()
                    if key == "physical id":
                        physical = value.strip()
                    elif key == "core id":
                        core = value.strip()
                        cores.add((physical, core))
        except OSError:
            cores.clear()
    if sys.platform == "darwin":
        try:
            import subprocess

            out = subprocess.run(
                ["sysctl", "-n", "hw.physicalcpu"], capture_output=True, text=True, timeout=2
            )
            return max(1, min(logical, int(out.stdout.strip())))
        except (OSError, ValueError, subprocess.SubprocessError):
            return logical
    return max(1, min(logical, len(cores))) if cores else logical


def provider_options(name: str, device_id: int, cache_dir: str | None) -> dict[str, str]:
    """ORT options for one provider."""
    if name == "TensorrtExecutionProvider":
        options = {"device_id": str(device_id), "trt_fp16_enable": "True"}
        if cache_dir:
            options |= {"trt_engine_cache_enable": "True", "trt_engine_cache_path": cache_dir}
        return options
    if name in ("CUDAExecutionProvider", "ROCMExecutionProvider", "MIGraphXExecutionProvider"):
        return {"device_id": str(device_id)}
    if name == "DmlExecutionProvider":
        return {"device_id": str(device_id)}
    return {}


def resolve_name(name: str) -> str:
    """Map a config value (``cuda``, ``CUDAExecutionProvider``) to an ORT provider name."""
    full = ALIASES.get(name.strip().lower(), name.strip())
    if full not in RANKING:
        allowed = ", ".join(sorted(ALIASES))
        raise EngineError(f"unknown execution provider {name!r}; use one of: {allowed}")
    return full


def _precondition(name: str, enable_tensorrt: bool, env: ProviderEnvironment) -> str:
    """Why ``name`` cannot be used before probing it, or '' when it may be tried."""
    if name == "TensorrtExecutionProvider" and not enable_tensorrt:
        return "disabled in config (set enable_tensorrt = true to use it)"
    if name in ("TensorrtExecutionProvider", "CUDAExecutionProvider"):
        count, why = env.nvidia_gpus()
        if count == 0:
            return why or "no NVIDIA GPU"
    return ""


def _try(
    name: str, device_id: int, cache_dir: str | None, env: ProviderEnvironment
) -> tuple[list[tuple[str, dict[str, str]]], str]:
    providers = [(name, provider_options(name, device_id, cache_dir))]
    if name != CPU:
        providers.append((CPU, {}))
    try:
        opened = env.probe(providers)
    except Exception as exc:  # ORT raises plain RuntimeError/Fail for provider load errors
        return providers, f"failed to open a session: {exc}"
    if not opened or opened[0] != name:
        return providers, "ONNX Runtime fell back to CPU (driver or runtime library missing)"
    return providers, ""


def select_providers(
    force: str | None = None,
    *,
    enable_tensorrt: bool = False,
    device_id: int = 0,
    cache_dir: str | None = None,
    env: ProviderEnvironment | None = None,
) -> ProviderChoice:
    """Pick the best working provider, or the forced one (raising EngineError if it fails)."""
    env = env or SystemEnvironment()
    available = set(env.available_providers())
    threads = physical_cores()
    rejected: list[tuple[str, str]] = []
    if force:
        candidates: tuple[str, ...] = (resolve_name(force),)
        enable_tensorrt = True  # forcing TensorRT is enabling it
    else:
        candidates = RANKING
    for name in candidates:
        if name not in available:
            rejected.append((name, "not in this onnxruntime build"))
            continue
        reason = _precondition(name, enable_tensorrt, env)
        if not reason:
            providers, reason = _try(name, device_id, cache_dir, env)
        if reason:
            rejected.append((name, reason))
            continue
        level = OPTIMIZATION_LEVEL.get(name, DEFAULT_OPTIMIZATION_LEVEL)
        return ProviderChoice(
            name=name,
            providers=providers,
            rejected=rejected,
            device_id=device_id,
            threads=threads,
            optimization_level=level,
            cache_optimized=name in SAVES_OPTIMIZED and level in CACHED_LEVELS,
        )
    detail = "; ".join(f"{n}: {r}" for n, r in rejected)
    if force:
        raise EngineError(f"execution provider {force!r} is not usable here ({detail})")
    raise EngineError(f"no execution provider works ({detail})")


def cpu_choice() -> ProviderChoice:
    """The CPU provider without probing; for tests and tools that want no GPU."""
    level = OPTIMIZATION_LEVEL[CPU]
    return ProviderChoice(
        name=CPU,
        providers=[(CPU, {})],
        threads=physical_cores(),
        optimization_level=level,
        cache_optimized=level in CACHED_LEVELS,
    )


def _field(number: int, payload: bytes | int) -> bytes:
    if isinstance(payload, int):
        return encode_key(number, 0) + encode_varint(payload)
    return length_delimited(number, payload)


def probe_model_bytes() -> bytes:
    """A serialized one-node ONNX model (y = Relu(x), float[1]) for proving a provider."""

    def value_info(name: bytes) -> bytes:
        dim = _field(1, _field(1, 1))  # TensorShapeProto.dim { dim_value: 1 }
        tensor_type = _field(1, 1) + _field(2, dim)  # elem_type FLOAT, shape
        return _field(1, name) + _field(2, _field(1, tensor_type))

    node = _field(1, b"x") + _field(2, b"y") + _field(4, b"Relu")
    graph = _field(1, node) + _field(2, b"probe") + _field(11, value_info(b"x"))
    graph += _field(12, value_info(b"y"))
    opset = _field(1, b"") + _field(2, 13)
    return _field(1, 8) + _field(7, graph) + _field(8, opset)
