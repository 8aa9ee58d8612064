"""Tell what a model is from its files: layout, type, family, precision, prediction type."""

from __future__ import annotations

import json
import mmap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from impasto.engine.embeddings import is_a1111_key
from impasto.engine.families import classify, signals_from_configs
from impasto.engine.lora import refusal_of
from impasto.engine.onnx_ops import read_graph_ops
from impasto.engine.text_encoder import exported_layers
from impasto.formats.protobuf import ProtobufError
from impasto.formats.protobuf import int_field as _int
from impasto.formats.protobuf import submessages as _sub
from impasto.formats.safetensors import holds_lora
from impasto.services.safety import UnsafeContentError, safetensors_header

# ONNX TensorProto.DataType numbers that matter here.
_ELEM_TYPES = {1: "fp32", 10: "fp16", 16: "bf16"}
# Operators of a quantised graph (ONNX Runtime's dynamic and static int8 outputs); its inputs
# stay float, so its precision shows only in what it computes with.
INT8_OPS = frozenset(
    {
        "DynamicQuantizeLinear",
        "DynamicQuantizeMatMul",
        "MatMulInteger",
        "MatMulIntegerToFloat",
        "ConvInteger",
        "QLinearMatMul",
        "QLinearConv",
        "QuantizeLinear",
    }
)


def is_quantized(graph: Path) -> bool:
    """Whether the ONNX graph computes in int8 (read from its operators, not its weights)."""
    try:
        ops = read_graph_ops(graph).ops
    except (OSError, ProtobufError):
        return False
    return any(op in INT8_OPS for _, op in ops)


@dataclass(frozen=True)
class Detected:
    """What the files say: ``layout`` is onnx, diffusers or file."""

    layout: str
    type: str
    family: str
    precision: str = ""
    prediction_type: str = "epsilon"
    inpaint: bool = False
    zero_snr: bool = False
    """Its scheduler rescales the betas to zero terminal SNR (``rescale_betas_zero_snr``)."""


@dataclass(frozen=True)
class OnnxInput:
    """One graph input: name, element type and shape (ints, or names for dynamic axes)."""

    name: str
    elem_type: str
    shape: tuple[int | str, ...]


def _value_name(buf: mmap.mmap, start: int, end: int) -> str:
    """ValueInfoProto.name (field 1) of the message at ``start:end``."""
    return b"".join(bytes(buf[s:e]) for s, e in _sub(buf, start, end, 1)).decode()


def onnx_inputs(path: Path) -> list[OnnxInput]:
    """The graph inputs of an ONNX file, read without loading its weights."""
    with path.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        inputs = []
        for g_start, g_end in _sub(buf, 0, len(buf), 7):  # ModelProto.graph
            for v_start, v_end in _sub(buf, g_start, g_end, 11):  # GraphProto.input
                name = _value_name(buf, v_start, v_end)
                elem, shape = 0, list[int | str]()
                for t_start, t_end in _sub(buf, v_start, v_end, 2):  # ValueInfoProto.type
                    for tt_start, tt_end in _sub(buf, t_start, t_end, 1):  # tensor_type
                        elem = _int(buf, tt_start, tt_end, 1) or 0
                        for s_start, s_end in _sub(buf, tt_start, tt_end, 2):  # shape
                            for d_start, d_end in _sub(buf, s_start, s_end, 1):  # dim
                                value = _int(buf, d_start, d_end, 1)
                                params = _sub(buf, d_start, d_end, 2)
                                if value is not None:
                                    shape.append(value)
                                else:
                                    shape.append(
                                        bytes(buf[params[0][0] : params[0][1]]).decode()
                                        if params
                                        else "?"
                                    )
                inputs.append(OnnxInput(name, _ELEM_TYPES.get(elem, str(elem)), tuple(shape)))
        return inputs


def onnx_output_names(path: Path) -> list[str]:
    """The graph output names of an ONNX file, read without loading its weights."""
    with path.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        return [
            _value_name(buf, v_start, v_end)
            for g_start, g_end in _sub(buf, 0, len(buf), 7)  # ModelProto.graph
            for v_start, v_end in _sub(buf, g_start, g_end, 12)  # GraphProto.output
        ]


def clip_skip_limit(root: Path, family: str) -> int:
    """The largest ``clip_skip`` the folder's text encoders can serve (1: no skipping).

    Skipping reads ``hidden_states.N`` outputs, which an encoder has only when it was exported
    with them; SDXL already reads the penultimate layer, so it can skip one layer fewer.
    """
    limits = []
    for name in ("text_encoder", "text_encoder_2"):
        path = root / name / "model.onnx"
        if not path.is_file():
            continue
        layers = exported_layers(onnx_output_names(path))
        limits.append(layers - 1 if family.startswith("sdxl") else layers)
    return max(1, min(limits)) if limits else 1


def _json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


FAST_DECODER_DIR = "taesd_decoder"


def is_fast_decoder_folder(folder: Path) -> bool:
    """Whether ``folder`` holds diffusers' AutoencoderTiny (TAESD) config and weights."""
    return _json(folder / "config.json").get("_class_name") == "AutoencoderTiny"


