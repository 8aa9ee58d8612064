"""Which providers run a graph: the verdict from the graph files against real ONNX Runtime."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import onnxruntime as ort
import pytest

from impasto.engine.kernels import CPU, CUDA, DML, installed_registry, registry_from
from impasto.engine.onnx_ops import GraphOps, peek_graph_ops, read_graph_ops
from impasto.engine.runs_on import assess, assess_folder
from tests.models_manager.conftest import TINY
from tests.models_manager.unrunnable import cuda_only_pipeline, cuda_only_unet, one_op_model

PIPELINES = sorted(p for p in TINY.iterdir() if (p / "model_index.json").is_file())


def opens_on_cpu(path: Path) -> bool:
    """The ground truth: can the real CPU provider open a session on this graph?"""
    options = ort.SessionOptions()
    options.log_severity_level = 4
    try:
        ort.InferenceSession(str(path), options, providers=[CPU])
    except Exception:  # ORT raises Fail / NotImplemented / InvalidGraph
        return False
    return True


def graph_cases(root: Path) -> dict[str, Path]:
    cuda_only_unet(root / "contrib" / "model.onnx")
    cuda_only_unet(root / "contrib16" / "model.onnx", fp16=True)
    one_op_model(root / "too_new.onnx", "Relu", opset=installed_registry().max_opset[""] + 5)
    one_op_model(root / "custom.onnx", "Frobnicate", domain="org.example", opset=1)
    one_op_model(root / "contrib_cpu.onnx", "Gelu", domain="com.microsoft", opset=1)
    return {
        "contrib": root / "contrib" / "model.onnx",
        "contrib16": root / "contrib16" / "model.onnx",
        "too_new": root / "too_new.onnx",
        "custom": root / "custom.onnx",
        "contrib_cpu": root / "contrib_cpu.onnx",
        "tiny_fp16_unet": TINY / "sd-tiny-fp16" / "unet" / "model.onnx",
        "tiny_unet": TINY / "sd-tiny" / "unet" / "model.onnx",
    }


def test_verdict_matches_what_the_real_cpu_provider_opens(tmp_path: Path) -> None:
    verdicts = {}
    for name, path in graph_cases(tmp_path).items():
        capability = assess({"unet": read_graph_ops(path)})
        verdicts[name] = capability.runs(CPU)
        assert verdicts[name] == opens_on_cpu(path), (name, capability.blocked.get(CPU))
    # The cases cover both answers, so the comparison above means something.
    assert verdicts == {
        "contrib": False,
        "contrib16": False,
        "too_new": False,
        "custom": False,
        "contrib_cpu": True,
        "tiny_fp16_unet": True,
        "tiny_unet": True,
    }


def test_cuda_only_graph_names_its_operators_and_who_runs_it(tmp_path: Path) -> None:
    folder = cuda_only_pipeline(tmp_path / "olive", fp16=True)
    capability = assess_folder(folder)
    assert capability is not None
    assert capability.runs_on == (CUDA, DML)  # from the maintained table: CPU lacks both ops
    why = capability.why_not(CPU)
    assert "GroupNorm" in why and "NhwcConv" in why and "com.microsoft" in why and "unet" in why
    assert capability.precision == "fp16"


def test_opset_newer_than_onnxruntime_blocks_every_provider(tmp_path: Path) -> None:
    newest = installed_registry().max_opset[""]
    one_op_model(tmp_path / "m.onnx", "Relu", opset=newest + 1)
    capability = assess({"unet": read_graph_ops(tmp_path / "m.onnx")})
    assert capability.runs_on == ()
    assert f"opset {newest + 1}" in capability.why_not(CUDA)
    assert "upgrade onnxruntime" in capability.why_not(CPU)


@pytest.mark.parametrize("folder", PIPELINES, ids=lambda p: p.name)
def test_the_portable_tiny_models_run_on_the_real_cpu_provider(folder: Path) -> None:
    capability = assess_folder(folder)
    assert capability is not None and capability.runs(CPU), capability
    for graph in folder.glob("*/model.onnx"):
        assert opens_on_cpu(graph), graph
    fp16 = capability.precision == "fp16"
    assert bool(capability.notes.get(CPU)) == fp16  # fp16 on CPU runs, through casts


def test_the_registry_is_the_authority_for_the_providers_it_lists() -> None:
    kernel = SimpleNamespace
    registry = registry_from(
        [
            kernel(
                op_name="GroupNorm", domain="com.microsoft", provider=CUDA, version_range=(1, 1)
            ),
            kernel(op_name="Relu", domain="", provider=CPU, version_range=(14, 2**31 - 1)),
        ],
        [
            SimpleNamespace(domain="", since_version=21),
            SimpleNamespace(domain="com.microsoft", since_version=1),
        ],
        "9.9",
    )
    needs = GraphOps(ops={("com.microsoft", "GroupNorm"), ("com.microsoft", "NhwcConv")})
    needs.opsets = {"": 17, "com.microsoft": 1}
    capability = assess({"unet": needs}, registry)
    # CUDA is in this registry without NhwcConv, so the table's word for CUDA no longer counts;
    # DirectML is not in it, so the table speaks for DirectML.
    assert not capability.runs(CUDA) and "NhwcConv" in capability.why_not(CUDA)
    assert capability.runs(DML)
    assert "onnxruntime 9.9" in capability.checked_with


def test_installed_registry_reads_this_onnxruntime() -> None:
    registry = installed_registry()
    assert registry.version == ort.__version__
    assert registry.has(CPU, "com.microsoft", "MultiHeadAttention", 1)
    assert not registry.has(CPU, "com.microsoft", "GroupNorm", 1)


def test_peeking_reads_the_nodes_and_opsets_without_the_inline_weights(tmp_path: Path) -> None:
    big = tmp_path / "big.onnx"
    cuda_only_unet(big, fp16=True, external=False, pad_bytes=6_000_000)
    for path in (big, TINY / "sdxl-tiny" / "unet" / "model.onnx"):
        data = path.read_bytes()
        reads: list[tuple[int, int]] = []

        def read(
            offset: int, length: int, data: bytes = data, reads: list[tuple[int, int]] = reads
        ) -> bytes:
            reads.append((offset, length))
            return data[offset : offset + length]

        peeked = peek_graph_ops(read, len(data), first=4096)
        full = read_graph_ops(path)
        assert (peeked.ops, peeked.opsets) == (full.ops, full.opsets)
        if path == big:  # the head and the tail: a few kB of 6 MB
            assert sum(n for o, n in reads if o == 0) < 100_000
            assert reads[-1][0] + reads[-1][1] == len(data)
