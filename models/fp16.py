"""Convert an exported fp32 ONNX Stable Diffusion folder to fp16 (inputs and outputs too)."""

from __future__ import annotations

import shutil
from pathlib import Path

import onnx
from onnxruntime.transformers.float16 import convert_float_to_float16

COMPONENTS = ("text_encoder", "unet", "vae_decoder", "vae_encoder")


def convert_folder_to_fp16(source: Path, target: Path) -> None:
    """Copy `source` to `target`, turning each component's model.onnx into fp16."""
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target)
    for component in COMPONENTS:
        path = target / component / "model.onnx"
        # keep_io_types=False mirrors optimum's own fp16 exports: float inputs become fp16.
        model = convert_float_to_float16(onnx.load(str(path)), keep_io_types=False)
        onnx.save(model, str(path))
