"""Which execution providers have a kernel for an operator: the installed ONNX Runtime's own
kernel registry, plus a maintained table for providers this build does not contain.

ONNX Runtime places every node on the first provider of a session's list that has a kernel for
it and falls back to the CPU provider (always last in our lists) for the rest. So a graph runs on
provider P when each node has a kernel on P or on the CPU, and its opsets are ones this ONNX
Runtime knows. fp16 is not a hard limit on CPU: ORT inserts casts to fp32 around the operators
whose CPU kernels are fp32-only (measured with onnxruntime 1.32), which is slower but works.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from impasto.engine.onnx_ops import ONNX_DOMAIN, domain_name

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
DML = "DmlExecutionProvider"
MS_DOMAIN = "com.microsoft"

# What each provider is called in messages, best first (the order select_providers ranks them).
SHORT_NAMES = {
    "CUDAExecutionProvider": "CUDA",
    "TensorrtExecutionProvider": "TensorRT",
    "DmlExecutionProvider": "DirectML",
    "CoreMLExecutionProvider": "CoreML",
    "ROCMExecutionProvider": "ROCm",
    "MIGraphXExecutionProvider": "MIGraphX",
    "OpenVINOExecutionProvider": "OpenVINO",
    CPU: "CPU",
}
# Providers that compute in fp16 themselves; on the others ORT casts fp16 graphs to fp32 per op.
FP16_NATIVE = frozenset(SHORT_NAMES) - {CPU}

# Contrib operators (com.microsoft, opset 1) with kernels on providers this ONNX Runtime build
# may lack. Only the operators graph optimisers put into Stable Diffusion graphs are listed.
# Read from microsoft/onnxruntime docs/OperatorKernels.md (generated from the registered
# kernels) at commit 001d12d2 (the 1.2x line), checked 2026-12-02.
TABLE_SOURCE = "onnxruntime docs/OperatorKernels.md at 001d12d2, checked 2026-12-02"
CONTRIB_TABLE: dict[str, frozenset[str]] = {
    CUDA: frozenset(
        {
            "Attention",
            "BiasAdd",
            "BiasGelu",
            "BiasSplitGelu",
            "FastGelu",
            "FusedConv",
            "FusedMatMul",
            "Gelu",
            "GroupNorm",
            "MultiHeadAttention",
            "NhwcConv",
            "PackedMultiHeadAttention",
            "QuickGelu",
            "RotaryEmbedding",
            "SkipGroupNorm",
            "SkipLayerNormalization",
            "SkipSimplifiedLayerNormalization",
        }
    ),
    DML: frozenset(
        {
            "Attention",
            "BiasAdd",
            "BiasGelu",
            "BiasSplitGelu",
            "FastGelu",
            "FusedMatMul",
            "Gelu",
            "GroupNorm",
            "MultiHeadAttention",
            "NhwcConv",
            "QuickGelu",
            "RotaryEmbedding",
            "SkipLayerNormalization",
            "SkipSimplifiedLayerNormalization",
        }
    ),
    CPU: frozenset(
        {
            "Attention",
            "BiasGelu",
            "FastGelu",
            "FusedConv",
            "FusedMatMul",
            "Gelu",
            "MultiHeadAttention",
            "QuickGelu",
            "RotaryEmbedding",
            "SkipLayerNormalization",
            "SkipSimplifiedLayerNormalization",
        }
    ),
}
# The compiling providers (TensorRT, CoreML, OpenVINO, ...) have no kernel registry: what they
# refuse runs on the CPU, the provider after them in every session Impasto opens.


@dataclass
class KernelRegistry:
    """Kernels per provider: (domain, op) -> opset ranges; plus the newest opset per domain."""

    kernels: dict[str, dict[tuple[str, str], list[tuple[int, int]]]] = field(default_factory=dict)
    max_opset: dict[str, int] = field(default_factory=dict)
    source: str = TABLE_SOURCE
    version: str = ""

    def has(self, provider: str, domain: str, op: str, opset: int) -> bool:
        """Whether ``provider`` has a kernel for ``op`` at ``opset``, by registry or table."""
        ranges = self.kernels.get(provider, {}).get((domain, op))
        if ranges is not None:
            return any(lo <= opset <= hi for lo, hi in ranges)
        if provider in self.kernels:  # the registry is the authority for what it lists
            return False
        if domain == MS_DOMAIN:
            return op in CONTRIB_TABLE.get(provider, frozenset())
        return not self.kernels and domain == ONNX_DOMAIN  # table only: standard ops assumed

    def runs(self, provider: str, domain: str, op: str, opset: int) -> bool:
        """Whether a session with ``provider`` then the CPU can place this node.

        Standard ONNX operators are judged by their opset alone: ORT folds ``Constant`` nodes
        and expands operators defined as ONNX functions, which have no kernel of their own.
        """
        if domain == ONNX_DOMAIN:
            return True
        return self.has(provider, domain, op, opset) or self.has(CPU, domain, op, opset)


def registry_from(kernel_defs: Any, schemas: Any, version: str) -> KernelRegistry:
    """A registry from ORT's ``get_all_opkernel_def()`` and ``get_all_operator_schema()``."""
    kernels: dict[str, dict[tuple[str, str], list[tuple[int, int]]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for kernel in kernel_defs:
        lo, hi = kernel.version_range
        key = (domain_name(kernel.domain), kernel.op_name)
        kernels[kernel.provider][key].append((int(lo), int(hi)))
    newest: dict[str, int] = defaultdict(int)
    for schema in schemas:
        domain = domain_name(schema.domain)
        newest[domain] = max(newest[domain], int(schema.since_version))
    return KernelRegistry(
        kernels={p: dict(ops) for p, ops in kernels.items()},
        max_opset=dict(newest),
        source=f"the kernel registry of the installed onnxruntime {version}",
        version=version,
    )


def table_registry() -> KernelRegistry:
    """The maintained table alone, for when ONNX Runtime exposes no registry."""
    return KernelRegistry(max_opset={})


@lru_cache(maxsize=1)
def installed_registry() -> KernelRegistry:
    """The installed ONNX Runtime's registry, read once per process; the table if unreadable."""
    try:
        import onnxruntime
        from onnxruntime.capi import _pybind_state as state

        return registry_from(
            state.get_all_opkernel_def(),
            state.get_all_operator_schema(),
            str(onnxruntime.__version__),
        )
    except (ImportError, AttributeError, RuntimeError):
        return table_registry()
