"""The install's optimise stage: fused attention for every graph, and an optional int8 UNet.

Runs in the converter's child process (``python -m impasto.services.convert fuse|int8``, or
the binary's ``impasto convert-step``). The graph edits (fusion, clip skip's outputs, int8)
use ``formats.onnx_model`` and need no ``onnx`` package. Each fused graph is checked against
the graph it replaces on a small random input before it is kept, so an export this matcher
misreads installs unfused instead of wrong.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from impasto.engine.onnx_external import read_external_data_locations
from impasto.formats.onnx_model import Node, OnnxModel
from impasto.services.int8 import quantize_matmuls

log = logging.getLogger("impasto.optimize")

COMPONENTS = ("text_encoder", "text_encoder_2", "unet", "vae_decoder", "vae_encoder")
# A fused graph is kept when it matches the exported one this closely (relative to the
# largest output value, at least 1): fp32 math reorders sums, fp16 rounds each step.
TOLERANCE = {"fp32": 1e-3, "fp16": 2e-2}
SMALL_DIMS = {"batch": 1, "sequence": 77}  # symbolic dims by name; others get SMALL_SIDE
SMALL_SIDE = 8
SCRATCH = "model.fused.onnx"


def _small_feeds(session: Any) -> dict[str, np.ndarray]:
    """Random inputs at small sizes for every input of ``session``."""
    rng = np.random.default_rng(0)
    feeds: dict[str, np.ndarray] = {}
    for spec in session.get_inputs():
        shape = []
        for axis, dim in enumerate(spec.shape):
            if isinstance(dim, int) and dim > 0:
                shape.append(dim)
            elif axis == 0:
                shape.append(SMALL_DIMS["batch"])
            elif "input_ids" in spec.name:
                shape.append(SMALL_DIMS["sequence"])
            else:
                shape.append(SMALL_SIDE)
        if "int" in spec.type:
            feeds[spec.name] = rng.integers(0, 100, shape).astype(
                np.int32 if "int32" in spec.type else np.int64
            )
        elif spec.name == "timestep":
            feeds[spec.name] = np.full(shape, 500.0, np.float32)
        elif spec.name == "time_ids":
            ids = np.array([64, 64, 0, 0, 64, 64], np.float32)[: shape[1]]  # a refiner's are 5
            feeds[spec.name] = np.tile(ids, (shape[0], 1))
        else:
            feeds[spec.name] = rng.standard_normal(shape).astype(np.float32)
        if "float16" in spec.type:
            feeds[spec.name] = feeds[spec.name].astype(np.float16)
    return feeds


def _outputs(path: Path, providers: list[str], feeds: dict[str, np.ndarray] | None = None) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=providers)
    feeds = feeds if feeds is not None else _small_feeds(session)
    return feeds, [np.asarray(o, np.float32) for o in session.run(None, feeds)]


def same_outputs(exported: Path, fused: Path, precision: str, providers: list[str]) -> str:
    """'' when ``fused`` computes what ``exported`` does on a small random input, else why not."""
    try:
        feeds, want = _outputs(exported, providers)
        _, got = _outputs(fused, providers, feeds)
    except Exception as exc:  # ORT's own error types: the fused graph does not load or run here
        return f"the fused graph does not run ({exc})"
    limit = TOLERANCE.get(precision, TOLERANCE["fp16"])
    for a, b in zip(want, got, strict=True):
        worst = float(np.abs(a - b).max()) if a.size else 0.0
        scale = max(1.0, float(np.abs(a).max()) if a.size else 0.0)
        if not worst <= limit * scale:
            return f"outputs differ by {worst:.3g} (allowed {limit * scale:.3g})"
    return ""


def _precision(model: OnnxModel) -> str:
    float16 = 10
    types = [value.elem_type for value in model.graph.inputs]
    return "fp16" if float16 in types else "fp32"


_EMBEDDINGS_SUM = "/text_model/embeddings/Add"
_LAYER_SUM = re.compile(r"/text_model/encoder/layers\.(\d+)/Add_1")


def hidden_state_tensors(model: OnnxModel) -> list[str]:
    """A CLIP text encoder export's hidden states: the embeddings' sum, then each encoder
    layer's residual sum, found by the node names torch's exporter gives them; [] if absent."""
    embeddings, layers = None, {}
    for node in model.graph.nodes:
        if node.op_type != "Add":
            continue
        if node.name == _EMBEDDINGS_SUM:
            embeddings = node.outputs[0]
        elif match := _LAYER_SUM.fullmatch(node.name):
            layers[int(match.group(1))] = node.outputs[0]
    if embeddings is None or sorted(layers) != list(range(len(layers))) or not layers:
        return []
    return [embeddings, *(layers[index] for index in range(len(layers)))]


def expose_hidden_states(folder: Path, providers: list[str] | None = None) -> int:
    """Give ``text_encoder`` the ``hidden_states.N`` outputs clip skip reads, in place.

    optimum exports them for SDXL only, so SD 1.x and 2.x ONNX builds cannot skip CLIP layers.
    The tensors already exist inside the graph; they become outputs through Identity nodes.
    Kept only when the old outputs are unchanged and the last hidden state through the final
    layer norm is the exported ``last_hidden_state``. Returns the layers exposed (0: none).
    """
    path = folder / "text_encoder" / "model.onnx"
    if not path.is_file():
        return 0
    model = OnnxModel.load(path)
    outputs = {output.name: output for output in model.graph.outputs}
    exposed = any(name.startswith("hidden_states.") for name in outputs)
    if exposed or "last_hidden_state" not in outputs:
        return 0
    tensors = hidden_state_tensors(model)
    if not tensors:
        log.info("text_encoder: no hidden states found to expose; clip skip stays off")
        return 0
    for index, tensor in enumerate(tensors):
        name = f"hidden_states.{index}"
        model.graph.nodes.append(Node.new("Identity", [tensor], [name], name=f"/{name}"))
        model.graph.outputs.append(outputs["last_hidden_state"].renamed(name))
    scratch = path.with_name(SCRATCH)
    model.save(scratch)
    last = list(outputs).index("last_hidden_state")
    problem = _hidden_states_problem(path, scratch, last, providers or ["CPUExecutionProvider"])
    if problem:
        scratch.unlink(missing_ok=True)
        log.warning("text_encoder: hidden states not exposed: %s", problem)
        return 0
    os.replace(scratch, path)
    log.info("text_encoder: %d hidden states exposed for clip skip", len(tensors))
    return len(tensors) - 1


def _hidden_states_problem(exported: Path, exposed: Path, last: int, providers: list[str]) -> str:
    """'' when ``exposed`` keeps ``exported``'s outputs and its last hidden state is right."""
    from impasto.engine.adapters import final_norm_loader

    try:
        feeds, want = _outputs(exported, providers)
        _, got = _outputs(exposed, providers, feeds)
    except Exception as exc:  # ORT's own error types
        return f"the graph does not run ({exc})"
    if any(not np.array_equal(a, b) for a, b in zip(want, got[: len(want)], strict=True)):
        return "the exported outputs changed"
    config_path = exposed.parent / "config.json"
    config = json.loads(config_path.read_text(encoding="utf-8")) if config_path.is_file() else {}
    try:
        norm = final_norm_loader(exposed, config)()
    except Exception as exc:  # no final layer norm node
        return str(exc)
    normed, reference = norm(got[-1]), want[last]
    scale = max(1.0, float(np.abs(reference).max()))
    if not float(np.abs(normed - reference).max()) <= TOLERANCE["fp32"] * scale:
        return "the last hidden state through the final layer norm is not last_hidden_state"
    return ""


