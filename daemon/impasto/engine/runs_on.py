"""Decide, from a pipeline's graph files alone, which execution providers can run it and why not.

Only the graphs are read (``*/model.onnx``, never their external weights), so an installer can
ask before it downloads gigabytes, and a model listing can say "runs on: CUDA, DirectML".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from impasto.engine.kernels import (
    CPU,
    FP16_NATIVE,
    SHORT_NAMES,
    KernelRegistry,
    installed_registry,
)
from impasto.engine.onnx_external import ProtobufError
from impasto.engine.onnx_ops import GraphOps, read_graph_ops

COMPONENTS = (
    "text_encoder",
    "text_encoder_2",
    "unet",
    "vae_decoder",
    "vae_encoder",
    "taesd_decoder",
)


def short_name(provider: str) -> str:
    """CUDA for CUDAExecutionProvider; unknown names unchanged."""
    return SHORT_NAMES.get(provider, provider)


@dataclass(frozen=True)
class Capability:
    """Where a model runs with the installed ONNX Runtime, and why it does not elsewhere."""

    runs_on: tuple[str, ...]  # ORT provider names, best first
    blocked: dict[str, str] = field(default_factory=dict)  # provider -> why not
    notes: dict[str, str] = field(default_factory=dict)  # provider -> a caveat where it runs
    precision: str = ""
    checked_with: str = ""

    def runs(self, provider: str) -> bool:
        """Whether ``provider`` (an ORT name) can run every graph."""
        return provider in self.runs_on

    def summary(self) -> str:
        """'CUDA, DirectML', 'every provider' or 'no provider of this onnxruntime'."""
        if set(self.runs_on) >= set(SHORT_NAMES):
            return "every provider (CPU included)"
        return ", ".join(short_name(p) for p in self.runs_on) or "no provider of this onnxruntime"

    def why_not(self, provider: str) -> str:
        """Why ``provider`` cannot run it ('' when it can)."""
        return "" if self.runs(provider) else self.blocked.get(provider, "not assessed")


def _ops_list(items: list[tuple[str, str, str]]) -> str:
    """'GroupNorm, NhwcConv (com.microsoft; in unet)' from (component, domain, op) triples."""
    ops = sorted({op for _, _, op in items})
    domains = sorted({d or "ai.onnx" for _, d, _ in items})
    where = sorted({c for c, _, _ in items})
    return f"{', '.join(ops)} ({', '.join(domains)}; in {', '.join(where)})"


def assess(components: dict[str, GraphOps], registry: KernelRegistry | None = None) -> Capability:
    """Check each component's operators and opsets against ``registry`` for every provider."""
    registry = registry or installed_registry()
    merged = GraphOps()
    for ops in components.values():
        merged.merge(ops)
    used_domains = {domain for domain, _ in merged.ops}
    too_new: list[str] = []
    unknown_domains: set[str] = set()
    if registry.max_opset:  # a real registry: check the opsets against what this ORT knows
        for domain in sorted(used_domains):
            newest = registry.max_opset.get(domain)
            wanted = merged.opsets.get(domain, 1)
            if newest is None:
                unknown_domains.add(domain)
                too_new.append(f"operators of domain {domain!r}, unknown to this onnxruntime")
            elif wanted > newest:
                too_new.append(
                    f"opset {wanted} of {domain or 'ai.onnx'}; this onnxruntime knows up to "
                    f"{newest} (upgrade onnxruntime)"
                )
    # The UNet does nearly all the work, so its precision is the pipeline's for the fp16 note.
    precision = components["unet"].precision if "unet" in components else merged.precision
    runs_on: list[str] = []
    blocked: dict[str, str] = {}
    notes: dict[str, str] = {}
    for provider in SHORT_NAMES:
        missing = [
            (name, domain, op)
            for name, ops in components.items()
            for domain, op in sorted(ops.ops)
            if domain not in unknown_domains
            and not registry.runs(provider, domain, op, ops.opsets.get(domain, 1))
        ]
        reasons = list(too_new)
        if missing:
            reasons.append(
                f"no {short_name(provider)} or CPU kernel for {_ops_list(missing)}"
                if provider != CPU
                else f"no CPU kernel for {_ops_list(missing)}"
            )
        if reasons:
            blocked[provider] = "; ".join(reasons)
            continue
        runs_on.append(provider)
        if precision == "fp16" and provider not in FP16_NATIVE:
            notes[provider] = (
                "fp16 graphs run through casts to fp32 around each operator: slower than an "
                "fp32 build"
            )
    return Capability(
        runs_on=tuple(runs_on),
        blocked=blocked,
        notes=notes,
        precision=precision,
        checked_with=registry.source,
    )


def folder_graphs(root: Path) -> dict[str, GraphOps]:
    """Each component's needs, read from ``root/COMPONENT/model.onnx`` (missing ones skipped)."""
    found: dict[str, GraphOps] = {}
    for name in COMPONENTS:
        path = root / name / "model.onnx"
        if path.is_file():
            try:
                found[name] = read_graph_ops(path)
            except ProtobufError as exc:
                raise ProtobufError(
                    f"{name}/model.onnx: not a readable ONNX model ({exc})"
                ) from None
    return found


def assess_folder(root: Path, registry: KernelRegistry | None = None) -> Capability | None:
    """The capability of a pipeline folder; None when it holds no readable graph."""
    try:
        graphs = folder_graphs(root)
    except (OSError, ProtobufError):
        return None
    return assess(graphs, registry) if graphs else None
