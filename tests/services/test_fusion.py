"""Fused attention: every exported attention of the tiny models becomes one MultiHeadAttention
node whose outputs equal the exported graph's, and the LoRA-visible projections survive."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

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


@pytest.mark.parametrize(("folder", "part"), GRAPHS)
def test_fused_graph_equals_the_export(folder: str, part: str) -> None:
    path = TINY / folder / part / "model.onnx"
    model = onnx.load(str(path))
    softmaxes = count_ops(model, ["Softmax"])["Softmax"]
    assert softmaxes > 0
    assert fuse_attention(model) == softmaxes  # every attention, none left half-done
    counts = count_ops(model, ["Softmax", "MultiHeadAttention"])
    assert counts == {"Softmax": 0, "MultiHeadAttention": softmaxes}
    fused = model.SerializeToString()
    reference = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for batch, side in ((1, 8), (2, 16)):
        feeds = _feeds(reference, batch, side)
        for want, got in zip(_run(str(path), feeds), _run(fused, feeds), strict=True):
            np.testing.assert_allclose(got, want, atol=1e-3 * max(1.0, np.abs(want).max()))


def test_projections_keep_their_names_for_lora() -> None:
    path = TINY / "sd-tiny" / "unet" / "model.onnx"
    model = onnx.load(str(path))
    before = {n.name for n in model.graph.node if n.name.endswith(("to_q/MatMul", "to_v/MatMul"))}
    fuse_attention(model)
    after = {n.name for n in model.graph.node}
    assert before and before <= after


def test_the_check_catches_a_wrong_fusion(tmp_path: Path) -> None:
    path = TINY / "sd-tiny" / "unet" / "model.onnx"
    model = onnx.load(str(path))
    fuse_attention(model)
    good = tmp_path / "good.onnx"
    onnx.save_model(model, str(good))
    assert same_outputs(path, good, "fp32", ["CPUExecutionProvider"]) == ""
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
        assert count_ops(onnx.load(str(folder / part / "model.onnx")), ["Softmax"])["Softmax"] == 0


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