def fuse_folder(folder: Path, providers: list[str] | None = None) -> dict[str, int]:
    """Fuse attention in each component graph of a pipeline folder, in place; counts by part."""
    from impasto.services.fusion import fuse_attention

    providers = providers or ["CPUExecutionProvider"]
    fused: dict[str, int] = {}
    for component in COMPONENTS:
        path = folder / component / "model.onnx"
        if not path.is_file():
            continue
        model = OnnxModel.load(path)  # the graph only: external weights stay where they are
        count = fuse_attention(model)
        if not count:
            continue
        scratch = path.with_name(SCRATCH)
        model.save(scratch)
        problem = same_outputs(path, scratch, _precision(model), providers)
        if problem:
            scratch.unlink(missing_ok=True)
            log.warning("%s: attention left unfused: %s", component, problem)
            continue
        os.replace(scratch, path)
        fused[component] = count
        log.info("%s: %d attention blocks fused", component, count)
    return fused


def quantize_unet(source: Path, target: Path) -> None:
    """Write a dynamic-int8 copy of the UNet graph ``source`` to ``target`` (services/int8.py)."""
    count = quantize_matmuls(source, target)
    log.info("unet: %d matrix multiplications quantised to int8", count)


def int8_folder(folder: Path, providers: list[str] | None = None) -> None:
    """Replace the pipeline's UNet with its dynamic-int8 quantisation, in place."""
    unet = folder / "unet" / "model.onnx"
    work = folder / "unet" / ".int8"
    shutil.rmtree(work, ignore_errors=True)
    quantize_unet(unet, work / "model.onnx")
    problem = _int8_runs(work / "model.onnx", providers or ["CPUExecutionProvider"])
    if problem:
        shutil.rmtree(work, ignore_errors=True)
        raise RuntimeError(f"the int8 UNet does not run: {problem}")
    for name in set(read_external_data_locations(unet)):
        (unet.parent / name).unlink(missing_ok=True)
    for file in work.iterdir():
        os.replace(file, unet.parent / file.name)
    shutil.rmtree(work, ignore_errors=True)


def _int8_runs(path: Path, providers: list[str]) -> str:
    try:
        _outputs(path, providers)
    except Exception as exc:  # ORT's own error types
        return str(exc)
    return ""
