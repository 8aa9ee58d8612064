"""ONNX Runtime sessions opened with a ProviderChoice, with IO binding for GPU providers."""

from __future__ import annotations

import ctypes
import gc
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from impasto.engine import session_cache
from impasto.engine.providers import ProviderChoice
from impasto.engine.types import ModelFolderError

ORT_DTYPES: dict[str, type[np.generic]] = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
}
LEVELS = {
    "disabled": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}
# OrtValue device names per provider, for IO binding.
_DEVICE_TYPES = {
    "CUDAExecutionProvider": "cuda",
    "TensorrtExecutionProvider": "cuda",
    "ROCMExecutionProvider": "cuda",  # ROCm builds register their device under the cuda name
    "MIGraphXExecutionProvider": "cuda",
    "DmlExecutionProvider": "dml",
}


@dataclass(frozen=True)
class TensorSpec:
    """One model input: its numpy dtype and its shape (str or None for dynamic axes)."""

    name: str
    dtype: type[np.generic]
    shape: tuple[int | str | None, ...]

    def is_dynamic(self, axis: int) -> bool:
        """Whether ``axis`` accepts any size."""
        return axis < len(self.shape) and not isinstance(self.shape[axis], int)


def releasing_run_options() -> ort.RunOptions:
    """Run options under which a call hands back to the system what it grew ORT's CPU arena by.

    The arena otherwise keeps every call's working memory reserved until the session closes:
    after one 1024x1024 call an SD 1.5 UNet's worker stayed 1.1 GB larger for as long as the
    model stayed loaded, and the decoder 3.6 GB after one 768x768 decode (bench/arena.py).
    Releasing cost an SD 1.5 UNet call nothing measurable and a decode about 3%; whole
    generations of the bundled model showed no cost.
    Only the CPU arena: a GPU provider's arena is the device's to keep.
    """
    options = ort.RunOptions()
    options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
    return options


def return_freed_memory() -> None:
    """Hand the memory of closed sessions back to the system (glibc's ``malloc_trim``).

    Closing a session frees its weights to the C allocator, which keeps them for reuse: a
    worker that unloaded the bundled model stayed 35 MB larger, its RSS as if still loaded,
    until this trim. A no-op where the C library has no ``malloc_trim`` (macOS, Windows, musl).
    """
    gc.collect()  # sessions held in reference cycles go now, not at some later collection
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError, TypeError):  # TypeError: Windows loads no "None" library
        return
    trim(0)


# How ORT refuses releasing_run_options where the CPU allocator is not an arena.
_NO_ARENA = "Did not find an arena based allocator"


def _contiguous(value: np.ndarray, dtype: type[np.generic]) -> np.ndarray:
    # Not np.ascontiguousarray: it turns a 0-d array (the UNet's scalar timestep) into 1-d.
    return np.require(np.asarray(value, dtype=dtype), requirements="C")


def session_options(choice: ProviderChoice, level: str | None = None) -> ort.SessionOptions:
    """Options for every session of a pipeline: threads, optimisation level, quiet logs."""
    options = ort.SessionOptions()
    level = level or choice.optimization_level
    options.graph_optimization_level = LEVELS.get(level, LEVELS["basic"])
    options.intra_op_num_threads = choice.threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    if choice.name == "DmlExecutionProvider":
        # DirectML does not support memory patterns or parallel execution.
        options.enable_mem_pattern = False
    return options