def detect_folder(root: Path) -> Detected:
    """Detect a pipeline folder; raises ValueError when it is not a Stable Diffusion model.

    A fast decoder (TAESD) is a ``vae``: diffusers' AutoencoderTiny weights to convert, or
    its converted ``taesd_decoder/model.onnx``.
    """
    index = _json(root / "model_index.json")
    if not index and (root / FAST_DECODER_DIR / "model.onnx").is_file():
        return Detected("onnx", "vae", "")
    if not index and is_fast_decoder_folder(root):
        return Detected("diffusers", "vae", "")
    if not index:
        raise ValueError(f"{root.name}: no model_index.json, so not a Stable Diffusion pipeline")
    scheduler = _json(root / "scheduler" / "scheduler_config.json")
    unet_config = _json(root / "unet" / "config.json")
    onnx_unet = root / "unet" / "model.onnx"
    if onnx_unet.is_file():
        layout = "onnx"
        inputs = _checked_inputs(root, "unet")
        for component in ("text_encoder", "text_encoder_2"):
            if (root / component / "model.onnx").is_file():
                _checked_inputs(root, component)
        sample = inputs.get("sample")
        channels = sample.shape[1] if sample and len(sample.shape) > 1 else None
        in_channels = channels if isinstance(channels, int) else unet_config.get("in_channels", 4)
        precision = sample.elem_type if sample else ""
        if precision == "fp32" and is_quantized(onnx_unet):
            precision = "int8"
        xl = "text_embeds" in inputs or "time_ids" in inputs
    elif any((root / "unet").glob("diffusion_pytorch_model*")):
        layout = "diffusers"
        in_channels = unet_config.get("in_channels", 4)
        precision = str(unet_config.get("torch_dtype", "") or "")
        xl = unet_config.get("addition_embed_type") == "text_time"
    else:
        raise ValueError(f"{root.name}: no unet/model.onnx and no diffusers UNet weights")
    xl = xl or "XL" in str(index.get("_class_name", "")) or (root / "text_encoder_2").is_dir()
    signals = signals_from_configs(
        root.name, index, unet_config, scheduler, sdxl=xl, in_channels=in_channels
    )
    family = classify(signals)
    prediction = signals.prediction_type
    zero_snr = bool(scheduler.get("rescale_betas_zero_snr"))
    return Detected(layout, "checkpoint", family, precision, prediction, in_channels == 9, zero_snr)


# The inputs the engine feeds each graph by name: a graph without them (another component's
# graph under this one's name) would be listed as usable and fail its first job.
_REQUIRED_INPUTS = {
    "unet": ("sample", "timestep", "encoder_hidden_states"),
    "text_encoder": ("input_ids",),
    "text_encoder_2": ("input_ids",),
}


def _checked_inputs(root: Path, component: str) -> dict[str, OnnxInput]:
    """The inputs of ``root/component/model.onnx`` by name; ValueError when it does not read
    or lacks one the engine feeds it."""
    shown = f"{component}/model.onnx"
    try:
        inputs = {i.name: i for i in onnx_inputs(root / component / "model.onnx")}
    except ValueError as exc:  # a truncated or damaged graph (ProtobufError)
        raise ValueError(f"{shown} is not a readable ONNX graph ({exc})") from None
    missing = [name for name in _REQUIRED_INPUTS[component] if name not in inputs]
    if missing:
        raise ValueError(
            f"{shown} is not a {component} graph: it has no input {missing[0]!r} "
            f"(its inputs: {', '.join(inputs) or 'none'})"
        )
    return inputs


def _vectors(info: object) -> bool:
    """Whether a header entry is a float tensor shaped as embedding vectors: ``[width]``,
    ``[n, width]`` or ``[1, n, width]``."""
    if not isinstance(info, dict) or info.get("dtype") not in ("F32", "F16", "BF16"):
        return False
    shape = info.get("shape")
    if not isinstance(shape, list) or not 1 <= len(shape) <= 3:
        return False
    return len(shape) < 3 or shape[0] == 1


def detect_file(path: Path) -> Detected:
    """Detect a single .safetensors file: checkpoint, LoRA, embedding or VAE, by its tensors."""
    try:
        header = safetensors_header(path)
    except UnsafeContentError as exc:
        raise ValueError(str(exc)) from None
    keys = [k for k in header if k != "__metadata__"]
    if any(k.startswith("model.diffusion_model.") for k in keys):
        xl = any(k.startswith("conditioner.embedders.1") for k in keys)
        return Detected("file", "checkpoint", "sdxl" if xl else "sd1")
    if holds_lora(header):
        problem = refusal_of(path.name, keys)
        if problem:  # OFT, (IA)^3, ... only: installed, every job on it would fail
            raise ValueError(problem)
        return Detected("file", "lora", "")
    if keys and all(k in ("clip_l", "clip_g") or is_a1111_key(k) for k in keys):
        return Detected("file", "embedding", "")
    if len(keys) == 1 and _vectors(header[keys[0]]):  # diffusers: one tensor, named its token
        return Detected("file", "embedding", "")
    if any(k.startswith(("decoder.", "encoder.", "first_stage_model.")) for k in keys):
        return Detected("file", "vae", "")
    raise ValueError(f"{path.name}: the tensors match no known model type")
