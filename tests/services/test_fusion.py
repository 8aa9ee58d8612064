"""Fused attention: every exported attention of the tiny models becomes one MultiHeadAttention
node whose outputs equal the exported graph's, and the LoRA-visible projections survive.

The fuser reads and writes graphs with formats.onnx_model; the ``onnx`` package here only
reads its results back, as an independent parser."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from impasto.formats.onnx_model import OnnxModel
from impasto.services.fusion import count_ops, fuse_attention
from impasto.services.optimize import fuse_folder, same_outputs
from tests.harness import REPO

TINY = REPO / "models" / "tiny"
# As exported. impasto-shapes is committed fused (its export is fused and checked by
# tests/models/test_shapes_model.py's quick run and by fuse_folder's own comparison).
FOLDERS = ["sd-tiny", "sd-tiny-inpaint", "sdxl-tiny", "sdxl-tiny-refiner"]
PARTS = ["text_encoder", "text_encoder_2", "unet", "vae_decoder", "vae_encoder"]
GRAPHS = [
    (folder, part)
    for folder in FOLDERS
    for part in PARTS
    if (TINY / folder / part / "model.onnx").is_file()
]


def _feeds(session: ort.InferenceSession, batch: int, side: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(batch * 100 + side)
    feeds: dict[str, np.ndarray] = {}
    for spec in session.get_inputs():
        dims = {0: batch, 2: side, 3: side}
        shape = [d if isinstance(d, int) else dims.get(i, 77) for i, d in enumerate(spec.shape)]
        if spec.name == "input_ids":
            feeds[spec.name] = rng.integers(0, 99, shape).astype(np.int64)
        elif spec.name == "timestep":
            feeds[spec.name] = np.full(shape, 321.0, np.float32)
        elif spec.name == "time_ids":
            feeds[spec.name] = np.tile(np.float32([64, 64, 0, 0, 64, 64])[: shape[1]], (batch, 1))
        else:
            feeds[spec.name] = rng.standard_normal(shape).astype(np.float32)
        if "float16" in spec.type:
            feeds[spec.name] = feeds[spec.name].astype(np.float16)
    return feeds


def _run(model: str | bytes, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    return [np.asarray(o, np.float32) for o in session.run(None, feeds)]


def _assert_only_attention_changed(export: onnx.ModelProto, fused: onnx.ModelProto) -> None:
    """Read back by the onnx package: valid, and the export but for its attention cores."""
    onnx.checker.check_model(fused)
    exported = [node.SerializeToString() for node in export.graph.node]
    kept = [node for node in fused.graph.node if node.op_type != "MultiHeadAttention"]
    assert all(node.SerializeToString() in exported for node in kept)
    assert len(kept) < len(exported)  # the heads' reshapes, transposes and softmaxes went
    for field in ("initializer", "input", "output", "value_info"):
        assert getattr(fused.graph, field) == getattr(export.graph, field), field
    added = [op for op in fused.opset_import if op not in export.opset_import]
    assert [(op.domain, op.version) for op in added] == [("com.microsoft", 1)]


@pytest.mark.parametrize(("folder", "part"), GRAPHS)
def test_fused_graph_equals_the_export(folder: str, part: str) -> None:
    path = TINY / folder / part / "model.onnx"
    model = OnnxModel.load(path)
    softmaxes = count_ops(model, ["Softmax"])["Softmax"]
    assert softmaxes > 0
    assert fuse_attention(model) == softmaxes  # every attention, none left half-done
    counts = count_ops(model, ["Softmax", "MultiHeadAttention"])
    assert counts == {"Softmax": 0, "MultiHeadAttention": softmaxes}
    fused = model.encode()
    _assert_only_attention_changed(onnx.load(str(path)), onnx.load_from_string(fused))
    reference = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for batch, side in ((1, 8), (2, 16)):
        feeds = _feeds(reference, batch, side)
        for want, got in zip(_run(str(path), feeds), _run(fused, feeds), strict=True):
            np.testing.assert_allclose(got, want, atol=1e-3 * max(1.0, np.abs(want).max()))


def test_projections_keep_their_names_for_lora() -> None:
    path = TINY / "sd-tiny" / "unet" / "model.onnx"
    model = OnnxModel.load(path)
    before = {n.name for n in model.graph.nodes if n.name.endswith(("to_q/MatMul", "to_v/MatMul"))}
    fuse_attention(model)
    after = {n.name for n in model.graph.nodes}
    assert before and before <= after


def test_the_check_catches_a_wrong_fusion(tmp_path: Path) -> None:
    path = TINY / "sd-tiny" / "unet" / "model.onnx"
    fused = OnnxModel.load(path)
    fuse_attention(fused)
    good = tmp_path / "good.onnx"
    fused.save(good)
    assert same_outputs(path, good, "fp32", ["CPUExecutionProvider"]) == ""
    model = onnx.load(str(good))
    for node in model.graph.node:  # one head too many: the math changes, the graph still runs
        if node.op_type == "MultiHeadAttention":
            for attr in node.attribute:
                if attr.name == "num_heads":
                    attr.i = attr.i // 2
    bad = tmp_path / "bad.onnx"
    onnx.save_model(model, str(bad))
    assert "differ" in same_outputs(path, bad, "fp32", ["CPUExecutionProvider"])


def test_fuse_folder_rewrites_only_checked_graphs(tmp_path: Path) -> None:
    import shutil

    folder = tmp_path / "m"
    shutil.copytree(TINY / "sd-tiny", folder)
    fused = fuse_folder(folder)
    assert fused == {"text_encoder": 2, "unet": 8, "vae_decoder": 1, "vae_encoder": 1}
    assert not list(folder.rglob("model.fused.onnx"))
    for part in fused:
        assert count_ops(OnnxModel.load(folder / part / "model.onnx"), ["Softmax"])["Softmax"] == 0


def test_run_time_lora_works_on_a_fused_model(tmp_path: Path) -> None:
    import shutil

    from impasto.engine import load_pipeline
    from impasto.engine.providers import cpu_choice
    from tests.engine.conftest import small
    from tests.engine.families_oracle import LORAS, noise

    folder = tmp_path / "fused"
    shutil.copytree(TINY / "sd-tiny", folder)
    assert fuse_folder(folder)["unet"] == 8
    lora = [(LORAS / "tiny-peft.safetensors", 1.0)]
    images = {}
    for name, path in (("exported", TINY / "sd-tiny"), ("fused", folder)):
        pipe = load_pipeline(path, cpu_choice())
        with_lora = pipe.generate(small(steps=4, loras=lora), latents=noise(2))[0]
        assert with_lora.warnings == ()  # every LoRA layer found its weight
        plain = pipe.generate(small(steps=4), latents=noise(2))[0].image
        images[name] = (np.asarray(with_lora.image, np.int32), np.asarray(plain, np.int32))
        pipe.close()
    assert np.abs(images["fused"][0] - images["exported"][0]).max() <= 2
    assert np.abs(images["fused"][0] - images["fused"][1]).max() > 4  # the LoRA changed it


def test_a_graph_with_external_weights_is_fused_without_reading_them(tmp_path: Path) -> None:
    """As SD 1.5's and SDXL's UNets are stored: the graph in model.onnx, weights beside it."""
    import shutil

    folder = tmp_path / "m"
    shutil.copytree(TINY / "sd-tiny", folder)
    unet = folder / "unet" / "model.onnx"
    onnx.save_model(
        onnx.load(str(unet)),
        str(unet),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="model.onnx_data",
        size_threshold=0,
    )
    weights = (folder / "unet" / "model.onnx_data").read_bytes()
    exported = unet.read_bytes()
    assert fuse_folder(folder)["unet"] == 8
    assert (folder / "unet" / "model.onnx_data").read_bytes() == weights
    reference = tmp_path / "reference.onnx"  # the export, beside a copy of its weights
    shutil.copy2(folder / "unet" / "model.onnx_data", tmp_path / "model.onnx_data")
    reference.write_bytes(exported)
    feeds = _feeds(ort.InferenceSession(str(unet), providers=["CPUExecutionProvider"]), 2, 8)
    for want, got in zip(_run(str(reference), feeds), _run(str(unet), feeds), strict=True):
        np.testing.assert_allclose(got, want, atol=1e-3 * max(1.0, np.abs(want).max()))