class OrtModel:
    """One ONNX component: feeds are cast to the declared input dtypes; run time is summed."""

    def __init__(
        self,
        path: Path,
        choice: ProviderChoice,
        cache_dir: Path | None = None,
        initializers: Mapping[str, np.ndarray] | None = None,
    ) -> None:
        """``initializers`` replace weights of the model by name (run-time LoRA, embeddings)."""
        self.path = path
        self.choice, self.cache_dir = choice, cache_dir
        self.initializers = dict(initializers or {})
        # ORT reads the overriding arrays while the session lives: keep them referenced.
        self._overrides = {
            name: ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(value))
            for name, value in (initializers or {}).items()
        }
        # A cached optimised copy would bake the overrides in (or ignore them): skip the cache.
        self.session, self.cache = self._open(
            path, choice, None if self._overrides else cache_dir, self._overrides
        )
        self.inputs = {
            i.name: TensorSpec(i.name, ORT_DTYPES.get(i.type, np.float32), tuple(i.shape))
            for i in self.session.get_inputs()
        }
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.device_type = _DEVICE_TYPES.get(choice.name) if choice.is_gpu else None
        self.device_id = choice.device_id
        self.run_seconds = 0.0
        self._run_options: ort.RunOptions | None = releasing_run_options()

    @staticmethod
    def _open(
        path: Path,
        choice: ProviderChoice,
        cache_dir: Path | None,
        overrides: Mapping[str, ort.OrtValue] | None = None,
    ) -> tuple[ort.InferenceSession, session_cache.CachePlan]:
        level = choice.optimization_level
        if overrides and level == "all":
            # "all" pre-packs weights for its CPU kernels, and replaced initializers then lose
            # part of their effect (LoRA outputs drift by 8/255): stop at "extended".
            level = "extended"
        plan = session_cache.plan_load(
            path, choice.name, level, cache_dir if choice.cache_optimized else None
        )
        options = session_options(choice, plan.level)
        session_cache.configure(options, plan)
        for name, value in (overrides or {}).items():
            options.add_initializer(name, value)
        providers = list(choice.providers)
        try:
            session = ort.InferenceSession(str(plan.load_path), options, providers=providers)
        except Exception as exc:  # ORT raises its own Fail/InvalidGraph types
            session_cache.discard(plan)
            if plan.hit and plan.entry is not None:
                # A damaged entry (disk full, killed mid-copy by hand): optimise and save again.
                shutil.rmtree(plan.entry, ignore_errors=True)
                return OrtModel._open(path, choice, cache_dir)
            if plan.save_dir is not None:  # ORT could not save the optimised copy: skip the cache
                return OrtModel._open(path, choice, None)
            raise ModelFolderError(str(path), f"ONNX Runtime could not load it ({exc})") from exc
        session_cache.commit(plan)
        return session, plan

    def close(self) -> None:
        """Drop the session so ONNX Runtime frees its memory."""
        self.__dict__.pop("session", None)

    def input(self, name: str) -> TensorSpec:
        """The spec of input ``name``; a ModelFolderError names the model when it is absent."""
        try:
            return self.inputs[name]
        except KeyError:
            raise ModelFolderError(
                str(self.path), f"has no input {name!r} (inputs: {', '.join(self.inputs)})"
            ) from None

    def output_index(self, preferred: Sequence[str]) -> int:
        """Index of the first output named in ``preferred``, else 0."""
        for name in preferred:
            if name in self.output_names:
                return self.output_names.index(name)
        return 0

    def _cast(self, feeds: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, value in feeds.items():
            if isinstance(value, np.ndarray):
                value = _contiguous(value, self.input(name).dtype)
            out[name] = value
        return out

    def to_device(self, name: str, value: np.ndarray) -> Any:
        """Upload a feed that stays constant across calls; on CPU it stays a numpy array."""
        array = _contiguous(value, self.input(name).dtype)
        if self.device_type is None:
            return array
        return ort.OrtValue.ortvalue_from_numpy(array, self.device_type, self.device_id)

    def reopen(self, path: Path) -> OrtModel:
        """Another graph of the same weights (a DeepCache split), opened as this one was.

        Only the overriding initializers the other graph has are passed on.
        """
        from impasto.engine.onnx_graph import OnnxGraph

        overrides = self.initializers
        if overrides:
            present = OnnxGraph(path).initializers
            overrides = {k: v for k, v in overrides.items() if k in present}
        return OrtModel(path, self.choice, self.cache_dir, overrides)

    def run(self, feeds: Mapping[str, Any], output: int = 0) -> np.ndarray:
        """Run and return output ``output`` as a numpy array."""
        return self.run_outputs(feeds, (output,))[0]

    def run_outputs(self, feeds: Mapping[str, Any], outputs: Sequence[int]) -> list[np.ndarray]:
        """Run and return the outputs at ``outputs`` as numpy arrays."""
        cast = self._cast(feeds)
        names = [self.output_names[i] for i in outputs]
        start = time.perf_counter()
        try:
            try:
                results = self._run(cast, names)
            except Exception as exc:  # ORT's own error types
                if self._run_options is None or _NO_ARENA not in str(exc):
                    raise
                # This session's CPU allocator is no arena (an execution provider's own
                # choice): nothing to release, so run as ORT does by default from now on.
                self._run_options = None
                results = self._run(cast, names)
        finally:
            self.run_seconds += time.perf_counter() - start
        return [np.asarray(r) for r in results]

    def _run(self, feeds: dict[str, Any], names: list[str]) -> list[Any]:
        if self.device_type is None:
            return list(self.session.run(names, feeds, self._run_options))
        return self._run_bound(feeds, names)

    def _run_bound(self, feeds: dict[str, Any], outputs: list[str]) -> list[np.ndarray]:
        # Inputs go up once per call (or are already OrtValues on the device); the output is
        # allocated on the device and copied back once, instead of ORT's per-call staging.
        binding = self.session.io_binding()
        for name, value in feeds.items():
            if isinstance(value, np.ndarray):
                value = ort.OrtValue.ortvalue_from_numpy(value, self.device_type, self.device_id)
            binding.bind_ortvalue_input(name, value)
        assert self.device_type is not None
        for name in outputs:
            binding.bind_output(name, self.device_type, self.device_id)
        self.session.run_with_iobinding(binding, self._run_options)
        return [np.asarray(r) for r in binding.copy_outputs_to_cpu()]
